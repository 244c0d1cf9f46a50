"""Where does python.ops' CPU float64 error of ~1e-10 (seen on some GPU machines, 2e-16 on the
development machine) come from? Compares the op and tests/test_ops.py's reference with a second
reference built from elementwise float64 sums (no BLAS), and probes the primitives (matmul,
einsum, softmax, exp) against exact-ish elementwise versions, with 1 thread and all threads.
  python3 bench/results/2026-12-06_session11/ops_f64_probe.py build/liblongnet_ops.so
"""
import math
import sys

import torch

sys.path.insert(0, "tests")
import test_ops as T  # noqa: E402



def rel(a, b):
    return ((a - b).norm() / b.norm()).item()


def slow_reference(q, k, v, w_list, r_list, causal, scale):
    """As T.reference, with every product summed elementwise (no BLAS, no softmax kernel)."""
    B, N, H, D = q.shape
    C = T.multiplicity(N, H, w_list, r_list, causal)
    logits = (q.permute(0, 2, 1, 3)[:, :, :, None, :] * k.permute(0, 2, 1, 3)[:, :, None, :, :]).sum(-1)
    logits = logits * scale + C.log()
    m = logits.max(-1, keepdim=True).values
    e = (logits - m).exp()
    p = e / e.sum(-1, keepdim=True)
    out = (p[..., None] * v.permute(0, 2, 1, 3)[:, :, None, :, :]).sum(-2)
    return out.permute(0, 2, 1, 3)


def failing_case():
    """python.ops' first CPU float64 case (the one that failed): its inputs, the op's output and
    the test's reference."""
    torch.manual_seed(0)
    B, N, H, D, w, r, causal = 2, 100, 12, 8, [16, 32, 48], [1, 2, 6], True
    q, k, v = (torch.randn(B, N, H, D, dtype=torch.float64) for _ in range(3))
    scale = 1 / math.sqrt(D)
    out = torch.ops.longnet.dilated_attention(q, k, v, w, r, is_causal=causal)
    return q, k, v, w, r, causal, scale, out, T.reference(q, k, v, w, r, causal, scale)


def main():
    print(torch.__version__, "capability", torch.backends.cpu.get_cpu_capability())
    print(torch.__config__.parallel_info())
    for threads in (torch.get_num_threads(), 1):
        torch.set_num_threads(threads)
        q, k, v, w, r, causal, scale, out, ref = failing_case()
        slow = slow_reference(q, k, v, w, r, causal, scale)
        print(f"threads {threads}: op vs test reference {rel(out, ref):.3g}, op vs slow "
              f"{rel(out, slow):.3g}, test reference vs slow {rel(ref, slow):.3g}")
        a = torch.randn(24, 100, 8, dtype=torch.float64)
        b = torch.randn(24, 8, 100, dtype=torch.float64)
        exact = (a[:, :, :, None] * b[:, None, :, :]).sum(2)
        print(f"  bmm {rel(torch.bmm(a, b), exact):.3g}, matmul {rel(torch.matmul(a, b), exact):.3g}, "
              f"einsum {rel(torch.einsum('bik,bkj->bij', a, b), exact):.3g}")
        x = torch.randn(24, 100, 100, dtype=torch.float64) * 3
        x[:, :, 50:] = -math.inf
        m = x.max(-1, keepdim=True).values
        e = (x - m).exp()
        print(f"  softmax {rel(torch.softmax(x, -1), e / e.sum(-1, keepdim=True)):.3g}, "
              f"exp {rel(x[:, :, :50].exp(), torch.tensor([[[math.exp(t) for t in row[:50]] for row in blk] for blk in x.tolist()], dtype=torch.float64)):.3g}, "
              f"logsumexp {rel(torch.logsumexp(x, -1), (m.squeeze(-1) + e.sum(-1).log())):.3g}")


if __name__ == "__main__":
    torch.ops.load_library(sys.argv[1])
    main()
