"""llmlite.gguf's reader against gguf-py's GGUFReader (the oracle) and GGUFWriter."""
from __future__ import annotations

import struct

import gguf
import numpy as np
import pytest

from llmlite.config import ModelConfig
from llmlite.gguf import GGUFError, StringArray, open_gguf, type_name
from llmlite.gguf.reader import _scan_strings, _scan_strings_py

GT = gguf.GGUFValueType
Q = gguf.GGMLQuantizationType


# ---- helpers --------------------------------------------------------------

def _field_leaves(field) -> list:
    """The flattened leaf parts of a GGUFReader field (its data indices)."""
    return [field.parts[i] for i in field.data]


def _compare_with_reader(g, reader, full_strings: bool, sample: int = 2000):
    rng = np.random.default_rng(0)
    keys = [k for k in reader.fields if not k.startswith("GGUF.")]
    assert list(g.metadata) == keys  # same keys, same order
    for k in keys:
        f = reader.fields[k]
        ours = g.metadata[k]
        assert g.metadata_types[k] == int(f.types[0]), k
        if f.types[0] == GT.STRING:
            assert ours == str(bytes(f.parts[-1]), "utf-8"), k
        elif f.types[0] != GT.ARRAY:
            want = f.parts[-1].tolist()[0]
            assert ours == want and type(ours) is type(want) or (f.types[0] == GT.BOOL and ours is bool(want)), k
        elif f.types[-1] == GT.STRING:
            assert isinstance(ours, StringArray) and g.array_types[k] == GT.STRING
            leaves = _field_leaves(f)
            assert len(ours) == len(leaves), k
            assert np.array_equal(ours.lengths, [len(x) for x in leaves]), k
            idx = range(len(leaves)) if full_strings else sorted(set(rng.integers(0, len(leaves), sample).tolist()) | {0, len(leaves) - 1})
            for i in idx:
                raw = bytes(leaves[i])
                assert ours.raw(i) == raw, (k, i)
                assert ours[i] == raw.decode("utf-8", "replace"), (k, i)
            if full_strings:
                assert ours.tolist() == [bytes(x).decode("utf-8", "replace") for x in leaves]
        else:
            assert isinstance(ours, np.ndarray), k
            want = np.concatenate(_field_leaves(f))
            assert ours.dtype == want.dtype.newbyteorder("<") or f.types[-1] == GT.BOOL, k
            assert np.array_equal(ours, want), k
            assert not ours.flags.owndata and not ours.flags.writeable  # a view on the mapping
    assert list(g.tensors) == [t.name for t in reader.tensors]
    for t in reader.tensors:
        ti = g.tensors[t.name]
        assert ti.shape == tuple(int(x) for x in t.shape), t.name
        assert ti.type == int(t.tensor_type), t.name
        assert ti.offset == t.data_offset, t.name
        assert ti.nbytes == t.n_bytes, t.name
        assert ti.n_elements == t.n_elements, t.name


def _check_tensor_views(g, path, names):
    with open(path, "rb") as f:
        for name in names:
            ti = g.tensors[name]
            v = g.tensor_data(name)
            assert v.dtype == np.uint8 and v.size == ti.nbytes
            assert not v.flags.owndata and not v.flags.writeable
            f.seek(ti.offset)
            assert v.tobytes() == f.read(ti.nbytes), name


# ---- the real models --------------------------------------------------------

def test_smollm2_matches_gguf_reader(smollm2_path):
    reader = gguf.GGUFReader(smollm2_path)
    with open_gguf(smollm2_path) as g:
        assert g.version == 3 and g.alignment == 32
        assert g.file_size == smollm2_path.stat().st_size
        _compare_with_reader(g, reader, full_strings=True)
        assert g.metadata["tokenizer.ggml.tokens"][1] == "<|im_start|>"
        assert len(g.metadata["tokenizer.ggml.merges"]) == 48900
        assert g.data_offset % g.alignment == 0
        assert min(t.offset for t in g.tensors.values()) == g.data_offset
        names = list(g.tensors)
        _check_tensor_views(g, smollm2_path, [names[0], names[1], names[-1], "token_embd.weight"])


@pytest.mark.slow
def test_gemma3_matches_gguf_reader(gemma3_path):
    reader = gguf.GGUFReader(gemma3_path)  # slow (~13 s): once
    with open_gguf(gemma3_path) as g:
        _compare_with_reader(g, reader, full_strings=False)
        toks = g.metadata["tokenizer.ggml.tokens"]
        assert len(toks) == 262144 and toks[2] == "<bos>"
        assert g.metadata["tokenizer.ggml.scores"].shape == (262144,)
        assert g.metadata["tokenizer.ggml.token_type"].dtype == np.dtype("<i4")
        names = list(g.tensors)
        _check_tensor_views(g, gemma3_path, [names[0], names[-1], "token_embd.weight"])
        # every tensor lies inside the file, aligned
        for t in g.tensors.values():
            assert t.offset % g.alignment == 0 and t.offset + t.nbytes <= g.file_size


def test_model_config_real_models(smollm2_path, gemma3_path):
    with open_gguf(smollm2_path) as g:
        c = ModelConfig.from_gguf(g)
        assert (c.arch, c.n_layer, c.n_embd, c.n_ff, c.n_head, c.n_head_kv) == ("llama", 30, 576, 1536, 9, 3)
        assert (c.head_dim, c.head_dim_v, c.n_rot, c.n_ctx_train, c.n_vocab) == (64, 64, 64, 8192, 49152)
        assert c.rope_freq_base == 100000.0 and c.sliding_window == 0 and not any(c.swa_layers)
        assert (c.tokenizer_model, c.tokenizer_pre, c.has_chat_template) == ("gpt2", "smollm", True)
        assert (c.bos_token_id, c.eos_token_id, c.add_bos_token) == (1, 2, False)
        assert c.param_count == sum(t.n_elements for t in g.tensors.values()) == 134515008
        assert c.kv_cache_bytes(4096) == 2 * 30 * 4096 * 3 * 64 * 2
    with open_gguf(gemma3_path) as g:
        c = ModelConfig.from_gguf(g)
        assert (c.arch, c.n_layer, c.n_embd, c.n_head, c.n_head_kv, c.head_dim) == ("gemma3", 18, 640, 4, 1, 256)
        assert (c.n_vocab, c.tokenizer_model, c.has_chat_template) == (262144, "llama", False)
        assert c.sliding_window == 512 and c.sliding_window_pattern == 6
        assert [il for il in range(18) if not c.swa_layers[il]] == [5, 11, 17]
        assert c.rope_freq_base == 1e6 and c.rope_freq_base_swa == 10000.0
        assert c.bos_token_id == 2 and c.eos_token_id == 1 and c.add_bos_token is True
        full = 2 * 18 * 4096 * 256 * 2
        assert c.kv_cache_bytes(4096) == full
        assert c.kv_cache_bytes(4096, windowed=True) == 2 * (3 * 4096 + 15 * 512) * 256 * 2


# ---- a synthetic file with every value type ----------------------------------

EVERY = {
    "t.u8": (GT.UINT8, 250), "t.i8": (GT.INT8, -100), "t.u16": (GT.UINT16, 65000),
    "t.i16": (GT.INT16, -30000), "t.u32": (GT.UINT32, 4_000_000_000), "t.i32": (GT.INT32, -2_000_000_000),
    "t.f32": (GT.FLOAT32, 0.5), "t.bool": (GT.BOOL, True), "t.bool0": (GT.BOOL, False),
    "t.str": (GT.STRING, "héllo wörld ✓"), "t.empty": (GT.STRING, ""),
    "t.u64": (GT.UINT64, 2**64 - 1), "t.i64": (GT.INT64, -(2**63)), "t.f64": (GT.FLOAT64, 1e300),
}


def _write_every(path, alignment=None):
    w = gguf.GGUFWriter(str(path), "llama")
    if alignment:
        w.add_custom_alignment(alignment)
    for k, (t, v) in EVERY.items():
        w.add_key_value(k, v, t)
    w.add_key_value("a.u8", [1, 2, 255], GT.ARRAY, sub_type=GT.UINT8)
    w.add_key_value("a.i8", [-1, 2, -128], GT.ARRAY, sub_type=GT.INT8)
    w.add_key_value("a.u16", [1, 65535], GT.ARRAY, sub_type=GT.UINT16)
    w.add_key_value("a.i16", [-1, 32767], GT.ARRAY, sub_type=GT.INT16)
    w.add_key_value("a.u32", [7, 8, 9], GT.ARRAY, sub_type=GT.UINT32)
    w.add_key_value("a.i32", [-7, 8], GT.ARRAY, sub_type=GT.INT32)
    w.add_key_value("a.f32", [0.25, -1.5, 3.0], GT.ARRAY, sub_type=GT.FLOAT32)
    w.add_key_value("a.bool", [True, False, True], GT.ARRAY, sub_type=GT.BOOL)
    w.add_key_value("a.u64", [2**64 - 1, 0], GT.ARRAY, sub_type=GT.UINT64)
    w.add_key_value("a.i64", [-(2**63), 5], GT.ARRAY, sub_type=GT.INT64)
    w.add_key_value("a.f64", [1e-300, 2.5], GT.ARRAY, sub_type=GT.FLOAT64)
    w.add_key_value("a.str", ["a", "", "ünï", "x" * 300], GT.ARRAY, sub_type=GT.STRING)
    w.add_key_value("a.nested", [[1, 2, 3], [4], [5, 6]], GT.ARRAY)
    w.add_key_value("a.nested_str", [["p", "q"], ["r"]], GT.ARRAY)
    rng = np.random.default_rng(1)
    tensors = {
        "f32": rng.standard_normal((3, 5)).astype(np.float32),
        "f16": rng.standard_normal((2, 64)).astype(np.float16),
        "v": rng.standard_normal(7).astype(np.float32),
    }
    for n, a in tensors.items():
        w.add_tensor(n, a)
    q8 = rng.integers(0, 256, (4, 2 * 34), dtype=np.uint8)
    w.add_tensor("q8", q8, raw_dtype=Q.Q8_0)
    q4k = rng.integers(0, 256, (2, 144), dtype=np.uint8)
    w.add_tensor("q4k", q4k, raw_dtype=Q.Q4_K)
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
    return {**{k: a.tobytes() for k, a in tensors.items()}, "q8": q8.tobytes(), "q4k": q4k.tobytes()}


@pytest.mark.parametrize("alignment", [None, 64, 1])
def test_every_value_type_round_trips(tmp_path, alignment):
    p = tmp_path / "every.gguf"
    raw = _write_every(p, alignment)
    with open_gguf(p) as g:
        assert g.alignment == (alignment or 32)
        md, mt = g.metadata, g.metadata_types
        for k, (t, v) in EVERY.items():
            assert mt[k] == int(t)
            if t == GT.FLOAT32:
                assert md[k] == np.float32(v)
            else:
                assert md[k] == v and type(md[k]) is type(v), k
        for k, want, dt in [("a.u8", [1, 2, 255], "<u1"), ("a.i8", [-1, 2, -128], "<i1"),
                            ("a.u16", [1, 65535], "<u2"), ("a.i16", [-1, 32767], "<i2"),
                            ("a.u32", [7, 8, 9], "<u4"), ("a.i32", [-7, 8], "<i4"),
                            ("a.f32", [0.25, -1.5, 3.0], "<f4"), ("a.u64", [2**64 - 1, 0], "<u8"),
                            ("a.i64", [-(2**63), 5], "<i8"), ("a.f64", [1e-300, 2.5], "<f8")]:
            assert md[k].dtype == np.dtype(dt) and md[k].tolist() == want, k
            assert mt[k] == GT.ARRAY
        assert md["a.bool"].tolist() == [True, False, True] and g.array_types["a.bool"] == GT.BOOL
        assert g.array_types["a.f32"] == GT.FLOAT32
        s = md["a.str"]
        assert isinstance(s, StringArray) and len(s) == 4
        assert s.tolist() == ["a", "", "ünï", "x" * 300] and list(s) == s.tolist()
        assert s[-1] == "x" * 300 and s[1:3] == ["", "ünï"] and s.raw(2) == "ünï".encode()
        assert s == ["a", "", "ünï", "x" * 300]
        assert [s.buffer[o : o + n].tobytes() for o, n in zip(s.offsets, s.lengths)] == s.raw_list()
        nested = md["a.nested"]
        assert [a.tolist() for a in nested] == [[1, 2, 3], [4], [5, 6]]
        assert [a.tolist() for a in md["a.nested_str"]] == [["p", "q"], ["r"]]
        assert g.array_types["a.nested"] == GT.ARRAY
        assert set(g.tensors) == set(raw)
        for n, b in raw.items():
            t = g.tensors[n]
            assert t.offset % g.alignment == 0
            assert g.tensor_data(n).tobytes() == b, n
        assert g.tensors["f32"].shape == (5, 3) and type_name(g.tensors["f16"].type) == "F16"
        assert g.tensors["q8"].shape == (64, 4) and g.tensors["q8"].n_elements == 256
        assert g.tensors["q4k"].shape == (256, 2) and g.tensors["q4k"].type_name == "Q4_K"
        # the same as gguf-py reads it (leaves of nested arrays flattened there)
        reader = gguf.GGUFReader(p)
        for k in EVERY:
            assert reader.fields[k].contents() == (md[k] if isinstance(md[k], str) else md[k].item()
                                                    if isinstance(md[k], np.generic) else md[k]), k
        assert reader.fields["a.nested"].contents() == [1, 2, 3, 4, 5, 6]
        for t in reader.tensors:
            assert g.tensors[t.name].offset == t.data_offset


def test_version_2_header(tmp_path):
    p = tmp_path / "v3.gguf"
    raw = _write_every(p)
    b = bytearray(p.read_bytes())
    assert struct.unpack_from("<I", b, 4)[0] == 3
    struct.pack_into("<I", b, 4, 2)
    p2 = tmp_path / "v2.gguf"
    p2.write_bytes(bytes(b))
    with open_gguf(p2) as g, open_gguf(p) as g3:
        assert g.version == 2
        assert list(g.metadata) == list(g3.metadata)
        assert g.tensors == g3.tensors
        assert g.tensor_data("q8").tobytes() == raw["q8"]


@pytest.mark.parametrize("version,msg", [(1, "version 1 is not supported"), (4, "unsupported GGUF version 4"),
                                         (0, "unsupported GGUF version 0")])
def test_other_versions_rejected(tmp_path, version, msg):
    p = tmp_path / "v.gguf"
    _write_every(p)
    b = bytearray(p.read_bytes())
    struct.pack_into("<I", b, 4, version)
    p.write_bytes(bytes(b))
    with pytest.raises(GGUFError, match=msg):
        open_gguf(p)


def test_big_endian_rejected(tmp_path):
    p = tmp_path / "be.gguf"
    w = gguf.GGUFWriter(str(p), "llama", endianess=gguf.GGUFEndian.BIG)
    w.add_uint32("x", 1)
    w.add_tensor("t", np.ones(4, dtype=np.float32))  # the writer byte-swaps it
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
    with pytest.raises(GGUFError, match="big-endian"):
        open_gguf(p)


def test_close_keeps_views_valid(tmp_path):
    p = tmp_path / "every.gguf"
    raw = _write_every(p)
    g = open_gguf(p)
    v = g.tensor_data("f32")
    s = g.metadata["a.str"]
    g.close()
    g.close()  # twice is fine
    assert v.tobytes() == raw["f32"] and s[3] == "x" * 300
    with pytest.raises(GGUFError, match="closed"):
        g.tensor_data("f32")


def test_c_string_scan_matches_python(tmp_path, smollm2_path):
    with open_gguf(smollm2_path) as g:
        toks = g.metadata["tokenizer.ggml.tokens"]
        start = int(toks.offsets[0]) - 8
        n = len(toks)
        end, offs, lens = _scan_strings(g.buffer, start, n)
        o2, l2 = np.empty(n, np.int64), np.empty(n, np.int64)
        assert _scan_strings_py(g.buffer, start, n, o2, l2) == end > start
        assert np.array_equal(offs, o2) and np.array_equal(lens, l2)
        assert np.array_equal(offs, toks.offsets)
        # a scan that would run past the end (count too large, or a short buffer) fails in both
        cut = g.buffer[: end - 1]
        assert _scan_strings(cut, start, n)[0] == -1
        assert _scan_strings_py(cut, start, n, o2, l2) == -1
    b = np.frombuffer(struct.pack("<Q", 2**63 + 5) + b"abc", np.uint8)
    assert _scan_strings(b, 0, 1)[0] == -1
    b = np.frombuffer(struct.pack("<Q", 3) + b"abc" + struct.pack("<Q", 0), np.uint8)
    assert _scan_strings(b, 0, 2)[0] == b.size
    assert _scan_strings(b, 0, 3)[0] == -1
    assert _scan_strings(b, b.size, 0)[0] == b.size


def test_missing_and_non_files(tmp_path):
    with pytest.raises(GGUFError, match="no such file"):
        open_gguf(tmp_path / "nope.gguf")
    with pytest.raises(GGUFError, match="is a directory"):
        open_gguf(tmp_path)
    (tmp_path / "empty.gguf").write_bytes(b"")
    with pytest.raises(GGUFError, match="empty"):
        open_gguf(tmp_path / "empty.gguf")
    (tmp_path / "ggjt.bin").write_bytes(b"tjgg" + bytes(100))
    with pytest.raises(GGUFError, match="GGJT"):
        open_gguf(tmp_path / "ggjt.bin")
    assert issubclass(GGUFError, ValueError)


def test_model_config_per_layer_values(tmp_path):
    p = tmp_path / "pl.gguf"
    w = gguf.GGUFWriter(str(p), "gemma3")
    w.add_block_count(4)
    w.add_context_length(1024)
    w.add_embedding_length(64)
    w.add_key_value("gemma3.feed_forward_length", [128, 128, 256, 256], GT.ARRAY, sub_type=GT.UINT32)
    w.add_head_count(4)
    w.add_key_value("gemma3.attention.head_count_kv", [2, 1, 2, 1], GT.ARRAY, sub_type=GT.INT32)
    w.add_key_length(32)
    w.add_value_length(16)
    w.add_sliding_window(8)
    w.add_key_value("gemma3.attention.sliding_window_pattern", [True, False, True, False], GT.ARRAY,
                    sub_type=GT.BOOL)
    w.add_token_list(["a", "b", "c"])
    w.add_tensor("i8", np.zeros((1, 256), np.uint8), raw_dtype=Q.I8)  # described, not computable
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
    with open_gguf(p) as g:
        c = ModelConfig.from_gguf(g)
        assert c.n_ff_per_layer == [128, 128, 256, 256] and c.n_ff == 128
        assert c.n_head_kv_per_layer == [2, 1, 2, 1] and c.n_head_kv == 2
        assert (c.head_dim, c.head_dim_v, c.n_vocab) == (32, 16, 3)
        assert c.swa_layers == [True, False, True, False]
        assert c.kv_cache_bytes(100) == 100 * (2 + 1 + 2 + 1) * (32 + 16) * 2
        assert c.kv_cache_bytes(100, windowed=True) == (8 * 2 + 100 * 1 + 8 * 2 + 100 * 1) * 48 * 2
        assert g.tensors["i8"].type_name == "I8" and g.tensors["i8"].shape == (256, 1)
        with pytest.raises(GGUFError, match="unsupported tensor type I8"):
            g.check_computable()


def test_model_config_rejects_bad_values(tmp_path):
    def cfg_error(kv=None):
        p = tmp_path / "c.gguf"
        w = gguf.GGUFWriter(str(p), "llama")
        for k, (t, v) in (kv or {}).items():
            w.add_key_value(k, v, t, sub_type=GT.UINT32 if t == GT.ARRAY else None)
        w.write_header_to_file()
        w.write_kv_data_to_file()
        w.write_tensors_to_file()
        w.close()
        with open_gguf(p) as g, pytest.raises(GGUFError) as e:
            ModelConfig.from_gguf(g)
        return str(e.value)

    n3 = {"llama.block_count": (GT.UINT32, 3)}
    assert "block_count is missing" in cfg_error()
    assert "expected 1 to 512" in cfg_error({"llama.block_count": (GT.UINT32, 0)})
    assert "expected an integer" in cfg_error({"llama.block_count": (GT.FLOAT32, 2.0)})
    assert "expected 3 per-layer integers" in cfg_error({**n3, "llama.attention.head_count": (GT.ARRAY, [1, 2])})
    assert "out of range" in cfg_error({**n3, "llama.embedding_length": (GT.INT32, -5)})
