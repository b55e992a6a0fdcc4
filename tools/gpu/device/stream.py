"""Device side of pack.py: writes the model bytes of every slice .gpu/cK/stream.K this
machine has received into WORK/models/FILE at their offsets, and once a model's bytes
are all there, checks its sha256 and prints "ready NAME PATH". Idempotent: a slice is
taken once (WORK/received.json). The slices stay on disk: a model whose hash is wrong
is put together again from them in the next call, where a slice carried again (the
call that brought a damaged one) replaces its bytes.

  python3 tools/gpu/device/stream.py WORK [GPU_DIR]     (GPU_DIR: .gpu of the repository)"""
from __future__ import annotations

import hashlib
import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[3]


def take(work: Path, gpu: Path) -> int:
    man_path = gpu / "c1" / "MANIFEST.json"
    if not man_path.is_file():
        print(f"no {man_path}: call 1 (carry .gpu/c1) has not reached this machine")
        return 1
    man = json.loads(man_path.read_text())
    (work / "models").mkdir(parents=True, exist_ok=True)
    (work / "done").mkdir(parents=True, exist_ok=True)
    got_path = work / "received.json"
    got = set(json.loads(got_path.read_text())) if got_path.is_file() else set()
    for c in man["calls"]:
        k = c["call"]
        sl = gpu / f"c{k}" / f"stream.{k}"
        if k in got or not sl.is_file():
            continue
        if sl.stat().st_size != c["size"]:
            print(f"slice {k}: {sl.stat().st_size} bytes, the manifest says {c['size']}: skipped")
            continue
        with open(sl, "rb") as f:
            for m in man["models"]:
                lo, hi = max(c["offset"], m["offset"]), min(c["offset"] + c["size"], m["offset"] + m["size"])
                if lo >= hi or (work / "models" / m["file"]).is_file():   # done already: its hash was good
                    continue
                dst = work / "models" / (m["file"] + ".partial")
                with open(dst, "r+b" if dst.exists() else "wb") as w:
                    f.seek(lo - c["offset"])
                    w.seek(lo - m["offset"])
                    w.write(f.read(hi - lo))
        got.add(k)
        got_path.write_text(json.dumps(sorted(got)))
        print(f"slice {k} of {len(man['calls'])} taken ({c['size'] / 2**20:.1f} MiB)")
    for m in man["models"]:
        final = work / "models" / m["file"]
        if final.is_file():
            print(f"ready {m['name']} {final}")
            continue
        need = [c["call"] for c in man["calls"]
                if c["offset"] < m["offset"] + m["size"] and c["offset"] + c["size"] > m["offset"]]
        missing = [k for k in need if k not in got]
        if missing:
            print(f"waiting {m['name']}: slices {missing} not received yet")
            continue
        part = work / "models" / (m["file"] + ".partial")
        h = hashlib.sha256()
        with open(part, "rb") as f:
            for blk in iter(lambda: f.read(8 << 20), b""):
                h.update(blk)
        if h.hexdigest() != m["sha256"] or part.stat().st_size != m["size"]:
            print(f"BAD {m['name']}: sha256 {h.hexdigest()} (want {m['sha256']}), {part.stat().st_size} bytes: "
                  f"its slices {need} are taken again next call")
            got -= set(need)
            got_path.write_text(json.dumps(sorted(got)))
            part.unlink()
            continue
        part.rename(final)
        print(f"ready {m['name']} {final}")
    return 0


if __name__ == "__main__":
    sys.exit(take(Path(sys.argv[1]), Path(sys.argv[2]) if len(sys.argv) > 2 else ROOT / ".gpu"))
