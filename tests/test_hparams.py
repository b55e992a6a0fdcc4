"""Hostile hyper-parameters (issue 18, item 7): a copy of the tiny model with one metadata
value changed, or one tensor's data moved onto another's, must fail through the CLI with
one line naming the key and the bad value and exit 2; and a fuzz over the values that
ModelConfig.of reads, where every case loads or raises one GGUFError/LlmliteError line."""
from __future__ import annotations

import math
import struct

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from helpers import llmlite, rewrite_gguf
from llmlite.config import ModelConfig
from llmlite.errors import GGUFError, LlmliteError
from llmlite.gguf import open_gguf

# one changed value, and what the one error line must say of it
BAD_VALUES = {
    "head_count_0": ({"llama.attention.head_count": 0}, r"llama\.attention\.head_count.*\b0\b"),
    "embedding_2^31": ({"llama.embedding_length": np.uint32(2**31)}, r"llama\.embedding_length.*(2,147,483,648|2\^31)"),
    "block_count_string": ({"llama.block_count": "thirty"}, r"llama\.block_count.*(string|thirty)"),
    "rms_eps_nan": ({"llama.attention.layer_norm_rms_epsilon": math.nan},
                    r"llama\.attention\.layer_norm_rms_epsilon.*nan"),
    "freq_base_negative": ({"llama.rope.freq_base": -10000.0}, r"llama\.rope\.freq_base.*-10,?000"),
    # found by the fuzz below: read unchecked, it overflowed llm_config's int (an internal error)
    "swa_pattern_2^32-1": ({"llama.attention.sliding_window_pattern": np.uint32(2**32 - 1)},
                           r"llama\.attention\.sliding_window_pattern.*4,294,967,295"),
    "unknown_arch": ({"general.architecture": "mamba9"}, r"unsupported architecture 'mamba9'"),
}


def assert_one_line_exit_2(r, pattern):
    import re

    assert r.returncode == 2, (r.returncode, r.stdout, r.stderr)
    assert "Traceback" not in r.stderr, r.stderr
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), r.stderr
    assert re.search(pattern, lines[0], re.I), lines[0]


@pytest.fixture(scope="module", params=sorted(BAD_VALUES))
def bad_copy(request, tiny_path, tmp_path_factory):
    kv, pattern = BAD_VALUES[request.param]
    return rewrite_gguf(tiny_path, tmp_path_factory.mktemp("hp") / "bad.gguf", kv=kv), pattern


def test_run_rejects_bad_value(bad_copy):
    path, pattern = bad_copy
    assert_one_line_exit_2(llmlite("run", path, "-p", "hi", "-n", "2"), pattern)


def test_info_rejects_bad_value(bad_copy):
    path, pattern = bad_copy
    assert_one_line_exit_2(llmlite("info", path), pattern)


def _rel_offset_pos(buf: bytes, name: str, n_dims: int) -> int:
    """Where tensor `name`'s data offset (a u64 relative to the data section) lies in the table."""
    rec = struct.pack("<Q", len(name)) + name.encode()
    at = buf.index(rec) + len(rec)
    return at + 4 + 8 * n_dims + 4


@pytest.fixture(scope="module")
def overlapping(tiny_path, tmp_path_factory):
    """The tiny model with its second tensor's data offset set to its first's (both read the same bytes)."""
    buf = bytearray(tiny_path.read_bytes())
    with open_gguf(tiny_path) as g:
        a, b = sorted(g.tensors.values(), key=lambda t: t.offset)[:2]
        rel_a = a.offset - g.data_offset
    struct.pack_into("<Q", buf, _rel_offset_pos(buf, b.name, len(b.shape)), rel_a)
    path = tmp_path_factory.mktemp("hp") / "overlap.gguf"
    path.write_bytes(buf)
    return path, rf"overlap.*{a.name}|{a.name}.*overlap"


@pytest.mark.parametrize("cmd", [("run", "-p", "hi", "-n", "2"), ("info",)])
def test_overlapping_tensor_data_rejected(overlapping, cmd):
    path, pattern = overlapping
    assert_one_line_exit_2(llmlite(cmd[0], path, *cmd[1:]), pattern)


# ---- fuzz: every value ModelConfig.of reads, of every type ------------------------------

HPARAM_KEYS = ["llama.block_count", "llama.context_length", "llama.embedding_length",
               "llama.feed_forward_length", "llama.attention.head_count", "llama.attention.head_count_kv",
               "llama.attention.key_length", "llama.attention.value_length", "llama.rope.dimension_count",
               "llama.rope.freq_base", "llama.rope.scaling.factor", "llama.attention.layer_norm_rms_epsilon",
               "llama.attention.sliding_window", "llama.attention.sliding_window_pattern",
               "llama.final_logit_softcapping", "llama.vocab_size"]
_INT_DTYPES = [np.int8, np.uint8, np.int16, np.uint16, np.int32, np.uint32, np.int64, np.uint64]


def _int_of(dtype):
    info = np.iinfo(dtype)
    edges = st.sampled_from([info.min, info.max, 0, 1, 2, 3, 4, 64])
    return st.one_of(edges, st.integers(int(info.min), int(info.max))).map(dtype)


HPARAM_VALUES = st.one_of(
    st.sampled_from(_INT_DTYPES).flatmap(_int_of),
    st.floats(allow_nan=True, allow_infinity=True, width=32).map(np.float32),
    st.floats(allow_nan=True, allow_infinity=True).map(np.float64),
    st.text(max_size=8), st.booleans(),
    st.lists(st.integers(-2, 300), max_size=40).map(lambda xs: np.array(xs, dtype=np.int32)),
)


@pytest.fixture(scope="module")
def fuzz_dir(tmp_path_factory):
    return tmp_path_factory.mktemp("hpfuzz")


@settings(max_examples=150, deadline=2000, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(kv=st.dictionaries(st.sampled_from(HPARAM_KEYS), HPARAM_VALUES, min_size=1, max_size=3))
def test_fuzz_hparams_load_or_one_line(tiny_path, fuzz_dir, kv):
    import llmlite

    path = rewrite_gguf(tiny_path, fuzz_dir / "f.gguf", kv=kv)
    try:
        with open_gguf(path) as g:
            ModelConfig.from_gguf(g)
        llmlite.load(path, n_ctx=16).close()
    except (GGUFError, LlmliteError) as e:
        assert "\n" not in str(e) and str(e), repr(e)
