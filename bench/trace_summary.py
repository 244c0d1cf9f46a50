#!/usr/bin/env python3
"""Sums up a Kineto trace written by `longnet train --trace PATH`: GPU time per kernel (top N),
how busy the GPU was over the traced window, and the CPU ops that took the most host time.
    python3 bench/trace_summary.py TRACE.json [--top 30]"""
import argparse
import collections
import json
import sys


def union_length(spans):
    total, end = 0.0, -1e30
    for s, e in sorted(spans):
        if e <= end:
            continue
        total += e - max(s, end)
        end = e
    return total


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("trace")
    ap.add_argument("--top", type=int, default=30)
    a = ap.parse_args()
    with open(a.trace) as f:
        events = json.load(f)["traceEvents"]
    gpu = [e for e in events if e.get("ph") == "X" and e.get("cat") in ("kernel", "gpu_memcpy", "gpu_memset")]
    cpu = [e for e in events if e.get("ph") == "X" and e.get("cat") == "cpu_op"]
    if not gpu + cpu:
        sys.exit(f"{a.trace}: no CPU ops or GPU kernels in the trace")
    t0 = min(e["ts"] for e in gpu + cpu)
    t1 = max(e["ts"] + e["dur"] for e in gpu + cpu)
    print(f"window {(t1 - t0) / 1e3:.1f} ms")
    if gpu:
        busy = union_length([(e["ts"], e["ts"] + e["dur"]) for e in gpu])
        by_name = collections.defaultdict(lambda: [0.0, 0])
        for e in gpu:
            by_name[e["name"]][0] += e["dur"]
            by_name[e["name"]][1] += 1
        kernel_sum = sum(v[0] for v in by_name.values())
        print(f"GPU busy {busy / 1e3:.1f} ms ({100 * busy / (t1 - t0):.0f}% of the window), kernel time "
              f"summed over streams {kernel_sum / 1e3:.1f} ms, {len(gpu)} GPU events")
        print(f"{'ms':>9} {'%':>5} {'calls':>6}  kernel")
        for name, (dur, n) in sorted(by_name.items(), key=lambda kv: -kv[1][0])[: a.top]:
            print(f"{dur / 1e3:9.2f} {100 * dur / kernel_sum:5.1f} {n:6d}  {name[:150]}")
    else:
        print("no GPU events (a CPU run)")
    ops = collections.defaultdict(lambda: [0.0, 0])
    for e in cpu:
        ops[e["name"]][0] += e["dur"]
        ops[e["name"]][1] += 1
    print(f"\nCPU ops: {len(cpu)} calls; the most host time (inclusive, nested ops counted in each):")
    for name, (dur, n) in sorted(ops.items(), key=lambda kv: -kv[1][0])[: a.top]:
        print(f"{dur / 1e3:9.2f} ms {n:6d}  {name[:120]}")


if __name__ == "__main__":
    main()
