"""The bandwidth cliff from `llmlite bench -ngl 0,25%,... --json`: one line per split
with pp and tg t/s and the device memory (plan, allocated by the span, and the fall of
the device's free memory while the model was loaded and ran).

  python3 tools/gpu/device/cliff_table.py bench.json"""
import json
import sys

MiB = 1 << 20


def main() -> int:
    b = json.load(open(sys.argv[1]))
    by = {}                                  # split -> test -> row (a failed split: "error" only)
    for t in b["tests"]:
        by.setdefault(t.get("split", t["ngl"]), {})[t.get("test", "error")] = t
    tests = sorted({t["test"] for t in b["tests"] if "test" in t}, key=lambda s: (not s.startswith("pp"), s))
    nl = max(b["n_layer"], 1)
    print(f"{b['name']} ({b['n_layer']} layers, {b['threads']} CPU threads)")
    print("| layers on GPU | " + " | ".join(f"{t} t/s" for t in tests) +
          " | plan MiB | allocated MiB | free fell MiB | fell vs plan |")
    print("|---" * (len(tests) + 5) + "|")
    for _, row in sorted(by.items()):
        s = next(iter(row.values()))
        ngl = s["ngl"]
        plan, span, drop = s.get("plan_device_bytes"), s.get("span_bytes"), s.get("device_free_drop")
        f = lambda v: f"{v / MiB:.1f}" if v else "-"
        vs = f"{drop / plan - 1:+.1%}" if plan and drop else "-"
        print(f"| {ngl}/{b['n_layer']} ({100 * ngl // nl}%) | " +
              " | ".join(f"{row[t]['tps_mean']:.1f} ± {row[t]['tps_sd']:.1f}" if t in row else "-" for t in tests) +
              f" | {f(plan)} | {f(span)} | {f(drop)} | {vs} |")
        if "error" in s:
            print(f"|   failed: {s['error']} |")
        for n in s.get("notes") or []:
            print(f"|   note: {n} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
