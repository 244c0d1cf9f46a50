#!/usr/bin/env python3
"""The fused dilated-attention kernel's plan (docs/design.md section 2, "A fused kernel: the
plan"), executed literally in float64 and checked against the brute-force reference: query tiles
of one signature class (the branches that select the rows), one online softmax over the strided
key tiles of every branch of the signature (masked by segment and causally), outputs and lse
written once; the backward per branch and key tile with the merged lse. Small tiles make them
straddle segment boundaries; the cases cover r not dividing w, N < w_max, segments that do not
nest, a last segment shorter than w, and several heads per offset class.

    fused_plan_check.py        (needs torch; prints "fused plan: all ... cases match")
"""

import math
import os
import sys

import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from test_ops import reference  # noqa: E402  (the brute-force definition)

TILE_Q, TILE_K = 5, 7  # small and coprime with everything: tiles straddle segments


def selects(p, w, r, j):
    """Whether branch (w, r) selects row p in head j: its offset class in its own segment."""
    return (p % w) % r == j % r


def class_rows(w, r, j, p):
    """The keys branch (w, r) gives row p of head j, causal order: p's segment, p's class."""
    m0 = p // w * w
    return [t for t in range(m0, m0 + w) if (t - m0) % r == j % r]


def fused_forward(q, k, v, ws, rs, causal, scale):
    B, N, H, D = q.shape
    ws = [min(w, N) for w in ws]
    out = torch.zeros_like(q)
    lse = torch.full((B, N, H), -math.inf, dtype=q.dtype)
    for b in range(B):
        for j in range(H):
            # Signature classes of this head, rows in position order.
            classes = {}
            for p in range(N):
                sig = tuple(i for i, (w, r) in enumerate(zip(ws, rs)) if selects(p, w, r, j))
                if sig:
                    classes.setdefault(sig, []).append(p)
            for sig, rows in classes.items():
                for t0 in range(0, len(rows), TILE_Q):
                    tile = rows[t0:t0 + TILE_Q]
                    qt = q[b, tile, j]  # gathered query rows
                    m = torch.full((len(tile),), -math.inf, dtype=q.dtype)
                    l = torch.zeros(len(tile), dtype=q.dtype)
                    acc = torch.zeros(len(tile), D, dtype=q.dtype)
                    for i in sig:
                        w, r = ws[i], rs[i]
                        # The branch's class rows of every segment the tile touches.
                        keys = sorted({t for p in tile for t in class_rows(w, r, j, p) if t < N})
                        for k0 in range(0, len(keys), TILE_K):
                            kt = keys[k0:k0 + TILE_K]
                            s = scale * qt @ k[b, kt, j].T
                            mask = torch.tensor([[t // w == p // w and (not causal or t <= p)
                                                  for t in kt] for p in tile])
                            s = s.masked_fill(~mask, -math.inf)
                            m_new = torch.maximum(m, s.max(-1).values)
                            safe = torch.where(torch.isinf(m_new), torch.zeros_like(m_new), m_new)
                            pexp = torch.exp(s - safe[:, None])
                            corr = torch.exp(m - safe)
                            l = l * corr + pexp.sum(-1)
                            acc = acc * corr[:, None] + pexp @ v[b, kt, j]
                            m = m_new
                    # Every row of the tile is selected by sig, so it has keys (itself at least).
                    out[b, tile, j] = acc / l[:, None]
                    lse[b, tile, j] = m + torch.log(l)
    return out, lse


def fused_backward(q, k, v, out, lse, dout, ws, rs, causal, scale):
    B, N, H, D = q.shape
    ws = [min(w, N) for w in ws]
    dq, dk, dv = torch.zeros_like(q), torch.zeros_like(k), torch.zeros_like(v)
    delta = (dout * out).sum(-1)  # (B, N, H)
    for b in range(B):
        for j in range(H):
            for w, r in zip(ws, rs):
                # Per key tile of this branch's class (within one segment), every query row of
                # the segment that the branch selects, with the merged lse.
                for m0 in range(0, N, w):
                    cls = [t for t in range(m0, min(m0 + w, N)) if (t - m0) % r == j % r]
                    for k0 in range(0, len(cls), TILE_K):
                        kt = cls[k0:k0 + TILE_K]
                        qs = cls  # the same class rows are the queries that see these keys
                        s = scale * q[b, qs, j] @ k[b, kt, j].T
                        mask = torch.tensor([[not causal or t <= p for t in kt] for p in qs])
                        p_ = torch.exp(s - lse[b, qs, j][:, None]) * mask
                        dv[b, kt, j] += p_.T @ dout[b, qs, j]
                        dp = dout[b, qs, j] @ v[b, kt, j].T
                        ds = p_ * (dp - delta[b, qs, j][:, None]) * scale
                        dq[b, qs, j] += ds @ k[b, kt, j]
                        dk[b, kt, j] += ds.T @ q[b, qs, j]
    return dq, dk, dv


def main():
    torch.manual_seed(0)
    cases = [  # B, N, H, D, segments, rates, causal
        (1, 96, 12, 4, [8, 16, 32, 96], [1, 2, 6, 12], True),   # the paper's shape, small
        (2, 70, 5, 3, [12, 24, 48], [1, 5, 7], True),            # r not dividing w; short last
        (1, 40, 4, 4, [16, 64], [2, 4], True),                   # N < w_max
        (1, 50, 6, 2, [10, 15, 25], [1, 2, 3], False),           # segments that do not nest
        (1, 33, 8, 4, [8, 33], [2, 4], False),                   # several heads per class
    ]
    worst = 0.0
    for B, N, H, D, ws, rs, causal in cases:
        q, k, v, g = (torch.randn(B, N, H, D, dtype=torch.float64) for _ in range(4))
        scale = 1 / math.sqrt(D)
        qr, kr, vr = (x.clone().requires_grad_(True) for x in (q, k, v))
        want = reference(qr, kr, vr, ws, rs, causal, scale)
        want.backward(g)
        got, lse = fused_forward(q, k, v, ws, rs, causal, scale)
        dq, dk, dv = fused_backward(q, k, v, got, lse, g, ws, rs, causal, scale)
        for name, a, e in (("out", got, want.detach()), ("dq", dq, qr.grad), ("dk", dk, kr.grad),
                           ("dv", dv, vr.grad)):
            err = ((a - e).norm() / e.norm().clamp_min(1e-300)).item()
            worst = max(worst, err)
            if not err < 1e-12:
                sys.exit(f"fused plan: {name} differs by {err:.3g} for B={B} N={N} H={H} "
                         f"w={ws} r={rs} causal={causal}")
        print(f"ok: B={B} N={N} H={H} w={ws} r={rs} causal={causal}")
    print(f"fused plan: all {len(cases)} cases match the reference (worst relative error "
          f"{worst:.2g})")


if __name__ == "__main__":
    main()
