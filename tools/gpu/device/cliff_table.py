"""The bandwidth cliff from `llmlite bench -ngl 0,25%,... --json`: one line per split
with pp and tg t/s, the plan's decode estimate against the measured tg (issue 24: within
25% at 0, 50 and 100%) and the device memory (plan, allocated by the span, and the fall
of the device's free memory while the model was loaded and ran); then the constants
the estimate used (llmlite/device_costs.py) and whether they were measured.

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
          " | plan tg t/s | plan vs tg | plan MiB | allocated MiB | free fell MiB | fell vs plan |")
    print("|---" * (len(tests) + 7) + "|")
    speed = None
    for _, row in sorted(by.items()):
        s = next(iter(row.values()))
        ngl = s["ngl"]
        plan, span, drop = s.get("plan_device_bytes"), s.get("span_bytes"), s.get("device_free_drop")
        f = lambda v: f"{v / MiB:.1f}" if v else "-"
        vs = f"{drop / plan - 1:+.1%}" if plan and drop else "-"
        tg = next((row[t]["tps_mean"] for t in tests if t.startswith("tg") and t in row), None)
        est = s.get("plan_tps")
        speed = speed or s.get("plan_speed")
        est_vs = f"{est / tg - 1:+.0%}" if est and tg else "-"
        print(f"| {ngl}/{b['n_layer']} ({100 * ngl // nl}%) | " +
              " | ".join(f"{row[t]['tps_mean']:.1f} ± {row[t]['tps_sd']:.1f}" if t in row else "-" for t in tests) +
              f" | {f'{est:.0f}' if est else '-'} | {est_vs} | {f(plan)} | {f(span)} | {f(drop)} | {vs} |")
        if "error" in s:
            print(f"|   failed: {s['error']} |")
        for n in s.get("notes") or []:
            print(f"|   note: {n} |")
    if speed:
        print(f"plan constants ({'measured' if speed.get('measured') else 'NOT measured'}): {speed.get('source')}: "
              f"GPU {speed['gpu_launch_us']:.2f} us/launch, {speed['gpu_gbs']:.0f} GB/s, {speed['gpu_step_us']:.0f} us/step; "
              f"CPU {speed['cpu_layer_us']:.0f} us/layer, {speed['cpu_gbs']:.0f} GB/s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
