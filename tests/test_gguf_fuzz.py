"""Bad and hostile GGUF input: truncations, flipped bytes, absurd counts, sizes and
offsets, random mutations. open_gguf must raise GGUFError (never another
exception, never a crash or a hang), and `llmlite info` must print exactly one
line, "error: ...", to stderr and exit 2."""
from __future__ import annotations

import contextlib
import os
import re
import shutil
import signal
import struct
from pathlib import Path

import gguf
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from typer.testing import CliRunner

from llmlite.cli import app
from llmlite.config import ModelConfig
from llmlite.gguf import GGUFError, StringArray, open_gguf

GT = gguf.GGUFValueType
Q = gguf.GGMLQuantizationType
runner = CliRunner()

# what an error line says: the problem, after the file name
PROBLEM = re.compile(r"^error: .+: (truncated GGUF|truncated or corrupt GGUF|corrupt GGUF|not a GGUF file|"
                     r"unsupported GGUF version|GGUF version 1|big-endian GGUF|metadata |no such file|"
                     r"is a directory)")


@contextlib.contextmanager
def time_limit(seconds: float):
    """Fail (instead of hanging) when the block runs longer than `seconds`."""

    def boom(signum, frame):
        raise TimeoutError(f"took longer than {seconds} s")

    old = signal.signal(signal.SIGALRM, boom)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, old)


def run_info(path, *extra):
    with time_limit(20):
        r = runner.invoke(app, ["info", str(path), *extra])
    assert r.exception is None or isinstance(r.exception, SystemExit), repr(r.exception)
    return r


def assert_one_error_line(r, pattern=PROBLEM):
    lines = r.stderr.splitlines()
    assert r.exit_code == 2, (r.exit_code, r.stderr)
    assert len(lines) == 1, r.stderr
    assert "Traceback" not in r.stderr and "Traceback" not in r.stdout
    assert re.search(pattern, lines[0]), lines[0]
    return lines[0]


def check_open(path) -> str | None:
    """open_gguf + everything a reader might touch; returns the GGUFError message or None."""
    try:
        with time_limit(10), open_gguf(path) as g:
            for v in g.metadata.values():
                if isinstance(v, StringArray):
                    v.tolist()
                elif isinstance(v, list):
                    for x in v:
                        x.tolist() if hasattr(x, "tolist") else x
                elif isinstance(v, np.ndarray):
                    v.sum()
            for t in g.tensors.values():
                d = g.tensor_data(t.name)
                assert d.size == t.nbytes
                int(d[-1])
            try:
                ModelConfig.from_gguf(g)
            except GGUFError:
                pass
    except GGUFError as e:
        msg = str(e)
        assert "\n" not in msg
        return msg
    return None


# ---- a small valid model file ------------------------------------------------

def write_fuzz_model(path: Path, n_vocab: int = 40) -> None:
    """A small valid GGUF of every kind of value and tensor the reader meets, whose byte
    layout the cases below index into: not a model to run (tests/conftest.py's tiny is)."""
    w = gguf.GGUFWriter(str(path), "llama")
    w.add_block_count(2)
    w.add_context_length(64)
    w.add_embedding_length(32)
    w.add_feed_forward_length(64)
    w.add_head_count(4)
    w.add_head_count_kv(2)
    w.add_rope_dimension_count(8)
    w.add_layer_norm_rms_eps(1e-5)
    w.add_rope_freq_base(10000.0)
    w.add_tokenizer_model("gpt2")
    w.add_tokenizer_pre("default")
    w.add_token_list([f"tok{i}" for i in range(n_vocab)])
    w.add_token_types([1] * n_vocab)
    w.add_token_merges(["t o", "to k"])
    w.add_bos_token_id(1)
    w.add_eos_token_id(2)
    w.add_chat_template("{{ messages }}")
    w.add_key_value("test.nested", [[1, 2], [3]], GT.ARRAY)
    w.add_key_value("test.f64", [0.5, 1.5], GT.ARRAY, sub_type=GT.FLOAT64)
    rng = np.random.default_rng(0)
    w.add_tensor("token_embd.weight", rng.integers(0, 256, (n_vocab, 34), dtype=np.uint8), raw_dtype=Q.Q8_0)
    for il in range(2):
        w.add_tensor(f"blk.{il}.attn_norm.weight", np.ones(32, np.float32))
        w.add_tensor(f"blk.{il}.attn_q.weight", rng.standard_normal((32, 32)).astype(np.float16))
        w.add_tensor(f"blk.{il}.ffn_down.weight", rng.integers(0, 256, (32, 2 * 20), dtype=np.uint8),
                     raw_dtype=Q.Q4_1)
    w.add_tensor("output_norm.weight", np.ones(32, np.float32))
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()


@pytest.fixture(scope="module")
def fuzz_gguf(tmp_path_factory) -> Path:
    p = tmp_path_factory.mktemp("fuzz") / "fuzz.gguf"
    write_fuzz_model(p)
    return p


@pytest.fixture(scope="module")
def fuzz_bytes(fuzz_gguf) -> bytes:
    return fuzz_gguf.read_bytes()


def _end_of_table(path) -> tuple[int, int]:
    """(end of the tensor table, end of the last tensor's data) of a valid file."""
    with open_gguf(path) as g:
        need = max(t.offset + t.nbytes for t in g.tensors.values())
        return g.data_offset, need


def test_tiny_model_is_valid(fuzz_gguf):
    assert check_open(fuzz_gguf) is None
    r = run_info(fuzz_gguf, "--json")
    assert r.exit_code == 0, r.stderr
    assert '"architecture": "llama"' in r.stdout and '"vocab_size": 40' in r.stdout


# ---- truncation ----------------------------------------------------------------

def _truncation_sweep(src: Path, dst: Path, cuts: list[int], need: int, via_cli: bool):
    """Copy src once, then truncate it further and further (no rewrite per cut)."""
    shutil.copyfile(src, dst)
    for cut in sorted(set(cuts), reverse=True):
        os.truncate(dst, cut)
        if via_cli:
            r = run_info(dst)
            if cut >= need:
                assert r.exit_code == 0, (cut, r.stderr)
                continue
            line = assert_one_error_line(r).split(f"{dst}: ", 1)[1]
        else:
            msg = check_open(dst)
            if cut >= need:
                assert msg is None, (cut, msg)
                continue
            assert msg is not None, cut
            line = msg.split(f"{dst}: ", 1)[1]
        if cut == 0:
            assert "empty" in line
        elif cut < 4:
            assert "not a GGUF file" in line, (cut, line)
        else:
            assert "truncated" in line, (cut, line)


def test_truncated_synthetic_at_200_offsets(tiny_path, tmp_path):
    data_off, need = _end_of_table(tiny_path)
    rng = np.random.default_rng(12345)
    size = tiny_path.stat().st_size
    # half of the cuts inside the metadata and tensor table, half anywhere
    cuts = rng.integers(0, data_off, 100).tolist() + rng.integers(0, size, 100).tolist()
    cuts += [0, 1, 3, 4, 7, 8, 15, 16, 23, 24, 25, data_off - 1, data_off, need - 1, need, size - 1]
    _truncation_sweep(tiny_path, tmp_path / "cut.gguf", cuts, need, via_cli=True)


def test_truncated_tiny_at_many_offsets(fuzz_gguf, tmp_path):
    data_off, need = _end_of_table(fuzz_gguf)
    size = fuzz_gguf.stat().st_size
    cuts = list(range(data_off + 64)) + list(range(data_off, size, 61)) + [need - 1, need]
    _truncation_sweep(fuzz_gguf, tmp_path / "cut.gguf", cuts, need, via_cli=False)


def test_truncated_smollm2(smollm2_path, tmp_path):
    data_off, need = _end_of_table(smollm2_path)
    with open_gguf(smollm2_path) as g:
        toks, merges = g.metadata["tokenizer.ggml.tokens"], g.metadata["tokenizer.ggml.merges"]
        cuts = [int(toks.offsets[1000]) + 1, int(toks.offsets[-1]), int(merges.offsets[20000]),
                data_off - 100, data_off + 5000, need - 1, 30]
    _truncation_sweep(smollm2_path, tmp_path / "cut.gguf", cuts, need, via_cli=True)


# ---- flipped bytes --------------------------------------------------------------

@contextlib.contextmanager
def patchable_copy(src_bytes: bytes, path: Path):
    """A copy of a file that patch(pos, bytes) edits in place (rewriting a file
    from scratch is slow on some file systems; an in-place write is not)."""
    path.write_bytes(src_bytes)
    fd = os.open(path, os.O_RDWR)
    try:
        yield lambda pos, b: os.pwrite(fd, b, pos)
    finally:
        os.close(fd)


def test_flipped_bytes_in_header_and_tables(fuzz_gguf, fuzz_bytes, tmp_path):
    data_off, _ = _end_of_table(fuzz_gguf)
    p = tmp_path / "flip.gguf"
    n_err = 0
    with patchable_copy(fuzz_bytes, p) as patch:
        for pos in range(data_off):
            for x in (0xFF, 0x80):
                patch(pos, bytes([fuzz_bytes[pos] ^ x]))
                n_err += check_open(p) is not None
            patch(pos, fuzz_bytes[pos:pos + 1])
    assert n_err > data_off // 4  # many of them must be caught


def test_flipped_bytes_through_cli(fuzz_gguf, fuzz_bytes, tmp_path):
    data_off, _ = _end_of_table(fuzz_gguf)
    rng = np.random.default_rng(7)
    p = tmp_path / "flip.gguf"
    with patchable_copy(fuzz_bytes, p) as patch:
        for pos in list(range(24)) + rng.integers(24, data_off, 60).tolist():
            patch(pos, bytes([fuzz_bytes[pos] ^ 0xFF]))
            r = run_info(p)
            if r.exit_code == 0:
                assert "architecture" in r.stdout and r.stderr == ""
            else:
                assert_one_error_line(r)
            patch(pos, fuzz_bytes[pos:pos + 1])


# ---- absurd values at known places ---------------------------------------------

def _key_pos(b: bytes, key: str) -> int:
    """Offset just past a metadata key's bytes (where its value type is)."""
    kb = key.encode()
    i = b.find(struct.pack("<Q", len(kb)) + kb)
    assert i > 0
    return i + 8 + len(kb)


def _tensor_pos(b: bytes, name: str) -> int:
    """Offset of a tensor info's n_dims field."""
    nb = name.encode()
    i = b.rfind(struct.pack("<Q", len(nb)) + nb)
    assert i > 0
    return i + 8 + len(nb)


def _patched(tmp_path, base: bytes, edits) -> Path:
    b = bytearray(base)
    for pos, fmt, val in edits:
        struct.pack_into(fmt, b, pos, val)
    p = tmp_path / "bad.gguf"
    p.write_bytes(bytes(b))
    return p


def _absurd_cases(b: bytes):
    tok = _key_pos(b, "tokenizer.ggml.tokens")  # u32 ARRAY, u32 STRING, u64 count, strings
    first_key_len = 24
    q = _tensor_pos(b, "blk.0.attn_q.weight")  # u32 n_dims=2, u64 ne0, u64 ne1, u32 type, u64 offset
    emb = _tensor_pos(b, "token_embd.weight")
    return {
        "n_tensors 2^63": ([(8, "<Q", 2**63)], r"2\^63 tensors"),
        "n_tensors 2^64-1": ([(8, "<Q", 2**64 - 1)], r"promises 18,446,744,073,709,551,615 tensors"),
        "n_kv huge": ([(16, "<Q", 2**62)], r"2\^62 metadata entries"),
        "n_kv a little too big": ([(16, "<Q", 10_000)], r"metadata entries"),
        "key length huge": ([(first_key_len, "<Q", 2**62)], r"metadata key 0: the key of 2\^62 bytes runs past"),
        "key length past end": ([(first_key_len, "<Q", len(b))], r"metadata key 0: the key .* runs past the end"),
        "value type unknown": ([(_key_pos(b, "llama.block_count"), "<I", 13)],
                               r"'llama.block_count' has unknown value type 13"),
        "array count huge": ([(tok + 8, "<Q", 2**60)], r"'tokenizer.ggml.tokens': array of 2\^60 string values"),
        "array count too big": ([(tok + 8, "<Q", 10_000)], r"tokenizer.ggml.tokens.*string .* runs past the end"),
        "array elem type unknown": ([(tok + 4, "<I", 99)], r"array of unknown value type 99"),
        "string in array huge": ([(tok + 16, "<Q", 2**63 - 1)], r"string 0 of 40 .* runs past the end"),
        "n_dims 0": ([(q, "<I", 0)], r"'blk.0.attn_q.weight' has 0 dimensions"),
        "n_dims 5": ([(q, "<I", 5)], r"has 5 dimensions"),
        "n_dims 2^32-1": ([(q, "<I", 2**32 - 1)], r"has 4,294,967,295 dimensions"),
        "dim zero": ([(q + 12, "<Q", 0)], r"zero dimension"),
        "dim 2^63": ([(q + 12, "<Q", 2**63)], r"'blk.0.attn_q.weight' (has too many elements|.*runs past)"),
        "dims overflow": ([(q + 4, "<Q", 2**40), (q + 12, "<Q", 2**40)], r"too many elements"),
        "dim too big for file": ([(q + 12, "<Q", 10**9)], r"'blk.0.attn_q.weight' data .* runs past the end"),
        "type unknown": ([(q + 20, "<I", 99)], r"'blk.0.attn_q.weight' has unknown type 99"),
        "type 2^32-1": ([(q + 20, "<I", 2**32 - 1)], r"unknown type 4,294,967,295"),
        "type wrong block size": ([(q + 20, "<I", int(Q.Q4_K))], r"not a multiple of the Q4_K block size 256"),
        "offset unaligned": ([(emb + 24, "<Q", 1)], r"'token_embd.weight' data offset 1 is not a multiple of the alignment"),
        "offset huge": ([(emb + 24, "<Q", 2**63)], r"'token_embd.weight' .* runs past the end"),
        "offset past end": ([(emb + 24, "<Q", len(b) // 32 * 32)], r"runs past the end"),
    }


ABSURD_CASES = [
    "n_tensors 2^63", "n_tensors 2^64-1", "n_kv huge", "n_kv a little too big", "key length huge",
    "key length past end", "value type unknown", "array count huge", "array count too big",
    "array elem type unknown", "string in array huge", "n_dims 0", "n_dims 5", "n_dims 2^32-1",
    "dim zero", "dim 2^63", "dims overflow", "dim too big for file", "type unknown", "type 2^32-1",
    "type wrong block size", "offset unaligned", "offset huge", "offset past end"]


@pytest.mark.parametrize("absurd_case", ABSURD_CASES)
def test_absurd_values(fuzz_bytes, tmp_path, absurd_case):
    edits, pattern = _absurd_cases(fuzz_bytes)[absurd_case]
    p = _patched(tmp_path, fuzz_bytes, edits)
    msg = check_open(p)
    assert msg is not None and re.search(pattern, msg), msg
    line = assert_one_error_line(run_info(p))
    assert re.search(pattern, line), line


# ---- hand-built files: alignment, duplicates, nesting -------------------------

def _s(x: bytes | str) -> bytes:
    x = x.encode() if isinstance(x, str) else x
    return struct.pack("<Q", len(x)) + x


def _gguf(kvs: list[bytes], tensors: list[bytes] = (), version: int = 3, data: bytes = b"",
          align: int = 32) -> bytes:
    head = b"GGUF" + struct.pack("<IQQ", version, len(tensors), len(kvs)) + b"".join(kvs) + b"".join(tensors)
    pad = (-len(head)) % align if tensors else 0
    return head + b"\x00" * pad + data


def _kv_u32(k, v):
    return _s(k) + struct.pack("<II", 4, v)


def _ti(name, dims, ttype=0, off=0):
    return _s(name) + struct.pack("<I", len(dims)) + struct.pack(f"<{len(dims)}Q", *dims) + struct.pack("<IQ", ttype, off)


@pytest.mark.parametrize("value,pattern", [
    (struct.pack("<II", 4, 0), r"general.alignment is 0, not a power of two"),
    (struct.pack("<II", 4, 48), r"general.alignment is 48, not a power of two"),
    (struct.pack("<II", 4, 2**31), r"general.alignment is 2,147,483,648, not a power of two"),
    (struct.pack("<I", 8) + _s("32"), r"general.alignment has type string, expected an integer"),
    (struct.pack("<Ii", 5, -32), r"general.alignment is -32"),
])
def test_bad_alignment(tmp_path, value, pattern):
    p = tmp_path / "align.gguf"
    p.write_bytes(_gguf([_s("general.alignment") + value], [_ti("t", [8])], data=bytes(32)))
    msg = check_open(p)
    assert msg is not None and re.search(pattern, msg), msg
    assert re.search(pattern, assert_one_error_line(run_info(p)))


def test_alignment_respected(tmp_path):
    # alignment 64: a tensor at offset 32 is misaligned, at 64 fine
    kv = [_kv_u32("general.alignment", 64)]
    p = tmp_path / "a.gguf"
    p.write_bytes(_gguf(kv, [_ti("a", [8]), _ti("b", [8], off=32)], data=bytes(128), align=64))
    assert "data offset 32 is not a multiple of the alignment 64" in check_open(p)
    p.write_bytes(_gguf(kv, [_ti("a", [8]), _ti("b", [8], off=64)], data=bytes(128), align=64))
    assert check_open(p) is None
    with open_gguf(p) as g:
        assert g.alignment == 64 and g.data_offset % 64 == 0 and g.tensors["b"].offset == g.data_offset + 64


def test_duplicates(tmp_path):
    p = tmp_path / "d.gguf"
    p.write_bytes(_gguf([_kv_u32("a", 1), _kv_u32("b", 2), _kv_u32("a", 3)]))
    assert "duplicate metadata key 'a' (entries 0 and 2)" in check_open(p)
    p.write_bytes(_gguf([], [_ti("w", [8]), _ti("w", [8], off=32)], data=bytes(64)))
    assert "duplicate tensor name 'w' (tensors 0 and 1)" in check_open(p)
    assert_one_error_line(run_info(p), r"duplicate tensor name")


def test_deep_nesting(tmp_path):
    def nested(depth):
        v = struct.pack("<IQ", 0, 1) + b"\x07"  # innermost: [u8 7]
        for _ in range(depth):
            v = struct.pack("<IQ", 9, 1) + v
        return _s("deep") + struct.pack("<I", 9) + v

    p = tmp_path / "n.gguf"
    p.write_bytes(_gguf([nested(7)]))
    with open_gguf(p) as g:
        v = g.metadata["deep"]
        for _ in range(7):
            assert isinstance(v, list) and len(v) == 1
            v = v[0]
        assert v.tolist() == [7]
    p.write_bytes(_gguf([nested(5000)]))
    assert "nests arrays more than 8 deep" in check_open(p)


def test_strange_names_stay_one_line(tmp_path):
    p = tmp_path / "n.gguf"
    p.write_bytes(_gguf([_kv_u32("a\nb\x00[bold]", 1), _kv_u32("a\nb\x00[bold]", 2)]))
    line = assert_one_error_line(run_info(p), r"duplicate metadata key")
    assert "\\n" in line
    p.write_bytes(_gguf([_s("general.architecture") + struct.pack("<I", 8) + _s("x\ny[/]"),
                         _kv_u32("x\ny[/].block_count", 1)]))
    # an architecture named with a newline and markup: refused in one line, shown escaped, not interpreted
    assert_one_error_line(run_info(p), r"unsupported architecture 'x\\ny\[/\]'")


def test_header_only_and_no_model(tmp_path):
    p = tmp_path / "h.gguf"
    p.write_bytes(_gguf([]))
    assert check_open(p) is None
    with open_gguf(p) as g:
        assert g.metadata == {} and g.tensors == {}
    line = assert_one_error_line(run_info(p), r"general.architecture is missing")
    assert line.startswith("error: ")
    p.write_bytes(_gguf([_s("general.architecture") + struct.pack("<I", 8) + _s("llama"),
                         _kv_u32("llama.block_count", 4_000_000)]))
    assert_one_error_line(run_info(p), r"llama.block_count is 4,000,000 \(expected 1 to 512\)")


def test_big_endian_and_old_formats(tmp_path):
    p = tmp_path / "x.gguf"
    p.write_bytes(b"GGUF" + struct.pack(">IQQ", 3, 0, 0))
    assert_one_error_line(run_info(p), r"big-endian GGUF \(version 3, byte-swapped\) is not supported")
    p.write_bytes(b"GGUF" + struct.pack("<III", 1, 0, 0))
    assert_one_error_line(run_info(p), r"GGUF version 1 is not supported")
    p.write_bytes(b"lmgg" + bytes(64))
    assert_one_error_line(run_info(p), r"not a GGUF file \(it is an old GGML model file")


# ---- random mutations (hypothesis) ---------------------------------------------

_TINY = {}


def _tiny_template(tmp_dir: Path) -> bytes:
    if "b" not in _TINY:
        p = tmp_dir / "tiny_h.gguf"
        write_fuzz_model(p, n_vocab=8)
        _TINY["b"] = p.read_bytes()
        _TINY["table_end"] = _end_of_table(p)[0]
    return _TINY["b"]


@settings(max_examples=250, deadline=2000, database=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(data=st.data())
def test_random_mutations(tmp_path, data):
    base = _tiny_template(tmp_path)
    end = _TINY["table_end"]
    b = bytearray(base)
    n_edits = data.draw(st.integers(1, 8), label="n_edits")
    for _ in range(n_edits):
        kind = data.draw(st.sampled_from(["byte", "u64", "u32", "delete", "insert"]), label="kind")
        pos = data.draw(st.integers(0, max(0, min(len(b), end) - 1)), label="pos")
        if kind == "byte":
            b[pos] = data.draw(st.integers(0, 255))
        elif kind in ("u64", "u32"):
            n = 8 if kind == "u64" else 4
            if pos + n <= len(b):
                v = data.draw(st.one_of(st.integers(0, 2**(8 * n) - 1),
                                        st.sampled_from([0, 1, 2**(8 * n) - 1, 2**(8 * n - 1), 13, 9, 8])))
                b[pos:pos + n] = v.to_bytes(n, "little")
        elif kind == "delete":
            del b[pos:pos + data.draw(st.integers(1, 16))]
        else:
            b[pos:pos] = data.draw(st.binary(min_size=1, max_size=16))
    if data.draw(st.booleans(), label="truncate"):
        del b[data.draw(st.integers(0, len(b)), label="cut"):]
    _TINY["n"] = _TINY.get("n", 0) + 1
    p = tmp_path / f"m{_TINY['n']}.gguf"  # a new file: rewriting one is slow on some file systems
    p.write_bytes(bytes(b))
    try:
        check_open(p)  # returns None or a GGUFError message; anything else fails the test
    finally:
        p.unlink()
