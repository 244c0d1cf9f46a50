"""The Python package `longnet`: its four classes (reference-library arguments, errors, warnings,
forward and backward on CPU and CUDA when present), the attention against a brute-force float64
reference, and model parity with C++: a checkpoint from a short `longnet train` run, loaded by
LongNetLM.from_checkpoint, must give the logits of the C++ model (tests/python/lm_logits.cpp)
within 1e-5 relative in float32 on the CPU, for decoder_only and encoder_decoder.

Run (from a launch/setup.sh build; exit 77 = skipped: no torch):
  python3 tests/python/test_package.py --build build --source .            # python/ + build/
  python3 tests/python/test_package.py --build build --source . --installed  # pip-installed
"""
import argparse
import collections
import contextlib
import faulthandler
import io
import math
import os
import pydoc
import shutil
import subprocess
import sys
import time
import warnings

faulthandler.enable()

try:
    import torch
except ImportError:
    print("skipped: this python has no torch")
    sys.exit(77)

TOL = 1e-5  # relative, logits of the fp32 CPU models


def rel_err(a, b):
    a, b = a.double(), b.double()
    return ((a - b).norm() / b.norm()).item()


def max_rel_err(a, b):
    a, b = a.double(), b.double()
    return ((a - b).abs().max() / b.abs().max()).item()


def expect_error(kind, text, fn):
    try:
        fn()
    except kind as e:
        assert text in str(e), f"expected {text!r} in: {e}"
        return
    raise AssertionError(f"no {kind.__name__} containing {text!r}")


def check_api(longnet):
    """Constructors with the reference library's keywords, its positional order, the swap
    warning, and errors that name the argument."""
    w, r = [32, 64, 128], [1, 2, 4]
    longnet.DilatedAttention(segment_lengths=w, dilation_rates=r, softmax_scale=None,
                             attention_dropout=0.0)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # none of these may warn
        longnet.MultiheadDilatedAttention(embed_dim=64, num_heads=2, dilation_rates=r,
                                          segment_lengths=w, dropout=0.0, bias=True,
                                          layer_norm=True, layer_norm_eps=1e-5, gamma_init=1.0,
                                          device="cpu", dtype=torch.float32)
        longnet.MultiheadDilatedAttention(64, 2, r, w)  # the reference's positional order
        longnet.MultiheadDilatedAttention(64, 2, segment_lengths=r, dilation_rates=w)  # keywords
        longnet.LongNet(d_model=64, nhead=2, num_encoder_layers=1, num_decoder_layers=1,
                        dim_feedforward=128, segment_lengths=w, dilation_rates=r, dropout=0.0,
                        activation="relu", layer_norm_eps=1e-5, device=None, dtype=None)
        longnet.LongNetLM(num_tokens=100, d_model=64, nhead=2, num_encoder_layers=1,
                          num_decoder_layers=1, dim_feedforward=128, segment_lengths=w,
                          dilation_rates=r, dropout=0.0, activation=torch.nn.functional.gelu,
                          layer_norm_eps=1e-5)
    with warnings.catch_warnings(record=True) as seen:
        warnings.simplefilter("always")
        m = longnet.MultiheadDilatedAttention(64, 2, w, r)  # C++ order, positionally
    assert len(seen) == 1 and issubclass(seen[0].category, UserWarning), seen
    assert "pass them by keyword" in str(seen[0].message), seen[0].message
    assert os.path.abspath(seen[0].filename) == os.path.abspath(__file__), seen[0].filename
    # The package's warnings point at the caller's line, however deep in the package they start.
    for make in (lambda: longnet.DilatedAttention([4], [1], op="xformers op"),
                 lambda: longnet.MultiheadDilatedAttention(16, 2, [1], [4], op="xformers op")):
        with warnings.catch_warnings(record=True) as seen:
            warnings.simplefilter("always")
            make()
        assert len(seen) == 1 and "`op`" in str(seen[0].message), [str(x.message) for x in seen]
        assert os.path.abspath(seen[0].filename) == os.path.abspath(__file__), \
            f"the op= warning points at {seen[0].filename}:{seen[0].lineno}, not the caller"
    assert m.segment_lengths == r and m.dilation_rates == w  # it still does what it was told

    expect_error(TypeError, "segment_lengths", lambda: longnet.DilatedAttention("abc", r))
    expect_error(ValueError, "same length", lambda: longnet.DilatedAttention([8, 16], [1]))
    expect_error(ValueError, "dilation_rates[1] = 0", lambda: longnet.DilatedAttention(w, [1, 0, 2]))
    for huge in (2**63, 2**70):  # past int64: refused here, not by the dispatcher's type check
        expect_error(ValueError, "segment_lengths[0] = ", lambda: longnet.MultiheadDilatedAttention(
            64, 2, dilation_rates=[1], segment_lengths=[huge]))
    expect_error(ValueError, "attention_dropout must be in [0, 1)",
                 lambda: longnet.DilatedAttention(w, r, attention_dropout=1.0))
    expect_error(ValueError, "num_heads in {", lambda: longnet.MultiheadDilatedAttention(
        64, 7, dilation_rates=r, segment_lengths=w))
    expect_error(TypeError, "embed_dim must be an int", lambda: longnet.MultiheadDilatedAttention(
        64.0, 2, dilation_rates=r, segment_lengths=w))
    # The models name their own arguments (d_model, nhead), not the attention's.
    expect_error(ValueError, "LongNetLM: head dim = d_model / nhead = 20 / 2 = 10", lambda:
                 longnet.LongNetLM(10, d_model=20, nhead=2, variant="decoder_only"))
    expect_error(ValueError, "LongNet: d_model = 64 is not divisible by nhead = 3; nhead in {",
                 lambda: longnet.LongNet(64, 3, 1, 1, 128, w, r))
    # The swap warning reads sequences only: a generator is left to the constructor's own error.
    with warnings.catch_warnings(record=True) as seen:
        warnings.simplefilter("always")
        expect_error(TypeError, "dilation_rates must be a list of ints, got generator",
                     lambda: longnet.MultiheadDilatedAttention(16, 2, (x for x in [4, 8]), [1, 2]))
    assert not seen, [str(x.message) for x in seen]
    # Autocast never casts float64: a float64 input to a float32 module is named, as outside it.
    mha = longnet.MultiheadDilatedAttention(16, 2, [1], [4])
    x64 = torch.randn(1, 5, 16, dtype=torch.float64)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        expect_error(TypeError, "query is torch.float64 but the module's parameters are "
                     "torch.float32", lambda: mha(x64, x64, x64))
    # Path arguments: named when they are no path.
    expect_error(TypeError, "LongNetLM.from_checkpoint: path must be a path (str or os.PathLike), "
                 "got NoneType", lambda: longnet.LongNetLM.from_checkpoint(None))
    expect_error(ValueError, "load_checkpoint: path is empty", lambda: longnet.load_checkpoint(""))
    expect_error(ValueError, "activation 'tanh'", lambda: longnet.LongNet(
        64, 2, 1, 1, 128, w, r, activation="tanh"))
    expect_error(ValueError, "variant is 'decoder_only'", lambda: longnet.LongNetLM(
        10, 64, 2, num_encoder_layers=2, variant="decoder_only"))
    expect_error(ValueError, "unknown LongNetLM variant", lambda: longnet.LongNetLM(
        10, 64, 2, variant="encoder"))
    lm = longnet.LongNetLM(10, 64, 2, num_decoder_layers=1, dim_feedforward=64,
                           segment_lengths=w, dilation_rates=r, variant="decoder_only")
    expect_error(TypeError, "int64 (or int32) token ids", lambda: lm(torch.zeros(2, 5)))
    expect_error(TypeError, "query must be a torch.Tensor",
                 lambda: longnet.dilated_attention([1], [1], [1], w, r))
    expect_error(ValueError, "dropout_p must be in [0, 1)", lambda: longnet.dilated_attention(
        torch.zeros(1, 4, 1, 8), torch.zeros(1, 4, 1, 8), torch.zeros(1, 4, 1, 8), w, r,
        dropout_p=2.0))
    q = torch.zeros(1, 4, 1, 8)
    # Shapes that differ are a ValueError and mixed dtypes a TypeError, from the function as from
    # MultiheadDilatedAttention (not the op's RuntimeError).
    expect_error(ValueError, "query, key and value must have the same shape", lambda:
                 longnet.dilated_attention(q, q, torch.zeros(1, 5, 1, 8), w, r))
    expect_error(ValueError, "(1, 4, 1, 8), (1, 2, 1, 8), (1, 2, 1, 8)", lambda:
                 longnet.dilated_attention(q, q[:, :2], q[:, :2], w, r))
    expect_error(TypeError, "must have one dtype", lambda: longnet.dilated_attention(
        q, q.double(), q, w, r))
    # What the annotations accept works: ranges, numpy arrays and tensors of ints.
    import numpy as np
    want = longnet.dilated_attention(q, q, q, [4, 8], [1, 2])
    for seg, rate in ((range(4, 12, 4), (1, 2)), (np.array([4, 8]), torch.tensor([1, 2]))):
        assert torch.equal(longnet.dilated_attention(q, q, q, seg, rate), want)
        assert longnet.DilatedAttention(seg, rate).segment_lengths == [4, 8]
    text = pydoc.render_doc(longnet.LongNetLM, renderer=pydoc.plaintext)
    assert "from_checkpoint" in text and "num_tokens" in text
    with contextlib.redirect_stdout(io.StringIO()):
        help(longnet.LongNetLM)
    print("ok: api (reference keywords, positional-order warning, errors, help)")


TYPED_USES = """\
import os, pathlib
import numpy as np
import torch
import longnet

q = torch.randn(1, 8, 2, 8)
longnet.dilated_attention(q, q, q, segment_lengths=np.array([4, 8]),
                          dilation_rates=torch.tensor([1, 2]))
longnet.dilated_attention(q, q, q, range(4, 12, 4), (1, 2))
longnet.MultiheadDilatedAttention(16, 2, dilation_rates=np.array([1, 2]), segment_lengths=[4, 8],
                                  device=0)
longnet.DilatedAttention(segment_lengths=(4,), dilation_rates=(1,))
longnet.LongNetLM(256, 32, 2, segment_lengths=np.array([8]), dilation_rates=[1],
                  activation="gelu", variant="decoder_only")
longnet.LongNetLM.from_checkpoint(b"x.ckpt")
longnet.LongNetLM.from_export(pathlib.PurePosixPath("x"), device="cpu", dtype=torch.float16)
longnet.load_checkpoint(os.fsencode("x"))
version: str = longnet.__version__
"""


def check_types(longnet, args):
    """The annotations accept what the README documents and the functions take (branches as
    numpy arrays, tensors or ranges of ints; paths as str, bytes or os.PathLike; a device index):
    checked with mypy when this python has it, skipped otherwise (mypy is no dependency)."""
    import importlib.util
    if importlib.util.find_spec("mypy") is None:
        print("skip: type annotations (no mypy)")
        return
    os.makedirs(args.work, exist_ok=True)
    path = os.path.join(args.work, "typed_uses.py")
    with open(path, "w") as f:
        f.write(TYPED_USES)
    env = dict(os.environ)
    if not args.installed:
        env["MYPYPATH"] = os.path.join(args.source, "python")
    p = subprocess.run([sys.executable, "-m", "mypy", "--cache-dir",
                        os.path.join(args.work, "mypy_cache"), path],
                       capture_output=True, text=True, env=env)
    errors = [line for line in p.stdout.splitlines() if line.startswith(path)]
    assert not errors and "error: " not in p.stderr, "\n".join(errors) or p.stderr[-2000:]
    print("ok: type annotations accept the documented arguments (mypy)")


def check_op_inputs(longnet):
    """longnet.dilated_attention refuses what the op cannot take before PyTorch's internals see
    it: nested and sparse tensors, a wrong rank, empty dimensions, mixed or integer dtypes."""
    w, r = [16, 32], [1, 2]
    q = torch.randn(2, 5, 2, 16)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # "nested / sparse CSR support is a prototype / beta"
        nested = torch.nested.nested_tensor([torch.randn(5, 2, 16), torch.randn(3, 2, 16)])
        jagged = torch.nested.nested_tensor([torch.randn(5, 2, 16), torch.randn(3, 2, 16)],
                                            layout=torch.jagged)
        csr = q.to_sparse_csr()
    expect_error(TypeError, "query is a nested tensor",
                 lambda: longnet.dilated_attention(nested, nested, nested, w, r))
    expect_error(TypeError, "key has layout torch.sparse_coo",
                 lambda: longnet.dilated_attention(q, q.to_sparse(), q, w, r))
    expect_error(TypeError, "value.to_dense()",
                 lambda: longnet.dilated_attention(q, q, csr, w, r))
    expect_error(TypeError, "query is a nested tensor",
                 lambda: longnet.DilatedAttention(w, r)(nested, nested, nested))
    expect_error(ValueError, "got 3 dims",
                 lambda: longnet.dilated_attention(q[0], q[0], q[0], w, r))
    expect_error(ValueError, "seq_len = 0", lambda: longnet.dilated_attention(
        q[:, :0], q[:, :0], q[:, :0], w, r))
    expect_error(ValueError, "batch = 0", lambda: longnet.DilatedAttention(w, r)(
        q[:0], q[:0], q[:0]))
    expect_error(TypeError, "torch.float32, torch.float64, torch.float32",
                 lambda: longnet.dilated_attention(q, q.double(), q, w, r))
    expect_error(TypeError, "must be floating point", lambda: longnet.dilated_attention(
        q.long(), q.long(), q.long(), w, r))
    # The raw op (no Python checks in front) refuses them too, naming them.
    longnet.load_library()
    for a in (nested, jagged, q.to_sparse()):
        expect_error(RuntimeError, "must be dense (strided) tensors",
                     lambda: torch.ops.longnet.dilated_attention(a, a, a, w, r))
    # vmap: exact without dropout; with dropout refused (the masks would ignore its randomness).
    batch = torch.randn(3, 1, 9, 2, 16, dtype=torch.float64)
    mapped = torch.func.vmap(lambda a: longnet.dilated_attention(a, a, a, w, r))(batch)
    assert torch.allclose(mapped[1], longnet.dilated_attention(batch[1], batch[1], batch[1], w, r))
    expect_error(NotImplementedError, "dropout_p > 0 under torch.func.vmap is not supported",
                 lambda: torch.func.vmap(lambda a: longnet.dilated_attention(
                     a, a, a, w, r, dropout_p=0.5), randomness="same")(batch))
    expect_error(NotImplementedError, "dropout_p > 0 under torch.func.vmap is not supported",
                 lambda: torch.func.vmap(torch.func.grad(lambda a: longnet.dilated_attention(
                     a, a, a, w, r, dropout_p=0.5).sum()), randomness="same")(batch))
    # A numpy bool is a bool; a string is not.
    import numpy as np
    out = longnet.dilated_attention(q, q, q, w, r, is_causal=np.bool_(True))
    assert torch.equal(out, longnet.dilated_attention(q, q, q, w, r, is_causal=True))
    expect_error(TypeError, "is_causal must be True or False",
                 lambda: longnet.dilated_attention(q, q, q, w, r, is_causal="yes"))
    # A scale that is inf in float32 (where the kernels scale) made every output NaN.
    expect_error(ValueError, "is beyond float32's range",
                 lambda: longnet.dilated_attention(q, q, q, w, r, softmax_scale=1e39))
    print("ok: dilated_attention (and the raw op) refuse nested, sparse, empty, wrong-rank and "
          "mixed inputs")


def check_module_inputs(longnet):
    """The modules refuse, naming the argument and what would work, what PyTorch would otherwise
    fail on with its own words: token ids out of range or of a float dtype, inputs of another
    dtype or device than the parameters, empty sequences and batches, a wrong rank, weights
    whose size overflows."""
    w, r = [16, 32], [1, 2]
    # Parameters on the meta device: the hint is to materialise them (.to() cannot copy them).
    meta = longnet.MultiheadDilatedAttention(16, 2, [1], [4], device="meta")
    x = torch.randn(1, 4, 16)
    expect_error(ValueError, "to_empty(device='cpu'), then load a state_dict",
                 lambda: meta(x, x, x))
    # dropout is read at every call (set after construction, it takes effect), and checked.
    mha = longnet.MultiheadDilatedAttention(16, 2, [1], [4], dropout=0.1)
    mha.dropout = 0.3
    assert mha.attention.dropout_p == 0.3 and mha.dropout == 0.3
    expect_error(ValueError, "dropout must be in [0, 1)", lambda: setattr(mha, "dropout", 2))
    # torch.jit.trace would fix xPos's length: refused, saying what works instead (dynamic
    # torch.export is no such thing).
    with torch.no_grad():
        with_xpos = longnet.MultiheadDilatedAttention(16, 2, dilation_rates=[1],
                                                      segment_lengths=[4])
        expect_error(RuntimeError, "torch.jit.trace cannot record xPos",
                     lambda: torch.jit.trace(with_xpos, (x, x, x), check_trace=False))
        try:
            torch.jit.trace(with_xpos, (x, x, x), check_trace=False)
        except RuntimeError as e:
            said = str(e)
        assert "torch.export with static shapes" in said and "symbolic" not in said, said
    # Without xPos the module itself still cannot be traced (its forward returns (out, None)):
    # said so; a module returning the output alone traces, and holds at another length and for
    # inputs other than the example's one tensor (the trace takes no self-attention shortcut).
    plain = longnet.MultiheadDilatedAttention(16, 2, [1, 2], [4, 8], xpos=False).eval()
    with torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore")  # TracerWarnings of the shape checks
        expect_error(RuntimeError, "cannot record MultiheadDilatedAttention itself",
                     lambda: torch.jit.trace(plain, (x, x, x)))

        class OutputOnly(torch.nn.Module):
            def __init__(self, attn):
                super().__init__()
                self.attn = attn

            def forward(self, q, k, v):
                return self.attn(q, k, v, is_causal=True)[0]

        traced = torch.jit.trace(OutputOnly(plain), (x, x, x))
        a, b, c = (torch.randn(2, 11, 16) for _ in range(3))
        assert torch.allclose(traced(a, b, c), plain(a, b, c, is_causal=True)[0], atol=1e-6), \
            "the traced attention differs at another length, or with distinct q, k, v"
    # torch.jit.script cannot type the op's lists: refused the same way, for every module.
    for module in (longnet.DilatedAttention([4], [1]),
                   longnet.MultiheadDilatedAttention(16, 2, [1], [4]),
                   longnet.LongNetLM(10, 32, 2, num_decoder_layers=1, dim_feedforward=32,
                                     segment_lengths=w, dilation_rates=r, variant="decoder_only")):
        expect_error(RuntimeError, "torch.jit.script cannot compile",
                     lambda: torch.jit.script(module))
    lm = longnet.LongNetLM(10, 32, 2, num_decoder_layers=1, dim_feedforward=32,
                           segment_lengths=w, dilation_rates=r, variant="decoder_only")
    expect_error(ValueError, "token id 10 at x[0, 1] is outside [0, num_tokens = 10)",
                 lambda: lm(torch.tensor([[1, 10]])))
    expect_error(ValueError, "token id -1 at x[1, 0]", lambda: lm(torch.tensor([[1, 2], [-1, 3]])))
    # layer_norm_eps that is 0 in float32 (where LayerNorm computes): refused as from_config does.
    for make in (lambda: longnet.MultiheadDilatedAttention(32, 2, r, w, layer_norm_eps=1e-50),
                 lambda: longnet.LongNetLM(10, 32, 2, num_decoder_layers=1, dim_feedforward=32,
                                           segment_lengths=w, dilation_rates=r,
                                           variant="decoder_only", layer_norm_eps=1e-50)):
        expect_error(ValueError, "layer_norm_eps = 1e-50 must be in", make)
    expect_error(TypeError, "parameters need a floating-point torch.dtype",
                 lambda: longnet.MultiheadDilatedAttention(32, 2, r, w, dtype=torch.int64))
    expect_error(TypeError, "LongNetLM: dtype = torch.int32",
                 lambda: longnet.LongNetLM(10, 32, 2, dtype=torch.int32, segment_lengths=w,
                                           dilation_rates=r))
    expect_error(ValueError, "num_tokens = 10",
                 lambda: lm(torch.tensor([[1, 99]], dtype=torch.int32)))
    expect_error(TypeError, "xpos must be True or False",
                 lambda: longnet.MultiheadDilatedAttention(32, 2, r, w, xpos="no"))
    expect_error(TypeError, "num_encoder_layers must be an int",
                 lambda: longnet.LongNetLM(10, 32, 2, num_encoder_layers=0.0, segment_lengths=w,
                                           dilation_rates=r, variant="decoder_only"))
    # Branch lists as one-dimensional integer arrays (the reference library takes them).
    import numpy as np
    a = longnet.MultiheadDilatedAttention(32, 2, np.array(r), np.array(w))
    assert a.segment_lengths == w and a.dilation_rates == r, (a.segment_lengths, a.dilation_rates)
    expect_error(TypeError, "segment_lengths must be a one-dimensional list of ints",
                 lambda: longnet.DilatedAttention(np.array([w]), r))
    expect_error(TypeError, "segment_lengths[0] must be an int, got float",
                 lambda: longnet.DilatedAttention(torch.tensor([16.0, 32.0]), r))
    expect_error(TypeError, "int64 (or int32) token ids, got torch.float64",
                 lambda: lm(torch.zeros(1, 5, dtype=torch.float64)))
    expect_error(TypeError, "got torch.uint8", lambda: lm(torch.zeros(1, 5, dtype=torch.uint8)))
    expect_error(ValueError, "seq_len = 0", lambda: lm(torch.zeros(1, 0, dtype=torch.long)))
    expect_error(ValueError, "batch = 0", lambda: lm(torch.zeros(0, 5, dtype=torch.long)))
    expect_error(ValueError, "x.unsqueeze(0)", lambda: lm(torch.zeros(5, dtype=torch.long)))
    expect_error(TypeError, "x has layout torch.sparse_coo",
                 lambda: lm(torch.zeros(1, 5, dtype=torch.long).to_sparse()))
    ok = torch.tensor([[0, 9]], dtype=torch.int32)  # int32 ids and the ends of the range work
    with torch.no_grad():
        assert torch.equal(lm(ok), lm(ok.long())) and lm(ok).shape == (1, 2, 10)
    meta_lm = longnet.LongNetLM(10, 32, 2, num_decoder_layers=1, dim_feedforward=32,
                                segment_lengths=w, dilation_rates=r, variant="decoder_only",
                                device="meta")
    expect_error(ValueError, "x is on cpu but the model's parameters are on meta",
                 lambda: meta_lm(torch.zeros(1, 5, dtype=torch.long)))
    assert meta_lm(torch.full((1, 5), 99, device="meta")).shape == (1, 5, 10)  # never read
    assert lm.check_token_ids_on_device is (os.environ.get("LONGNET_CHECK_TOKEN_IDS", "0")
                                            not in ("", "0"))
    if torch.cuda.is_available():  # off the CPU the ids are read only when asked to
        cuda_lm = longnet.LongNetLM(10, 32, 2, num_decoder_layers=1, dim_feedforward=32,
                                    segment_lengths=w, dilation_rates=r, variant="decoder_only",
                                    device="cuda")
        cuda_lm.check_token_ids_on_device = True
        expect_error(ValueError, "token id 12 at x[0, 1]",
                     lambda: cuda_lm(torch.tensor([[1, 12]], device="cuda")))
        expect_error(ValueError, "x is on cpu but the model's parameters are on cuda:0",
                     lambda: cuda_lm(torch.tensor([[1, 2]])))

    E = 32
    x = torch.randn(2, 5, E)
    mha = longnet.MultiheadDilatedAttention(E, 2, dilation_rates=r, segment_lengths=w)
    expect_error(TypeError, "query is torch.float64 but the module's parameters are "
                 "torch.float32; convert the module (module.to(torch.float64))",
                 lambda: mha(x.double(), x.double(), x.double()))
    expect_error(TypeError, "value is torch.float64", lambda: mha(x, x, x.double()))
    expect_error(TypeError, "must be floating point", lambda: mha(x.long(), x.long(), x.long()))
    expect_error(ValueError, "(seq_len = 0); batch and seq_len must be >= 1",
                 lambda: mha(x[:, :0], x[:, :0], x[:, :0]))
    expect_error(ValueError, "(batch = 0)", lambda: mha(x[:0], x[:0], x[:0]))
    expect_error(ValueError, "query must be (batch, seq_len, embed_dim = 32)",
                 lambda: mha(x[0], x[0], x[0]))
    expect_error(TypeError, "key has layout torch.sparse_coo",
                 lambda: mha(x, x.to_sparse(), x))
    expect_error(ValueError, "query is on cpu but the module's parameters are on meta",
                 lambda: longnet.MultiheadDilatedAttention(
                     E, 2, dilation_rates=r, segment_lengths=w, device="meta")(x, x, x))
    with torch.autocast("cpu", dtype=torch.bfloat16):  # autocast casts per op: no dtype error
        y, _ = mha(x.bfloat16(), x.bfloat16(), x.bfloat16())
    assert y.shape == x.shape
    expect_error(ValueError, "embed_dim = 1099511627776 makes a weight of embed_dim * embed_dim",
                 lambda: longnet.MultiheadDilatedAttention(2**40, 2**5, dilation_rates=r,
                                                           segment_lengths=w))
    expect_error(ValueError, "embed_dim <= 46340 works", lambda: longnet.MultiheadDilatedAttention(
        2**40 + 1, 2, dilation_rates=r, segment_lengths=w))

    net = longnet.LongNet(E, 2, 1, 1, 32, w, r)
    expect_error(TypeError, "LongNet: x is torch.float64", lambda: net(x.double()))
    expect_error(ValueError, "LongNet: x has shape (2, 0, 32) (seq_len = 0)", lambda: net(x[:, :0]))
    expect_error(ValueError, "(batch = 0)", lambda: net(x[:0]))
    expect_error(ValueError, "x must be (batch, seq_len, d_model = 32); got (2, 5, 16)",
                 lambda: net(torch.randn(2, 5, 16)))
    expect_error(ValueError, "x must be (batch, seq_len, d_model = 32); got (5, 32)",
                 lambda: net(x[0]))
    enc = longnet.DilatedTransformerEncoderLayer(E, 2, w, r, dim_feedforward=32)
    expect_error(TypeError, "src is torch.float64", lambda: enc(x.double()))
    dec = longnet.DilatedTransformerDecoderLayer(E, 2, w, r, dim_feedforward=32)
    expect_error(TypeError, "memory is torch.float64", lambda: dec(x, x.double()))
    expect_error(ValueError, "memory must have tgt's shape", lambda: dec(x, x[:, :3]))
    expect_error(ValueError, "tgt has shape (0, 5, 32)", lambda: dec(x[:0], x[:0]))
    expect_error(ValueError, "dim_feedforward = 1099511627776 and d_model = 32",
                 lambda: longnet.LongNet(E, 2, 1, 1, 2**40, w, r))
    expect_error(ValueError, "d_model = 1099511627776 makes a weight",
                 lambda: longnet.DilatedTransformerEncoderLayer(2**40, 2, w, r))
    expect_error(ValueError, "num_tokens = 1099511627776 and d_model = 32",
                 lambda: longnet.LongNetLM(2**40, E, 2, num_decoder_layers=1, segment_lengths=w,
                                           dilation_rates=r, variant="decoder_only"))
    # A model whose parameters alone pass the machine's memory is refused before any is made
    # (on meta it builds: nothing is allocated); layer counts stop at C++'s 65536.
    huge = dict(d_model=8192, nhead=64, num_decoder_layers=60000, dim_feedforward=32768,
                segment_lengths=w, dilation_rates=r)
    expect_error(ValueError, "LongNetLM: the parameters alone need at least",
                 lambda: longnet.LongNetLM(256, variant="decoder_only", **huge))
    expect_error(ValueError, "LongNet: the parameters alone need at least",
                 lambda: longnet.LongNetLM(256, num_encoder_layers=60000, **huge))
    expect_error(ValueError, "num_decoder_layers = 65537 is out of range; it must be in "
                 "[1, 65536]", lambda: longnet.LongNetLM(10, 32, 2, num_decoder_layers=65537,
                                                         segment_lengths=w, dilation_rates=r))
    for cls in (longnet.DilatedTransformerEncoderLayer, longnet.DilatedTransformerDecoderLayer):
        expect_error(TypeError, f"{cls.__name__}: dtype = torch.int64",
                     lambda: cls(E, 2, w, r, dtype=torch.int64))
    expect_error(TypeError, "bias must be True or False", lambda: longnet.MultiheadDilatedAttention(
        E, 2, dilation_rates=r, segment_lengths=w, bias="no"))
    # from_config checks the `model:` section as the C++ loader does, naming model.KEY.
    base = dict(variant="decoder_only", vocab_size=10, d_model=32, num_heads=2, num_layers=2,
                dim_feedforward=32, segment_lengths=w, dilation_rates=r)
    for extra, kind, text in (
            (dict(num_encoder_layers=3), ValueError, "model.num_encoder_layers is 3 but "
             "model.variant is decoder_only"),
            (dict(activation_checkpointing="yes"), TypeError,
             "model.activation_checkpointing must be true or false"),
            (dict(checkpoint_layers=-5), ValueError, "model.checkpoint_layers = -5 is out of "
             "range"),
            (dict(checkpoint_layers=1), ValueError, "activation_checkpointing is off"),
            (dict(activation_checkpointing=True, checkpoint_layers=3), ValueError,
             "the model has 2 decoder layers"),
            (dict(vocab_size=0), ValueError, "model.vocab_size = 0 is out of range"),
            (dict(dim_feedforward=2**23), ValueError, "model.dim_feedforward = 8388608"),
            (dict(num_layers=2**17), ValueError, "model.num_layers = 131072"),
            (dict(layer_norm_eps=0.0), ValueError, "model.layer_norm_eps = 0.0 is out of range"),
            (dict(activation="tanh"), ValueError, "model.activation = 'tanh'"),
            (dict(variant="encoder_decoder", activation_checkpointing=True,
                  num_encoder_layers=1), ValueError, "supported for variant decoder_only")):
        expect_error(kind, text, lambda: longnet.LongNetLM.from_config({**base, **extra}))
    longnet.LongNetLM.from_config({**base, "activation_checkpointing": True,
                                   "checkpoint_layers": 2})
    print("ok: modules refuse bad ids, dtypes, devices, empty and wrong-rank inputs, huge sizes "
          "and models past the machine's memory; from_config checks as the C++ loader")


def check_attention_reference(longnet, test_ops):
    """DilatedAttention and the functional op against docs/design.md section 2's brute force, with N
    that no segment divides, r = 6 and 12 not dividing w, and heads not divisible by branches."""
    torch.manual_seed(3)
    for B, N, H, D, w, r, causal, scale in [(2, 100, 5, 8, [16, 36, 48], [1, 6, 12], True, None),
                                            (1, 37, 3, 16, [24, 64], [2, 6], False, 0.3)]:
        q, k, v, g = (torch.randn(B, N, H, D, dtype=torch.float64) for _ in range(4))
        mod = longnet.DilatedAttention(w, r, softmax_scale=scale)
        leaves = [t.clone().requires_grad_() for t in (q, k, v)]
        out = mod(*leaves, is_causal=causal)
        out.backward(g)
        ref_leaves = [t.clone().requires_grad_() for t in (q, k, v)]
        ref = test_ops.reference(*ref_leaves, w, r, causal, scale or 1 / math.sqrt(D))
        ref.backward(g)
        for name, a, b in [("out", out, ref)] + [(n, x.grad, y.grad) for n, x, y in
                                                 zip("qkv", leaves, ref_leaves)]:
            err = rel_err(a.detach(), b.detach())
            assert err < 1e-10, f"DilatedAttention N={N}: {name} rel error {err}"
    print("ok: DilatedAttention = brute-force reference (float64, out and gradients)")


def check_forward_backward(longnet, device):
    """The four classes run forward and backward, in training mode with dropout, on `device`."""
    torch.manual_seed(0)
    w, r = [16, 32], [1, 2]
    B, N, E, H = 2, 45, 64, 4
    dev = torch.device(device)
    x = torch.randn(B, N, E, device=dev, requires_grad=True)
    mods = {
        "DilatedAttention": longnet.DilatedAttention(w, r, attention_dropout=0.1),
        "MultiheadDilatedAttention": longnet.MultiheadDilatedAttention(
            E, H, dilation_rates=r, segment_lengths=w, dropout=0.1, device=dev),
        "LongNet": longnet.LongNet(E, H, 1, 2, 96, w, r, dropout=0.1, device=dev),
        "LongNetLM(encoder_decoder)": longnet.LongNetLM(
            50, E, H, 1, 1, 96, w, r, dropout=0.1, activation="gelu", device=dev),
        "LongNetLM(decoder_only)": longnet.LongNetLM(
            50, E, H, num_decoder_layers=2, dim_feedforward=96, segment_lengths=w,
            dilation_rates=r, dropout=0.1, device=dev, variant="decoder_only"),
    }
    tokens = torch.randint(0, 50, (B, N), device=dev)
    for name, m in mods.items():
        m.train()
        if name == "DilatedAttention":
            qkv = x.view(B, N, H, E // H)
            y = m(qkv, qkv, qkv, is_causal=True)
        elif name == "MultiheadDilatedAttention":
            y, none = m(x, x, x, is_causal=True)
            assert none is None
        elif name == "LongNet":
            y = m(x, is_causal=True)
        else:
            y = m(tokens)
            assert y.shape == (B, N, 50), y.shape
        y.square().mean().backward()
        grads = [p.grad for p in m.parameters()] + ([x.grad] if x.grad is not None else [])
        assert grads and all(g is not None and torch.isfinite(g).all() for g in grads), name
        assert any(g.abs().sum() > 0 for g in grads), f"{name}: all gradients are zero"
        x.grad = None
    print(f"ok: forward + backward on {device} ({', '.join(mods)})")


def check_submodules(longnet):
    """The projections and FFN linears run as the modules they are (not as F.linear of their
    weights): hooks on each Linear fire, a wrapper in a Linear's place (LoRA, as PEFT puts one)
    takes effect, torch.nn.utils.prune recomputes its weight each step, and quantize_dynamic's
    Linears compute. Self-attention's one GEMM for q, k and v is for plain Linears only."""
    import torch.nn as nn
    import torch.nn.utils.prune as prune

    torch.manual_seed(11)
    make_mha = lambda: longnet.MultiheadDilatedAttention(  # noqa: E731
        32, 4, dilation_rates=[1, 2], segment_lengths=[4, 8]).eval()

    def make_lm(variant):
        return longnet.LongNetLM(50, d_model=32, nhead=4, num_decoder_layers=2,
                                 dim_feedforward=40, segment_lengths=[4, 8],
                                 dilation_rates=[1, 2], variant=variant,
                                 num_encoder_layers=1 if variant == "encoder_decoder" else None
                                 ).eval()

    def linears(m):
        return [n for n, mod in m.named_modules() if isinstance(mod, nn.Linear)]

    x, k, v = (torch.randn(2, 13, 32) for _ in range(3))
    tokens = torch.randint(0, 50, (2, 13))
    # Forward hooks on every Linear fire, in self- and cross-attention and in both LMs.
    mha = make_mha()
    with torch.no_grad():
        want_self, want_cross = mha(x, x, x)[0], mha(x, k, v)[0]
    for inputs, want in (((x, x, x), want_self), ((x, k, v), want_cross)):
        fired = []
        handles = [mod.register_forward_hook(lambda m_, i, o, n=n: fired.append(n))
                   for n, mod in mha.named_modules() if isinstance(mod, nn.Linear)]
        with torch.no_grad():
            got = mha(*inputs)[0]
        for h in handles:
            h.remove()
        assert sorted(fired) == sorted(linears(mha)), f"hooks fired on {fired} only"
        assert torch.equal(got, want), "a hook changed the output"
    # A global module hook (nn.modules.module.register_module_forward_hook) fires too.
    fired = []
    handle = nn.modules.module.register_module_forward_hook(
        lambda m_, i, o: fired.append(m_) if isinstance(m_, nn.Linear) else None)
    try:
        with torch.no_grad():
            got = mha(x, x, x)[0]
    finally:
        handle.remove()
    assert len(fired) == 4 and torch.allclose(got, want_self, rtol=0, atol=1e-6), len(fired)
    for variant in ("decoder_only", "encoder_decoder"):
        lm = make_lm(variant)
        fired = set()
        for n, mod in lm.named_modules():
            if isinstance(mod, nn.Linear):
                mod.register_forward_hook(lambda m_, i, o, n=n: fired.add(n))
        with torch.no_grad():
            lm(tokens)
        assert fired == set(linears(lm)), f"{variant}: no hook fired on " \
            f"{sorted(set(linears(lm)) - fired)}"

    # A LoRA wrapper in q_proj's and out_proj's place: with B = 0 it is the identity (the same
    # output), with B != 0 it changes the output by its own term.
    class LoRA(nn.Module):
        def __init__(self, base, r=4):
            super().__init__()
            self.base = base
            self.A = nn.Parameter(torch.randn(r, base.in_features) * 0.3)
            self.B = nn.Parameter(torch.zeros(base.out_features, r))

        @property
        def weight(self):  # (as PEFT's wrappers expose the base layer's)
            return self.base.weight

        def forward(self, t):
            return self.base(t) + t @ self.A.t() @ self.B.t()

    mha = make_mha()
    with torch.no_grad():
        before = mha(x, x, x)[0]
        mha.q_proj, mha.out_proj = LoRA(mha.q_proj), LoRA(mha.out_proj)
        same = mha(x, x, x)[0]
        mha.q_proj.B.normal_()
        changed = mha(x, x, x)[0]
    assert (same - before).abs().max() < 1e-6, "an identity adapter changed the output"
    assert (changed - before).abs().max() > 1e-2, "the q_proj adapter was ignored"
    for variant in ("decoder_only", "encoder_decoder"):
        lm = make_lm(variant)
        with torch.no_grad():
            before = lm(tokens)
            first = lm.layers[0] if lm.layers is not None else lm.long_net.decoder_layers[0]
            first.linear2 = LoRA(first.linear2)
            first.linear2.B.normal_()
            assert (lm(tokens) - before).abs().max() > 1e-2, f"{variant}: linear2's adapter " \
                "was ignored"
    # prune.l1_unstructured recomputes q_proj.weight in a pre-hook at each call: training steps
    # work (reading the weight directly reused the first step's freed graph) and keep the mask.
    mha = make_mha().train()
    prune.l1_unstructured(mha.q_proj, "weight", amount=0.5)
    opt = torch.optim.SGD(mha.parameters(), lr=0.1)
    losses = []
    for _ in range(2):
        loss = mha(x, x, x)[0].square().mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert all(math.isfinite(v) for v in losses) and losses[1] < losses[0], losses
    assert mha.q_proj.weight_orig.grad is not None and int((mha.q_proj.weight == 0).sum()) \
        >= mha.q_proj.weight.numel() // 2, "pruning lost its mask or its gradient"
    # Dynamic int8 quantization of every Linear: runs, close to the float model.
    quantize = getattr(getattr(torch, "ao", None), "quantization", None)
    if quantize is None or "qnnpack" not in torch.backends.quantized.supported_engines and \
            "fbgemm" not in torch.backends.quantized.supported_engines:
        print("skip: quantize_dynamic (not in this torch)")
    else:
        for name, model, args in (("MultiheadDilatedAttention", make_mha(), (x, x, x)),
                                  ("MultiheadDilatedAttention cross", make_mha(), (x, k, v)),
                                  ("LongNetLM(decoder_only)", make_lm("decoder_only"), (tokens,)),
                                  ("LongNetLM(encoder_decoder)", make_lm("encoder_decoder"),
                                   (tokens,))):
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")  # (torch.ao.quantization is deprecated)
                q = quantize.quantize_dynamic(model, {nn.Linear}, dtype=torch.qint8)
            with torch.no_grad():
                a, b = q(*args), model(*args)
            a, b = (a[0], b[0]) if isinstance(a, tuple) else (a, b)
            assert type(q.out if hasattr(q, "out") else q.out_proj) is not nn.Linear
            assert rel_err(a, b) < 0.1, f"quantized {name}: rel error {rel_err(a, b)}"
    print("ok: every Linear runs as its module (hooks, global hooks, LoRA wrappers, pruning, "
          "quantize_dynamic), MultiheadDilatedAttention and LongNetLM (both variants)")


def check_no_future_leak(longnet):
    """Causal models: logits at position p do not change when tokens after p do."""
    torch.manual_seed(1)
    for variant in ("decoder_only", "encoder_decoder"):
        lm = longnet.LongNetLM(30, 32, 4, num_decoder_layers=2, dim_feedforward=64,
                               segment_lengths=[8, 16], dilation_rates=[1, 2], variant=variant,
                               num_encoder_layers=1 if variant == "encoder_decoder" else None)
        lm.eval()
        a = torch.randint(0, 30, (1, 40))
        b = a.clone()
        b[:, 25:] = torch.randint(0, 30, (1, 15))
        with torch.no_grad():
            la, lb = lm(a), lm(b)
        assert torch.equal(la[:, :25], lb[:, :25]), f"{variant}: future tokens leak"
        assert not torch.equal(la[:, 25:], lb[:, 25:])
    print("ok: causal LongNetLM (both variants): no future token changes a logit")


def check_compile(longnet):
    """torch.compile around the op (training: outputs and gradients) equals eager: the op is
    kept out of compiled graphs (inductor once compiled its body to wrong numbers), the code
    around it is compiled; a second sequence length (a recompile) works too."""
    # A module compiles without Dynamo's warning about a builtin it cannot trace (first: Dynamo
    # warns once per process, and the direct calls of the op below do warn).
    mha = longnet.MultiheadDilatedAttention(16, 2, dilation_rates=[1, 2], segment_lengths=[4, 8])
    x = torch.randn(2, 12, 16, requires_grad=True)
    want, _ = mha(x, x, x, is_causal=True)
    gw = torch.autograd.grad(want.sum(), x)[0]
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        got, _ = torch.compile(mha)(x, x, x, is_causal=True)
    said = [str(w.message) for w in caught if "trace" in str(w.message)]
    assert not said, f"torch.compile of the module warned: {said[0][:300]}"
    gg = torch.autograd.grad(got.sum(), x)[0]
    assert max_rel_err(got, want) < 1e-5 and max_rel_err(gg, gw) < 1e-5, "compiled module differs"
    # In training with dropout too (the vmap check is not traced: it read functorch's
    # interpreter stack, a builtin Dynamo warned about); the same seed draws the same masks.
    drop = longnet.MultiheadDilatedAttention(16, 2, dilation_rates=[1, 2],
                                             segment_lengths=[4, 8], dropout=0.3).train()
    torch.manual_seed(7)
    want, _ = drop(x, x, x)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        torch.manual_seed(7)
        got, _ = torch.compile(drop, backend="eager")(x, x, x)
    said = [str(w.message) for w in caught
            if any(s in str(w.message) for s in ("Dynamo", "builtin", "trace"))]
    assert not said, f"torch.compile of the module with dropout warned: {said[0][:300]}"
    assert torch.equal(got, want), "compiled dropout differs from eager under one seed"
    op = torch.ops.longnet.dilated_attention
    # Exporting with symbolic (dynamic) sizes reaches the op with sizes that are no numbers: a
    # clear NotImplementedError, not a c10 internal error.
    x = torch.randn(1, 16, 2, 8)
    n = torch.export.Dim("N", min=8, max=64)
    expect_error(NotImplementedError, "symbolic (dynamic) shapes are not supported",
                 lambda: torch.export.export(longnet.DilatedAttention([4, 8], [1, 2]), (x, x, x),
                                             dynamic_shapes=({1: n},) * 3))
    # xPos, before the op, needs the length as a number: the same error, not a TypeError.
    mx = longnet.MultiheadDilatedAttention(16, 2, dilation_rates=[1, 2],
                                           segment_lengths=[4, 8]).eval()
    x = torch.randn(1, 16, 16)
    with torch.no_grad():
        expect_error(NotImplementedError, "symbolic (dynamic) shapes are not supported",
                     lambda: torch.export.export(mx, (x, x.clone(), x.clone()),
                                                 dynamic_shapes=({1: n},) * 3))

    def f(q, k, v):
        return op(q * 1.5, k, v, [4, 8], [1, 2], True).tanh() * 2

    def f_default(q, k, v):  # the overload, called directly
        return op.default(q * 1.5, k, v, [4, 8], [1, 2], True).tanh() * 2

    for fn in (f, f_default):
        torch.manual_seed(0)
        q, k, v = (torch.randn(2, 8, 2, 4, requires_grad=True) for _ in range(3))
        want = f(q, k, v)
        gw = torch.autograd.grad(want.square().sum(), (q, k, v))
        got = torch.compile(fn)(q, k, v)
        gg = torch.autograd.grad(got.square().sum(), (q, k, v))
        assert max_rel_err(got, want) < 1e-5, f"compiled {fn.__name__} output differs"
        for a, b, name in zip(gg, gw, "qkv"):
            assert max_rel_err(a, b) < 1e-5, f"compiled {fn.__name__}: d{name} differs"
    compiled = torch.compile(f)
    for n in (8, 13):
        torch.manual_seed(n)
        q, k, v = (torch.randn(2, n, 2, 4, requires_grad=True) for _ in range(3))
        want = f(q, k, v)
        gw = torch.autograd.grad(want.square().sum(), (q, k, v))
        got = compiled(q, k, v)
        gg = torch.autograd.grad(got.square().sum(), (q, k, v))
        assert max_rel_err(got, want) < 1e-5, f"compiled output differs at N = {n}"
        for a, b, name in zip(gg, gw, "qkv"):
            assert max_rel_err(a, b) < 1e-5, f"compiled d{name} differs at N = {n}"
    print("ok: torch.compile (op and module, outputs and gradients, two lengths) = eager")


def check_lm_export(longnet):
    """torch.export (static shapes, the default non-strict mode) of LongNetLM, both variants:
    the exported program gives eager's logits for the example and for other ids of its shape.
    The id range check, which reads values, is an assert inside the graph there (and under
    torch.compile); eagerly it still names the id and its position."""
    torch.manual_seed(5)
    for variant in ("decoder_only", "encoder_decoder"):
        lm = longnet.LongNetLM(64, d_model=32, nhead=4, num_decoder_layers=2, dim_feedforward=40,
                               segment_lengths=[4, 8], dilation_rates=[1, 2], variant=variant,
                               num_encoder_layers=1 if variant == "encoder_decoder" else None,
                               activation="gelu").eval()
        x, other = torch.randint(0, 64, (2, 19)), torch.randint(0, 64, (2, 19))
        with torch.no_grad():
            program = torch.export.export(lm, (x,)).module()
            for ids in (x, other):
                got, want = program(ids), lm(ids)
                assert (got - want).abs().max() <= 1e-6, f"{variant}: exported logits differ " \
                    f"by {(got - want).abs().max().item()}"
            bad = other.clone()
            bad[1, 7] = 64
            expect_error(RuntimeError, "a token id is outside [0, num_tokens = 64)",
                         lambda: program(bad))
            expect_error(ValueError, "token id 64 at x[1, 7]", lambda: lm(bad))
            compiled = torch.compile(lm, backend="eager")
            assert torch.equal(compiled(other), lm(other)), f"{variant}: compiled logits differ"
            expect_error(RuntimeError, "a token id is outside", lambda: compiled(bad))
    print("ok: torch.export of LongNetLM (both variants) = eager, at other ids too; bad ids "
          "refused inside exported and compiled graphs")


def check_xpos_range(longnet):
    """xPos scales that would leave the computing dtype's range are refused (they gave inf keys
    and zero queries in float32 and bfloat16 silently); float64 and nested segments work."""
    q = torch.randn(1, 80000, 1, 8)
    for dt in (torch.float32, torch.bfloat16):
        expect_error(ValueError, "beyond float32's range",
                     lambda: longnet.xpos_apply(q.to(dt), q.to(dt), [3, 4]))
    expect_error(ValueError, "beyond float32's range",
                 lambda: longnet.xpos_apply(q, q, [131072]))
    expect_error(ValueError, "beyond float16's range",
                 lambda: longnet.xpos_apply(q.half(), q.half(), [2048, 32768]))
    a, b = longnet.xpos_apply(q.double(), q.double(), [3, 4])
    assert torch.isfinite(a).all() and torch.isfinite(b).all()
    a, b = longnet.xpos_apply(q, q, [1024, 65536])  # |n - c| <= 32768: inside float32's range
    assert torch.isfinite(a).all() and torch.isfinite(b).all()
    # Without the causal mask q' . k' spans the whole segment: 33,879 tokens at most in float32.
    mha = longnet.MultiheadDilatedAttention(8, 1, dilation_rates=[1], segment_lengths=[40000])
    x = torch.randn(1, 40000, 8)
    expect_error(ValueError, "attention is not causal", lambda: mha(x, x, x))
    with torch.no_grad():
        y, _ = mha(x[:, :3000], x[:, :3000], x[:, :3000])  # one short segment: fine
    assert torch.isfinite(y).all()
    # float32 inputs that autocast makes float16: the advice is autocast's dtype, not the inputs'.
    mha = longnet.MultiheadDilatedAttention(16, 2, dilation_rates=[64], segment_lengths=[8192])
    x = torch.randn(1, 8192, 16)
    for causal in (True, False):
        with torch.no_grad(), torch.autocast("cpu", dtype=torch.float16):
            expect_error(ValueError, "Use torch.autocast with dtype=torch.bfloat16, or no "
                         "autocast (autocast casts the torch.float32 inputs to float16 here)",
                         lambda: mha(x, x, x, is_causal=causal))
    with torch.no_grad():
        expect_error(ValueError, "Use bfloat16 or float32 inputs",
                     lambda: mha.half()(x.half(), x.half(), x.half(), is_causal=True))
    if hasattr(torch, "float8_e4m3fn"):
        expect_error(TypeError, "parameters need a floating-point torch.dtype",
                     lambda: longnet.MultiheadDilatedAttention(
                         16, 2, dilation_rates=[1, 2], segment_lengths=[4, 8],
                         dtype=torch.float8_e4m3fn))
        x8 = torch.zeros(1, 8, 2, 4).to(torch.float8_e4m3fn)
        expect_error(TypeError, "must be floating point", lambda: longnet.dilated_attention(
            x8, x8, x8, [4], [1]))
    # Arguments are checked by type and range before any arithmetic.
    x = torch.randn(1, 8, 2, 8)
    for args, kind, text in (
            (dict(scale_base=0), ValueError, "scale_base = 0 is out of range"),
            (dict(scale_base=-5), ValueError, "scale_base = -5 is out of range"),
            (dict(segment_lengths=[4.5]), TypeError, "segment_lengths[0] must be an int"),
            (dict(segment_lengths=[True]), TypeError, "segment_lengths[0] must be an int"),
            (dict(segment_lengths=[2**80]), ValueError, "segment_lengths[0] = "),
            (dict(segment_lengths=4), TypeError, "segment_lengths must be a list of ints"),
            (dict(position_offset=-1), ValueError, "position_offset = -1 is out of range"),
            (dict(global_len=2.0), TypeError, "global_len must be an int")):
        call = {"segment_lengths": [4], **args}
        expect_error(kind, text, lambda: longnet.xpos_apply(x, x, **call))
    for args, kind, text in (
            (("8",), TypeError, "head_dim must be an int"), ((8.0,), TypeError, "head_dim"),
            ((8, float("nan")), TypeError, "scale_base must be an int"),
            ((7,), ValueError, "must be even")):
        expect_error(kind, text, lambda: longnet.XPos(*args))
    print("ok: xPos range refused beyond float16/float32 (float64 and nested fine); float8 "
          "refused; xPos arguments checked by type and range")


def check_xpos_precision_warning(longnet):
    """Without the causal mask xPos amplifies the score of a key d tokens after its query by
    3.5^(d/512): past half the significant bits of the dtype (a largest segment above 1,134
    tokens in bfloat16, 3,400 in float32, clipped to the sequence) forward warns, once per
    segment lengths and dtype; never below, never with the causal mask or without xPos."""
    def warned(make, n, dtype=None, calls=2, autocast=None, causal=False):
        m = make()
        x = torch.randn(1, n, 16, dtype=dtype)
        with warnings.catch_warnings(record=True) as caught, torch.no_grad():
            warnings.simplefilter("always")
            for _ in range(calls):
                if autocast is None:
                    m(x, x, x, is_causal=causal)
                else:
                    with torch.autocast("cpu", dtype=autocast):
                        m(x, x, x, is_causal=causal)
        return [str(w.message) for w in caught if "causal mask with xPos" in str(w.message)
                and w.filename == __file__]

    def mha(w, dtype=None, **kw):
        return lambda: longnet.MultiheadDilatedAttention(16, 2, dilation_rates=[8],
                                                         segment_lengths=w, dtype=dtype, **kw)
    bf16, f32 = torch.bfloat16, torch.float32
    for w, dtype, longest in (([1134], bf16, 1134), ([3400], f32, 3400)):
        assert not warned(mha(w, dtype), w[0], dtype), f"{dtype} warned at its limit {w[0]}"
        said = warned(mha([w[0] + 1], dtype), w[0] + 1, dtype, calls=3)
        assert len(said) == 1, f"{dtype}, {w[0] + 1} tokens: {len(said)} warnings, not one"
        name = str(dtype).split(".")[1]
        for part in (f"of {w[0] + 1} tokens that is 2^", f"keeps accurate", "is_causal=True",
                     "xpos=False", f"a largest segment of at most {longest} tokens in {name}"):
            assert part in said[0], f"{part!r} not in: {said[0]}"
        # A new module of the same segment lengths and dtype: already said.
        assert not warned(mha([w[0] + 1], dtype), w[0] + 1, dtype)
    # The segment is clipped to the sequence: a short sequence under a long segment is fine.
    assert not warned(mha([8191], bf16), 1134, bf16)
    assert len(warned(mha([8191], bf16), 1135, bf16)) == 1
    # Causal attention and xpos=False never warn; autocast's dtype is the one that counts.
    assert not warned(mha([8190], bf16), 8190, bf16, causal=True)
    assert not warned(mha([8190], bf16, xpos=False), 8190, bf16)
    assert not warned(mha([2000]), 2000)
    said = warned(mha([2000]), 2000, autocast=bf16)
    assert len(said) == 1 and "in bfloat16" in said[0], said
    # Compiled (Dynamo traces the check): once too, pointing at the package, not at Dynamo.
    compiled = torch.compile(mha([1140], bf16)(), backend="eager")
    x = torch.randn(1, 1140, 16, dtype=bf16)
    with warnings.catch_warnings(record=True) as caught, torch.no_grad():
        warnings.simplefilter("always")
        for _ in range(3):
            compiled(x, x, x)
    said = [w for w in caught if "causal mask with xPos" in str(w.message)]
    assert len(said) == 1 and "longnet" in said[0].filename, [(w.filename, str(w.message)[:80])
                                                               for w in caught]
    # Exported (non-strict, export's default, runs the Python itself): once, pointing at the
    # caller's line as eagerly.
    class Wrap(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.m = mha([1150], bf16)()

        def forward(self, x):
            return self.m(x, x, x)[0]
    x = torch.randn(1, 1150, 16, dtype=bf16)
    with warnings.catch_warnings(record=True) as caught, torch.no_grad():
        warnings.simplefilter("always")
        torch.export.export(Wrap(), (x,))
    said = [w for w in caught if "causal mask with xPos" in str(w.message)]
    assert len(said) == 1 and said[0].filename == __file__, [(w.filename, str(w.message)[:80])
                                                              for w in caught]
    # Through the layers (an encoder layer is not causal by default).
    layer = lambda: longnet.DilatedTransformerEncoderLayer(  # noqa: E731
        16, 2, segment_lengths=[1200], dilation_rates=[8], dim_feedforward=16,
        dtype=bf16).eval()
    m = layer()
    x = torch.randn(1, 1200, 16, dtype=bf16)
    with warnings.catch_warnings(record=True) as caught, torch.no_grad():
        warnings.simplefilter("always")
        m(x)
        m(x)
    said = [w for w in caught if "causal mask with xPos" in str(w.message)]
    assert len(said) == 1 and said[0].filename == __file__, [(w.filename, str(w.message))
                                                              for w in caught]
    print("ok: xPos without the causal mask warns once past half the dtype's bits (bfloat16 "
          "above 1,134 tokens, float32 above 3,400; clipped, autocast, layers), not below")


def run(cmd, **kw):
    t0 = time.time()
    p = subprocess.run(cmd, capture_output=True, text=True, **kw)
    if p.returncode != 0:
        raise AssertionError(f"command failed ({p.returncode}): {' '.join(cmd)}\n{p.stdout}\n"
                             f"{p.stderr}")
    return time.time() - t0


def train_checkpoint(args, name, overrides):
    """A checkpoint of a 2-step single-rank `longnet train` run of tests/train_small.yaml."""
    work = os.path.join(args.work, name)
    ckpt_dir = os.path.join(work, "ckpt")
    config = os.path.join(args.source, "tests", "train_small.yaml")
    cmd = [os.path.join(args.build, "longnet"), "train", config,
           f"data.source={os.path.join(args.source, 'core')}",
           f"data.path={os.path.join(args.work, 'data.tokens')}", f"checkpoint.dir={ckpt_dir}",
           "checkpoint.resume=none", f"log.metrics={os.path.join(work, 'metrics.jsonl')}",
           "grid.sequence_parallel=1", "grid.data_parallel=1", "train.steps=2",
           "optim.warmup_steps=1", "eval.interval=100"] + overrides
    if os.path.isdir(ckpt_dir):
        for f in os.listdir(ckpt_dir):
            os.remove(os.path.join(ckpt_dir, f))
    seconds = run(cmd, env={**os.environ, "OMP_NUM_THREADS": "1"})
    path = os.path.join(ckpt_dir, "step_00000002.ckpt")
    assert os.path.isfile(path), f"no {path} after {' '.join(cmd)}"
    print(f"  trained {name} ({seconds:.1f} s): {path}")
    return path


def check_checkpoint_parity(longnet, args):
    """from_checkpoint's logits = the C++ model's, fp32 CPU, both variants, N = 128 (one xPos
    block of W = 128), N = 300 (blocks of 128, each with its own centre, the last one partial)
    and N = 100 (segments clipped to 32, 64, 100: xPos centre N / 2; short last segments)."""
    from longnet.checkpoint import load_checkpoint, parse_config, parse_config_simple
    os.makedirs(args.work, exist_ok=True)
    cases = {
        "decoder_only": [],  # train_small.yaml: gelu, 2 layers, w [32, 64, 128], r [1, 2, 4]
        "encoder_decoder": ["model.variant=encoder_decoder", "model.num_encoder_layers=2",
                            "model.num_layers=1", "model.activation=relu",
                            "model.dilation_rates=[1,3,6]", "model.dropout=0.1"],
    }
    worst = 0.0
    for variant, overrides in cases.items():
        path = train_checkpoint(args, variant, overrides)
        # A trainer checkpoint loads with torch.load's defaults (weights_only=True, nothing
        # allowed beyond them).
        plain = torch.load(path)
        assert {"format", "step", "config", "model", "optimizer"} <= set(plain), sorted(plain)
        assert plain["format"] == "longnet-train-1" and isinstance(plain["config"], str)
        assert all(isinstance(t, torch.Tensor) for t in plain["model"].values())
        ckpt = load_checkpoint(path)
        text = ckpt["config"]
        simple = parse_config_simple(text)
        assert simple == parse_config(text), "the fallback YAML parser differs from PyYAML's"
        # What the fallback does not parse is refused, not read wrongly.
        expect_error(ValueError, "nested lists, mappings, quoted items or comments",
                     lambda: parse_config_simple("model:\n  a: [1, [2, 3]]\n"))
        expect_error(ValueError, "nested lists, mappings, quoted items or comments",
                     lambda: parse_config_simple('model:\n  b: ["a,b", "c"]\n'))
        assert simple["model"]["variant"] == variant
        with warnings.catch_warnings():
            warnings.simplefilter("error")  # weights_only=True must read it: no fallback warning
            model = longnet.LongNetLM.from_checkpoint(path).eval()
        assert model.variant == variant
        own = dict(model.state_dict())
        assert list(own) == list(ckpt["model"]), "parameter names or order differ from C++"
        for n, t in own.items():
            assert torch.equal(t, ckpt["model"][n]), n
        for N in (128, 300, 100):
            torch.manual_seed(N)
            tokens = torch.randint(0, 256, (2, N))
            tok_path = os.path.join(args.work, f"{variant}_{N}_tokens.pt")
            out_path = os.path.join(args.work, f"{variant}_{N}_logits.pt")
            torch.save({"tokens": tokens}, tok_path)
            run([os.path.join(args.build, "tests", "lm_logits"), path, tok_path, out_path],
                env={**os.environ, "OMP_NUM_THREADS": "1"})
            cpp = torch.load(out_path, weights_only=False)["logits"]
            with torch.no_grad():
                py = model(tokens)
            assert py.dtype == torch.float32 and py.shape == cpp.shape, (py.shape, cpp.shape)
            err, err_max = rel_err(py, cpp), max_rel_err(py, cpp)
            worst = max(worst, err, err_max)
            print(f"  {variant} N={N}: logits rel error {err:.3g} (norm), {err_max:.3g} (max)")
            assert err < TOL and err_max < TOL, f"{variant} N={N}: {err}, {err_max} >= {TOL}"
            # float64 Python against the float32 C++: the float32 rounding only.
            with torch.no_grad():
                py64 = model.double()(tokens)
            model.float()
            err64 = rel_err(py64, cpp)
            assert err64 < 1e-4, f"{variant} N={N}: float64 model differs by {err64}"
    bad = os.path.join(args.work, "not_a_checkpoint.pt")
    torch.save({"model": {}}, bad)
    expect_error(ValueError, "is not a longnet checkpoint",
                 lambda: longnet.LongNetLM.from_checkpoint(bad))
    expect_error(FileNotFoundError, "does not exist",
                 lambda: longnet.LongNetLM.from_checkpoint(bad + ".missing"))
    check_checkpoint_paths(longnet, args, path)
    print(f"ok: from_checkpoint logits = C++ logits (worst relative error {worst:.3g} < {TOL})")
    return worst


def check_checkpoint_paths(longnet, args, good):
    """from_checkpoint says what a path is when it is no checkpoint: a missing file, a dangling
    link, a directory, a FIFO or a device (without opening them: a FIFO would block), a file
    that is no zip archive, a truncated one, a zip without torch.save's records, a damaged
    record. `good` is a real checkpoint, the source of the truncated copy."""
    import zipfile
    work = os.path.join(args.work, "bad_paths")
    shutil.rmtree(work, ignore_errors=True)  # an earlier run's files
    os.makedirs(work)
    load = longnet.LongNetLM.from_checkpoint

    def write(name, data):
        p = os.path.join(work, name)
        with open(p, "wb") as f:
            f.write(data)
        return p

    link = os.path.join(work, "dangling.ckpt")
    os.symlink(os.path.join(work, "nowhere.ckpt"), link)
    expect_error(FileNotFoundError, "symbolic link to the missing", lambda: load(link))
    expect_error(IsADirectoryError, "is a directory; pass one checkpoint file in it, e.g. ",
                 lambda: load(os.path.dirname(good)))
    fifo = os.path.join(work, "fifo.ckpt")
    os.mkfifo(fifo)
    expect_error(ValueError, "is a FIFO (named pipe), not a regular file", lambda: load(fifo))
    if os.path.exists("/dev/zero"):
        expect_error(ValueError, "/dev/zero is a character device", lambda: load("/dev/zero"))
    expect_error(ValueError, "not a torch.save zip archive: it is empty",
                 lambda: load(write("empty.ckpt", b"")))
    expect_error(ValueError, "not a torch.save zip archive: it starts with b'\\x80\\x02ga'",
                 lambda: load(write("garbage.ckpt", b"\x80\x02garbage" * 1000)))
    with open(good, "rb") as f:
        data = f.read()
    expect_error(ValueError, "is not a readable longnet checkpoint (truncated or damaged: ",
                 lambda: load(write("truncated.ckpt", data[:len(data) // 2])))
    expect_error(ValueError, "truncated or damaged", lambda: load(write("tiny.ckpt", data[:10])))
    # Bytes appended after the zip end record: zipfile would read past them, the C++ loader
    # refuses them; so does this one, with the count.
    expect_error(ValueError, "its zip end record does not end the file: 5 bytes were appended",
                 lambda: load(write("appended.ckpt", data + b"extra")))
    other = os.path.join(work, "other.zip")
    with zipfile.ZipFile(other, "w") as z:
        z.writestr("hello.txt", "not a checkpoint")
    expect_error(ValueError, "without torch.save's data.pkl record", lambda: load(other))
    broken = os.path.join(work, "broken_pickle.ckpt")
    with zipfile.ZipFile(broken, "w") as z:
        z.writestr("archive/data.pkl", b"\x80\x02garbage")
        z.writestr("archive/version", "3\n")
    expect_error(ValueError, "truncated or damaged: UnpicklingError: Unsupported operand",
                 lambda: load(broken))
    expect_error(ValueError, "truncated or damaged", lambda: longnet.load_checkpoint(
        broken, weights_only=None))
    # A pickle that names code to run is refused by default, before anything of it runs; only
    # weights_only=False (a file the user trusts) unpickles it.
    marker = os.path.join(work, "code_ran")
    hostile = os.path.join(work, "hostile.ckpt")
    torch.save({"_longnet_format": "longnet-checkpoint-1", "_longnet_crc32": 0,
                "config": "", "model": _RunsCode(marker)}, hostile)
    for wo in (True, None):
        expect_error(ValueError, "holds objects other than tensors and plain values",
                     lambda: longnet.load_checkpoint(hostile, weights_only=wo))
        expect_error(ValueError, "(it names posix.system)",
                     lambda: longnet.LongNetLM.from_checkpoint(hostile, weights_only=wo))
    assert not os.path.exists(marker), "loading a hostile checkpoint ran its code"
    expect_error(TypeError, "weights_only must be True, False or None",
                 lambda: longnet.load_checkpoint(good, weights_only="yes"))
    # A checkpoint whose contents changed under its CRC-32 (one weight, or its config) is refused
    # as the C++ reader refuses it; the good one loads.
    longnet.load_checkpoint(good)
    raw = torch.load(good, map_location="cpu", weights_only=True)
    name = next(iter(raw["model"]))
    raw["model"][name].view(-1)[0] += 1.0
    torch.save(raw, os.path.join(work, "weight_changed.ckpt"))
    expect_error(ValueError, "is a corrupted longnet checkpoint (checksum mismatch: stored CRC-32",
                 lambda: load(os.path.join(work, "weight_changed.ckpt")))
    raw = torch.load(good, map_location="cpu", weights_only=True)
    raw["config"] += "\n# edited by hand\n"
    torch.save(raw, os.path.join(work, "config_changed.ckpt"))
    expect_error(ValueError, "checksum mismatch",
                 lambda: longnet.load_checkpoint(os.path.join(work, "config_changed.ckpt")))
    raw.pop("_longnet_crc32")
    torch.save(raw, os.path.join(work, "no_crc.ckpt"))
    expect_error(ValueError, "it has no integrity record",
                 lambda: longnet.load_checkpoint(os.path.join(work, "no_crc.ckpt")))
    # Pickles the C++ writer never makes: one list repeated (a 1.6 KB file that took 2^40 steps
    # to checksum), nesting past 64 levels, tensors that are not plain: refused as damage, at once.
    dag, deep = [1], [1]
    for _ in range(40):
        dag = [dag, dag]
    for _ in range(100):
        deep = [deep]
    for what, x in (("repeats a container", dag), ("nests more than 64", deep),
                    ("sparse_coo tensor", torch.zeros(3).to_sparse()),
                    ("tensor on meta", torch.empty(3, device="meta"))):
        hostile = os.path.join(work, "hostile_object.ckpt")
        torch.save({**raw, "_longnet_crc32": 0, "x": x}, hostile)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            expect_error(ValueError, what, lambda: longnet.load_checkpoint(hostile))
    # A YAML alias bomb in a config (a few hundred bytes, 9^12 list references): the refusal
    # names the value briefly instead of printing it whole (minutes, gigabytes).
    bomb = "b0: &b0 [8, 8]\n" + "".join(
        f"b{i}: &b{i} [" + ", ".join([f"*b{i - 1}"] * 9) + "]\n" for i in range(1, 13))
    model = longnet.parse_config(bomb + "model:\n  segment_lengths: *b12\n")["model"]
    expect_error(TypeError, "segment_lengths[0] must be an int, got list [[[...]",
                 lambda: longnet.LongNetLM.from_config(model, device="meta"))
    # A pickle that names a missing global: refused by default (it names a global); with
    # weights_only=False torch.load raises AttributeError, reported as damage like any other
    # unpickling failure.
    odd = os.path.join(work, "odd_pickle.ckpt")
    with zipfile.ZipFile(odd, "w") as z:
        z.writestr("archive/data.pkl", b"\x80\x02cbuiltins\nno_such_name\nq\x00.")
        z.writestr("archive/version", "3\n")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        expect_error(ValueError, "refuses (it names no_such_name)", lambda: load(odd))
        expect_error(ValueError, "truncated or damaged: AttributeError",
                     lambda: load(odd, weights_only=False))
    # Checkpoints whose CRC-32 was recomputed after an edit (another tool's making): a config
    # that asks for a billion layers is refused before any layer is built; an empty model
    # section, a config that is no text and an integer parameter get named errors.
    from longnet.checkpoint import _state_crc

    def forged(name, edit):
        raw = torch.load(good, map_location="cpu", weights_only=True)
        edit(raw)
        raw["_longnet_crc32"] = _state_crc(raw)
        p = os.path.join(work, name)
        torch.save(raw, p)
        return p

    def set_model_key(raw, key, value):  # one `model:` line of the stored config
        lines = raw["config"].splitlines()
        i = next(i for i, x in enumerate(lines) if x.strip().startswith(key + ":"))
        lines[i] = f"  {key}: {value}"
        raw["config"] = "\n".join(lines) + "\n"

    expect_error(ValueError, "model.num_layers = 1000000000 but the parameters hold",
                 lambda: load(forged("billion_layers.ckpt", lambda raw: set_model_key(
                     raw, "num_layers", 1000000000))))

    def bigger_ffn(raw):  # no linear1 left to compare against: the meta build finds it
        raw["model"] = {n: t for n, t in raw["model"].items() if ".linear" not in n}
        set_model_key(raw, "dim_feedforward", 4194304)

    expect_error(ValueError, "parameters do not match the model of its config; missing",
                 lambda: load(forged("bigger_ffn.ckpt", bigger_ffn)))
    expect_error(TypeError, "model config must be a mapping", lambda: load(forged(
        "empty_model.ckpt", lambda raw: raw.__setitem__("config", "model:\ndata:\n  seq_len: 8\n"))))
    expect_error(ValueError, "config is not YAML text (got int)", lambda: load(forged(
        "int_config.ckpt", lambda raw: raw.__setitem__("config", 7))))

    def int_param(raw):
        name = next(iter(raw["model"]))
        raw["model"][name] = raw["model"][name].long()

    expect_error(ValueError, "is torch.int64; parameters are float32", lambda: load(forged(
        "int_param.ckpt", int_param)))
    # An error about the config's values names the file and the section it came from.
    heads = forged("heads.ckpt", lambda raw: set_model_key(raw, "num_heads", 3))
    expect_error(ValueError, f"checkpoint {heads}: its config's model: ", lambda: load(heads))
    # ... by the config's keys (model.num_heads), not the constructor's arguments (nhead).
    expect_error(ValueError, "is not divisible by model.num_heads = 3; model.num_heads in {",
                 lambda: load(heads))
    expect_error(ValueError, "model.segment_lengths [8] and model.dilation_rates", lambda: load(
        forged("branches.ckpt", lambda raw: set_model_key(raw, "segment_lengths", "[8]"))))
    # A state_dict saved with torch.save, and a model saved whole: named, with what loads them
    # (and no advice to unpickle a whole model with weights_only=False here: it is no checkpoint).
    small = longnet.LongNetLM(16, 16, 2, num_decoder_layers=1, dim_feedforward=16,
                              segment_lengths=[4], dilation_rates=[1], variant="decoder_only")
    state_file, whole_file = os.path.join(work, "state_dict.pt"), os.path.join(work, "whole.pt")
    torch.save(small.state_dict(), state_file)
    torch.save(small, whole_file)
    for wo in (True, False):
        expect_error(ValueError, "is not a longnet checkpoint: it holds a state_dict",
                     lambda: load(state_file, weights_only=wo))
        expect_error(ValueError, "model.load_state_dict(torch.load(path))",
                     lambda: load(state_file, weights_only=wo))
    expect_error(ValueError, "is not a longnet checkpoint: it holds a pickled object that "
                 "torch.load(weights_only=True) refuses (it names longnet.models.LongNetLM)",
                 lambda: load(whole_file))
    try:
        load(whole_file)
    except ValueError as e:
        assert "pass weights_only=False" not in str(e), e
    expect_error(ValueError, "it holds a longnet.models.LongNetLM object, a model saved whole",
                 lambda: load(whole_file, weights_only=False))
    # Numbers as the trainer (yaml-cpp, YAML 1.2) reads them: 1e-5 is a float, not a string.
    eps = longnet.parse_config("optim:\n  eps: 1e-5\n  lr: -3E+2\n  n: 12\n  w: e5\n")["optim"]
    assert eps == {"eps": 1e-5, "lr": -300.0, "n": 12, "w": "e5"}, eps
    # YAML 1.1's other number and boolean forms are strings (the trainer refuses them), by
    # PyYAML and the fallback alike, and the model's checks refuse them: never another number.
    odd = ("model:\n  a: 010\n  b: 0x10\n  c: 1:04\n  d: 6_4\n  e: yes\n  f: .inf\n  g: 0\n"
           "  h: 0.5\n  i: 2024-01-05\n  j: =\n")
    want = {"a": "010", "b": "0x10", "c": "1:04", "d": "6_4", "e": "yes", "f": ".inf", "g": 0,
            "h": 0.5, "i": "2024-01-05", "j": "="}
    assert longnet.parse_config(odd)["model"] == want, longnet.parse_config(odd)
    assert longnet.checkpoint.parse_config_simple(odd)["model"] == want
    expect_error(TypeError, "model.dim_feedforward must be an int, got str '1:04'",
                 lambda: longnet.LongNetLM.from_config(longnet.parse_config(
                     "model:\n  d_model: 32\n  num_heads: 2\n  dim_feedforward: 1:04\n")["model"]))
    # A key given twice is refused (as the trainer refuses it), by PyYAML and the fallback alike.
    twice = "model:\n  num_heads: 2\n  num_heads: 4\n"
    expect_error(ValueError, "the key 'num_heads' is given twice", lambda: longnet.parse_config(twice))
    expect_error(ValueError, "line 3: the key 'num_heads' is given twice",
                 lambda: longnet.checkpoint.parse_config_simple(twice))
    # Hand-written YAML the fallback reads as PyYAML does (comments after values and sections,
    # single quotes, \u escapes, a trailing comma in a list), or refuses (never misreads).
    same = ("model:  # the model\n  a: 64  # c\n  b: 'it''s'\n  c: \"\\u0041#\"\n  d: [1, 2,]\n"
            "  e: a#b\n  f: [3, 4]  # c\n")
    assert longnet.checkpoint.parse_config_simple(same) == longnet.parse_config(same) == {
        "model": {"a": 64, "b": "it's", "c": "A#", "d": [1, 2], "e": "a#b", "f": [3, 4]}}, \
        longnet.checkpoint.parse_config_simple(same)
    for bad, why in (("  x: {a: 1}", "beyond this reader"), ("  x:1", "expected 'key: value'"),
                     ("  x: [1,,2]", "has an empty item"), ('  x: "a" b', "follows the quoted"),
                     ('  x: "\\q"', "unknown escape")):
        expect_error(ValueError, why,
                     lambda: longnet.checkpoint.parse_config_simple("model:\n" + bad + "\n"))
    # `key : value` and YAML's other spellings of null read alike; ': ' inside a value (a
    # mapping to YAML: an error, or a pair inside a list) is refused by the fallback.
    spaced = "model:\n  a : 1\n  b: Null\n  c: NULL\n  d: ~\n"
    assert longnet.checkpoint.parse_config_simple(spaced) == longnet.parse_config(spaced) == {
        "model": {"a": 1, "b": None, "c": None, "d": None}}, longnet.parse_config(spaced)
    for bad in ("  x: a: b", "  x: [a: b]", "  x: [1, k:]", "  x: a:\tb"):
        expect_error(ValueError, "holds ':' before a blank or at its end",
                     lambda: longnet.checkpoint.parse_config_simple("model:\n" + bad + "\n"))
    # A UTF-8 byte-order mark before the first key is skipped, by PyYAML and the fallback alike.
    bom = "\ufeffmodel:\n  num_heads: 2\n"
    assert longnet.parse_config(bom) == {"model": {"num_heads": 2}}, longnet.parse_config(bom)
    assert longnet.checkpoint.parse_config_simple(bom) == {"model": {"num_heads": 2}}
    # A checkpoint loaded and saved again in Python is intact: LibTorch reads some such files
    # (then the contents verify) and not others (which pickles it cannot read depends on the
    # contents); those are named as Python re-saves, not as "corrupted" files.
    resaved = os.path.join(work, "resaved.ckpt")
    torch.save(dict(torch.load(good, map_location="cpu", weights_only=True)), resaved)
    p = subprocess.run([os.path.join(args.build, "longnet"), "export", resaved, "--out",
                        os.path.join(work, "resaved_export")], capture_output=True, text=True)
    assert p.returncode == 0 or "written by Python's torch.save" in p.stderr, p.stderr
    # One LibTorch cannot read for certain: the parameters as the OrderedDict a Python
    # state_dict is (its global is not one LibTorch's unpickler knows).
    raw = torch.load(good, map_location="cpu", weights_only=True)
    raw["model"] = collections.OrderedDict(raw["model"])
    torch.save(raw, resaved)
    p = subprocess.run([os.path.join(args.build, "longnet"), "export", resaved, "--out",
                        os.path.join(work, "resaved_export2")], capture_output=True, text=True)
    assert p.returncode != 0 and "written by Python's torch.save" in p.stderr, p.stderr
    assert not os.path.exists(os.path.join(work, "resaved_export2")), "export made --out"
    # Memory running out while a good file is read is no damage: MemoryError, saying so.
    import longnet.checkpoint as ckpt_module
    real = ckpt_module._load_weights_only

    def no_memory(path):
        raise RuntimeError("[enforce fail at alloc_cpu.cpp:127] DefaultCPUAllocator: can't "
                           "allocate memory: you tried to allocate 4194304 bytes")
    ckpt_module._load_weights_only = no_memory
    try:
        expect_error(MemoryError, "out of host memory while reading it",
                     lambda: longnet.load_checkpoint(good))
    finally:
        ckpt_module._load_weights_only = real
    print("ok: from_checkpoint names missing, directory, FIFO, device, non-zip, truncated, "
          "damaged, altered (CRC-32) and forged checkpoints, and memory running out as such; C++ "
          "names a Python re-save")


class _RunsCode:
    """Pickles as a call to os.system (touching `marker`): what a hostile checkpoint holds."""

    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def check_export(longnet, args):
    """`longnet export`: model.safetensors (read back by the safetensors package) holds the
    checkpoint's parameters bit for bit, and config.json builds the same model."""
    try:
        from safetensors.torch import load_file
    except ImportError:
        print("skip: export round trip (no safetensors package)")
        return
    import json
    path = train_checkpoint(args, "export", [])
    out = os.path.join(args.work, "exported")
    run([os.path.join(args.build, "longnet"), "export", path, "--out", out])
    tensors = load_file(os.path.join(out, "model.safetensors"))
    ckpt = torch.load(path)
    assert list(tensors) and set(tensors) == set(ckpt["model"]), "parameter names differ"
    for name, t in ckpt["model"].items():
        assert torch.equal(tensors[name], t), name
    cfg = json.load(open(os.path.join(out, "config.json")))
    assert cfg["architecture"] == "LongNetLM" and cfg["step"] == 2, cfg
    model = longnet.LongNetLM.from_config(cfg["model"]).eval()
    model.load_state_dict(tensors)
    ref = longnet.LongNetLM.from_checkpoint(path).eval()
    tokens = torch.randint(0, 256, (1, 70))
    with torch.no_grad():
        assert torch.equal(model(tokens), ref(tokens)), "config.json builds another model"
    run([os.path.join(args.build, "longnet"), "export", path, "--out", out + "_bf16",
         "--dtype", "bfloat16"])
    half = load_file(os.path.join(out + "_bf16", "model.safetensors"))
    assert all(t.dtype == torch.bfloat16 for t in half.values())
    # The package reads its own export back: the same logits; bfloat16 stays bfloat16.
    back = longnet.LongNetLM.from_export(out).eval()
    with torch.no_grad():
        assert torch.equal(back(tokens), ref(tokens)), "from_export gives other logits"
    # A config.json of another step beside the weights (two exports mixed): refused, named.
    mixed = os.path.join(args.work, "mixed_export")
    shutil.rmtree(mixed, ignore_errors=True)
    shutil.copytree(out, mixed)
    with open(os.path.join(mixed, "config.json")) as fh:
        other = json.load(fh)
    other["step"] = 7
    with open(os.path.join(mixed, "config.json"), "w") as fh:
        json.dump(other, fh)
    expect_error(ValueError, "config.json is of step 7 but model.safetensors of step 2",
                 lambda: longnet.LongNetLM.from_export(mixed))
    back16 = longnet.LongNetLM.from_export(out + "_bf16")
    assert all(p.dtype == torch.bfloat16 for p in back16.parameters())
    assert longnet.LongNetLM.from_export(out + "_bf16", dtype=torch.float32).out.weight.dtype \
        == torch.float32
    foreign = os.path.join(args.work, "foreign_export")
    shutil.rmtree(foreign, ignore_errors=True)  # left by an earlier run
    os.makedirs(foreign)
    with open(os.path.join(foreign, "config.json"), "w") as fh:
        fh.write('{"mine": 1}')
    expect_error(ValueError, "is missing or not a regular file",
                 lambda: longnet.LongNetLM.from_export(foreign))
    shutil.copy(os.path.join(out, "model.safetensors"), foreign)
    expect_error(ValueError, "is not a longnet export", lambda: longnet.LongNetLM.from_export(foreign))
    with open(os.path.join(foreign, "config.json"), "w") as fh:
        fh.write("{not json")
    expect_error(ValueError, "not readable JSON", lambda: longnet.LongNetLM.from_export(foreign))
    shutil.copy(os.path.join(out, "config.json"), foreign)
    with open(os.path.join(foreign, "model.safetensors"), "r+b") as fh:
        fh.truncate(100)
    expect_error(ValueError, "model.safetensors cannot be read",
                 lambda: longnet.LongNetLM.from_export(foreign))
    expect_error(ValueError, "not a directory", lambda: longnet.LongNetLM.from_export(foreign + ".missing"))
    # A config.json edited to describe more layers than model.safetensors holds: refused before
    # the model is built (a billion layers would exhaust memory).
    shutil.copy(os.path.join(out, "model.safetensors"), foreign)
    big = json.load(open(os.path.join(out, "config.json")))
    big["model"]["num_layers"] = 10**9
    with open(os.path.join(foreign, "config.json"), "w") as fh:
        json.dump(big, fh)
    expect_error(ValueError, "model.num_layers = 1000000000 but the parameters hold",
                 lambda: longnet.LongNetLM.from_export(foreign))
    big["model"]["num_layers"] = cfg["model"]["num_layers"]
    big["model"]["dim_feedforward"] = 2**30
    with open(os.path.join(foreign, "config.json"), "w") as fh:
        json.dump(big, fh)
    expect_error(ValueError, "(model.dim_feedforward, model.d_model)",
                 lambda: longnet.LongNetLM.from_export(foreign))
    # A config error names the export's folder and config.json, whichever check finds it.
    big["model"]["dim_feedforward"] = cfg["model"]["dim_feedforward"]
    big["model"]["num_heads"] = 5
    with open(os.path.join(foreign, "config.json"), "w") as fh:
        json.dump(big, fh)
    expect_error(ValueError, f"export {foreign}: config.json's model: ",
                 lambda: longnet.LongNetLM.from_export(foreign))
    # Another format version, the meta device (nothing would load), each loader given the
    # other's input: refused, naming what works.
    other = dict(cfg, format="longnet-export-99")
    with open(os.path.join(foreign, "config.json"), "w") as fh:
        json.dump(other, fh)
    expect_error(ValueError, "has format 'longnet-export-99'",
                 lambda: longnet.LongNetLM.from_export(foreign))
    expect_error(ValueError, "device='meta' holds no data",
                 lambda: longnet.LongNetLM.from_export(out, device="meta"))
    expect_error(ValueError, "device='meta' holds no data",
                 lambda: longnet.LongNetLM.from_checkpoint(path, device="meta"))
    expect_error(ValueError, "load it with LongNetLM.from_export",
                 lambda: longnet.LongNetLM.from_checkpoint(out))
    expect_error(ValueError, "a trainer checkpoint loads with LongNetLM.from_checkpoint",
                 lambda: longnet.LongNetLM.from_export(path))
    expect_error(ValueError, "give the folder that holds it: LongNetLM.from_export(",
                 lambda: longnet.LongNetLM.from_export(os.path.join(out, "config.json")))
    expect_error(ValueError, "the folder is an empty path", lambda: longnet.LongNetLM.from_export(""))
    expect_error(ValueError, "device='nonsense' is not a device",
                 lambda: longnet.LongNetLM.from_export(out, device="nonsense"))
    # A config.json with a key given twice, or without a key that shapes the model (defaults
    # would describe another model with the same parameter shapes): refused, naming the key.
    shutil.copy(os.path.join(out, "model.safetensors"), foreign)
    text = open(os.path.join(out, "config.json")).read()
    with open(os.path.join(foreign, "config.json"), "w") as fh:
        fh.write(text.replace('"num_heads": ', '"num_heads": 4, "num_heads": ', 1))
    expect_error(ValueError, "the key 'num_heads' is given twice",
                 lambda: longnet.LongNetLM.from_export(foreign))
    no_act = json.load(open(os.path.join(out, "config.json")))
    del no_act["model"]["activation"]
    with open(os.path.join(foreign, "config.json"), "w") as fh:
        json.dump(no_act, fh)
    expect_error(ValueError, "config.json's model: missing key(s) ['activation']",
                 lambda: longnet.LongNetLM.from_export(foreign))
    # Parameters that hold NaN, or values past the range of the dtype asked for: refused as the
    # C++ loader refuses them (naming the parameter), not loaded into a model that computes NaN.
    shutil.copy(os.path.join(out, "config.json"), foreign)
    from safetensors.torch import save_file
    for value, dtype, what in ((float("nan"), None, "NaN or infinite value(s)"),
                               (1e6, torch.float16, "past the range of torch.float16")):
        bad = {n: t.clone() for n, t in tensors.items()}
        bad["token_embedding.weight"][0, 0] = value
        save_file(bad, os.path.join(foreign, "model.safetensors"))
        expect_error(ValueError, f"parameter 'token_embedding.weight' holds",
                     lambda: longnet.LongNetLM.from_export(foreign, dtype=dtype))
        expect_error(ValueError, what, lambda: longnet.LongNetLM.from_export(foreign, dtype=dtype))
    print(f"ok: export round trip ({len(tensors)} tensors; bfloat16 too; from_export, and its "
          f"errors)")


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--build", required=True, help="the CMake build dir (longnet, tests/lm_logits)")
    ap.add_argument("--source", required=True, help="the repository root")
    ap.add_argument("--work", help="scratch dir (default BUILD/test_runs/python_package)")
    ap.add_argument("--installed", action="store_true",
                    help="test the pip-installed package (not python/ of the checkout)")
    args = ap.parse_args()
    args.build, args.source = os.path.abspath(args.build), os.path.abspath(args.source)
    args.work = os.path.abspath(args.work or os.path.join(args.build, "test_runs",
                                                          "python_package"))
    if args.installed:
        os.environ.pop("LONGNET_OPS_LIBRARY", None)
        sys.path = [p for p in sys.path if os.path.abspath(p or ".") != os.path.join(
            args.source, "python")]
    else:
        sys.path.insert(0, os.path.join(args.source, "python"))
        os.environ.setdefault("LONGNET_OPS_LIBRARY",
                              os.path.join(args.build, "liblongnet_ops.so"))
    sys.path.insert(1, os.path.join(args.source, "tests"))
    import longnet
    import test_ops
    # A file that is no shared library is named as such (torch's loader error drops the reason).
    empty = os.path.join(args.build, "test_runs", "empty_lib.so")
    os.makedirs(os.path.dirname(empty), exist_ok=True)
    open(empty, "wb").close()
    probe = subprocess.run([sys.executable, "-c", "import longnet; longnet.load_library()"],
                           env=dict(os.environ, LONGNET_OPS_LIBRARY=empty,
                                    PYTHONPATH=os.pathsep.join(sys.path)),
                           capture_output=True, text=True)
    assert probe.returncode != 0 and f"{empty} is empty" in probe.stderr, probe.stderr[-400:]
    lib = longnet.load_library()
    where = os.path.dirname(os.path.abspath(longnet.__file__))
    print(f"longnet {longnet.__version__} from {where}; op library {lib}")
    if args.installed:
        assert where != os.path.join(args.source, "python", "longnet"), f"{where} is python/"
        assert os.path.dirname(lib) == where, f"{lib} is not inside the package {where}"
        real = torch.__version__
        try:  # under another torch the package refuses its library, saying why
            torch.__version__ = "0.0.1"
            expect_error(ImportError, "was built against torch",
                         lambda: longnet._ops._check_torch_version(lib))
        finally:
            torch.__version__ = real
    torch.set_num_threads(min(2, torch.get_num_threads()))
    check_api(longnet)
    check_types(longnet, args)
    check_op_inputs(longnet)
    check_module_inputs(longnet)
    check_attention_reference(longnet, test_ops)
    check_forward_backward(longnet, "cpu")
    if torch.cuda.is_available():
        check_forward_backward(longnet, "cuda")
    else:
        print("skip: CUDA forward + backward (no GPU)")
    check_no_future_leak(longnet)
    check_submodules(longnet)
    check_xpos_range(longnet)
    check_xpos_precision_warning(longnet)
    check_compile(longnet)
    check_lm_export(longnet)
    check_checkpoint_parity(longnet, args)
    check_export(longnet, args)
    print("python package: all passed")


if __name__ == "__main__":
    main()
