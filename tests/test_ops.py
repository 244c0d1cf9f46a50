"""torch.ops.longnet.dilated_attention from Python: the schema, outputs and gradients against a
brute-force float64 reference written here, on CPU (and CUDA when present), and error messages.

Run: python3 tests/test_ops.py build/liblongnet_ops.so   (exit 77 = skipped: no torch)
"""
import faulthandler
import math
import sys

faulthandler.enable()

try:
    import torch
except ImportError:
    print("skipped: this python has no torch")
    sys.exit(77)

SCHEMA = ("longnet::dilated_attention(Tensor q, Tensor k, Tensor v, int[] segment_lengths, "
          "int[] dilation_rates, bool is_causal=False, float? softmax_scale=None, "
          "float dropout_p=0.) -> Tensor")


def multiplicity(N, H, w_list, r_list, causal):
    """C[j, p, t]: how many branches let query p of head j attend to key t (docs/design.md
    section 2), float64 (H, N, N)."""
    C = torch.zeros(H, N, N, dtype=torch.float64)
    for w, r in zip(w_list, r_list):
        w = min(w, N)
        for j in range(H):
            s = j % r
            for m0 in range(0, N, w):
                rows = [p for p in range(m0, min(m0 + w, N)) if (p - m0) % r == s]
                for p in rows:
                    for t in rows:
                        if not causal or t <= p:
                            C[j, p, t] += 1
    return C


def reference(q, k, v, w_list, r_list, causal, scale):
    """softmax(scale q k^T + log C) v, C the branch multiplicity mask (docs/design.md section 2)."""
    B, N, H, D = q.shape
    C = multiplicity(N, H, w_list, r_list, causal).to(q.device)
    logits = torch.einsum("bphd,bthd->bhpt", q, k) * scale + C.log()
    empty = C.sum(-1, keepdim=True) == 0
    logits = torch.where(empty, torch.zeros_like(logits), logits)
    p = torch.softmax(logits, -1) * (~empty)
    return torch.einsum("bhpt,bthd->bphd", p, v)


def check(device, dtype, tol):
    torch.manual_seed(0)
    cases = [
        (2, 100, 12, 8, [16, 32, 48], [1, 2, 6], True, None),
        (1, 77, 12, 16, [24, 96], [6, 12], False, 0.2),
        (2, 37, 3, 8, [64], [2], True, None),
    ]
    for B, N, H, D, w, r, causal, scale in cases:
        q, k, v, g = (torch.randn(B, N, H, D, dtype=torch.float64) for _ in range(4))
        leaves = [t.detach().clone().to(device, dtype).requires_grad_() for t in (q, k, v)]
        out = torch.ops.longnet.dilated_attention(*leaves, w, r, is_causal=causal,
                                                  softmax_scale=scale)
        out.backward(g.to(device, dtype))
        ref_leaves = [t.detach().clone().requires_grad_() for t in (q, k, v)]
        ref = reference(*ref_leaves, w, r, causal, scale if scale else 1 / math.sqrt(D))
        ref.backward(g)
        for name, a, b in [("out", out, ref)] + [
                (n, x.grad, y.grad) for n, x, y in zip("qkv", leaves, ref_leaves)]:
            err = ((a.double().cpu() - b.detach()).norm() / b.detach().norm()).item()
            assert err < tol, f"{device} {dtype} case N={N}: {name} rel error {err} >= {tol}"
    print(f"ok: {device} {dtype}")


def check_dropout(device):
    """dropout_p: 0 is no dropout; p > 0 changes the output, keeps gradients finite, is
    reproducible under torch.manual_seed, and is unbiased (its mean over draws is the output)."""
    op = torch.ops.longnet.dilated_attention
    torch.manual_seed(1)
    B, N, H, D, w, r = 2, 37, 3, 8, [16, 32], [1, 2]
    q, k, v, g = (torch.randn(B, N, H, D, device=device) for _ in range(4))
    plain = op(q, k, v, w, r, is_causal=True)
    assert torch.equal(op(q, k, v, w, r, is_causal=True, dropout_p=0.0), plain), "p=0 differs"

    def run(seed):
        torch.manual_seed(seed)
        leaves = [t.clone().requires_grad_() for t in (q, k, v)]
        out = op(*leaves, w, r, True, None, 0.3)
        out.backward(g)
        return [out.detach()] + [t.grad for t in leaves]

    a, b, c = run(5), run(5), run(6)
    assert not torch.allclose(a[0], plain), f"{device}: dropout_p=0.3 left the output unchanged"
    for name, x, y, z in zip(["out", "dq", "dk", "dv"], a, b, c):
        assert torch.isfinite(x).all(), f"{device}: dropout {name} is not finite"
        assert torch.equal(x, y), f"{device}: dropout {name} differs under the same seed"
        assert not torch.equal(x, z), f"{device}: dropout {name} equal under another seed"
    with torch.no_grad():
        torch.manual_seed(7)
        mean = sum(op(q, k, v, w, r, True, None, 0.1) for _ in range(300)) / 300
    err = ((mean - plain).norm() / plain.norm()).item()
    assert err < 0.05, f"{device}: mean of 300 dropout draws (p=0.1) is {err} away from the output"
    for p in (1.0, -0.1, float("nan")):
        try:
            op(q, k, v, w, r, dropout_p=p)
            raise AssertionError(f"no error for dropout_p={p}")
        except ValueError as e:
            assert "dropout_p must be in [0, 1)" in str(e), str(e)
    print(f"ok: dropout on {device} (mean of 300 draws at p=0.1 off by {err:.3g})")


def check_dropout_per_branch(device):
    """The dropout mask is drawn per branch (docs/design.md section 2): a key that one branch
    selects keeps its weight a as a / (1 - p) or 0; a key that two branches select holds two
    shares a / 2, each kept or dropped on its own draw, so a / (1 - p), a / (2 (1 - p)) (half)
    or 0, all three seen (one mask per final weight would never halve it). With v the identity
    over positions the output is the attention weights themselves."""
    op = torch.ops.longnet.dilated_attention
    N, H, p, w, r = 8, 2, 0.4, [4, 8], [1, 2]
    # (float64 runs on the CPU only; float32 on the GPU, its ratios to within 1e-4)
    dtype, tol = (torch.float64, 1e-9) if device == "cpu" else (torch.float32, 1e-4)
    torch.manual_seed(0)
    q, k = (torch.randn(1, N, H, 8, dtype=dtype, device=device) for _ in range(2))
    v = torch.eye(N, dtype=dtype, device=device)[None, :, None].expand(
        1, N, H, N).contiguous()
    weights = op(q, k, v, w, r, True)[0].transpose(0, 1).cpu()  # (H, N query, N key)
    C = multiplicity(N, H, w, r, True)
    kept, half = 1 / (1 - p), 0.5 / (1 - p)
    seen = {1: set(), 2: set()}
    for seed in range(40):
        torch.manual_seed(seed)
        out = op(q, k, v, w, r, True, None, p)[0].transpose(0, 1).cpu()
        assert not out[C == 0].any(), f"{device}: a key no branch selects got weight"
        for m in (1, 2):
            ratio = out[C == m] / weights[C == m]
            for x in ratio.tolist():
                near = [y for y in (0.0, half, kept) if abs(x - y) < tol]
                assert near, f"{device}: a key {m} branch(es) select kept {x} of its weight"
                seen[m].add(near[0])
    assert seen[1] == {0.0, kept}, f"{device}: keys one branch selects: {sorted(seen[1])}"
    assert seen[2] == {0.0, half, kept}, f"{device}: keys two branches select: {sorted(seen[2])}"
    print(f"ok: dropout on {device} drawn per branch (a key two branches select is kept, halved "
          f"or dropped)")


def main():
    torch.ops.load_library(sys.argv[1])
    schema = str(torch.ops.longnet.dilated_attention.default._schema)
    assert schema == SCHEMA, f"schema is {schema}"
    check("cpu", torch.float64, 1e-10)
    check("cpu", torch.float32, 1e-4)
    if torch.cuda.is_available():
        check("cuda", torch.bfloat16, 3e-2)
        check("cuda", torch.float32, 1e-4)
    check_dropout("cpu")
    check_dropout_per_branch("cpu")
    if torch.cuda.is_available():
        check_dropout("cuda")
        check_dropout_per_branch("cuda")
    q = torch.randn(1, 8, 2, 8)
    for kwargs, message in [(([8, 16], [1]), "same length"), (([8], [0]), "must be >= 1")]:
        try:
            torch.ops.longnet.dilated_attention(q, q, q, *kwargs)
            raise AssertionError("no error for bad input")
        except (RuntimeError, ValueError) as e:
            assert message in str(e), str(e)
    # Double backward: refused with a clear message, not an autograd internal.
    x = torch.randn(1, 16, 2, 8, dtype=torch.float64, requires_grad=True)
    y = torch.ops.longnet.dilated_attention(x, x, x, [8, 16], [1, 2], is_causal=True)
    (g,) = torch.autograd.grad(y.pow(2).sum(), x, retain_graph=True)
    assert g.isfinite().all()
    try:
        (g,) = torch.autograd.grad(y.pow(2).sum(), x, create_graph=True)
        g.sum().backward()
        raise AssertionError("no error for double backward")
    except RuntimeError as e:
        assert "double backward is not supported" in str(e), str(e)
    # Bad arguments are ValueErrors naming the argument.
    for args, name in [(([8, 2 ** 50], [1, 1]), "segment_lengths[1]"),
                       (([8], [-3]), "dilation_rates[0]")]:
        try:
            torch.ops.longnet.dilated_attention(q, q, q, *args)
            raise AssertionError("no error for " + name)
        except ValueError as e:
            assert name in str(e), str(e)
    print("ok: schema, errors")
    check_compile_bare_load()


def check_compile_bare_load():
    """A bare torch.ops.load_library (no package, so no disallow_in_graph mark) under
    torch.compile: training gradients equal eager ones (inductor compiled the op's traced C++
    body to wrong ones; the op now refuses to be traced for training, and Dynamo runs it eagerly).
    Skipped when this torch cannot compile on this machine."""
    op = torch.ops.longnet.dilated_attention
    f = lambda q, k, v: op(q, k, v, [4, 8], [1, 2], True, None, 0.0)  # noqa: E731
    torch.manual_seed(0)
    q, k, v = [torch.randn(1, 16, 2, 8, requires_grad=True) for _ in range(3)]
    want = torch.autograd.grad(f(q, k, v).square().sum(), (q, k, v))
    try:  # (the op left out: whether inductor works here at all)
        torch.compile(lambda x: (x * 2).sin())(q.detach())
    except Exception as e:  # noqa: BLE001 - no C++ compiler for inductor, say
        print(f"note: torch.compile not usable here ({type(e).__name__}); skipped")
        return
    out = torch.compile(f)(q, k, v)
    got = torch.autograd.grad(out.square().sum(), (q, k, v))
    err = max((a - b).abs().max().item() for a, b in zip(got, want))
    assert err < 1e-5, f"compiled gradients differ from eager ones by {err}"
    print(f"ok: torch.compile after a bare load (gradients within {err:.1e} of eager)")
    # torch.export of a module with parameters: under no_grad it exports the forward; traced with
    # gradients the op refuses, saying so.

    class Scaled(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.w = torch.nn.Parameter(torch.full((8,), 0.5))

        def forward(self, q, k, v):
            return op(q * self.w, k, v, [4, 8], [1, 2], True, None, 0.0)

    m, args = Scaled(), (q.detach(), k.detach(), v.detach())
    with torch.no_grad():
        exported = torch.export.export(m, args)
        assert torch.allclose(exported.module()(*args), m(*args), atol=1e-6)
    try:
        torch.export.export(m, args)
        raise AssertionError("export with gradients was not refused")
    except Exception as e:  # noqa: BLE001 - export wraps the op's NotImplementedError
        assert "torch.no_grad()" in str(e), str(e)
    print("ok: torch.export under no_grad; with gradients refused")


if __name__ == "__main__":
    main()
