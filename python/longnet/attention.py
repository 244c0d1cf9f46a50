"""DilatedAttention and MultiheadDilatedAttention: the reference Python library's modules
(dilated-attention-pytorch) with longnet's exact attention (the op) and core/'s MAGNETO layout:
q/k/v projections, xPos on q and k, dilated attention, sub-LayerNorm, out_proj.

Positional order: MultiheadDilatedAttention follows the reference library,
(embed_dim, num_heads, dilation_rates, segment_lengths, ...), which is the reverse of the C++
class (segments first). A positional call whose dilation_rates look like segment lengths (a rate
larger than its segment) warns, since that is what a call in the C++ order looks like; keyword
calls never warn.
"""

from __future__ import annotations

import functools
import inspect
import math
import numbers
import warnings
from typing import Any, Callable, Dict, Optional, Tuple, TypeVar

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from longnet._ops import (FLOAT_DTYPES, DeviceArg, IntSequence, check_bool, check_branches,
                          check_dense, check_int, check_probability, check_softmax_scale,
                          device_move_hint, dilated_attention, external_stacklevel, short_repr,
                          to_float)
from longnet.xpos import XPos, xpos_precision_check, xpos_range_check

_F = TypeVar("_F", bound=Callable[..., Any])

# The most elements one weight matrix may have (embed_dim * embed_dim, d_model *
# dim_feedforward, num_tokens * d_model). Far larger sizes reach PyTorch as a storage-size
# overflow or a failed allocation of terabytes, messages that do not name the argument.
MAX_WEIGHT_ELEMENTS = 2**31


def _check_int(name: str, value: object, minimum: int = 1,
               maximum: Optional[int] = None) -> int:
    return check_int(name, value, minimum, maximum)


def _check_dtype(owner: str, dtype: object) -> None:
    """Parameters are trained: a dtype must be a floating-point torch.dtype (or None)."""
    if dtype is None:
        return
    if not isinstance(dtype, torch.dtype) or dtype not in FLOAT_DTYPES:
        raise TypeError(f"{owner}: dtype = {dtype!r}; parameters need a floating-point "
                        f"torch.dtype (torch.float32, torch.bfloat16, torch.float16, "
                        f"torch.float64) or None")


def _check_positive(name: str, value: object) -> float:
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise TypeError(f"{name} must be a float, got {type(value).__name__} {short_repr(value)}")
    if not (math.isfinite(to_float(name, value)) and float(value) > 0):
        raise ValueError(f"{name} = {value} must be a finite number > 0")
    return float(value)


FLOAT32_TINY = 1.1754943508222875e-38  # FLT_MIN: layer_norm_eps must not be 0 in float32


def _check_layer_norm_eps(value: object) -> float:
    eps = _check_positive("layer_norm_eps", value)
    if not FLOAT32_TINY <= eps <= 1:
        raise ValueError(f"layer_norm_eps = {value} must be in [{FLOAT32_TINY:.6g}, 1] (it must "
                         "not be 0 in float32, where LayerNorm computes)")
    return eps


def _prefix(owner: str) -> str:
    """"OWNER: " to start a message with, or nothing for owner "" (a config's keys need none)."""
    return f"{owner}: " if owner else ""


def _check_weight_size(owner: str, rows_name: str, rows: int, cols_name: str, cols: int) -> None:
    """Refuses a (rows, cols) weight of more than MAX_WEIGHT_ELEMENTS elements, before PyTorch
    allocates it; the message names both sizes and the largest that works."""
    if rows * cols <= MAX_WEIGHT_ELEMENTS:
        return
    if rows_name == cols_name:
        sizes = f"{rows_name} = {rows} makes a weight of {rows_name} * {rows_name}"
        fix = f"{rows_name} <= {math.isqrt(MAX_WEIGHT_ELEMENTS)} works"
    else:
        sizes = f"{rows_name} = {rows} and {cols_name} = {cols} make a weight of {rows} * {cols}"
        fix = f"{rows_name} <= {MAX_WEIGHT_ELEMENTS // cols} works with {cols_name} = {cols}"
    raise ValueError(f"{_prefix(owner)}{sizes} = {rows * cols} elements, more than the 2**31 "
                     f"one weight may have; {fix}")


def _autocast_enabled(device_type: str) -> bool:
    try:
        return bool(torch.is_autocast_enabled(device_type))
    except TypeError:  # torch < 2.4: no device argument
        if device_type == "cpu":
            return bool(torch.is_autocast_cpu_enabled())
        return device_type == "cuda" and bool(torch.is_autocast_enabled())


def check_input(owner: str, name: str, x: object, width_name: str, width: int,
                like: Optional[Tensor]) -> None:
    """x must be a dense (batch, seq_len, width) floating tensor with batch, seq_len >= 1, on
    the device of `like` (one of the module's parameters) and of its dtype; under autocast the
    dtype may differ (autocast casts per op). like=None (a module with no floating parameter
    left, e.g. every Linear quantized) checks the shape and that x is floating. Raises TypeError
    or ValueError naming `name`, what it got and what would work."""
    if not isinstance(x, Tensor):
        raise TypeError(f"{owner}: {name} must be a torch.Tensor, got {type(x).__name__}")
    check_dense(name, x)
    shape = tuple(x.shape)
    if x.dim() != 3 or x.size(2) != width:
        raise ValueError(f"{owner}: {name} must be (batch, seq_len, {width_name} = {width}); "
                         f"got {shape}")
    if x.size(0) == 0 or x.size(1) == 0:
        which = " and ".join(d for d, n in zip(("batch", "seq_len"), shape) if n == 0)
        raise ValueError(f"{owner}: {name} has shape {shape} ({which} = 0); batch and seq_len "
                         f"must be >= 1")
    if like is None:
        if x.dtype not in FLOAT_DTYPES:
            raise TypeError(f"{owner}: {name} must be floating point, got {x.dtype}")
        return
    if x.device != like.device:
        raise ValueError(f"{owner}: {name} is on {x.device} but the module's parameters are on "
                         f"{like.device}; {device_move_hint('module', x.device, like.device)}"
                         + ("" if like.device.type == "meta" else
                            f" or the input ({name}.to({str(like.device)!r}))"))
    if x.dtype not in FLOAT_DTYPES:
        raise TypeError(f"{owner}: {name} must be floating point like the module's parameters "
                        f"({like.dtype}), got {x.dtype}; pass {name}.to({like.dtype})")
    # (autocast casts float32 per op, never float64: a float64 input or module stays one)
    if x.dtype != like.dtype and (not _autocast_enabled(x.device.type) or
                                  torch.float64 in (x.dtype, like.dtype)):
        raise TypeError(f"{owner}: {name} is {x.dtype} but the module's parameters are "
                        f"{like.dtype}; convert the module (module.to({x.dtype})) or the input "
                        f"({name}.to({like.dtype}))")


def _warn_positional_swap(init: _F) -> _F:
    """Wraps MultiheadDilatedAttention.__init__: warns when dilation_rates and segment_lengths
    came positionally and some rate exceeds its segment length (a call in the C++ order)."""
    signature = inspect.signature(init)
    names = list(signature.parameters)
    rates_at, segments_at = names.index("dilation_rates"), names.index("segment_lengths")

    @functools.wraps(init)
    def wrapper(self: Any, *args: Any, **kwargs: Any) -> None:
        # args exclude self: parameter p is positional iff its index - 1 < len(args)
        if len(args) >= max(rates_at, segments_at):
            rates, segments = args[rates_at - 1], args[segments_at - 1]
            # Only sequences are looked at (a generator would be used up here, and the
            # constructor refuses it and strings itself).
            sequences = all(not isinstance(x, (str, bytes)) and hasattr(x, "__len__") and
                            hasattr(x, "__getitem__") for x in (rates, segments))
            try:
                swapped = sequences and any(int(r) > int(w) for r, w in zip(rates, segments))
            except (TypeError, ValueError):
                swapped = False  # the constructor's own checks will say what is wrong
            if swapped:
                warnings.warn(
                    f"MultiheadDilatedAttention takes (embed_dim, num_heads, dilation_rates, "
                    f"segment_lengths) in the reference library's order (C++ takes segments "
                    f"first); got dilation_rates={[int(r) for r in rates]} and segment_lengths="
                    f"{[int(w) for w in segments]}, where a rate exceeds its segment length. If "
                    f"these are swapped, pass them by keyword.", UserWarning,
                    stacklevel=external_stacklevel())
        init(self, *args, **kwargs)

    return wrapper  # type: ignore[return-value]


def _traced_itself(module: nn.Module) -> bool:
    """Whether torch.jit.trace is tracing this very module (not a module or function around
    it), read from the trace's module map (private to torch: False where it is missing)."""
    if not torch.jit.is_tracing():
        return False
    try:
        from torch.jit import _trace
    except ImportError:  # another torch: PyTorch's own error follows
        return False
    modules = getattr(_trace, "_trace_module_map", None)  # None when a function is traced
    return isinstance(modules, dict) and modules.get("__module") is module


def _not_scriptable(self: Any = None) -> nn.Module:
    """torch.jit.script calls this first (__prepare_scriptable__; on a class, unbound): refused
    with what works."""
    name = type(self).__name__ if isinstance(self, nn.Module) else "longnet's modules"
    raise RuntimeError(
        f"torch.jit.script cannot compile {name}: the dilated attention op takes "
        "Python lists of segment lengths and rates, which TorchScript does not type; run it "
        "eagerly, with torch.compile, or export it with torch.export")


# Hook tables of torch.nn.Module that apply to every module (private to torch: names it lacks
# count as empty).
_GLOBAL_HOOKS = ("_global_forward_hooks", "_global_forward_pre_hooks", "_global_backward_hooks",
                 "_global_backward_pre_hooks")
_MODULE_HOOKS = ("_forward_hooks", "_forward_pre_hooks", "_backward_hooks", "_backward_pre_hooks")


def _plain_linears(*modules: nn.Module) -> bool:
    """Whether the modules may be bypassed by one F.linear of their concatenated weights: each
    exactly nn.Linear with no hook of its own and none global. Anything else is called as the
    module it is so that it takes effect: a LoRA/PEFT wrapper or a dynamically quantized Linear
    in its place, torch.nn.utils.prune's pre-hook (it recomputes the weight at each call; the
    weight read before the call would be the last call's, whose graph is freed), parametrize,
    a forward hook."""
    from torch.nn.modules import module as module_globals
    if any(getattr(module_globals, name, None) for name in _GLOBAL_HOOKS):
        return False
    return all(type(m) is nn.Linear and not any(getattr(m, name, None) for name in _MODULE_HOOKS)
               for m in modules)


class DilatedAttention(nn.Module):
    """LongNet dilated attention over (batch, seq_len, heads, head_dim) tensors.

    The reference library's DilatedAttention(segment_lengths, dilation_rates, softmax_scale=None,
    attention_dropout=0.0), computed exactly (see longnet.dilated_attention): per-head offsets
    j mod r, any sequence length, rates that need not divide their segments, any number of heads,
    one softmax over all branches. segment_lengths and dilation_rates: sequences of ints (lists,
    tuples, one-dimensional integer numpy arrays or tensors). softmax_scale defaults to
    1/sqrt(head_dim). attention_dropout applies in training mode only, with a mask drawn per
    branch (longnet.dilated_attention says how that differs from one mask per attention
    weight: a key two branches select is kept, halved or dropped; unbiased). `op` (the
    reference's xformers operator) is accepted for compatibility and ignored with a warning.
    """

    def __init__(self, segment_lengths: IntSequence, dilation_rates: IntSequence,
                 softmax_scale: Optional[float] = None, attention_dropout: float = 0.0,
                 op: Optional[Any] = None) -> None:
        super().__init__()
        self.segment_lengths, self.dilation_rates = check_branches(segment_lengths,
                                                                   dilation_rates)
        self.softmax_scale: Optional[float] = check_softmax_scale(softmax_scale)
        self.dropout_p = check_probability("attention_dropout", attention_dropout)
        if op is not None:
            warnings.warn(f"{type(self).__name__}: `op` (an xformers operator in the reference "
                          f"library) is ignored; longnet picks its own kernels", UserWarning,
                          stacklevel=external_stacklevel())

    def forward(self, query: Tensor, key: Tensor, value: Tensor,
                is_causal: bool = False) -> Tensor:
        """query, key, value: (batch, seq_len, heads, head_dim) -> (batch, seq_len, heads,
        head_dim)."""
        return dilated_attention(query, key, value, self.segment_lengths, self.dilation_rates,
                                 is_causal, self.softmax_scale,
                                 self.dropout_p if self.training else 0.0)

    def extra_repr(self) -> str:
        return (f"segment_lengths={self.segment_lengths}, dilation_rates={self.dilation_rates}, "
                f"softmax_scale={self.softmax_scale}, attention_dropout={self.dropout_p}")

    __prepare_scriptable__ = _not_scriptable


def _heads_that_work(embed_dim: int, wanted: int, width_name: str = "embed_dim",
                     heads_name: str = "num_heads") -> str:
    ok = [h for h in range(1, embed_dim + 1) if embed_dim % h == 0 and (embed_dim // h) % 8 == 0]
    if not ok:
        return (f"no {heads_name} works: {width_name} must be a multiple of 8 (e.g. "
                f"{-(-embed_dim // 8) * 8})")
    ok = sorted(sorted(ok, key=lambda h: abs(h - wanted))[:4])
    return f"{heads_name} in {{" + ", ".join(f"{h} (head dim {embed_dim // h})" for h in ok) + \
        "} would work"


def check_heads(owner: str, width_name: str, width: int, heads_name: str, heads: object) -> int:
    """heads (an int >= 1) must divide width with a head dim that is a multiple of 8 (the fast
    kernels need it). Returns the head dim; raises naming the caller's own arguments."""
    heads = _check_int(heads_name, heads)
    if width % heads:
        raise ValueError(f"{_prefix(owner)}{width_name} = {width} is not divisible by "
                         f"{heads_name} = {heads}; "
                         f"{_heads_that_work(width, heads, width_name, heads_name)}")
    head_dim = width // heads
    if head_dim % 8:
        raise ValueError(f"{_prefix(owner)}head dim = {width_name} / {heads_name} = {width} / "
                         f"{heads} = {head_dim} must be a multiple of 8 (the fast kernels need "
                         f"it); {_heads_that_work(width, heads, width_name, heads_name)}")
    return head_dim


class MultiheadDilatedAttention(nn.Module):
    """Multi-head dilated attention with MAGNETO's sub-LayerNorm and init (core/'s
    MultiheadDilatedAttention, parameter for parameter).

    Arguments are the reference library's, in its order: embed_dim, num_heads, dilation_rates,
    segment_lengths (NB: the C++ class takes segment_lengths first; pass them by keyword to be
    safe; sequences of ints, numpy arrays or tensors), dropout (attention dropout, training
    only, with a mask drawn per branch: see longnet.dilated_attention), bias, layer_norm (the
    sub-LN over embed_dim before out_proj), layer_norm_eps, gamma_init (xavier_normal_ gain of
    v_proj and out_proj; q_proj and k_proj get 1; biases start at 0), device, dtype, op
    (ignored).
    Keyword-only: xpos (default True: rotate q and k with xPos, as the C++ models do; the
    reference has no position encoding here). Without the causal mask xPos amplifies the score
    of a key d tokens after its query by up to 3.5^(d/512), which costs precision: past half of
    the dtype's significant bits (a largest segment above 3,400 tokens in float32, 1,134 in
    bfloat16) forward warns once (longnet.xpos.xpos_precision_check).

    embed_dim must be divisible by num_heads with a head dim that is a multiple of 8 (the fast
    kernels need it); any number of heads works with any number of branches. Each weight has
    embed_dim * embed_dim elements, at most 2**31 (embed_dim <= 46340).

    forward(query, key, value, is_causal=False) takes (batch, seq_len, embed_dim) tensors (key and
    value hold the same positions as query: dilated attention pairs them) and returns
    (output, None) like the reference library (and nn.MultiheadAttention without weights).
    Parameters: q_proj, k_proj, v_proj, norm (when layer_norm), out_proj.

    torch.jit.trace cannot take this module itself (it records tensors, not the None of
    (output, None)), nor xPos (its scales depend on the length); with xpos=False it traces
    inside a module whose forward returns the output alone. torch.compile and static-shape
    torch.export work with either.
    """

    @_warn_positional_swap
    def __init__(self, embed_dim: int, num_heads: int, dilation_rates: IntSequence,
                 segment_lengths: IntSequence, dropout: float = 0.0, bias: bool = True,
                 layer_norm: bool = True, layer_norm_eps: float = 1e-5, gamma_init: float = 1.0,
                 device: DeviceArg = None,
                 dtype: Optional[torch.dtype] = None, op: Optional[Any] = None, *,
                 xpos: bool = True) -> None:
        super().__init__()
        _check_dtype("MultiheadDilatedAttention", dtype)
        embed_dim = _check_int("embed_dim", embed_dim)
        num_heads = _check_int("num_heads", num_heads)
        _check_weight_size("MultiheadDilatedAttention", "embed_dim", embed_dim, "embed_dim",
                           embed_dim)
        head_dim = check_heads("MultiheadDilatedAttention", "embed_dim", embed_dim, "num_heads",
                               num_heads)
        self.embed_dim, self.num_heads, self.head_dim = embed_dim, num_heads, head_dim
        dropout = check_probability("dropout", dropout)
        bias = check_bool("bias", bias)
        self.layer_norm = check_bool("layer_norm", layer_norm)
        self.gamma_init = _check_positive("gamma_init", gamma_init)
        layer_norm_eps = _check_layer_norm_eps(layer_norm_eps)
        factory: Dict[str, Any] = {"device": device, "dtype": dtype}
        self.q_proj = nn.Linear(embed_dim, embed_dim, bias=bias, **factory)
        self.k_proj = nn.Linear(embed_dim, embed_dim, bias=bias, **factory)
        self.v_proj = nn.Linear(embed_dim, embed_dim, bias=bias, **factory)
        self.norm: Optional[nn.LayerNorm] = (
            nn.LayerNorm(embed_dim, eps=layer_norm_eps, **factory) if layer_norm else None)
        self.out_proj = nn.Linear(embed_dim, embed_dim, bias=bias, **factory)
        if op is not None:
            warnings.warn("MultiheadDilatedAttention: `op` (an xformers operator in the reference "
                          "library) is ignored; longnet picks its own kernels", UserWarning,
                          stacklevel=external_stacklevel())
        self.attention = DilatedAttention(segment_lengths, dilation_rates,
                                          attention_dropout=dropout)
        self.xpos: Optional[XPos] = XPos(head_dim) if check_bool("xpos", xpos) else None
        self._reset_parameters()

    @property
    def segment_lengths(self) -> list[int]:
        """The branches' segment lengths."""
        return self.attention.segment_lengths

    @property
    def dilation_rates(self) -> list[int]:
        """The branches' dilation rates."""
        return self.attention.dilation_rates

    def _reset_parameters(self) -> None:
        """MAGNETO init: xavier_normal_ with gain 1 (q, k) and gamma_init (v, out), zero biases."""
        with torch.no_grad():
            for lin, gain in ((self.q_proj, 1.0), (self.k_proj, 1.0), (self.v_proj, self.gamma_init),
                              (self.out_proj, self.gamma_init)):
                nn.init.xavier_normal_(lin.weight, gain=gain)
                if lin.bias is not None:
                    lin.bias.zero_()
            if self.norm is not None:
                self.norm.reset_parameters()

    @property
    def dropout(self) -> float:
        """Attention dropout probability (in training); the attention reads it at every call,
        so setting it takes effect as nn.MultiheadAttention's does."""
        return self.attention.dropout_p

    @dropout.setter
    def dropout(self, p: float) -> None:
        self.attention.dropout_p = check_probability("dropout", p)

    __prepare_scriptable__ = _not_scriptable

    def forward(self, query: Tensor, key: Tensor, value: Tensor,
                is_causal: bool = False) -> Tuple[Tensor, None]:
        """query, key, value: (batch, seq_len, embed_dim), the same positions. Returns
        (output (batch, seq_len, embed_dim), None). The inputs must be dense, with batch and
        seq_len >= 1, on the parameters' device and (outside autocast) of their dtype."""
        for name, t in (("query", query), ("key", key), ("value", value)):
            check_input("MultiheadDilatedAttention", name, t, "embed_dim", self.embed_dim,
                        self._input_like())
        if key.shape != query.shape or value.shape != query.shape:
            raise ValueError(f"MultiheadDilatedAttention: query, key and value must have the same "
                             f"shape (dilated attention pairs query and key positions); got "
                             f"{tuple(query.shape)}, {tuple(key.shape)}, {tuple(value.shape)}")
        is_causal = check_bool("is_causal", is_causal)
        if self.xpos is None and _traced_itself(self):
            raise RuntimeError(
                "torch.jit.trace cannot record MultiheadDilatedAttention itself: its forward "
                "returns (output, None), and a trace records tensors only. Trace a module whose "
                "forward returns the output alone (e.g. `return self.attn(q, k, v)[0]`), or use "
                "torch.compile, or torch.export with static shapes")
        B, N, H, D = query.size(0), query.size(1), self.num_heads, self.head_dim
        if (query is key and key is value and not torch.jit.is_tracing() and
                _plain_linears(self.q_proj, self.k_proj, self.v_proj)):
            # Self-attention: one GEMM for q, k and v, as the C++ module does. (Not in a
            # torch.jit.trace: the trace would keep this branch for inputs that differ.)
            w = torch.cat([self.q_proj.weight, self.k_proj.weight, self.v_proj.weight])
            b = None if self.q_proj.bias is None else torch.cat(
                [self.q_proj.bias, self.k_proj.bias, self.v_proj.bias])
            q, k, v = F.linear(query, w, b).view(B, N, 3, H, D).unbind(2)
        else:
            q = self.q_proj(query).reshape(B, N, H, D)
            k = self.k_proj(key).reshape(B, N, H, D)
            v = self.v_proj(value).reshape(B, N, H, D)
        if self.xpos is not None:
            # (without the causal mask q' . k' spans a whole block of xPos scales; under
            # autocast q is of autocast's dtype, and the advice names it)
            xpos_range_check(N, self.segment_lengths, q.dtype, self.xpos.scale_base,
                             causal=is_causal,
                             autocast_from=query.dtype if query.dtype != q.dtype else None)
            xpos_precision_check(N, self.segment_lengths, q.dtype, self.xpos.scale_base,
                                 causal=is_causal)
            q, k = self.xpos(q, k, self.segment_lengths)
        x = self.attention(q, k, v, is_causal=is_causal).reshape(B, N, self.embed_dim)
        if self.norm is not None:
            x = self.norm(x)
        return self.out_proj(x), None

    def _input_like(self) -> Optional[Tensor]:
        """The tensor whose device and dtype the inputs must have: q_proj's weight, or where
        q_proj was replaced by a module without a floating weight tensor (a dynamically quantized
        Linear's weight is a method returning int8), the first floating parameter; None when
        there is none (the projections then check their inputs themselves)."""
        weight = getattr(self.q_proj, "weight", None)
        if isinstance(weight, Tensor) and weight.is_floating_point():
            return weight
        return next((p for p in self.parameters() if p.is_floating_point()), None)
