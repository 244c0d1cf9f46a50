"""Finds and loads longnet's op library (liblongnet_ops.so), which registers
torch.ops.longnet.dilated_attention, and wraps that op with argument checks that name the argument.

The library is loaded on first use, not at `import longnet`, so the package's documentation and
checkpoint reading work even where the library is missing; the error then says how to get it.
Where it is looked for, in order:
  1. the file named by the environment variable LONGNET_OPS_LIBRARY (e.g. build/liblongnet_ops.so
     of a `launch/setup.sh` build, for working in the source tree);
  2. liblongnet_ops.so inside this package (what `pip install` puts there).
"""

from __future__ import annotations

import numbers
import os
import reprlib
import sys
import threading
from pathlib import Path
from typing import TYPE_CHECKING, Any, Optional, Sequence, Union

import torch

if TYPE_CHECKING:
    import numpy

# What segment_lengths and dilation_rates may be: a sequence of ints (list, tuple, range), or a
# one-dimensional integer numpy array or tensor (_int_list checks it at run time).
IntSequence = Union[Sequence[int], "numpy.ndarray", torch.Tensor]
# A file or folder path: str, bytes (decoded as the file system does) or os.PathLike.
PathArg = Union[str, bytes, "os.PathLike[str]", "os.PathLike[bytes]"]
# A device, as torch's factories take it: torch.device, 'cpu' / 'cuda:0', or a CUDA index.
DeviceArg = Optional[Union[torch.device, str, int]]

LIBRARY_NAME = "liblongnet_ops.so"
LIBRARY_ENV = "LONGNET_OPS_LIBRARY"

_lock = threading.Lock()
_loaded_from: Optional[str] = None

# Frames a warning should not point at: this package's, and torch's (nn.Module.__call__ between
# a user's call and a module's forward).
_INTERNAL_DIRS = tuple(os.path.dirname(os.path.abspath(f)) + os.sep
                       for f in (__file__, torch.__file__))


def external_stacklevel() -> int:
    """The stacklevel that makes a warning point at the user's line: the first frame outside
    this package and torch, however many of their calls lie between. Use as
    warnings.warn(..., stacklevel=external_stacklevel()) from anywhere in longnet."""
    level, frame = 1, sys._getframe(1)  # 1: the function calling warnings.warn
    while frame.f_back is not None and os.path.abspath(frame.f_code.co_filename).startswith(
            _INTERNAL_DIRS):
        frame = frame.f_back
        level += 1
    return level


def compiling(dynamo_only: bool = False) -> bool:
    """Whether torch.compile or torch.export is recording the caller: then values cannot be
    read. dynamo_only: only where Dynamo traces the Python (torch.compile, strict export), whose
    frames are then not the user's (non-strict export, the default, runs the Python itself)."""
    compiler = getattr(torch, "compiler", None)
    check = getattr(compiler, "is_dynamo_compiling" if dynamo_only else "is_compiling", None)
    if check is None:  # torch < 2.3
        check = getattr(getattr(torch, "_dynamo", None), "is_compiling", None)
    return bool(check is not None and check())


class LibraryNotFoundError(ImportError):
    """liblongnet_ops.so could not be found or loaded; the message says where it looked and how
    to build it."""


def library_path() -> str:
    """The path of the op library that load_library() would load (see the module docstring for
    the search order). Raises LibraryNotFoundError when there is none."""
    env = os.environ.get(LIBRARY_ENV)
    if env:
        if not os.path.isfile(env):
            raise LibraryNotFoundError(
                f"{LIBRARY_ENV}={env!r} does not name a file; point it at the liblongnet_ops.so "
                f"of a longnet build (launch/setup.sh writes build/{LIBRARY_NAME}) or unset it")
        return env
    here = Path(__file__).resolve().parent / LIBRARY_NAME
    if here.is_file():
        return str(here)
    raise LibraryNotFoundError(
        f"longnet's op library {LIBRARY_NAME} is not inside the package at {here.parent}, and "
        f"{LIBRARY_ENV} is not set. Install the package with its library from the repository "
        f"root: `python -m pip install --no-build-isolation .` (with torch already installed), "
        f"or, in a source checkout built by launch/setup.sh, set "
        f"{LIBRARY_ENV}=<repo>/build/{LIBRARY_NAME}.")


def _op_registered() -> bool:
    try:
        torch.ops.longnet.dilated_attention
    except (AttributeError, RuntimeError):
        return False
    return True


def _check_torch_version(path: str) -> None:
    """The library is C++ compiled against one torch; another torch would fail to load it with
    an obscure undefined symbol, or worse, load it and crash. Say so plainly instead."""
    try:  # (_build_info.py is written by the package build)
        from longnet._build_info import TORCH_VERSION  # type: ignore[import-not-found]
    except ImportError:
        return  # a source checkout: nothing recorded
    built = TORCH_VERSION.split("+")[0]
    running = torch.__version__.split("+")[0]
    if built != running:
        raise LibraryNotFoundError(
            f"{path} was built against torch {TORCH_VERSION}, but this python runs torch "
            f"{torch.__version__}; rebuild longnet against it: "
            f"`python -m pip install --no-build-isolation --force-reinstall <longnet repo>`")


def device_move_hint(what: str, to: torch.device, have: torch.device) -> str:
    """How to bring a module whose parameters are on `have` and an input on `to` together."""
    if have.type == "meta":  # no data to move: made, then filled
        return (f"its parameters are on the meta device (shapes only): materialise them with "
                f"{what}.to_empty(device={str(to)!r}), then load a state_dict")
    return f"move the {what} ({what}.to({str(to)!r}))"


def load_library() -> str:
    """Loads the op library once per process (later calls return at once) and returns the path it
    came from ("" when torch.ops.longnet was already registered by someone else, e.g. a direct
    torch.ops.load_library call). Raises LibraryNotFoundError naming the file and the cause."""
    global _loaded_from
    if _loaded_from is not None:  # no lock once loaded (and none for torch.compile to trace)
        return _loaded_from
    with _lock:
        if _loaded_from is not None:
            return _loaded_from
        if _op_registered():  # a second copy would abort on the duplicate TORCH_LIBRARY
            _keep_out_of_compiled_graphs()
            _loaded_from = ""
            return _loaded_from
        path = library_path()
        if path != os.environ.get(LIBRARY_ENV):
            _check_torch_version(path)
        # (torch's own error for a file that is no library drops the loader's reason)
        try:
            with open(path, "rb") as fh:
                head = fh.read(4)
        except OSError as e:
            raise LibraryNotFoundError(f"could not read {path}: {e.strerror}") from None
        if head != b"\x7fELF":
            raise LibraryNotFoundError(
                f"{path} is {'empty' if not head else 'not a shared library (no ELF header)'}: "
                f"it must be longnet's built {LIBRARY_NAME} (LONGNET_OPS_LIBRARY, or the "
                f"installed package's)")
        try:
            torch.ops.load_library(path)
        except OSError as e:
            raise LibraryNotFoundError(
                f"could not load {path}: {e}. It must be built against this python's torch "
                f"{torch.__version__}; rebuild with `python -m pip install --no-build-isolation "
                f"--force-reinstall <longnet repo>`") from e
        if not _op_registered():
            raise LibraryNotFoundError(
                f"{path} loaded but registered no torch.ops.longnet.dilated_attention; is it "
                f"longnet's {LIBRARY_NAME}?")
        _keep_out_of_compiled_graphs()
        _loaded_from = path
        return path


# The dtypes the op and the modules compute in (float8 and complex types are not among them).
FLOAT_DTYPES = (torch.float32, torch.float64, torch.float16, torch.bfloat16)


def _keep_out_of_compiled_graphs() -> None:
    """torch.compile must not trace into the op: its C++ body (strided views written in place
    and longnet's own autograd function) is not traceable, and inductor compiled it to wrong
    outputs and gradients. Dynamo breaks the graph at the op instead and runs it as it runs
    eagerly; the code around it is still compiled."""
    try:
        import torch._dynamo as dynamo

        packet = torch.ops.longnet.dilated_attention
        # The packet and each overload (a call through .default is traced on its own).
        for op in [packet] + [getattr(packet, name) for name in packet.overloads()]:
            dynamo.disallow_in_graph(op)
    except Exception as e:  # noqa: BLE001 - a torch without a usable compiler: eager is unaffected
        import warnings

        warnings.warn(f"longnet: could not keep dilated_attention out of torch.compile graphs "
                      f"({type(e).__name__}: {e}); do not torch.compile code that calls it",
                      RuntimeWarning, stacklevel=external_stacklevel())


# The largest segment length or dilation rate the op takes (core/options.h, kMaxTokens).
MAX_BRANCH_LENGTH = 1 << 40


_SHORT = reprlib.Repr()
_SHORT.maxlevel, _SHORT.maxstring, _SHORT.maxother = 2, 40, 40


def short_repr(value: object) -> str:
    """repr(value) for a message, bounded: a YAML alias bomb (a few hundred bytes that nest lists
    9^12 deep in references) would otherwise take minutes and gigabytes to print."""
    return _SHORT.repr(value)


def _int_list(name: str, value: object) -> list[int]:
    """A sequence of ints: a list or tuple, or a one-dimensional integer numpy array or tensor
    (as the reference library takes, e.g. np.geomspace(...).astype(int))."""
    if hasattr(value, "ndim") and hasattr(value, "tolist") and not isinstance(value, Sequence):
        if value.ndim != 1:
            raise TypeError(f"{name} must be a one-dimensional list of ints, got a "
                            f"{value.ndim}-dimensional {type(value).__name__}")
        value = value.tolist()
    if isinstance(value, (str, bytes)) or not isinstance(value, Sequence):
        raise TypeError(f"{name} must be a list of ints, got {type(value).__name__}")
    out = []
    for i, x in enumerate(value):
        if isinstance(x, bool) or not isinstance(x, numbers.Integral):
            raise TypeError(f"{name}[{i}] must be an int, got {type(x).__name__} {short_repr(x)}")
        out.append(int(x))
    return out


SYMBOLIC_SHAPES_ADVICE = ("symbolic (dynamic) shapes are not supported; trace or export with "
                          "static shapes (torch.export without dynamic_shapes), or use "
                          "torch.compile, which runs the op on real sizes")


def refuse_symbolic(name: str, value: object) -> None:
    """A symbolic size (a torch.SymInt: torch.export with dynamic_shapes) where a number is
    needed: NotImplementedError, as the op itself raises for symbolic shapes."""
    if isinstance(value, torch.SymInt):
        raise NotImplementedError(f"{name} is the symbolic size {value}: {SYMBOLIC_SHAPES_ADVICE}")


def check_int(name: str, value: object, minimum: int = 1, maximum: Optional[int] = None) -> int:
    """value as an int in [minimum, maximum] (a bool, float or string is a TypeError; a
    symbolic size, NotImplementedError)."""
    refuse_symbolic(name, value)
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise TypeError(f"{name} must be an int, got {type(value).__name__} {short_repr(value)}")
    number = int(value)
    if number < minimum or (maximum is not None and number > maximum):
        allowed = f">= {minimum}" if maximum is None else f"in [{minimum}, {maximum}]"
        raise ValueError(f"{name} = {number} is out of range; it must be {allowed}")
    return number


def check_bool(name: str, value: object) -> bool:
    """value as a bool: True/False or a numpy bool (an int, string or tensor is a TypeError)."""
    if isinstance(value, bool):
        return value
    kind = type(value)
    if kind.__module__ == "numpy" and kind.__name__ in ("bool", "bool_"):
        return bool(value)
    raise TypeError(f"{name} must be True or False, got {kind.__module__}.{kind.__qualname__} "
                    f"{short_repr(value)}")


def _branch_list(name: str, value: object) -> list[int]:
    xs = _int_list(name, value)
    for i, x in enumerate(xs):
        if not 1 <= x <= MAX_BRANCH_LENGTH:
            raise ValueError(f"{name}[{i}] = {x} is out of range; it must be >= 1 and <= "
                             f"{MAX_BRANCH_LENGTH} (2^40, the op's limit)")
    return xs


def check_segment_lengths(segment_lengths: object, name: str = "segment_lengths") -> list[int]:
    """segment_lengths as a non-empty list of ints in [1, 2^40]."""
    w = _branch_list(name, segment_lengths)
    if not w:
        raise ValueError(f"{name} is empty; give at least one branch")
    return w


def check_branches(segment_lengths: object, dilation_rates: object,
                   names: tuple[str, str] = ("segment_lengths", "dilation_rates"),
                   ) -> tuple[list[int], list[int]]:
    """Checks segment_lengths and dilation_rates (lists of ints >= 1 of one length, at least one
    branch) and returns them as lists. Raises TypeError or ValueError naming the argument (as
    `names` spell them: a config's keys, say)."""
    w = check_segment_lengths(segment_lengths, names[0])
    r = _branch_list(names[1], dilation_rates)
    if len(w) != len(r):
        raise ValueError(
            f"{names[0]} {w} and {names[1]} {r} must have the same length (one rate per "
            f"segment length), got {len(w)} and {len(r)}")
    return w, r


FLOAT32_MAX = 3.4028234663852886e38


def to_float(name: str, value: numbers.Real) -> float:
    """float(value), with a ValueError naming `name` where the number is beyond any float (an int
    like 10**400) instead of Python's bare OverflowError."""
    try:
        return float(value)
    except OverflowError:
        raise ValueError(f"{name} = {short_repr(value)} is beyond the range of a float") from None


def check_probability(name: str, p: object) -> float:
    """Checks a dropout probability: a real number in [0, 1). Returns it as a float."""
    if isinstance(p, bool) or not isinstance(p, numbers.Real):
        raise TypeError(f"{name} must be a float in [0, 1), got {type(p).__name__} {short_repr(p)}")
    if not 0.0 <= to_float(name, p) < 1.0:
        raise ValueError(f"{name} must be in [0, 1), got {p}")
    return float(p)


def check_softmax_scale(softmax_scale: object) -> Optional[float]:
    """None, or a finite number within float32's range (the kernels scale in float32), as the
    C++ options accept."""
    if softmax_scale is None:
        return None
    if isinstance(softmax_scale, bool) or not isinstance(softmax_scale, numbers.Real):
        raise TypeError(f"softmax_scale must be a float or None, got "
                        f"{type(softmax_scale).__name__} {short_repr(softmax_scale)}")
    scale = to_float("softmax_scale", softmax_scale)
    if scale != scale:
        raise ValueError(f"softmax_scale = {softmax_scale} must be a finite number, or None for "
                         f"1 / sqrt(head_dim)")
    if abs(scale) > FLOAT32_MAX:
        raise ValueError(f"softmax_scale = {softmax_scale} is beyond float32's range (at most "
                         f"{FLOAT32_MAX:.6g} in absolute value), where the kernels scale")
    return scale


def check_dense(name: str, t: torch.Tensor) -> None:
    """Refuses nested and sparse tensors (TypeError naming `name` and what to pass instead): the
    op and the modules need one dense (strided) tensor, and PyTorch's own errors for these are
    about its internals."""
    if t.is_nested:
        raise TypeError(
            f"{name} is a nested tensor (sequences of different lengths); longnet needs one "
            f"dense tensor: call it once per sequence ({name}.unbind()), or pad the sequences "
            f"to one length with torch.nested.to_padded_tensor({name}, 0.0)")
    if t.layout != torch.strided:
        raise TypeError(f"{name} has layout {t.layout}; longnet needs a dense (torch.strided) "
                        f"tensor: pass {name}.to_dense()")


def check_qkv(query: torch.Tensor, key: torch.Tensor, value: torch.Tensor) -> None:
    """The checks of dilated_attention's tensors that need no kernel: dense, 4 dims, no empty
    dimension, one shape (ValueError), one floating dtype (TypeError), one device (ValueError),
    each naming the tensors, as MultiheadDilatedAttention does. The kernels' own limits (dtypes
    per device, head_dim) are the op's checks."""
    tensors = (("query", query), ("key", key), ("value", value))
    for name, t in tensors:
        if not isinstance(t, torch.Tensor):
            raise TypeError(f"{name} must be a torch.Tensor, got {type(t).__name__}")
        check_dense(name, t)
    for name, t in tensors:
        if t.dim() != 4:
            raise ValueError(f"dilated_attention: {name} must be (batch, seq_len, heads, "
                             f"head_dim), got {t.dim()} dims with shape {tuple(t.shape)}")
        if t.numel() == 0:
            dims = ", ".join(f"{d} = {n}" for d, n in
                             zip(("batch", "seq_len", "heads", "head_dim"), t.shape) if n == 0)
            raise ValueError(f"dilated_attention: {name} has shape {tuple(t.shape)} ({dims}); "
                             f"every dimension must be >= 1")
        if t.dtype not in FLOAT_DTYPES:
            raise TypeError(f"dilated_attention: {name} must be floating point (float32, "
                            f"float64, float16 or bfloat16; float64 on the CPU only), got "
                            f"{t.dtype}")
    if not query.shape == key.shape == value.shape:
        raise ValueError(f"dilated_attention: query, key and value must have the same shape "
                         f"(dilated attention pairs query and key positions), got "
                         f"{tuple(query.shape)}, {tuple(key.shape)}, {tuple(value.shape)}")
    if not query.dtype == key.dtype == value.dtype:
        raise TypeError(f"dilated_attention: query, key and value must have one dtype, got "
                        f"{query.dtype}, {key.dtype}, {value.dtype}; convert them with "
                        f".to({query.dtype})")
    if not query.device == key.device == value.device:
        raise ValueError(f"dilated_attention: query, key and value must be on one device, got "
                         f"{query.device}, {key.device}, {value.device}; move them with "
                         f".to({str(query.device)!r})")


def _under_vmap() -> bool:
    """Whether a torch.func.vmap is active (also around grad: vmap(grad(f)) wraps the batched
    tensors in grad's, so the tensors alone do not tell)."""
    try:
        from torch._C._functorch import TransformType
        from torch._functorch.pyfunctorch import retrieve_all_functorch_interpreters
    except ImportError:  # another torch: the tensors' own flag
        return False
    return any(i.key() == TransformType.Vmap for i in retrieve_all_functorch_interpreters())


def dilated_attention(query: torch.Tensor, key: torch.Tensor, value: torch.Tensor,
                      segment_lengths: IntSequence, dilation_rates: IntSequence,
                      is_causal: bool = False, softmax_scale: Optional[float] = None,
                      dropout_p: float = 0.0) -> torch.Tensor:
    """LongNet dilated attention, exactly (docs/design.md section 2):
    torch.ops.longnet.dilated_attention.

    query, key, value: (batch, seq_len, heads, head_dim), one shape, dtype and device (CPU
    float32 and float64, float16, bfloat16; float64 on the CPU only). Returns (batch, seq_len,
    heads, head_dim). segment_lengths and dilation_rates: sequences of ints of one length (lists,
    tuples, or one-dimensional integer numpy arrays or tensors).

    Branch i splits the sequence into segments of segment_lengths[i] tokens (the last may be
    shorter; any seq_len works) and head j attends within its segment to the rows at offset
    j mod dilation_rates[i], step dilation_rates[i]. All branches share one softmax (a key that
    two branches select counts twice); rows no branch selects are 0. is_causal hides later keys;
    softmax_scale defaults to 1/sqrt(head_dim).

    dropout_p drops attention weights (always, when > 0: pass 0 in evaluation), with a mask
    drawn per branch: each branch's share of a weight (exp(score) / the shared denominator) is
    kept and scaled by 1/(1 - dropout_p), or dropped, with probability dropout_p, on its own
    draw. A key one branch selects is kept or dropped as usual; a key two branches select is
    kept whole, halved (one copy dropped) or dropped (both). The result is unbiased (its mean
    over draws is the output without dropout), but it is not one mask per query-key weight (as
    dropout applied to the final attention matrix would draw): a key selected twice is dropped
    whole with probability dropout_p ** 2, not dropout_p.

    Differentiable with exact gradients for query, key and value. Nested and sparse tensors are
    refused (TypeError), as are empty dimensions and shapes that differ (ValueError), and
    symbolic shapes (NotImplementedError). Scores are computed in float32 for float32, float16
    and bfloat16 inputs: softmax_scale times the largest |q . k| must stay below float32's
    maximum (3.4e38), or those rows are NaN, as with torch's scaled_dot_product_attention;
    float64 inputs compute in float64.
    """
    check_qkv(query, key, value)
    w, r = check_branches(segment_lengths, dilation_rates)
    is_causal = check_bool("is_causal", is_causal)
    softmax_scale = check_softmax_scale(softmax_scale)
    p = check_probability("dropout_p", dropout_p)
    load_library()
    return _op_call(query, key, value, w, r, is_causal, softmax_scale, p)


@torch.compiler.disable
def _op_call(query: torch.Tensor, key: torch.Tensor, value: torch.Tensor, w: list[int],
             r: list[int], is_causal: bool, softmax_scale: Optional[float],
             p: float) -> torch.Tensor:
    """The op, which torch.compile runs as in eager mode (_keep_out_of_compiled_graphs): the
    graph ends at this call, without Dynamo's warning about a builtin it cannot trace. The vmap
    check is here too, run eagerly: traced, its look at functorch's interpreter stack is such a
    builtin."""
    if p > 0 and _under_vmap():
        # (vmap runs the op once per entry, and the masks would ignore its randomness setting)
        raise NotImplementedError(
            "dilated_attention: dropout_p > 0 under torch.func.vmap is not supported (the masks "
            "would not follow vmap's randomness setting); vmap with dropout_p=0 (in eval), or "
            "loop over the batch")
    return torch.ops.longnet.dilated_attention(query, key, value, w, r, is_causal,
                                               softmax_scale, p)
