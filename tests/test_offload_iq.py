"""The offload plan and the CUDA span on a model whose layers are the i-quants (IQ4_NL,
IQ4_XS and the seven grid types, one type per layer): the plan's layer bytes are the
file's tensor sizes (block sizes by hand below), and the CUDA span, its sources run on
the emulated runtime, takes every layer and allocates what the plan says, to the byte;
its logits follow the CPU's. No GPU needed (the emulated backend builds with g++)."""
from __future__ import annotations

import json

import gguf
import numpy as np
import pytest

from llmlite import _lib as L
from llmlite.gguf import open_gguf
from llmlite.offload import model_costs, plan_split

from helpers import llmlite, run_python
from test_iq_grid import random_rows

# bytes of 256 elements of each type (llama.cpp's block layouts: IQ4_NL 8 blocks of 18)
BYTES_256 = {"IQ4_NL": 144, "IQ4_XS": 136, "IQ2_XXS": 66, "IQ2_XS": 74, "IQ2_S": 82, "IQ3_XXS": 98,
             "IQ3_S": 110, "IQ1_S": 50, "IQ1_M": 56}
TYPES = list(BYTES_256)
# llama, n_embd = n_ff = 256 (a row of each matrix is one super-block), 4 heads of 64, 2 KV
# heads: rows per layer q 256 + k 128 + v 128 + output 256 + gate, up, down 3 x 256
ROWS = 256 + 128 + 128 + 256 + 3 * 256
NORMS = 2 * 256 * 4            # attn_norm, ffn_norm F32
N_VOCAB = 320


def _blocks(name: str, rows: int, seed: int) -> np.ndarray:
    """rows of 256 weights in type `name`: IQ4 quantized from random floats, the grid
    types (which have no quantizer) random codes with sane scales"""
    t = gguf.GGMLQuantizationType[name]
    if name.startswith("IQ4"):
        x = np.random.default_rng(seed).standard_normal((rows, 256)).astype(np.float32) * 0.06
        return L.quantize_rows(int(t), x)
    return random_rows(name, rows, 256, seed)


def _write(path, types: list[str], f32: bool = False):
    """a model with a layer per entry of types, its matrices of that type (f32: those
    dequantized to F32)"""
    rng = np.random.default_rng(3)
    w = gguf.GGUFWriter(str(path), "llama")
    for k, v in {"block_count": len(types), "context_length": 256, "embedding_length": 256,
                 "feed_forward_length": 256, "attention.head_count": 4, "attention.head_count_kv": 2}.items():
        w.add_uint32(f"llama.{k}", v)
    w.add_float32("llama.attention.layer_norm_rms_epsilon", 1e-5)
    w.add_tensor("token_embd.weight", rng.standard_normal((N_VOCAB, 256)).astype(np.float32))
    w.add_tensor("output_norm.weight", np.ones(256, np.float32))
    for il, name in enumerate(types):
        t = gguf.GGMLQuantizationType[name]
        p = f"blk.{il}."
        w.add_tensor(p + "attn_norm.weight", np.ones(256, np.float32))
        w.add_tensor(p + "ffn_norm.weight", np.ones(256, np.float32))
        for j, (m, rows) in enumerate((("attn_q", 256), ("attn_k", 128), ("attn_v", 128), ("attn_output", 256),
                                       ("ffn_gate", 256), ("ffn_up", 256), ("ffn_down", 256))):
            q = _blocks(name, rows, 10 * il + j)
            if f32:
                w.add_tensor(p + m + ".weight", L.dequantize(int(t), q, rows * 256).reshape(rows, 256))
            else:
                w.add_tensor(p + m + ".weight", q, raw_dtype=t)
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
    return path


@pytest.fixture(scope="module")
def iq_model(tmp_path_factory):
    return _write(tmp_path_factory.mktemp("iq") / "iq.gguf", TYPES)


def test_plan_bytes_are_the_file_tensor_sizes(iq_model):
    with open_gguf(iq_model) as g:
        layer = [sum(t.nbytes for n, t in g.tensors.items() if n.startswith(f"blk.{i}.")) for i in range(len(TYPES))]
        file_bytes = sum(t.nbytes for t in g.tensors.values())
        assert 0 <= g.file_size - g.data_offset - file_bytes < len(g.tensors) * g.alignment
    want = [ROWS * BYTES_256[name] + NORMS for name in TYPES]
    c = model_costs(iq_model, 128, 8, backend="cpu")
    assert c.layer_weights == layer == want
    assert c.file_tensor_bytes == file_bytes
    p = plan_split(c, None, 0, gpu_layers="all")
    assert p.gpu.weights == sum(want) and p.cpu.weights == 0
    # `info --plan`, for the CUDA span (each tensor here a multiple of its 256 B alignment)
    r = llmlite("info", iq_model, "--plan", "-ngl", "all", "--vram", "1", "--json")
    assert r.returncode == 0, r.stderr
    plan = json.loads(r.stdout)
    assert (plan["n_gpu"], plan["gpu"]["weights"], plan["cpu"]["weights"]) == (len(TYPES), sum(want), 0)


def test_cuda_span_takes_every_iq_layer_as_planned(emulated_cuda_lib, iq_model):
    """every layer on the emulated CUDA span (a type it could not decode is refused: the
    span is not made) and its allocation the plan's figure; then per type, a one-layer
    model on the span against the CPU on the same model with the layer dequantized to
    F32 (exact activations on both sides): the same logits to float rounding (the
    decoders inside the real span code; a wrong value anywhere shows above the rounding)"""
    pairs = []
    for name in TYPES:
        pairs += [_write(iq_model.parent / f"{name}.gguf", [name]), _write(iq_model.parent / f"{name}-f32.gguf", [name], True)]
    code = ("import sys, numpy as np; from llmlite.gguf import open_gguf; from llmlite.model import Weights\n"
            "from llmlite.offload import load_cuda, model_costs, plan_split\n"
            "assert load_cuda()[0], load_cuda()\n"
            "toks = [1, 7, 300, 42, 99, 5, 250, 17]\n"
            "with open_gguf(sys.argv[1]) as g:\n"
            "    w = Weights(g, 64, 16, n_gpu=99, backend='cuda')\n"
            "    plan = plan_split(model_costs(g, 64, 16), None, 0, gpu_layers='all').gpu.total\n"
            "    print('span', w.backend, w.n_gpu, w.span_bytes, plan)\n"
            "for i in range(2, len(sys.argv), 2):\n"
            "    with open_gguf(sys.argv[i]) as g:\n"
            "        a = Weights(g, 64, 16, n_gpu=1, backend='cuda').forward(toks, 0, 2)\n"
            "    with open_gguf(sys.argv[i + 1]) as g:\n"
            "        b = Weights(g, 64, 16).forward(toks, 0, 2)\n"
            "    print('type', sys.argv[i], int((a.argmax(1) == b.argmax(1)).sum()), float(np.abs(a - b).max() / np.abs(b).max()))\n")
    r = run_python(code, iq_model, *pairs, env={"LLMLITE_CUDA_LIB": emulated_cuda_lib, "LLMLITE_OFFLOAD_BACKEND": "cuda"})
    assert r.returncode == 0, r.stderr
    lines = [line.split() for line in r.stdout.splitlines()]
    backend, n_gpu, got, plan = lines[0][1:]
    assert (backend, int(n_gpu)) == ("cuda", len(TYPES)) and int(got) == int(plan) > 0
    rows = lines[1:]
    assert len(rows) == len(TYPES) and all(top1 == "8" and float(err) < 1e-3 for _, _, top1, err in rows), r.stdout
