"""What one decode step of the CUDA span does, without a GPU: its launches, the bytes
each is handed, and each kernel's registers, shared memory and occupancy on sm_90.

  python3 tools/gpu/kernel_report.py smollm2-135m | gemma3-270m | MODEL.gguf | --shape llama-1b
      [--ctx 35] [--layers 2] [--sms 132] [--no-ptxas] [--json]

Launches: the span's own sources run on the emulated CUDA runtime (tools/gpu/emu, built
here as `emu_build.sh lib`), which with EMU_TRACE writes each grid it runs with its
kernel's name and every argument word that points into device memory. The model is cut
to --layers layers (the first layer's launches, then a repeating one), a prompt of
--ctx tokens fills the cache (of --n-ctx positions), and a decode step is traced (the
second: a graph replay where graphs are on); the step of the whole
model is then: the step's own launches + layer 0 + (n_layer - 1) x layer 1 + the head.
A launch belongs to the lowest layer whose tensors it is handed (the fused down +
residual + next attn_norm is its own layer's), to the head when handed only the
output tensors. Nothing here names a kernel: the kernels are whatever the trace shows.

Bytes: what a launch is handed, from the shapes: the weight tensors its arguments point
at (each as the span's copy of it, all its bytes: a matmul reads its matrix once), the
K/V cache of a layer it points into (the positions in the cache, of every KV head, K and V apart,
so the Q/K stage, which writes one position, shows the cache it is handed, not its
write; the cache is found where span_layout.h puts it, K then V at the end of the
span's buffer allocation, each [layer][kv head][n_ctx][head_dim] F16), and the activations: one token's row of each scratch buffer it points into
(a buffer's extent: to the next buffer a launch points at, over n_batch rows).

Occupancy: `nvcc -Xptxas -v` over csrc/cuda/*.cu (the Makefile's flags), each kernel's
registers, spills and static shared memory for sm_90, with the launch's block size and
dynamic shared memory from the trace: blocks per SM limited by registers (65,536 per
SM, allocated per warp in 256s), shared memory (228 KiB per SM, 1 KiB reserved a
block), threads (2,048) and 32 blocks; the grid against the SMs (132 on an H100 SXM /
H200)."""
from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import tempfile
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

# sm_90's per-SM limits (CUDA C Programming Guide, compute capability 9.0)
SM90 = dict(regs=65536, reg_unit=256, smem=233472, smem_reserved=1024, threads=2048, warps=64, blocks=32)
SHAPES = {   # span_check bench's llama-1B shape: Llama-3.2-1B with the vocab cut to 32000, Q4_K, head Q6_K
    "llama-1b": dict(n_embd=2048, n_ff=8192, n_head=32, n_head_kv=8, n_vocab=32000, n_layer=16, wtype="Q4_K",
                     head_type="Q6_K"),
}


# ---- ptxas ---------------------------------------------------------------------------

def kernel_key(name: str) -> str:
    """a kernel's demangled name without its return type and parameters, as both the
    trace (g++'s mangling) and ptxas (nvcc's) give it: mm_kernel<3, 1>"""
    depth, cut = 0, len(name)
    for i, ch in enumerate(name):
        depth += ch == "<"
        depth -= ch == ">"
        if ch == "(" and depth == 0:
            cut = i
            break
    head = name[:cut].strip()
    head = head.removeprefix("void ")
    return head


def ptxas_info(out_dir: Path) -> dict[str, dict]:
    """kernel key -> {regs, smem, spill, cmem} for sm_90, from `nvcc -Xptxas -v` over
    csrc/cuda/*.cu"""
    flags = subprocess.run(["make", "-s", "print-nvcc-flags"], cwd=ROOT, capture_output=True, text=True,
                           check=True).stdout.split()
    text = ""
    for src in sorted((ROOT / "csrc" / "cuda").glob("*.cu")):
        r = subprocess.run(["nvcc", *flags, "-Xptxas", "-v", "-c", str(src), "-o", str(out_dir / (src.stem + ".o"))],
                           cwd=ROOT, capture_output=True, text=True)
        if r.returncode != 0:
            sys.exit(f"nvcc failed on {src.name}:\n{r.stderr[-2000:]}")
        text += r.stderr
    return parse_ptxas(text)


def parse_ptxas(text: str) -> dict[str, dict]:
    """the sm_90 entries of ptxas -v output: per kernel (by kernel_key) its registers,
    static shared memory, spill stores and constant memory"""
    mangled, info, cur = [], {}, None
    for line in text.splitlines():
        m = re.search(r"Compiling entry function '(\w+)' for '(sm_\d+)'", line)
        if m:
            cur = m.group(1) if m.group(2) == "sm_90" else None
            if cur:
                mangled.append(cur)
                info[cur] = {"regs": 0, "smem": 0, "spill": 0}
            continue
        if cur is None:
            continue
        m = re.search(r"(\d+) bytes spill stores", line)
        if m:
            info[cur]["spill"] = int(m.group(1))
        m = re.search(r"Used (\d+) registers", line)
        if m:
            info[cur]["regs"] = int(m.group(1))
            s = re.search(r"(\d+) bytes smem", line)
            info[cur]["smem"] = int(s.group(1)) if s else 0
    names = subprocess.run(["c++filt"], input="\n".join(mangled), capture_output=True, text=True).stdout.splitlines()
    return {kernel_key(d): info[m] for m, d in zip(mangled, names)}


def occupancy(regs: int, smem: int, threads: int, lim: dict = SM90) -> dict:
    """blocks and warps per SM for a block of `threads` using regs registers a thread
    and smem bytes of shared memory (static + dynamic), and what limits it"""
    warps = -(-threads // 32)
    per_warp = -(-max(regs, 1) * 32 // lim["reg_unit"]) * lim["reg_unit"]
    by = {"registers": (lim["regs"] // per_warp) // warps,
          "threads": lim["threads"] // (warps * 32), "blocks": lim["blocks"]}
    if smem:
        by["shared memory"] = lim["smem"] // (smem + lim["smem_reserved"])
    blocks = min(by.values())
    return {"blocks_per_sm": blocks, "warps_per_sm": blocks * warps, "occupancy": blocks * warps / lim["warps"],
            "limit": "+".join(sorted(k for k in by if by[k] == blocks))}


# ---- the trace -----------------------------------------------------------------------

@dataclass
class Launch:
    name: str
    grid: tuple
    block: tuple
    smem: int
    ptrs: list                 # (allocation id, offset)
    layer: object = None       # int, "step" or "head"
    weights: list = field(default_factory=list)     # tensor names
    weight_bytes: int = 0
    kv_bytes: int = 0
    act_bytes: int = 0


def parse_trace(text: str):
    """(allocations {id: bytes}, copies [(id, off, n)] before the step, launches of the step)"""
    allocs, copies, launches, in_step = {}, [], [], False
    for line in text.splitlines():
        if line == "mark step":
            in_step = True
            continue
        kind, _, rest = line.partition(" ")
        if kind == "alloc":
            i, n = rest.split()
            allocs[int(i)] = int(n)
        elif kind == "copy" and not in_step:
            i, off, n = rest.split()
            copies.append((int(i), int(off), int(n)))
        elif kind == "launch" and in_step:
            f = rest.split("\t")
            ptrs = [tuple(int(x) for x in p.split("+")) for p in f[4].split()[1].split(",")] if f[4].strip() != "ptrs" \
                else []
            launches.append(Launch(f[0], tuple(int(x) for x in f[1].split()[1].split(",")),
                                   tuple(int(x) for x in f[2].split()[1].split(",")), int(f[3].split()[1]), ptrs))
    return allocs, copies, launches


TRACE_RUN = r"""
import os, sys
from llmlite.gguf import open_gguf
from llmlite.model import Weights
from llmlite.offload import load_cuda
path, ctx, n_ctx, trace = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), sys.argv[4]
assert load_cuda()[0], load_cuda()
os.environ["EMU_TRACE"] = trace
with open_gguf(path) as g:
    w = Weights(g, n_ctx, 8, n_gpu=99, backend="cuda")
    del os.environ["EMU_TRACE"]
    w.forward([1 + i % 50 for i in range(ctx)], 0, 1)
    w.forward([7], ctx, 1)                       # a first decode step: plain launches
    with open(trace, "a") as f:
        f.write("mark step\n")
    os.environ["EMU_TRACE"] = trace
    w.forward([9], ctx + 1, 1)                   # the traced one (a graph replay where graphs are on)
    del os.environ["EMU_TRACE"]
"""


def emulated_lib(build: Path) -> Path:
    lib = build / "libllmlite_cuda.so"
    srcs = list((ROOT / "csrc" / "cuda").glob("*")) + list((ROOT / "tools" / "gpu" / "emu").rglob("*.*"))
    if not lib.is_file() or lib.stat().st_mtime < max(p.stat().st_mtime for p in srcs):
        subprocess.run(["sh", str(ROOT / "tools/gpu/emu/emu_build.sh"), "lib"], env=dict(os.environ, EMU_DIR=str(build)),
                       check=True)
    return lib


def cut_model(src: Path, n_layer: int, dst: Path) -> Path:
    """src with its first n_layer layers only (block_count rewritten)"""
    from llmlite.config import layer_of
    from llmlite.gguf import open_gguf
    from llmlite.gguf.constants import ValueType as V
    from llmlite.gguf.writer import TensorOut, encode, write_gguf

    with open_gguf(src) as g:
        arch = g.metadata["general.architecture"]
        kvs = [(k, encode(V.UINT32, n_layer) if k == f"{arch}.block_count" else v) for k, v in g.stored_kvs()]
        names = [n for n in g.tensors if not (layer_of(n) and layer_of(n)[0] >= n_layer)]
        outs = [TensorOut(n, tuple(int(x) for x in g.tensors[n].shape), int(g.tensors[n].type), g.tensors[n].nbytes)
                for n in names]
        write_gguf(dst, kvs, outs, lambda i: g.tensor_data(names[i]))
    return dst


def trace_step(model: Path, ctx: int, n_ctx: int, lib: Path, work: Path) -> str:
    trace = work / "trace.txt"
    trace.unlink(missing_ok=True)
    env = dict(os.environ, LLMLITE_CUDA_LIB=str(lib), PYTHONPATH=str(ROOT), LLMLITE_DEVICE_FALLBACK="0")
    subprocess.run([sys.executable, "-c", TRACE_RUN, str(model), str(ctx), str(n_ctx), str(trace)], env=env, check=True,
                   cwd=ROOT)
    return trace.read_text()


# ---- bytes ---------------------------------------------------------------------------

def attribute(model: Path, ctx: int, n_ctx: int, text: str):
    """the step's launches with their layer, tensors and bytes (see the module docstring)"""
    from llmlite.config import layer_of
    from llmlite.gguf import open_gguf
    from llmlite.offload import model_costs, span_weight_bytes

    allocs, copies, launches = parse_trace(text)
    with open_gguf(model) as g:
        c = model_costs(g, n_ctx, 8)
        tensors = {n: t.nbytes for n, t in g.tensors.items()}
        tied = "output.weight" not in g.tensors
    # the weights: the copies into the span, in set_tensor's order, each a whole tensor
    where = {}                 # (alloc, offset) -> tensor name
    order = [n for n in tensors if n != "token_embd.weight"] + (["output.weight"] if tied else [])
    sizes = dict(tensors, **({"output.weight": tensors["token_embd.weight"]} if tied else {}))
    pending = list(order)
    for a, off, n in copies:
        hit = next((t for t in pending if sizes[t] == n), None)
        if hit is not None:
            where[(a, off)] = hit
            pending.remove(hit)
    w_alloc = Counter(a for a, _ in where).most_common(1)[0][0] if where else None
    # the layout allocation: the largest other one; its last bytes the K then the V cache
    others = {a: n for a, n in allocs.items() if a != w_alloc}
    lay = max(others, key=others.get)
    kv_half = sum(c.layer_kv) // 2
    k0 = allocs[lay] - 2 * kv_half
    per_layer = [x // 2 for x in c.layer_kv]
    starts = sorted({off for L in launches for a, off in L.ptrs if a == lay and off < k0})
    extent = {o: (nxt - o) for o, nxt in zip(starts, starts[1:] + [k0])}
    for L in launches:
        layers = []
        for a, off in L.ptrs:
            name = where.get((a, off))
            if name in L.weights:          # handed twice (a pointer and a struct holding it): read once
                continue
            if name:
                L.weights.append(name)
                L.weight_bytes += span_weight_bytes(sizes[name]) if name in sizes else 0
                b = layer_of(name)
                layers.append(b[0] if b else "head")
            elif a == lay and off >= k0:
                rel = (off - k0) % kv_half
                il, acc = 0, 0
                while il + 1 < len(per_layer) and acc + per_layer[il] <= rel:
                    acc += per_layer[il]
                    il += 1
                L.kv_bytes += per_layer[il] * min(ctx + 2, c.windows[il] or ctx + 2) // n_ctx
                layers.append(il)
            elif a == lay:
                L.act_bytes += extent.get(off, 0) // 8
        ints = [x for x in layers if isinstance(x, int)]
        L.layer = min(ints) if ints else ("head" if layers else None)
    last = "step"
    for L in launches:                 # a launch handed nothing the step knows: its neighbour's
        if L.layer is None:
            L.layer = last
        last = L.layer
    return c, launches


# ---- the report ----------------------------------------------------------------------

def report(model_name: str, full_layers: int, c, launches, ptx: dict | None, sms: int,
           rule: list[int] | None = None) -> dict:
    """rule: each layer's launches by the plan's rule (offload.layer_launches) over the
    whole model, when its layers' types differ from the traced ones'"""
    groups = defaultdict(list)
    for L in launches:
        groups[L.layer if not isinstance(L.layer, int) else min(L.layer, 1)].append(L)
    per = {k: len(v) for k, v in groups.items()}
    step_launches = per.get("step", 0) + per.get(0, 0) + (full_layers - 1) * per.get(1, per.get(0, 0)) \
        + per.get("head", 0)
    by_rule = None
    if rule:    # the traced first layer's extra launches, then every layer as its types say
        by_rule = per.get("step", 0) + per.get(0, 0) - rule[0] + sum(rule) + per.get("head", 0)
    kernels = {}
    for L in launches:
        key = kernel_key(L.name)
        k = kernels.setdefault(key, {"launches": 0, "grids": set(), "block": L.block, "smem_dyn": L.smem})
        k["launches"] += 1
        k["grids"].add(L.grid)
        if ptx is not None and key in ptx:
            p = ptx[key]
            threads = L.block[0] * L.block[1] * L.block[2]
            k.update(p, **occupancy(p["regs"], p["smem"] + L.smem, threads))
    rows = []
    for L in launches:
        blocks = L.grid[0] * L.grid[1] * L.grid[2]
        bps = kernels[kernel_key(L.name)].get("blocks_per_sm")
        rows.append({"layer": L.layer, "kernel": kernel_key(L.name), "grid": L.grid, "block": L.block,
                     "blocks": blocks, "waves": blocks / (sms * bps) if bps else None,
                     "sms_busy": min(blocks, sms), "weights": L.weights, "weight_bytes": L.weight_bytes,
                     "kv_bytes": L.kv_bytes, "act_bytes": L.act_bytes})
    return {"model": model_name, "n_layer": full_layers, "launches_traced": len(launches),
            "launches_per_layer": per.get(1, per.get(0, 0)), "launches_first_layer": per.get(0, 0),
            "launches_step_own": per.get("step", 0), "launches_head": per.get("head", 0),
            "launches_per_step": step_launches, "launches_per_step_by_types": by_rule, "rule": rule,
            "launches": rows,
            "kernels": {k: {**v, "grids": sorted(v["grids"])} for k, v in kernels.items()}}


def print_report(r: dict, sms: int) -> None:
    MB = 1e6
    print(f"{r['model']}: one decode step, {r['n_layer']} layers: {r['launches_per_step']} launches "
          f"(the step's own {r['launches_step_own']} + first layer {r['launches_first_layer']} + "
          f"{r['n_layer'] - 1} x {r['launches_per_layer']} + head {r['launches_head']})")
    rule = r.get("rule")
    if rule and len(set(rule)) > 1:
        print(f"  the layers' types differ: by the plan's rule per layer ({' '.join(map(str, rule))}), "
              f"{r['launches_per_step_by_types']} launches")
    print(f"{'layer':>5}  {'kernel':<44} {'grid':>14} {'block':>9} {'blocks':>6} {'waves':>6}  "
          f"{'weights MB':>10} {'KV KB':>7} {'act KB':>7}  tensors")
    for x in r["launches"]:
        waves = f"{x['waves']:.2f}" if x["waves"] is not None else "-"
        print(f"{str(x['layer']):>5}  {x['kernel'][:44]:<44} {'x'.join(map(str, x['grid'])):>14} "
              f"{'x'.join(map(str, x['block'])):>9} {x['blocks']:>6} {waves:>6}  {x['weight_bytes'] / MB:>10.3f} "
              f"{x['kv_bytes'] / 1e3:>7.1f} {x['act_bytes'] / 1e3:>7.1f}  {' '.join(x['weights'])}")
    tot = lambda k, sel: sum(x[k] for x in r["launches"] if sel(x["layer"]))
    one = lambda layer: layer == 1 or (r["launches_first_layer"] and r["launches_per_layer"] == 0 and layer == 0)
    print(f"per layer (layer 1): {tot('weight_bytes', one) / MB:.3f} MB weights, {tot('kv_bytes', one) / 1e3:.1f} KB KV, "
          f"{tot('act_bytes', one) / 1e3:.1f} KB activations")
    print(f"\nkernels (sm_90: 65,536 registers, 228 KiB shared memory, 2,048 threads, 32 blocks an SM; {sms} SMs)")
    print(f"{'kernel':<44} {'n':>3} {'regs':>5} {'spill':>6} {'smem':>7} {'block':>6} {'blk/SM':>7} {'warps/SM':>9} "
          f"{'occ':>5}  limit")
    for k, v in r["kernels"].items():
        if "regs" not in v:
            print(f"{k[:44]:<44} {v['launches']:>3}  (no ptxas entry)")
            continue
        threads = v["block"][0] * v["block"][1] * v["block"][2]
        print(f"{k[:44]:<44} {v['launches']:>3} {v['regs']:>5} {v['spill']:>6} {v['smem'] + v['smem_dyn']:>7} "
              f"{threads:>6} {v['blocks_per_sm']:>7} {v['warps_per_sm']:>9} {v['occupancy']:>5.0%}  {v['limit']}")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("model", nargs="?", help="a GGUF file or a models.toml name (smollm2-135m, gemma3-270m)")
    ap.add_argument("--shape", choices=sorted(SHAPES), help="a shape instead of a model: " + ", ".join(SHAPES))
    ap.add_argument("--ctx", type=int, default=35, help="tokens in the cache at the traced step (default 35)")
    ap.add_argument("--n-ctx", type=int, default=4096, help="the span's context (its attention grid; default 4096)")
    ap.add_argument("--layers", type=int, default=2, help="layers emulated (default 2: the first and a repeating one)")
    ap.add_argument("--sms", type=int, default=132, help="SMs of the GPU (132: H100 SXM, H200)")
    ap.add_argument("--no-ptxas", action="store_true", help="skip nvcc (no registers or occupancy)")
    ap.add_argument("--ptxas-log", help="read `nvcc -Xptxas -v` output saved earlier instead of compiling")
    ap.add_argument("--emu-lib", help="an emulated libllmlite_cuda.so already built")
    ap.add_argument("--json", action="store_true")
    a = ap.parse_args()
    if bool(a.model) == bool(a.shape):
        ap.error("a model or --shape")
    work = Path(tempfile.mkdtemp(prefix="kernel-report-"))
    from llmlite.config import ModelConfig
    from llmlite.gguf import open_gguf

    if a.shape:
        from llmlite.device_costs import Shape, write_model
        from llmlite.gguf.constants import GGMLType

        s = SHAPES[a.shape]
        full = s["n_layer"]
        model = write_model(work / "shape.gguf", Shape(s["n_embd"], s["n_ff"], s["n_head"], s["n_head_kv"], s["n_vocab"]),
                            min(a.layers, full), int(GGMLType[s["wtype"]]), int(GGMLType[s["head_type"]]))
        name = f"{a.shape} shape ({s['wtype']}, head {s['head_type']})"
        rule = None
    else:
        src = Path(a.model)
        if not src.is_file():
            from llmlite.registry import ensure_model

            src = Path(ensure_model(a.model))
        with open_gguf(src) as g:
            full = ModelConfig.of(g).n_layer
        model = cut_model(src, min(a.layers, full), work / "cut.gguf")
        name = src.name
        from llmlite.offload import layer_launches

        with open_gguf(src) as g:
            types = {n: t.type for n, t in g.tensors.items()}
        rule = [layer_launches(types, il) for il in range(full)]
    lib = Path(a.emu_lib) if a.emu_lib else emulated_lib(ROOT / "build" / "kernel-report")
    text = trace_step(model, a.ctx, a.n_ctx, lib, work)
    c, launches = attribute(model, a.ctx, a.n_ctx, text)
    ptx = None if a.no_ptxas else parse_ptxas(Path(a.ptxas_log).read_text()) if a.ptxas_log else ptxas_info(work)
    r = report(name, full, c, launches, ptx, a.sms, rule)
    if a.json:
        print(json.dumps(r, default=list))
    else:
        print_report(r, a.sms)
    return 0


if __name__ == "__main__":
    sys.exit(main())
