#!/usr/bin/env python3
"""Groups the query rows of one block of the longest segment by which branches select them, per
head: the query tiles of a fused dilated-attention kernel (docs/design.md section 2, "A fused
kernel: the plan"). Row p of head j is selected by branch i (segment w_i, rate r_i) iff
(p mod w_i) mod r_i == j mod r_i. Prints, per head, the classes (signature, rows, the most keys
a row of the class attends to at the end of its segments) and whether every class fills tiles.

    bench/signature_classes.py [--segments 2048,4096,8192,16384,32768] [--rates 1,2,4,6,12]
                               [--heads 12] [--tile 64]
"""

import argparse
import collections
import math


def classes(w, r, heads):
    block = max(w)
    out = []
    for j in range(heads):
        count = collections.Counter()
        for p in range(block):
            sig = tuple(int((p % wi) % ri == j % ri) for wi, ri in zip(w, r))
            if any(sig):
                count[sig] += 1
        out.append(count)
    return out


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ints = lambda s: [int(x) for x in s.split(",")]
    ap.add_argument("--segments", type=ints, default=[2048, 4096, 8192, 16384, 32768])
    ap.add_argument("--rates", type=ints, default=[1, 2, 4, 6, 12])
    ap.add_argument("--heads", type=int, default=12)
    ap.add_argument("--tile", type=int, default=64)
    a = ap.parse_args()
    if len(a.segments) != len(a.rates) or max(a.segments) % min(a.segments):
        ap.error("one rate per segment length, and segment lengths that nest")
    per_head = classes(a.segments, a.rates, a.heads)
    sizes = [n for c in per_head for n in c.values()]
    print(f"segments {a.segments}, rates {a.rates}, {a.heads} heads, one block of "
          f"{max(a.segments)} rows")
    print(f"classes per head: {[len(c) for c in per_head]}; rows per class {min(sizes)} to "
          f"{max(sizes)}; classes under one {a.tile}-row tile: "
          f"{sum(1 for n in sizes if n < a.tile)} of {len(sizes)}")
    for j, c in enumerate(per_head[:2]):
        for sig, n in sorted(c.items(), key=lambda x: -x[1]):
            keys = sum(math.ceil(wi / ri) for wi, ri, s in zip(a.segments, a.rates, sig) if s)
            print(f"  head {j}: branches {sig}  rows {n:6d}  keys per row at most {keys}")


if __name__ == "__main__":
    main()
