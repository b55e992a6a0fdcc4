"""csrc/repack.c: the interleaved copy of the Q4_K, Q5_K and Q6_K weights that the model
reads where this machine's kernels take one (AVX-512). Every result has the bits of
the file's own layout: each kernel alone at every column count, and whole models,
dense and mixture-of-experts, with and without the copy, on every kernel table."""
import numpy as np
import pytest

from isa import isas, using_isa
from llmlite import _lib
from llmlite._lib import lib
from llmlite.errors import LlmliteError
from llmlite.gguf.constants import GGMLType as Q

Q4_K, Q5_K, Q6_K = int(Q.Q4_K), int(Q.Q5_K), int(Q.Q6_K)
NCOLS = (1, 2, 3, 4, 5, 8, 9, 17, 33)


def weights(wtype: int, rows: int, k: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return _lib.quantize_rows(wtype, rng.standard_normal((rows, k)).astype(np.float32))


def takes_copies() -> bool:
    """whether the kernel table in use reads the copies (AVX-512 only, for now)"""
    W = weights(Q4_K, 4, 256, 0)
    return _lib.matmul_x4(Q4_K, _lib.repack_x4(Q4_K, W, 4, 256), 4, 256, np.ones((1, 256), np.float32)) is not None


@pytest.mark.parametrize("wtype,bb,qs", [(Q6_K, 210, None), (Q5_K, 176, 48)])
def test_copy_layout_interleaves_groups_of_four_rows(wtype, bb, qs):
    """block ib of row 4g + r lands at block 4 (g nb + ib) + r: one sequential stream a
    group; Q5_K's qs (at qs) in 16-byte pieces 0 2 4 6 1 3 5 7"""
    rows, k = 12, 768
    W = weights(wtype, rows, k, 1)
    nb = k // 256
    got = _lib.repack_x4(wtype, W, rows, k).reshape(rows // 4, nb, 4, bb)
    want = W.reshape(rows // 4, 4, nb, bb).transpose(0, 2, 1, 3).copy()
    if qs is not None:
        pieces = want[..., qs:qs + 128].reshape(rows // 4, nb, 4, 8, 16)
        want[..., qs:qs + 128] = pieces[:, :, :, [0, 2, 4, 6, 1, 3, 5, 7]].reshape(rows // 4, nb, 4, 128)
    assert np.array_equal(got, want)


def q4_K_group(b: np.ndarray) -> np.ndarray:
    """the 4 blocks b (4 x 144 bytes, rows 0..3 of a super-block) as repack.c's q4_K_group"""
    q = b[:, 4:16].astype(np.int64)
    sc = np.concatenate([q[:, 0:4] & 63, (q[:, 8:12] & 15) | (q[:, 0:4] >> 6) << 4], axis=1).ravel()
    m = np.concatenate([q[:, 4:8] & 63, (q[:, 8:12] >> 4) | (q[:, 4:8] >> 6) << 4], axis=1).ravel()
    qs = b[:, 16:].reshape(4, 32, 4)                        # row r, qs dword 8k + j, its bytes
    chunks = qs.reshape(4, 4, 8, 4).transpose(2, 0, 1, 3)   # chunk j, dword 4r + k
    return np.concatenate([b[:, 0:2].ravel(), b[:, 2:4].ravel(), sc | (m >> 4) << 6,
                           (m[:16] & 15) | (m[16:] & 15) << 4, chunks.ravel()]).astype(np.uint8)


@pytest.mark.parametrize("isa_name", isas())
def test_q4_K_copy_holds_each_super_block_of_four_rows_as_one_group(isa_name):
    """Q4_K: super-block ib of rows 4g..4g+3 as one group of 576 bytes at the place of
    their 4 blocks: the rows' d, dmin, scales and mins unpacked to bytes, and the codes
    in chunks of the same 4 positions of every (row, sub-block pair); repack.c's writer
    and the AVX-512 table's the same bytes (random blocks: every bit of the scales)"""
    rows, k = 12, 768
    W = np.random.default_rng(5).integers(0, 256, (rows, k // 256 * 144)).astype(np.uint8)
    nb = k // 256
    with using_isa(isa_name):
        got = _lib.repack_x4(Q4_K, W, rows, k).reshape(rows // 4, nb, 4 * 144)
    blocks = W.reshape(rows // 4, 4, nb, 144)
    for g in range(rows // 4):
        for ib in range(nb):
            assert np.array_equal(got[g, ib], q4_K_group(blocks[g, :, ib])), (g, ib)


@pytest.mark.parametrize("rows,k,wtype", [(6, 256, Q4_K), (8, 128, Q6_K), (8, 256, int(Q.F32)), (8, 256, int(Q.Q8_0))])
def test_copy_refuses_what_it_cannot_lay_out(rows, k, wtype):
    W = np.zeros(rows * 1024, np.uint8)
    with pytest.raises(LlmliteError):
        _lib.repack_x4(wtype, W, rows, k)


def gemv_plain(W, rows, k, X):
    Y = np.empty((X.shape[0], rows), np.float32)
    assert lib.llm_matmul_q4_K_gemv(_lib._ptr(W), rows, k, _lib._ptr(X, "float *"), X.shape[0],
                                    _lib._ptr(Y, "float *")) == 0
    return Y


@pytest.mark.parametrize("threads", [1, 2])
@pytest.mark.parametrize("wtype,gemv", [(Q4_K, False), (Q5_K, False), (Q6_K, False), (Q4_K, True)])
def test_matmul_on_the_copy_has_the_bits_of_the_weight(wtype, gemv, threads):
    """one column (the 4-row kernel) and 2..33 columns (the 16-row tiles, every column
    count, where the file's layout takes other kernels below r16_min), rows that fill
    no whole tile (20, 52), the Q4_K experts' gemv order"""
    if not takes_copies():
        assert _lib.isa() != "avx512", "the AVX-512 table reads the copies"
        pytest.skip(f"the {_lib.isa()} table takes no copies")
    before = _lib.set_threads(threads)
    try:
        rng = np.random.default_rng(7)
        for rows, k in [(4, 256), (20, 512), (52, 768)]:
            W = weights(wtype, rows, k, rows)
            W4 = _lib.repack_x4(wtype, W, rows, k)
            for nc in NCOLS:
                X = rng.standard_normal((nc, k)).astype(np.float32)
                want = gemv_plain(W, rows, k, X) if gemv else _lib.matmul(wtype, W, rows, k, X)
                got = _lib.matmul_x4(wtype, W4, rows, k, X, gemv=gemv)
                assert np.array_equal(got.view(np.uint32), want.view(np.uint32)), (rows, k, nc)
    finally:
        _lib.set_threads(before)


@pytest.mark.parametrize("wtype,gemv", [(Q4_K, False), (Q5_K, False), (Q4_K, True)])
def test_one_column_on_the_copy_at_the_extremes(wtype, gemv):
    """the 4-row kernel's integer steps at their ranges' ends (csrc/tiles_avx512.c keeps
    the 4-code sums as int16 words): blocks of random bytes and of all ones (codes 15 or
    31, scales and mins 63) against activations that quantize to +-127, to mixed signs
    and to random values; the bits of the scalar table"""
    if not takes_copies():
        pytest.skip(f"the {_lib.isa()} table takes no copies")
    rows, k = 8, 512
    bb = _lib.row_bytes(wtype, k) // (k // 256)
    rng = np.random.default_rng(3)
    half = np.array([0x2C00, 0x1C00], np.uint16).view(np.uint8)   # d = 2^-4, dmin = 2^-8
    for fill in ("random", "ones"):
        W = (rng.integers(0, 256, (rows * k // 256, bb)) if fill == "random"
             else np.full((rows * k // 256, bb), 255)).astype(np.uint8)
        W[:, :4] = half
        W = W.reshape(rows, -1)
        W4 = _lib.repack_x4(wtype, W, rows, k)
        for X in (np.ones((1, k)), -np.ones((1, k)), np.where(np.arange(k) % 3 == 0, 1.0, -1.0)[None, :],
                  rng.standard_normal((1, k))):
            X = X.astype(np.float32)
            with using_isa("scalar"):
                want = gemv_plain(W, rows, k, X) if gemv else _lib.matmul(wtype, W, rows, k, X)
            got = _lib.matmul_x4(wtype, W4, rows, k, X, gemv=gemv)
            assert np.array_equal(got.view(np.uint32), want.view(np.uint32)), (fill, X[0, :3])


def _logits(path, monkeypatch, repack: bool, isa_name: str | None = None):
    """a batch of 7 positions, then 3 steps of one (all logits), and the copy's bytes"""
    from llmlite.gguf import open_gguf
    from llmlite.model import Weights

    monkeypatch.setenv("LLMLITE_REPACK", "1" if repack else "0")
    with open_gguf(path) as g:
        w = Weights(g, 64, n_batch=64)
        n_vocab = w.n_vocab
        toks = [(37 * i + 5) % n_vocab for i in range(10)]

        def run():
            out = [w.forward(toks[:7], 0, 2)]
            out += [w.forward([t], 7 + i, 2) for i, t in enumerate(toks[7:])]
            return np.concatenate(out)

        if isa_name is None:
            logits = run()
        else:
            with using_isa(isa_name):
                logits = run()
        copied = w.repacked_bytes
        del w
    return logits, copied


def _dense(tmp_path_factory, ftype: str, name: str = "qwen3-4b", **more):
    """a model of a published shape (qwen3-4b's by default) at 4 layers, 256 wide, in a
    llama-quantize type mix"""
    import sys

    from helpers import ROOT

    sys.path.insert(0, str(ROOT / "benchmarks"))
    import shapes

    shape = shapes.scaled(shapes.SHAPES[name], n_layer=4, n_embd=256, n_ff=512, n_head=4, n_head_kv=2,
                          n_vocab=512, **more)
    path = tmp_path_factory.mktemp("repack") / f"{name}-{ftype}.gguf"
    shapes.build(path, name, shape, ftype)
    return path


@pytest.fixture(scope="module")
def dense_file(tmp_path_factory):
    """Q4_K_M: Q4_K and Q6_K"""
    return _dense(tmp_path_factory, "q4_k_m")


@pytest.fixture(scope="module")
def dense_q5_file(tmp_path_factory):
    """Q5_K_M: Q5_K and Q6_K"""
    return _dense(tmp_path_factory, "q5_k_m")


@pytest.fixture(scope="module")
def qwen35_file(tmp_path_factory):
    """qwen35: delta-net layers (their z, beta, alpha and output projections) and a
    gated full-attention layer, Q4_K_M"""
    return _dense(tmp_path_factory, "q4_k_m", "qwen35-0.8b", ssm_d_state=64, ssm_n_group=2, ssm_n_v_head=4)


@pytest.fixture(scope="module")
def gemma4_file(tmp_path_factory):
    """gemma4: per-layer embedding gates and projections, shared K/V, Q4_K_M"""
    return _dense(tmp_path_factory, "q4_k_m", "gemma4-e2b", swa_period=2, n_kv_shared=2, n_embd_per_layer=256)


@pytest.fixture(scope="module")
def moe_file(tmp_path_factory):
    """qwen3moe with Q4_K experts (llama.cpp's gemv order) and Q6_K ones (tests/moe_models.py)"""
    import moe_models

    path = tmp_path_factory.mktemp("repack") / "moe.gguf"
    moe_models.build("qwen3moe-4x2-q4_k", path)
    return path


@pytest.mark.parametrize("which", ["dense_file", "dense_q5_file", "moe_file", "qwen35_file", "gemma4_file"])
def test_models_give_the_same_logits_with_the_copy(which, request, monkeypatch):
    """the whole forward pass, batch and decode, with and without the copies, on every
    kernel table this CPU runs (a table without the copies' kernels reads the file); the
    bytes copied are what `info` and `bench` said beforehand"""
    from llmlite.gguf import open_gguf
    from llmlite.model import repack_bytes

    path = request.getfixturevalue(which)
    for name in isas():
        # against the file's layout on the same table: a float matmul (gemma4's F32
        # per_layer_model_proj) has each table's own order
        want, none = _logits(path, monkeypatch, repack=False, isa_name=name)
        assert none == 0
        got, copied = _logits(path, monkeypatch, repack=True, isa_name=name)
        assert np.array_equal(got.view(np.uint32), want.view(np.uint32)), name
    if takes_copies():
        assert copied > 0
    else:
        assert copied == 0
    monkeypatch.setenv("LLMLITE_REPACK", "1")
    with open_gguf(path) as g:
        assert repack_bytes(g) == _logits(path, monkeypatch, repack=True)[1]


def test_no_copies_where_they_would_not_fit(dense_file, monkeypatch):
    """the copies cannot be paged out as the file's pages can: a model larger than the
    memory at hand keeps reading the file"""
    import llmlite.model as lm

    assert not lm._copies_fit(1 << 50) and lm._copies_fit(1 << 20)
    if not takes_copies():
        pytest.skip(f"the {_lib.isa()} table takes no copies")
    assert _logits(dense_file, monkeypatch, repack=True)[1] > 0
    monkeypatch.setattr(lm, "_copies_fit", lambda n, margin=0: False)
    assert _logits(dense_file, monkeypatch, repack=True)[1] == 0
