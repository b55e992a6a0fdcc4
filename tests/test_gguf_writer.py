"""The one GGUF writer (llmlite/gguf/writer.py) with an alignment other than 32: a GGUF
declaring general.alignment 64 (written by gguf-py) quantized, and a Hugging Face
checkpoint converted with alignment=256 (its norms, 128 bytes, are not multiples of
it). The output declares the alignment and lays its data out on it, and our reader
and gguf-py's GGUFReader read the same tensors back. (The
default alignment's bytes, identical to llama-quantize's, are held by
test_quantize_ref.py, test_quantize_cli.py and test_quantize_hf.py.)"""
import gguf
import numpy as np
import pytest

from llmlite import _lib
from llmlite.gguf import open_gguf
from llmlite.gguf.writer import encode, with_alignment

from hf_fixture import make_checkpoint, quantize_gguf

Q8_0, F32 = gguf.GGMLQuantizationType.Q8_0, gguf.GGMLQuantizationType.F32


def read_back(path, alignment: int) -> dict[str, tuple[int, bytes]]:
    """Check that path declares `alignment` and honours it (the data section and every
    tensor start on a multiple of it), and that both readers agree; {name: (type, bytes)}."""
    r = gguf.GGUFReader(str(path))
    assert r.fields["general.alignment"].contents() == alignment and r.alignment == alignment
    out = {}
    with open_gguf(path) as g:
        assert g.alignment == alignment and g.data_offset % alignment == 0
        assert [t.name for t in r.tensors] == list(g.tensors)
        for t in r.tensors:
            ti = g.tensors[t.name]
            assert ti.offset == t.data_offset and ti.offset % alignment == 0, t.name
            assert (ti.type, ti.nbytes, ti.shape) == (int(t.tensor_type), t.n_bytes, tuple(map(int, t.shape)))
            data = g.tensor_data(t.name).tobytes()
            assert data == t.data.tobytes(), t.name
            out[t.name] = (ti.type, data)
    return out


def test_quantize_keeps_the_inputs_alignment(tmp_path):
    rng = np.random.default_rng(0)
    src = tmp_path / "in.gguf"
    w = gguf.GGUFWriter(str(src), "llama")
    w.add_custom_alignment(64)
    w.add_block_count(1)
    w.add_head_count(2)
    w.add_head_count_kv(1)
    floats = {"token_embd.weight": rng.standard_normal((40, 64)), "blk.0.attn_q.weight": rng.standard_normal((64, 64)),
              "blk.0.attn_norm.weight": rng.standard_normal(64), "output_norm.weight": rng.standard_normal(64)}
    for name, x in floats.items():
        w.add_tensor(name, x.astype(np.float32))
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
    read_back(src, 64)                               # the input as gguf-py lays it out
    out = tmp_path / "q8.gguf"
    assert quantize_gguf(src, out, "q8_0")["types"] == {"Q8_0": 2, "F32": 2}
    got = read_back(out, 64)
    for name, x in floats.items():
        x = x.astype(np.float32).reshape(-1, x.shape[-1])
        want = _lib.quantize_rows(Q8_0, x).tobytes() if x.shape[0] > 1 else x.tobytes()
        assert got[name] == (Q8_0 if x.shape[0] > 1 else F32, want), name


def test_convert_with_another_alignment(tiny_path, tmp_path):
    from llmlite.convert_hf import HFSource
    from llmlite.quantize import write_quantized

    hf = HFSource(make_checkpoint(tiny_path, tmp_path / "hf"))
    try:
        write_quantized(hf, tmp_path / "a32.gguf", "q8_0")
        write_quantized(hf, tmp_path / "a256.gguf", "q8_0", alignment=256)
    finally:
        hf.close()
    with open_gguf(tmp_path / "a32.gguf") as g:
        assert g.alignment == 32 and "general.alignment" not in g.metadata
        want = {name: (t.type, g.tensor_data(name).tobytes()) for name, t in g.tensors.items()}
    assert read_back(tmp_path / "a256.gguf", 256) == want     # the same tensors, laid out on 256


def test_with_alignment_replaces_or_appends():
    kvs = [("a", encode(gguf.GGUFValueType.UINT32, 1))]
    added = with_alignment(kvs, 64)
    assert [k for k, _ in added] == ["a", "general.alignment"]
    assert [k for k, _ in with_alignment(added, 128)] == ["a", "general.alignment"]
    assert with_alignment(added, 128)[1][1] == encode(gguf.GGUFValueType.UINT32, 128)
    with pytest.raises(ValueError, match="power of two"):
        with_alignment(kvs, 48)
