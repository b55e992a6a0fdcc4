"""`llmlite quantize` from a Hugging Face checkpoint: real ones, made here from
smollm2-135m and gemma3-270m (tests/hf_fixture.py), and the synthetic qwen2, qwen3,
llama (rope scaling) and gemma3 models. Its output must hold the same tensors, byte for
byte, as quantizing the same weights from a GGUF, the same tokenizer and model
metadata as the original GGUF, tokenize the refs' texts as the original does, and
score a text as the original does; bad checkpoints give one line."""
import json
import os

import numpy as np
import pytest

from helpers import llmlite as cli, start_llmlite
from hf_fixture import assert_converts_as_from_gguf, make_checkpoint, quantize_gguf, write_safetensors


@pytest.fixture(scope="module")
def hf(smollm2_path, tmp_path_factory):
    return make_checkpoint(smollm2_path, tmp_path_factory.mktemp("hf") / "SmolLM2-135M-Instruct")


@pytest.fixture(scope="module")
def converted(hf, smollm2_path, tmp_path_factory):
    """(q8_0 from the checkpoint, q8_0 from an F16 GGUF of the same weights)"""
    d = tmp_path_factory.mktemp("conv")
    r = cli("quantize", hf, d / "hf-q8.gguf", "--type", "q8_0")
    assert r.returncode == 0, r.stderr
    quantize_gguf(smollm2_path, d / "f16.gguf", "f16", allow_requantize=True)
    quantize_gguf(d / "f16.gguf", d / "gguf-q8.gguf", "q8_0")
    return d / "hf-q8.gguf", d / "gguf-q8.gguf"


def test_same_tensors_as_from_gguf(converted):
    from gguf import GGUFReader

    a, b = (GGUFReader(str(p)) for p in converted)
    assert [t.name for t in a.tensors] == [t.name for t in b.tensors]
    for ta, tb in zip(a.tensors, b.tensors):
        assert ta.tensor_type == tb.tensor_type and list(ta.shape) == list(tb.shape), ta.name
        assert ta.data.tobytes() == tb.data.tobytes(), ta.name


@pytest.mark.slow
def test_same_metadata_as_the_original(converted, smollm2_path):
    from gguf import GGUFReader

    a, o = GGUFReader(str(converted[0])), GGUFReader(str(smollm2_path))
    # add_space_prefix: written by the older converter that made the original, not
    # by today's for BPE vocabularies (llama.cpp reads its absence as false)
    keys = [k for k in o.fields if k.startswith(("tokenizer.", "llama.")) and k != "tokenizer.ggml.add_space_prefix"]
    assert "tokenizer.ggml.pre" in keys and "tokenizer.ggml.merges" in keys
    for k in keys:
        assert k in a.fields, k
        assert a.fields[k].contents() == o.fields[k].contents(), k


def test_tokenizes_and_scores_as_the_original(converted, smollm2_path, shared_dir):
    import llmlite
    from llmlite.perplexity import perplexity

    refs = shared_dir / "refs" / "smollm2-135m-instruct-q4_1" / "tokenize.jsonl"
    texts = [json.loads(line)["text"] for line in open(refs, encoding="utf-8")]
    new, old = llmlite.load(converted[0], n_ctx=128), llmlite.load(smollm2_path, n_ctx=128)
    try:
        for t in texts:
            assert new.tokenize(t) == old.tokenize(t), t[:40]
        text = " ".join(texts) * 4
        p_new = perplexity(new, text, n_ctx=128, n_chunks=3).ppl
        p_old = perplexity(old, text, n_ctx=128, n_chunks=3).ppl
        assert abs(p_new / p_old - 1) < 0.005, (p_new, p_old)
    finally:
        new.close()
        old.close()


def test_q4_k_m_from_the_safetensors_file(hf, tmp_path):
    r = cli("quantize", hf / "model.safetensors", tmp_path / "q4.gguf", "--type", "q4_k_m")
    assert r.returncode == 0, r.stderr
    import llmlite

    m = llmlite.load(tmp_path / "q4.gguf", n_ctx=64)
    assert np.isfinite(m.eval_last(m.tokenize("Hello, my name is"))).all()
    m.close()


def _copy(hf, dst, drop=(), config=None):
    dst.mkdir()
    for f in hf.iterdir():
        if f.name in drop:
            continue
        if f.name == "config.json" and config:
            cfg = json.loads(f.read_text())
            cfg.update(config)
            (dst / f.name).write_text(json.dumps(cfg))
        else:
            os.symlink(f, dst / f.name)
    return dst


@pytest.mark.parametrize("case,words", [
    ("no config", ["no config.json"]),
    ("no tokenizer", ["no tokenizer.json"]),
    ("unknown arch", ["BertModel", "not supported"]),
    ("shape mismatch", ["attn_q has shape"]),
    ("bad dtype", ["dtype I8"]),
    ("bad config.json", ["config.json", "not valid JSON", "line 1 column 14"]),
    ("bad tokenizer.json", ["tokenizer.json", "not valid JSON", "line 1 column 14"]),
    ("bad tokenizer_config.json", ["tokenizer_config.json", "not valid JSON", "line 1 column 14"]),
])
def test_bad_checkpoints(hf, tmp_path, case, words):
    d = tmp_path / "m"
    if case == "no config":
        _copy(hf, d, drop=("config.json",))
    elif case == "no tokenizer":
        _copy(hf, d, drop=("tokenizer.json",))
    elif case == "unknown arch":
        _copy(hf, d, config={"architectures": ["BertModel"]})
    elif case == "shape mismatch":
        _copy(hf, d, config={"hidden_size": 512})
    elif case.startswith("bad ") and case.endswith(".json"):
        name = case[4:]
        _copy(hf, d, drop=(name,))
        (d / name).write_text('{"vocab": [1,, 2]}')             # a doubled comma: the JSON breaks at column 14
    else:
        _copy(hf, d, drop=("model.safetensors",))
        write_safetensors(d / "model.safetensors", {"model.embed_tokens.weight": np.zeros((4, 4), np.float32)})
        raw = (d / "model.safetensors").read_bytes().replace(b'"F32"', b'"I8" ', 1)
        (d / "model.safetensors").write_bytes(raw)
    r = cli("quantize", d, tmp_path / "out.gguf")
    assert r.returncode == 2, r.stderr
    line = r.stderr.strip().splitlines()[-1]
    assert line.startswith("error: ") and "Traceback" not in r.stderr, r.stderr
    assert all(w in line for w in words), line
    assert not (tmp_path / "out.gguf").exists()


# the rope scaling behind llama-ropefreqs-tiny's rope_freqs ([1, 2.3391168, 8, 8]
# for head_dim 8, base 10000: Llama 3's rule with an original context of 128)
LLAMA3_SCALING = {"rope_type": "llama3", "factor": 8.0, "low_freq_factor": 1.0, "high_freq_factor": 4.0,
                  "original_max_position_embeddings": 128}


@pytest.mark.slow
@pytest.mark.parametrize("name", ["qwen2-tiny-q8_0", "qwen3-tiny-q5_0", "llama-ropefreqs-tiny-q4_1"])
def test_other_checkpoints(name, shared_dir, tmp_path):
    """Qwen2 (q/k/v biases, no permutation), Qwen3 (q/k norms, head_dim apart from
    the width) and llama with Llama 3 rope scaling (rope_freqs computed from
    config.json) and an untied output: from the synthetic refs models to a
    checkpoint and back, the same tensors as from the GGUF (rope_freqs: the
    original's bytes) and the original's metadata values."""
    src = shared_dir / "refs" / "synthetic" / f"{name}.gguf"
    hf = make_checkpoint(src, tmp_path / name, LLAMA3_SCALING if "ropefreqs" in name else None)
    assert_converts_as_from_gguf(src, hf, tmp_path)


@pytest.mark.slow
def test_gemma3_synthetic_checkpoint(shared_dir, tmp_path):
    """Gemma 3 (four norms per layer stored minus one, sliding window, linear rope
    scaling, a local rope base): from the synthetic refs model to a checkpoint and
    back, the tensors of the GGUF path (norms: the original values, +1 undone and
    redone in float32) and the original's metadata values."""
    from gguf import GGUFReader

    from llmlite import _lib
    from llmlite.gguf import open_gguf

    src = shared_dir / "refs" / "synthetic" / "gemma3-tiny-bf16.gguf"
    hf = make_checkpoint(src, tmp_path / "g3")
    r = cli("quantize", hf, tmp_path / "hf.gguf", "--type", "q8_0")
    assert r.returncode == 0, r.stderr
    quantize_gguf(src, tmp_path / "f32.gguf", "f32", allow_requantize=True)
    quantize_gguf(tmp_path / "f32.gguf", tmp_path / "f16.gguf", "f16")
    quantize_gguf(tmp_path / "f16.gguf", tmp_path / "gguf.gguf", "q8_0")
    with open_gguf(tmp_path / "hf.gguf") as a, open_gguf(tmp_path / "gguf.gguf") as b:
        assert list(a.tensors) == list(b.tensors)
        for name, ta in a.tensors.items():
            tb = b.tensors[name]
            assert ta.type == tb.type and ta.shape == tb.shape, name
            if name.endswith("norm.weight"):
                x, y = (_lib.dequantize(t.type, g.tensor_data(name), t.n_elements) for g, t in ((a, ta), (b, tb)))
                np.testing.assert_allclose(x, y, rtol=1e-6, err_msg=name)
            else:
                assert np.array_equal(np.asarray(a.tensor_data(name)), np.asarray(b.tensor_data(name))), name
    a, o = GGUFReader(str(tmp_path / "hf.gguf")), GGUFReader(str(src))
    for k in o.fields:
        if k.startswith(("gemma3.", "tokenizer.")) and k != "tokenizer.ggml.add_space_prefix":
            assert a.fields[k].contents() == o.fields[k].contents(), k


@pytest.mark.slow
def test_gemma3_sentencepiece_checkpoint(gemma3_path, shared_dir, tmp_path):
    """The real gemma3-270m as a checkpoint with a SentencePiece tokenizer.model (262k
    pieces, read without the sentencepiece package): q8_0 from it has the original's
    tokenizer and model metadata and tokenizes the refs' texts as llama.cpp did."""
    from gguf import GGUFReader


    hf = make_checkpoint(gemma3_path, tmp_path / "gemma-3-270m")
    assert (hf / "tokenizer.model").is_file() and not (hf / "tokenizer.json").exists()
    r = cli("quantize", hf, tmp_path / "q8.gguf", "--type", "q8_0")
    assert r.returncode == 0, r.stderr
    a, o = GGUFReader(str(tmp_path / "q8.gguf")), GGUFReader(str(gemma3_path))
    for k in o.fields:
        if k.startswith(("gemma3.", "tokenizer.")):
            assert a.fields[k].contents() == o.fields[k].contents(), k
    import llmlite

    m = llmlite.load(tmp_path / "q8.gguf", n_ctx=64)
    try:
        for line in open(shared_dir / "refs" / "gemma3-270m-q4_k_m" / "tokenize.jsonl", encoding="utf-8"):
            row = json.loads(line)
            assert m.tokenize(row["text"], add_special=row["add_special"], parse_special=row["parse_special"]) \
                == row["ids"], row["text"][:40]
    finally:
        m.close()


@pytest.mark.parametrize("dtype,ftype,tid", [("BF16", "bf16", 30), ("F32", "f32", 0)])
def test_bf16_and_f32_checkpoints(dtype, ftype, tid, tiny_path, tmp_path):
    """safetensors in BF16 or F32, written out in the same type: each matrix's bytes
    are the original values in that type (llama's q/k rows permuted back)."""
    from llmlite import _lib
    from llmlite.gguf import open_gguf

    src = tiny_path
    hf = make_checkpoint(src, tmp_path / "m", dtype=dtype)
    r = cli("quantize", hf, tmp_path / "out.gguf", "--type", ftype)
    assert r.returncode == 0, r.stderr
    with open_gguf(tmp_path / "out.gguf") as a, open_gguf(src) as o:
        for name, to in o.tensors.items():
            if len(to.shape) != 2:
                continue
            ta = a.tensors[name]
            assert ta.type == tid, name
            x = _lib.dequantize(to.type, o.tensor_data(name), to.n_elements).reshape(-1, to.shape[0])
            assert np.array_equal(np.asarray(a.tensor_data(name)), _lib.quantize_rows(tid, x).reshape(-1)), name


def test_sigint_while_writing_leaves_nothing(smollm2_path, tmp_path):
    """Ctrl-C while the output is being written: exit 130, no file at OUTPUT, no
    temporary file left."""
    import signal
    import time

    out = tmp_path / "out.gguf"
    p = start_llmlite("quantize", smollm2_path, out, "--type", "f32", "--allow-requantize", "-t", "1", text=True)
    deadline = time.time() + 60
    while not any(f.name.startswith(".out.gguf.part") for f in tmp_path.iterdir()) and time.time() < deadline:
        time.sleep(0.01)
    p.send_signal(signal.SIGINT)
    _, err = p.communicate(timeout=60)
    assert p.returncode == 130, err
    assert "error: interrupted" in err
    assert list(tmp_path.iterdir()) == []


def test_sharded_checkpoint(shared_dir, tmp_path):
    """model.safetensors.index.json over two shards gives the single file's output"""
    from llmlite.convert_hf import _safetensors_index

    one = make_checkpoint(shared_dir / "refs" / "synthetic" / "qwen2-tiny-q8_0.gguf", tmp_path / "a" / "m")
    two = tmp_path / "b" / "m"      # the same folder name: general.name
    two.mkdir(parents=True)
    for f in one.iterdir():
        if f.name != "model.safetensors":
            os.symlink(f, two / f.name)
    idx = _safetensors_index(one, None)
    names = sorted(idx)
    shards = {"model-00001-of-00002.safetensors": names[::2], "model-00002-of-00002.safetensors": names[1::2]}
    raw = (one / "model.safetensors").read_bytes()
    dt = {"F16": np.float16, "F32": np.float32}
    for fname, part in shards.items():
        write_safetensors(two / fname, {n: np.frombuffer(raw[idx[n].begin:idx[n].end], dt[idx[n].dtype])
                                        .reshape(idx[n].shape) for n in part})
    (two / "model.safetensors.index.json").write_text(json.dumps(
        {"metadata": {}, "weight_map": {n: f for f, part in shards.items() for n in part}}))
    for d, out in ((one, "a.gguf"), (two, "b.gguf")):
        r = cli("quantize", d, tmp_path / out, "--type", "q8_0")
        assert r.returncode == 0, r.stderr
    assert (tmp_path / "a.gguf").read_bytes() == (tmp_path / "b.gguf").read_bytes()


def test_mistral_checkpoint(tiny_path, tmp_path):
    """MistralForCausalLM converts as llama (q/k permutation included)"""
    hf = make_checkpoint(tiny_path, tmp_path / "m")
    r = cli("quantize", hf, tmp_path / "llama.gguf", "--type", "f16")
    assert r.returncode == 0, r.stderr
    cfg = json.loads((hf / "config.json").read_text())
    cfg["architectures"] = ["MistralForCausalLM"]
    (hf / "config.json").write_text(json.dumps(cfg))
    r = cli("quantize", hf, tmp_path / "mistral.gguf", "--type", "f16")
    assert r.returncode == 0, r.stderr
    assert (tmp_path / "llama.gguf").read_bytes() == (tmp_path / "mistral.gguf").read_bytes()


def test_full_disk_gives_one_line_and_no_file(hf, tmp_path):
    """The output cannot be written in full (here: a file size limit, as a full disk
    would stop it): one error line, nothing left at OUTPUT."""
    import resource
    import signal

    def limit():
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        resource.setrlimit(resource.RLIMIT_FSIZE, (20 << 20, 20 << 20))

    r = cli("quantize", hf, tmp_path / "out.gguf", "--type", "q8_0", preexec_fn=limit)
    assert r.returncode == 1, r.stderr
    line = r.stderr.strip().splitlines()[-1]
    assert line.startswith("error: ") and "Traceback" not in r.stderr and "too large" in line, r.stderr
    assert list(tmp_path.iterdir()) == []
