"""The forward pass against llama.cpp's logits on the six tiny synthetic models
(shared/refs/synthetic: every architecture we support, random weights)."""
import numpy as np
import pytest
from helpers import assert_batch_invariant
from isa import assert_same_on_every_isa

from llmlite.gguf import open_gguf
from llmlite.model import Weights

MODELS = ["qwen2-tiny-q8_0", "qwen3-tiny-q5_0", "llama-ropefreqs-tiny-q4_1",
          "llama-mqa-tiny-f16", "gemma3-tiny-bf16", "phi3-tiny-f32"]
MARGIN = 0.01  # the refs' near-tie threshold (see their README)
# greedy decoding compares up to the first step whose llama.cpp margin is below our
# numeric distance from llama.cpp on these files (< 0.1, see test_teacher_forced_logits)
GREEDY_MARGIN = 0.1


@pytest.fixture(scope="module", params=MODELS)
def synth(request, shared_dir):
    path = shared_dir / "refs" / "synthetic" / f"{request.param}.gguf"
    g = open_gguf(path)
    # these refs were made with flash attention off
    w = Weights(g, 512, n_batch=64, flash_attn=False)
    yield request.param, w, shared_dir / "refs" / "synthetic" / request.param
    g.close()


def _refs(d):
    return [np.load(d / f"logits_{k}.npz") for k in range(3)]


def test_teacher_forced_logits(synth):
    name, w, d = synth
    for ref in _refs(d):
        logits = w.forward(ref["tokens"], 0, 2)
        ours = np.take_along_axis(logits, ref["top_ids"], 1)
        # llama.cpp's own documented spread on these files is within 0.1 (README)
        assert np.abs(ours - ref["top_logits"]).max() < 0.15, name
        lse = np.log(np.exp(logits - logits.max(1, keepdims=True)).sum(1)) + logits.max(1)
        assert np.abs(lse - ref["logsumexp"]).max() < 0.05, name
        margin = ref["top_logits"][:, 0] - ref["top_logits"][:, 1]
        # a position is a clear win when its margin exceeds the refs' near-tie
        # threshold and twice our distance from llama.cpp on this prompt
        err = np.abs(ours - ref["top_logits"]).max()
        clear = margin >= max(MARGIN, 2 * err)
        assert (logits.argmax(1)[clear] == ref["top_ids"][clear, 0]).all(), name


@pytest.mark.parametrize("name", ["qwen2-tiny-q8_0", "qwen3-tiny-q5_0", "llama-ropefreqs-tiny-q4_1", "phi3-tiny-f32"])
def test_short_prompt_bit_exact_where_llamacpp_is(name, shared_dir):
    """Prompt 0 (6 tokens) reproduces llama.cpp's logits to float32 precision for the
    quantized and F32 models (llama.cpp takes other kernel paths for the F16 MQA and
    BF16 ones, see the refs README)."""
    d = shared_dir / "refs" / "synthetic"
    with open_gguf(d / f"{name}.gguf") as g:
        w = Weights(g, 64, n_batch=64, flash_attn=False)
        ref = np.load(d / name / "logits_0.npz")
        logits = w.forward(ref["tokens"], 0, 2)
        ours = np.take_along_axis(logits, ref["top_ids"], 1)
        assert np.abs(ours - ref["top_logits"]).max() < 1e-4, name
        del w


def test_greedy_until_near_tie(synth):
    name, w, d = synth
    for ref in _refs(d):
        toks = list(ref["tokens"])
        logits = w.forward(toks, 0, 1)
        pos = len(toks)
        for want, margin in zip(ref["greedy"], ref["greedy_margin"]):
            if margin < GREEDY_MARGIN:
                break
            got = int(np.argmax(logits))
            assert got == int(want), name
            logits = w.forward([got], pos, 1)
            pos += 1


def test_batch_invariance(synth):
    """A position's logits are bit-identical computed alone, in a batch, or split."""
    name, w, d = synth
    assert_batch_invariant(w, list(np.load(d / "logits_2.npz")["tokens"])[:40], name)



def _requantize(src, dst, qtype):
    """A copy of a GGUF with every 2-D weight (rows a multiple of 32) in qtype, the
    rest in F32, through gguf-py."""
    from gguf import GGUFReader, GGUFValueType, GGUFWriter, quants

    r = GGUFReader(str(src))
    w = GGUFWriter(str(dst), r.fields["general.architecture"].contents())
    for k, f in r.fields.items():
        if k.startswith("GGUF.") or k == "general.architecture":
            continue
        sub = {"sub_type": f.types[-1]} if f.types[0] == GGUFValueType.ARRAY else {}
        w.add_key_value(k, f.contents(), f.types[0], **sub)
    for t in r.tensors:
        x = quants.dequantize(t.data, t.tensor_type).astype(np.float32)
        if x.ndim == 2 and x.shape[-1] % 32 == 0:
            q = quants.quantize(x, qtype)
            w.add_tensor(t.name, q, raw_shape=q.shape, raw_dtype=qtype)
        else:
            w.add_tensor(t.name, x)
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
    return dst


@pytest.mark.parametrize("name", ["qwen2-tiny-q8_0", "qwen3-tiny-q5_0", "llama-ropefreqs-tiny-q4_1", "gemma3-q8_0"])
def test_every_isa_gives_the_same_logits(name, shared_dir, tmp_path):
    """The whole forward pass gives the same bits with every kernel table, attention
    included. gemma3-q8_0 is the BF16 gemma3 model requantized (the float kernels'
    orders differ between tables, the quantized ones do not): its sliding window of
    8 positions exercises attention ranges that start and end inside a group of 16."""
    from gguf import GGMLQuantizationType

    d = shared_dir / "refs" / "synthetic"
    src = d / "gemma3-tiny-bf16.gguf" if name == "gemma3-q8_0" else d / f"{name}.gguf"
    path = _requantize(src, tmp_path / "q8.gguf", GGMLQuantizationType.Q8_0) if name == "gemma3-q8_0" else src
    toks = list(np.load(d / ("gemma3-tiny-bf16" if name == "gemma3-q8_0" else name) / "logits_2.npz")["tokens"])[:40]
    assert_same_on_every_isa(path, toks, name)
