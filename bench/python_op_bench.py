"""The paper's attention through torch.ops.longnet.dilated_attention from Python: forward and
forward + backward times (median of CUDA-event timings), to set beside `longnet bench attention`
run on the same card in the same job (issue 22: the Python op must be as fast as the C++ path).

Run: python3 bench/python_op_bench.py build/liblongnet_ops.so [--json PATH]
"""
import argparse
import json
import statistics
import sys
import time

import torch


def timed(fn, warmup=3, repeats=10):
    for _ in range(warmup):
        fn()
    torch.cuda.synchronize()
    times = []
    for _ in range(repeats):
        a, b = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        a.record()
        fn()
        b.record()
        torch.cuda.synchronize()
        times.append(a.elapsed_time(b))
    return statistics.median(times)


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("library")
    ap.add_argument("--json", default="")
    ap.add_argument("--seq-len", type=int, default=32768)
    ap.add_argument("--tokens", type=int, default=1 << 20)
    args = ap.parse_args()
    if not torch.cuda.is_available():
        print("skipped: no GPU")
        return 77
    torch.ops.load_library(args.library)
    op = torch.ops.longnet.dilated_attention
    w, r = [2048, 4096, 8192, 16384, 32768], [1, 2, 4, 6, 12]
    N = args.seq_len
    B = max(1, args.tokens // N)
    rows = []
    for D in (64, 128):
        torch.manual_seed(0)
        q, k, v, g = (torch.randn(B, N, 12, D, device="cuda", dtype=torch.bfloat16)
                      for _ in range(4))
        leaves = [t.clone().requires_grad_() for t in (q, k, v)]
        fwd = timed(lambda: op(q, k, v, w, r, is_causal=True))

        def fb():
            for t in leaves:  # no accumulation into .grad: the C++ bench writes fresh grads
                t.grad = None
            out = op(*leaves, w, r, is_causal=True)
            out.backward(g)
        fb_ms = timed(fb)
        flops = sum(4.0 * B * 12 * D * (N / min(x, N)) * (min(x, N) / y) ** 2
                    for x, y in zip(w, r)) / 2
        row = {"path": "torch.ops", "seq_len": N, "batch": B, "head_dim": D,
               "forward_ms": fwd, "forward_tflops": flops / fwd * 1e-9,
               "forward_backward_ms": fb_ms, "forward_backward_tflops": 3.5 * flops / fb_ms * 1e-9}
        rows.append(row)
        print(f"torch.ops N={N} B={B} D={D}: fwd {fwd:.2f} ms ({row['forward_tflops']:.1f} TF/s), "
              f"fwd+bwd {fb_ms:.2f} ms ({row['forward_backward_tflops']:.1f} TF/s)")
    if args.json:
        json.dump({"command": " ".join(sys.argv), "device": torch.cuda.get_device_name(),
                   "date": time.strftime("%Y-%m-%d", time.gmtime()), "torch": torch.__version__,
                   "rows": rows}, open(args.json, "w"), indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
