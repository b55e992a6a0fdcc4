"""Importance matrices: the weighted quantizers (csrc/quantize_weighted.c, the
IQ4 ones in type_iq4.c) against the bytes llama.cpp's quantize_<type> wrote with
an importance matrix (tests/data/imatrix_quant_refs.npz, made by
benchmarks/make_imatrix_refs.py); reading llama-imatrix's files (llmlite/imatrix.py);
`llmlite quantize --imatrix` against llama-quantize's files (tests/data/tiny.imatrix.*
and imatrix_tiny_refs.json, made by benchmarks/make_imatrix_tiny.py)."""
import json
import struct
from pathlib import Path

import numpy as np
import pytest
from helpers import llmlite as cli

from llmlite import _lib
from llmlite.gguf.constants import GGMLType, ValueType
from llmlite.gguf.writer import TensorOut, encode, write_gguf
from llmlite.imatrix import ImatrixError, load_imatrix

DATA = Path(__file__).parent / "data"
REFS = DATA / "imatrix_quant_refs.npz"
TYPES = {"Q4_0": 2, "Q4_1": 3, "Q5_0": 6, "Q5_1": 7, "Q2_K": 10, "Q3_K": 11, "Q4_K": 12, "Q5_K": 13,
         "Q6_K": 14, "IQ4_NL": 20, "IQ4_XS": 23}


@pytest.fixture(scope="module")
def refs():
    with np.load(REFS) as z:
        return dict(z)


def _cases(refs, name):
    for key in sorted(k for k in refs if k.startswith(name + "_") and k.count("_") == name.count("_") + 2):
        n, kind = key[len(name) + 1:].split("_")
        yield key, refs[f"x_{n}"], refs[f"im_{n}_{kind}"], refs[key]


@pytest.mark.parametrize("name", TYPES)
def test_weighted_quantizers_match_llamacpp(refs, name):
    cases = list(_cases(refs, name))
    assert len(cases) == 9
    for key, x, im, want in cases:
        got = _lib.quantize_rows(TYPES[name], x, imatrix=im)
        bad = [i for i in range(len(x)) if not np.array_equal(got[i], want[i])]
        assert not bad, f"{key}: rows {bad} differ"


@pytest.mark.parametrize("name", TYPES)
def test_weighted_rows_do_not_depend_on_threads(refs, name):
    x = np.tile(refs["x_512"], (3, 1))
    im = refs["im_512_positive"]
    prev = _lib.set_threads(1)
    try:
        one = _lib.quantize_rows(TYPES[name], x, imatrix=im)
        _lib.set_threads(2)
        two = _lib.quantize_rows(TYPES[name], x, imatrix=im)
    finally:
        _lib.set_threads(prev)
    assert np.array_equal(one, two)
    assert np.array_equal(one[3:5], _lib.quantize_rows(TYPES[name], x[3:5], imatrix=im))


@pytest.mark.parametrize("name", ["Q4_0", "Q4_K", "Q6_K", "IQ4_XS"])
def test_the_imatrix_changes_the_bytes(refs, name):
    """the weights are read: a different importance matrix gives other bytes than
    none (the plain quantizer) and than another matrix"""
    x = refs["x_1024"][:2]
    plain = _lib.quantize_rows(TYPES[name], x)
    a = _lib.quantize_rows(TYPES[name], x, imatrix=refs["im_1024_positive"])
    b = _lib.quantize_rows(TYPES[name], x, imatrix=refs["im_1024_huge"])
    assert not np.array_equal(plain, a) and not np.array_equal(a, b)


@pytest.mark.parametrize("t", [GGMLType.Q8_0, GGMLType.F16, GGMLType.MXFP4, GGMLType.TQ2_0])
def test_types_whose_quantizer_takes_no_imatrix_ignore_it(refs, t):
    """llama.cpp's quantize_q8_0, the float types, MXFP4 and the ternary types
    ignore quant_weights: the plain bytes"""
    x = refs["x_256"]
    assert np.array_equal(_lib.quantize_rows(t, x, imatrix=refs["im_256_huge"]), _lib.quantize_rows(t, x))


def test_imatrix_of_the_wrong_length_is_refused(refs):
    with pytest.raises(_lib.LlmliteError, match="importance matrix"):
        _lib.quantize_rows(12, refs["x_256"], imatrix=np.ones(512, np.float32))


# ------------------------------------------------------------- reading the files



def write_imatrix_gguf(path, entries, datasets=("corpus.txt",), chunk_count=7, chunk_size=512, drop=()):
    """llama-imatrix's GGUF form: entries name -> (sums (n_expert, ne0), counts (n_expert,))"""
    kvs = [("general.type", encode(ValueType.STRING, "imatrix")),
           ("imatrix.datasets", encode((ValueType.ARRAY, ValueType.STRING), list(datasets))),
           ("imatrix.chunk_count", encode(ValueType.UINT32, chunk_count)),
           ("imatrix.chunk_size", encode(ValueType.UINT32, chunk_size))]
    kvs = [kv for kv in kvs if kv[0] not in drop]
    tensors, blobs = [], []
    for name, (sums, counts) in entries.items():
        sums, counts = np.asarray(sums, np.float32), np.asarray(counts, np.float32)
        tensors += [TensorOut(name + ".in_sum2", (sums.shape[1], sums.shape[0]), GGMLType.F32, sums.nbytes),
                    TensorOut(name + ".counts", (1, counts.size), GGMLType.F32, counts.nbytes)]
        blobs += [sums, counts]
    write_gguf(path, kvs, tensors, lambda i: blobs[i])


def write_imatrix_dat(path, entries, chunk_count=None, dataset=None):
    """the legacy form: entries name -> (ncall, values)"""
    b = struct.pack("<i", len(entries))
    for name, (ncall, vals) in entries.items():
        vals = np.asarray(vals, np.float32)
        b += struct.pack("<i", len(name)) + name.encode() + struct.pack("<ii", ncall, vals.size) + vals.tobytes()
    if chunk_count is not None:
        b += struct.pack("<i", chunk_count)
        if dataset is not None:
            b += struct.pack("<i", len(dataset)) + dataset.encode()
    Path(path).write_bytes(b)


def test_gguf_form_divides_by_each_experts_count(tmp_path):
    rng = np.random.default_rng(1)
    dense, exps = (rng.random((1, 64)) * 5).astype(np.float32), (rng.random((3, 32)) * 9).astype(np.float32)
    write_imatrix_gguf(tmp_path / "m.gguf", {"blk.0.ffn_up.weight": (dense, [2.6]),     # count rounds to 3
                                             "blk.0.ffn_up_exps.weight": (exps, [4, 0, 1])})
    im = load_imatrix(tmp_path / "m.gguf")
    assert im.datasets == ["corpus.txt"] and im.chunk_count == 7 and sorted(im.weights) == \
        ["blk.0.ffn_up.weight", "blk.0.ffn_up_exps.weight"]
    assert np.array_equal(im.weights["blk.0.ffn_up.weight"], dense[0] / np.float32(3))
    w = im.weights["blk.0.ffn_up_exps.weight"].reshape(3, 32)
    assert np.array_equal(w[0], exps[0] / np.float32(4)) and np.array_equal(w[2], exps[2])
    assert np.array_equal(w[1], np.ones(32, np.float32))        # an expert never routed to: weight 1


def test_legacy_form_divides_by_ncall_and_reads_the_optional_tail(tmp_path):
    vals = np.arange(1, 65, dtype=np.float32) * 3
    write_imatrix_dat(tmp_path / "a.dat", {"blk.0.attn_q.weight": (3, vals), "output.weight": (0, vals)},
                      chunk_count=12, dataset="wiki.txt")
    im = load_imatrix(tmp_path / "a.dat")
    assert im.chunk_count == 12 and im.datasets == ["wiki.txt"]
    assert np.array_equal(im.weights["blk.0.attn_q.weight"], vals / np.float32(3))
    assert np.array_equal(im.weights["output.weight"], vals)     # ncall 0: as stored
    write_imatrix_dat(tmp_path / "b.dat", {"x.weight": (1, vals)})
    im = load_imatrix(tmp_path / "b.dat")
    assert im.chunk_count == 0 and im.datasets == []


def test_llama_imatrix_files_both_forms_agree():
    """the files llama-imatrix wrote (benchmarks/make_imatrix_tiny.py): the same vectors"""
    a, b = load_imatrix(DATA / "tiny.imatrix.gguf"), load_imatrix(DATA / "tiny.imatrix.dat")
    assert sorted(a.weights) == sorted(b.weights) and len(a.weights) == 14
    assert a.chunk_count == b.chunk_count == 4 and a.datasets == b.datasets
    for k in a.weights:
        assert np.allclose(a.weights[k], b.weights[k], rtol=1e-6), k


def _bad_files(tmp_path):
    vals = np.ones(32, np.float32)
    (tmp_path / "garbage.dat").write_bytes(b"\x00\x00\x00\x00junk")
    write_imatrix_dat(tmp_path / "short.dat", {"a.weight": (1, vals)})
    (tmp_path / "short.dat").write_bytes((tmp_path / "short.dat").read_bytes()[:-9])
    write_imatrix_gguf(tmp_path / "nometa.gguf", {"a.weight": (vals[None], [1])}, drop=("imatrix.chunk_size",))
    write_imatrix_dat(tmp_path / "nan.dat", {"a.weight": (1, np.full(32, np.nan, np.float32))})
    return {"garbage.dat": "no data", "short.dat": "truncated", "nometa.gguf": "metadata", "nan.dat": "non-finite",
            "missing.gguf": "no such file"}


def test_bad_files_are_one_line_errors(tmp_path):
    for name, why in _bad_files(tmp_path).items():
        with pytest.raises(ImatrixError, match=why):
            load_imatrix(tmp_path / name)
    # a non-finite weight only matters in an entry that is used
    assert load_imatrix(tmp_path / "nan.dat", exclude=["a.weight"]).weights == {}
    r = cli("quantize", str(DATA / "tiny.imatrix.gguf"), str(tmp_path / "o.gguf"), "--imatrix",
            str(tmp_path / "short.dat"))
    assert r.returncode != 0 and "Traceback" not in r.stderr and "truncated" in r.stderr


# ------------------------------------------------------- llmlite quantize --imatrix

@pytest.mark.parametrize("name", ["tiny.imatrix.gguf", "tiny.imatrix.dat", "moe.imatrix.gguf"])
def test_quantize_with_llama_imatrix_file_is_llama_quantizes(tiny_path, tmp_path, name):
    """the whole file, byte for byte, as llama-quantize wrote it with the same
    imatrix (named as it was given to llama-quantize: quantize.imatrix.file records
    it); the MoE model's experts each with their own vector"""
    import dataclasses
    import hashlib

    import moe_models

    from llmlite.quantize import GGUFSource, write_quantized

    refs = json.loads((DATA / "imatrix_tiny_refs.json").read_text())
    types = [k.split()[1] for k in refs if k.split()[0] == name and len(k.split()) == 2]
    assert len(types) >= 3
    im = dataclasses.replace(load_imatrix(DATA / name), path=name)
    src = tiny_path
    if name.startswith("moe"):
        src = tmp_path / "moe.gguf"
        moe_models.build("qwen3moe-8x2-q8_0", src)
    source = GGUFSource(src)
    try:
        for ty in types:
            out = tmp_path / f"{ty}.gguf"
            write_quantized(source, out, ty, allow_requantize=True, imatrix=im)
            assert hashlib.sha256(out.read_bytes()).hexdigest() == refs[f"{name} {ty}"], ty
    finally:
        source.close()


def test_include_and_exclude_weights_are_llama_quantizes(tiny_path, tmp_path):
    """--include-weights / --exclude-weights: llama-quantize's bytes (none left
    selected: no importance matrix at all, no quantize.imatrix.* keys)"""
    import dataclasses
    import hashlib

    from llmlite.quantize import GGUFSource, write_quantized

    refs = json.loads((DATA / "imatrix_tiny_refs.json").read_text())
    selections = [k.split() for k in refs if len(k.split()) > 2]
    assert len(selections) == 3
    source = GGUFSource(tiny_path)
    try:
        for name, ty, *opts in selections:
            sel = {"--include-weights": [], "--exclude-weights": []}
            for flag, v in zip(opts[::2], opts[1::2]):
                sel[flag].append(v)
            im = load_imatrix(DATA / name, sel["--include-weights"], sel["--exclude-weights"])
            out = tmp_path / "o.gguf"
            write_quantized(source, out, ty, allow_requantize=True, imatrix=dataclasses.replace(im, path=name))
            assert hashlib.sha256(out.read_bytes()).hexdigest() == refs[" ".join((name, ty, *opts))], opts
    finally:
        source.close()


def test_imatrix_keys_and_weighted_tensors(tiny_path, tmp_path):
    from hf_fixture import quantize_gguf

    from llmlite.gguf import open_gguf

    im = load_imatrix(DATA / "tiny.imatrix.gguf")
    out, plain = tmp_path / "w.gguf", tmp_path / "p.gguf"
    r = cli("quantize", str(tiny_path), str(out), "--type", "q4_0", "--allow-requantize",
            "--imatrix", str(DATA / "tiny.imatrix.gguf"), "--exclude-weights", "attn_k")
    assert r.returncode == 0, r.stderr[-500:]
    quantize_gguf(tiny_path, plain, "q4_0", allow_requantize=True)
    with open_gguf(out) as g, open_gguf(plain) as p, open_gguf(tiny_path) as src:
        keys = [k for k, _ in g.stored_kvs()]
        assert keys[-4:] == ["quantize.imatrix.file", "quantize.imatrix.dataset", "quantize.imatrix.entries_count",
                             "quantize.imatrix.chunks_count"]
        assert g.get("quantize.imatrix.entries_count") == 12      # 14 less the two attn_k
        assert g.get("quantize.imatrix.chunks_count") == 4
        name = "blk.1.ffn_up.weight"
        x = _lib.dequantize(1, src.tensor_data(name), src.tensors[name].n_elements).reshape(-1, 32)
        want = _lib.quantize_rows(GGMLType.Q4_0, x, imatrix=im.weights[name])
        assert np.array_equal(np.asarray(g.tensor_data(name)), want.ravel())
        assert not np.array_equal(np.asarray(p.tensor_data(name)), want.ravel())
        k = "blk.1.attn_k.weight"                                 # excluded: the plain quantizer's bytes
        assert np.array_equal(np.asarray(g.tensor_data(k)), np.asarray(p.tensor_data(k)))


def test_expert_tensors_take_one_vector_per_expert(tmp_path):
    """a 3-D expert tensor: expert e's rows quantized with the e-th ne0 weights"""
    import moe_models

    from llmlite.gguf import open_gguf

    src, out = tmp_path / "moe.gguf", tmp_path / "out.gguf"
    moe_models.build("qwen3moe-8x2-q8_0", src)
    rng = np.random.default_rng(5)
    with open_gguf(src) as g:
        t = g.tensors["blk.0.ffn_up_exps.weight"]
        ne0, ne1, ne2 = t.shape
        x = _lib.dequantize(t.type, g.tensor_data(t.name), t.n_elements).reshape(ne2, ne1, ne0)
    sums = (rng.random((ne2, ne0)) * 4 + 0.01).astype(np.float32)
    write_imatrix_gguf(tmp_path / "m.gguf", {t.name: (sums, np.full(ne2, 2.0))})
    r = cli("quantize", str(src), str(out), "--type", "q4_0", "--allow-requantize", "--imatrix",
            str(tmp_path / "m.gguf"))
    assert r.returncode == 0, r.stderr[-500:]
    w = sums / np.float32(2)
    with open_gguf(out) as g:
        got = np.asarray(g.tensor_data(t.name)).reshape(ne2, -1)
    for e in range(ne2):
        assert np.array_equal(got[e], _lib.quantize_rows(GGMLType.Q4_0, x[e], imatrix=w[e]).ravel()), e
    assert not np.array_equal(got[1], _lib.quantize_rows(GGMLType.Q4_0, x[1], imatrix=w[0]).ravel())


def test_imatrix_of_the_wrong_size_for_a_tensor_is_refused(tiny_path, tmp_path):
    write_imatrix_gguf(tmp_path / "m.gguf", {"blk.0.ffn_up.weight": (np.ones((1, 64)), [1])})
    r = cli("quantize", str(tiny_path), str(tmp_path / "o.gguf"), "--type", "q4_0", "--allow-requantize",
            "--imatrix", str(tmp_path / "m.gguf"))
    assert r.returncode != 0 and "Traceback" not in r.stderr and "blk.0.ffn_up.weight has 64 values" in r.stderr
    assert not (tmp_path / "o.gguf").exists()


def test_low_bit_types_require_an_imatrix():
    from llmlite.imatrix import requires_imatrix

    assert requires_imatrix("blk.0.ffn_up.weight", GGMLType.IQ2_XXS, "iq2_xxs")
    assert requires_imatrix("blk.0.ffn_up.weight", GGMLType.IQ1_S, "iq1_s")
    assert not requires_imatrix("output.weight", GGMLType.IQ2_XXS, "iq2_xxs")
    assert requires_imatrix("blk.0.ffn_up.weight", GGMLType.Q2_K, "q2_k_s")
    assert not requires_imatrix("blk.0.ffn_up.weight", GGMLType.Q2_K, "q2_k")
    assert not requires_imatrix("blk.0.ffn_up.weight", GGMLType.IQ4_XS, "iq4_xs")


def test_an_imatrix_changes_llama_quantizes_choices(smollm2_path):
    """with an importance matrix the first eighth of ffn_down goes Q4_0 -> Q4_1 and
    Q5_0 -> Q5_1, and IQ4's no longer goes Q5_K (SmolLM2: 30 layers, so layers 0-2)"""
    from llmlite.gguf import open_gguf
    from llmlite.quantize import plan

    with open_gguf(smollm2_path) as g:
        for ty, plain, weighted in (("q4_0", GGMLType.Q4_0, GGMLType.Q4_1), ("q5_0", GGMLType.Q5_0, GGMLType.Q5_1),
                                    ("iq4_xs", GGMLType.Q5_K, GGMLType.IQ4_XS)):
            without = {e.name: e.dst_type for e in plan(g, ty)}
            with_im = {e.name: e.dst_type for e in plan(g, ty, has_imatrix=True)}
            for i in range(30):
                name = f"blk.{i}.ffn_down.weight"
                assert with_im[name] == (weighted if i < 3 else without[name]), (ty, i)
                assert without[name] == (plain if i < 3 else without["blk.3.ffn_down.weight"]), (ty, i)
            assert {k: v for k, v in with_im.items() if "ffn_down" not in k} == \
                {k: v for k, v in without.items() if "ffn_down" not in k}
