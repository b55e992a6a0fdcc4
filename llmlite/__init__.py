"""llmlite: a small, fast local runner for GGUF language models."""
import os as _os

# llmlite runs its own thread pool; numpy's BLAS threads would only compete with it
for _v in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
    _os.environ.setdefault(_v, "1")

__version__ = "0.1.0"

__all__ = ["load", "__version__"]


def load(model=None, n_ctx=2048, threads=None, gpu_layers=0, n_batch=256, flash_attn=False):
    """Load a GGUF file or a models.toml alias; see llmlite.model.Model.

    flash_attn=True: online-softmax attention (llama.cpp's -fa) instead of its default order."""
    from llmlite.model import load as _load

    return _load(model, n_ctx=n_ctx, threads=threads, gpu_layers=gpu_layers, n_batch=n_batch,
                 flash_attn=flash_attn)
