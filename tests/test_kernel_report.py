"""tools/gpu/kernel_report.py: ptxas's output read by kernel name, the occupancy
arithmetic of sm_90, and one decode step of the emulated CUDA span traced: its launches
per layer and the weight bytes each is handed, from the shapes."""
import importlib.util
import sys
from pathlib import Path

import pytest

TOOL = Path(__file__).resolve().parents[1] / "tools" / "gpu" / "kernel_report.py"
spec = importlib.util.spec_from_file_location("kernel_report", TOOL)
kr = importlib.util.module_from_spec(spec)
sys.modules["kernel_report"] = kr          # its dataclasses look their module up
spec.loader.exec_module(kr)

PTXAS = """\
ptxas info    : Compiling entry function '_Z11attn_kernel11attn_paramsi' for 'sm_80'
ptxas info    : Used 90 registers, used 1 barriers, 2048 bytes smem, 400 bytes cmem[0]
ptxas info    : Compiling entry function '_Z11attn_kernel11attn_paramsi' for 'sm_90'
ptxas info    : Function properties for _Z11attn_kernel11attn_paramsi
    0 bytes stack frame, 0 bytes spill stores, 0 bytes spill loads
ptxas info    : Used 40 registers, used 1 barriers, 1536 bytes smem, 400 bytes cmem[0]
ptxas info    : Compiling entry function '_Z9mm_kernelI4UF32Li1ELb1EEvPKhS2_S2_6mm_setiPKfii11mm_residual' for 'sm_90'
ptxas info    : Function properties for _Z9mm_kernelI4UF32Li1ELb1EEvPKhS2_S2_6mm_setiPKfii11mm_residual
    8 bytes stack frame, 8 bytes spill stores, 8 bytes spill loads
ptxas info    : Used 32 registers, used 1 barriers, 8 bytes cumulative stack size, 260 bytes smem, 512 bytes cmem[0]
"""


def test_ptxas_is_read_by_kernel_name_for_sm90():
    info = kr.parse_ptxas(PTXAS)
    assert info == {"attn_kernel": {"regs": 40, "smem": 1536, "spill": 0},
                    "mm_kernel<UF32, 1, true>": {"regs": 32, "smem": 260, "spill": 8}}
    assert kr.kernel_key("void mm_kernel<UF32, 1, true>(unsigned char const*, mm_set, int)") == "mm_kernel<UF32, 1, true>"
    assert kr.kernel_key("attn_kernel(attn_params, int)") == "attn_kernel"


@pytest.mark.parametrize("regs,smem,threads,blocks,limit", [
    (32, 0, 128, 16, "registers+threads"),   # 1024 a warp: 64 warps; 2048 / 128 threads
    (40, 1536, 128, 12, "registers"),     # 40 regs -> 1280 a warp, 51 warps, 12 blocks of 4
    (128, 0, 256, 2, "registers"),        # 4096 a warp: 16 warps, 2 blocks of 8
    (16, 100 << 10, 128, 2, "shared memory"),   # 228 KiB / (100 KiB + 1 KiB)
    (16, 0, 32, 32, "blocks"),
])
def test_occupancy_on_sm90(regs, smem, threads, blocks, limit):
    o = kr.occupancy(regs, smem, threads)
    assert (o["blocks_per_sm"], o["limit"]) == (blocks, limit)
    assert o["warps_per_sm"] == blocks * threads // 32 and o["occupancy"] == o["warps_per_sm"] / 64


def test_a_decode_step_traced_on_the_emulated_span(emulated_cuda_lib, tmp_path):
    """a 2-layer llama (Q8_0, d 64): every layer's launches found and attributed, the
    matrices each is handed at their bytes, the head's launches apart"""
    from llmlite.device_costs import Shape, write_model

    shape = Shape(64, 128, 4, 2, 256)
    model = write_model(tmp_path / "m.gguf", shape, 2)
    c, launches = kr.attribute(model, 5, 64, kr.trace_step(model, 5, 64, emulated_cuda_lib, tmp_path))
    r = kr.report("tiny", 16, c, launches, None, 132)
    assert r["launches_per_layer"] == 5 and r["launches_first_layer"] == 6      # + the first attn_norm
    assert r["launches_per_step"] == 6 + 15 * 5 + r["launches_head"] and r["launches_head"] >= 1
    layer1 = [x for x in r["launches"] if x["layer"] == 1]
    names = [n for x in layer1 for n in x["weights"]]
    for m in ("attn_q", "attn_k", "attn_v", "attn_output", "ffn_gate", "ffn_up", "ffn_down", "ffn_norm"):
        assert names.count(f"blk.1.{m}.weight") == 1, (m, names)
    mats = sum(x["weight_bytes"] for x in layer1)
    assert mats >= shape.layer_bytes() + 64 * 4               # the matrices, ffn_norm (and 256 B alignment)
    assert sum(x["kv_bytes"] > 0 for x in layer1) >= 1         # attention is handed this layer's K/V
    assert any("output.weight" in x["weights"] for x in r["launches"] if x["layer"] == "head")
