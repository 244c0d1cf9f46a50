#!/usr/bin/env python3
"""Sums up a Kineto trace written by `longnet train --trace PATH` (or one of `longnet bench
generate --trace DIR`): GPU time per kernel (top N), how busy the GPU was over the traced
window, the CPU ops that took the most host time, and with
--gaps N the N longest stretches where no GPU work ran (what ran before and after, and the CPU op
the host was in when the gap began).
    python3 bench/trace_summary.py TRACE.json [--top 30] [--gaps 20]"""
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


def print_gaps(gpu, cpu, top):
    """Idle stretches between the first and the last GPU event, longest first."""
    gpu = sorted(gpu, key=lambda e: e["ts"])
    gaps, end, last = [], gpu[0]["ts"], gpu[0]
    for e in gpu:
        if e["ts"] > end:
            gaps.append((e["ts"] - end, end, last, e))
        if e["ts"] + e["dur"] >= end:
            end, last = e["ts"] + e["dur"], e
    total = sum(g[0] for g in gaps)
    span = end - gpu[0]["ts"]
    print(f"\nidle between the first and the last GPU event: {total / 1e3:.1f} ms of {span / 1e3:.1f} ms "
          f"in {len(gaps)} gaps ({sum(1 for g in gaps if g[0] > 50)} over 50 us, "
          f"{sum(g[0] for g in gaps if g[0] > 50) / 1e3:.1f} ms)")
    for dur, t, before, after in sorted(gaps, key=lambda g: -g[0])[:top]:
        inner = [c for c in cpu if c["ts"] <= t <= c["ts"] + c["dur"]]
        op = min(inner, key=lambda c: c["dur"])["name"] if inner else "-"
        print(f"{dur / 1e3:8.3f} ms at +{(t - gpu[0]['ts']) / 1e3:8.1f} ms  after {before['name'][:50]}"
              f"  | before {after['name'][:50]}  | host in {op[:60]}")


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("trace")
    ap.add_argument("--top", type=int, default=30)
    ap.add_argument("--gaps", type=int, default=0)
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
        if a.gaps:
            print_gaps(gpu, cpu, a.gaps)
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
