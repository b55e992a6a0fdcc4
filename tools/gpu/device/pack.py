"""Packs what one GPU check needs into .gpu/c1 .. .gpu/cN (ignored by git): one folder
per device call, each small enough to travel with the working tree (the device tool
sends at most 64 MiB a call, and its machine reaches no network, so the test models
go over in slices).

  python3 tools/gpu/device/pack.py [--models smollm2-135m gemma3-270m]

c1 holds MANIFEST.json, the wheels the device's Python 3.12 lacks (cffi, pycparser),
the perplexity corpus, prompt lookup's workloads, llama.cpp's trimmed sources
(llamacpp.py, ~1.7 MiB: step.sh builds them in the background from call 1), the
prebuilt extension (llmlite/_llmlite.abi3.so) and CUDA build (build/cuda: `sh
tools/gpu/gpu_check.sh quick` makes it), and the first bytes of the stream; c2.. the
next bytes. The stream: the files back to back, the first model, a cmake wheel (27 MiB,
for a machine without cmake), the other models (--no-llamacpp leaves the sources and
the wheel out).
Then call k of the device tool carries [".gpu/ck"] and runs
`bash tools/gpu/device/step.sh`: see csrc/cuda/README.md."""
from __future__ import annotations

import argparse
import datetime
import hashlib
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[3]
MiB = 1 << 20
LIMIT = 64 * MiB          # the device tool's working-tree limit per call
SLACK = 3 * MiB           # for files committed after packing
PY = "3.12"               # the device image's python3


def tree_bytes() -> int:
    """what travels without carry: tracked files and untracked files git does not ignore"""
    out = subprocess.run(["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"], cwd=ROOT,
                         capture_output=True, check=True).stdout.split(b"\0")
    return sum((ROOT / p.decode()).stat().st_size for p in out if p and (ROOT / p.decode()).is_file())


def newest(paths) -> float:
    return max((p.stat().st_mtime for p in paths), default=0.0)


def check_builds() -> list[Path]:
    ext = ROOT / "llmlite" / "_llmlite.abi3.so"
    ext_srcs = list((ROOT / "csrc").glob("*.[ch]"))
    if not ext.is_file() or ext.stat().st_mtime < newest(ext_srcs):
        sys.exit(f"{ext.relative_to(ROOT)} is missing or older than csrc/: run `make install` first")
    cuda = ROOT / "build" / "cuda"
    need = [cuda / n for n in ("libllmlite_cuda.so", "span_check", "probe", "dequant_check", "mmq_check")]
    srcs = list((ROOT / "csrc" / "cuda").glob("*.cu*")) + list((ROOT / "tools" / "gpu").glob("*.c"))
    srcs += list((ROOT / "tools" / "gpu").glob("*.cu"))
    srcs += ext_srcs
    if not all(p.is_file() for p in need) or min(p.stat().st_mtime for p in need) < newest(srcs):
        sys.exit("build/cuda is missing or older than its sources: run `sh tools/gpu/gpu_check.sh quick` first")
    return [ext] + need


def describe(paths: list[Path], names: list[str]) -> list[dict]:
    """the models of the stream: name, file, size, sha256 and offset in the stream"""
    models, off = [], 0
    for name, p in zip(names, paths):
        h = hashlib.sha256()
        with open(p, "rb") as f:
            for blk in iter(lambda: f.read(8 * MiB), b""):
                h.update(blk)
        size = p.stat().st_size
        models.append({"name": name, "file": p.name, "size": size, "sha256": h.hexdigest(), "offset": off})
        off += size
    return models


def slice_plan(total: int, room: int, first_extra: int) -> list[dict]:
    """cut a stream of total bytes into calls of at most room bytes, the first call
    also carrying first_extra bytes of other files"""
    if room - first_extra <= 0:
        raise ValueError(f"the first call's files ({first_extra} B) leave no room under {room} B")
    calls, pos = [], 0
    while pos < total:
        size = min(room - (first_extra if not calls else 0), total - pos)
        calls.append({"call": len(calls) + 1, "offset": pos, "size": size})
        pos += size
    return calls


def write_slices(models: list[dict], paths: list[Path], calls: list[dict], out: Path) -> None:
    """out/cK/stream.K: bytes [offset, offset+size) of the models back to back"""
    for c in calls:
        d = out / f"c{c['call']}"
        d.mkdir(parents=True, exist_ok=True)
        with open(d / f"stream.{c['call']}", "wb") as w:
            for m, p in zip(models, paths):
                lo, hi = max(c["offset"], m["offset"]), min(c["offset"] + c["size"], m["offset"] + m["size"])
                if lo < hi:
                    with open(p, "rb") as f:
                        f.seek(lo - m["offset"])
                        w.write(f.read(hi - lo))


def llamacpp_files(out: Path) -> tuple[Path, Path]:
    """llama.cpp's trimmed sources (built from the llama-cpp-python sdist under /work/ref)
    and a cmake wheel for the device's Python, into out"""
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    import llamacpp

    src = llamacpp.find_source()
    if src is None:
        sys.exit("no llama-cpp-python sdist unpacked under /work/ref: pass --no-llamacpp")
    tar = out / "llamacpp.tar.xz"
    llamacpp.make_tarball(src, tar)
    whl = out / "cmake-wheel"
    subprocess.run([sys.executable, "-m", "pip", "download", "-q", "--no-deps", "--only-binary=:all:",
                    "--python-version", PY, "--implementation", "cp", "--platform", "manylinux2014_x86_64",
                    "--platform", "manylinux_2_17_x86_64", "-d", str(whl), "cmake<4"], check=True)
    return tar, next(whl.glob("cmake-*.whl"))


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--models", nargs="+", default=["smollm2-135m", "gemma3-270m"])
    ap.add_argument("--out", default=str(ROOT / ".gpu"))
    ap.add_argument("--no-llamacpp", action="store_true", help="no llama.cpp sources or cmake wheel in the stream")
    a = ap.parse_args()
    sys.path.insert(0, str(ROOT))
    from llmlite.registry import ensure_model

    binaries = check_builds()
    out = Path(a.out)
    shutil.rmtree(out, ignore_errors=True)
    c1 = out / "c1"
    (c1 / "whl").mkdir(parents=True)
    subprocess.run([sys.executable, "-m", "pip", "download", "-q", "--no-deps", "--only-binary=:all:",
                    "--python-version", PY, "--implementation", "cp", "--platform", "manylinux_2_28_x86_64",
                    "--platform", "manylinux_2_17_x86_64", "--platform", "manylinux2014_x86_64",
                    "-d", str(c1 / "whl"), "cffi", "pycparser"], check=True)
    shared = Path(os.environ.get("LLMLITE_SHARED", ROOT.parent / "shared"))
    shutil.copy(shared / "data" / "wikitext2_test.txt", c1)
    shutil.copy(shared / "bench" / "lookup-workloads.jsonl", c1)
    for b in binaries:                         # as their paths in the repository
        dst = c1 / "prebuilt" / b.relative_to(ROOT)
        dst.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(b, dst)

    paths = [Path(ensure_model(name)) for name in a.models]
    names = list(a.models)
    if not a.no_llamacpp:        # the sources in c1 (the build starts at once), the wheel after the first model
        tar, whl = llamacpp_files(out)
        shutil.copy(tar, c1 / "llamacpp.tar.xz")
        paths.insert(1, whl)
        names.insert(1, "cmake-wheel")
    models = describe(paths, names)
    base = tree_bytes() + SLACK
    c1_bytes = sum(f.stat().st_size for f in c1.rglob("*") if f.is_file()) + 4096
    calls = slice_plan(sum(m["size"] for m in models), LIMIT - base, c1_bytes)
    manifest = {"made": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
                "commit": subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True,
                                         text=True).stdout.strip(),
                "models": models, "stream_size": sum(m["size"] for m in models), "calls": calls}
    (c1 / "MANIFEST.json").write_text(json.dumps(manifest, indent=1))
    write_slices(models, paths, calls, out)
    for c in calls:
        d = out / f"c{c['call']}"
        sz = sum(f.stat().st_size for f in d.rglob("*") if f.is_file())
        assert sz + base - SLACK <= LIMIT, (d, sz)
        print(f"call {c['call']}: carry [\".gpu/c{c['call']}\"], {(sz + base - SLACK) / MiB:.1f} MiB with the tree")
    ready = [next(c["call"] for c in calls if c["offset"] + c["size"] >= m["offset"] + m["size"]) for m in models]
    print("models complete after call " + ", ".join(f"{m['name']}: {r}" for m, r in zip(models, ready)))
    print("each call: bash tools/gpu/device/step.sh   (timeout_s 420; the next call within 30 s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
