"""xPos relative positions for q and k, computed as core/xpos.cpp does, so that the Python models
give the C++ models' numbers.

xPos (Sun et al. 2022) rotates each interleaved pair i of q_n and k_m by n * theta_i
(theta_i = 10000^(-2i/D)) and scales it by zeta_i^(+n/512) for q and zeta_i^(-n/512) for k,
zeta_i = (2i + 0.4 D) / (1.4 D). q_n . k_m then depends only on n - m, so n may be replaced by
n - c for any c that the two tokens share. longnet uses c = the centre of the token's block of W
tokens, W the largest segment length clipped to N when every clipped segment length divides it
(every segment of every branch lies inside one block), else c = N / 2 for all tokens. Then
|n - c| <= W / 2 and the scales stay finite in float32 and bfloat16 at any N. Tables are built in
float64 and cast to the rotation's dtype (float64 for float64 inputs, else float32).
"""

from __future__ import annotations

import math
import warnings
from typing import Optional, Set, Tuple

import torch
from torch import Tensor, nn

from longnet._ops import (IntSequence, check_int, check_segment_lengths, compiling,
                          external_stacklevel)

SCALE_BASE = 512


def xpos_block_length(global_len: int, segment_lengths: IntSequence) -> int:
    """The block length W of the reference position (largest segment length clipped to
    global_len), or 0 when the clipped segment lengths do not all divide it."""
    global_len = check_int("xPos: global_len", global_len)
    clipped = [min(w, global_len) for w in check_segment_lengths(segment_lengths)]
    W = max(clipped)
    return W if all(W % w == 0 for w in clipped) else 0


def xpos_local_positions(position_offset: int, n_local: int, global_len: int,
                         segment_lengths: IntSequence,
                         device: Optional[torch.device] = None) -> Tensor:
    """n - c for global tokens position_offset .. position_offset + n_local - 1 of a sequence of
    global_len tokens: (n_local,) float64."""
    position_offset = check_int("xPos: position_offset", position_offset, minimum=0)
    n_local = check_int("xPos: n_local", n_local, minimum=0)
    global_len = check_int("xPos: global_len", global_len)
    if not (position_offset >= 0 and n_local >= 0 and position_offset + n_local <= global_len):
        raise ValueError(f"xPos: local tokens [{position_offset}, {position_offset + n_local}) "
                         f"must lie inside the global sequence [0, {global_len})")
    W = xpos_block_length(global_len, segment_lengths)
    # Integer maths until the subtraction, as the C++ does.
    n = torch.arange(position_offset, position_offset + n_local, dtype=torch.long, device=device)
    local = n - (torch.div(n, W, rounding_mode="floor") * W + W // 2) if W > 0 else \
        n - global_len // 2
    return local.to(torch.float64)


def xpos_tables(local: Tensor, head_dim: int, scale_base: int,
                dtype: torch.dtype) -> Tuple[Tensor, Tensor, Tensor, Tensor]:
    """(cos_q, sin_q, cos_k, sin_k), each (n_local, head_dim/2) in dtype, from local positions
    (n_local,) float64: cos and sin of the angle times zeta^(+l/scale_base) (q) or
    zeta^(-l/scale_base) (k)."""
    D = head_dim
    i2 = torch.arange(0, D, 2, dtype=torch.float64, device=local.device)  # 2i
    theta = torch.pow(10000.0, -i2 / float(D))
    log_zeta = torch.log((i2 + 0.4 * D) / (1.4 * D))
    angle = local.unsqueeze(1) * theta.unsqueeze(0)
    log_scale = local.unsqueeze(1) / float(scale_base) * log_zeta
    up, down = torch.exp(log_scale), torch.exp(-log_scale)
    c, s = torch.cos(angle), torch.sin(angle)
    return (c * up).to(dtype), (s * up).to(dtype), (c * down).to(dtype), (s * down).to(dtype)


def xpos_rotate(x: Tensor, cos: Tensor, sin: Tensor) -> Tensor:
    """Rotates and scales each interleaved pair (x0, x1) of x (B, N, H, D) by the tables
    (N, D/2), in the tables' dtype; returns x's dtype."""
    N, half = x.size(1), x.size(3) // 2
    pairs = x.to(cos.dtype).unflatten(-1, (half, 2))
    x0, x1 = pairs.select(-1, 0), pairs.select(-1, 1)
    c, s = cos.view(1, N, 1, half), sin.view(1, N, 1, half)
    return torch.stack([x0 * c - x1 * s, x1 * c + x0 * s], -1).flatten(-2).to(x.dtype)


def xpos_range_check(global_len: int, segment_lengths: IntSequence, dtype: torch.dtype,
                     scale_base: int = SCALE_BASE, causal: bool = True,
                     autocast_from: Optional[torch.dtype] = None) -> None:
    """Raises ValueError unless xPos's scales for a sequence of global_len tokens,
    zeta_0^(-+|n - c| / scale_base) up to the largest |n - c| (half the largest segment, or half
    the sequence when the segment lengths do not nest), stay well inside the range dtype computes
    in (float16 itself; bfloat16 and float32 in float32; float64): beyond it keys overflow to
    inf and queries vanish, silently. Without the causal mask a query also reads keys after it
    and q' . k' spans the whole block (reach: the block less one). Mirrors the C++ check.
    autocast_from: the inputs' dtype when autocast cast them to dtype (the advice is then about
    autocast's dtype, not the inputs'). A symbolic global_len (torch.export with dynamic shapes)
    is a NotImplementedError, as in the op; torch.jit.trace is refused (RuntimeError)."""
    if torch.jit.is_tracing():  # (the length would come as a tensor, and be fixed in the trace)
        raise RuntimeError(
            "torch.jit.trace cannot record xPos: its scales depend on the sequence length, which "
            "a trace would fix to the example's, giving wrong results at other lengths; use "
            "torch.compile, or torch.export with static shapes (the exported program then "
            "takes the example's length only). Without xPos (xpos=False) a "
            "MultiheadDilatedAttention traces inside a module whose forward returns its "
            "output alone (torch.jit.trace records tensors, not its (output, None))")
    scale_base = check_int("xPos: scale_base", scale_base)
    if not isinstance(causal, bool):
        raise TypeError(f"xPos: causal must be a bool, got {type(causal).__name__}")
    W = xpos_block_length(global_len, segment_lengths)
    span = W if W > 0 else global_len
    reach = span // 2 if causal else span - 1
    half, f64 = dtype == torch.float16, dtype == torch.float64
    limit = 1e3 if half else 1e300 if f64 else 1e36
    log_zeta = math.log(1.4 / 0.4)
    log_top = reach / scale_base * log_zeta
    if log_top < math.log(limit):
        return
    rng = ("float16's range (max 65504)" if half else "float64's range" if f64 else
           "float32's range")
    max_reach = math.floor(math.log(limit) / log_zeta * scale_base)
    longest = 2 * max_reach + 1 if causal else max_reach + 1
    if half and log_top < math.log(1e36):  # float32's range would hold them
        fix = ("torch.autocast with dtype=torch.bfloat16, or no autocast (autocast casts the "
               f"{autocast_from} inputs to float16 here)"
               if autocast_from is not None and autocast_from != dtype else
               "bfloat16 or float32 inputs")
    else:
        fix = (f"segment lengths that each divide the largest, the largest at most {longest} "
               f"tokens")
    at = (f"local position +-{reach}" if causal else
          f"a distance of {reach} tokens (attention is not causal: a query reads keys after it)")
    where = (f"the largest segment is {W}" if W > 0 else
             "the segment lengths do not each divide the largest: the whole sequence shares one "
             "reference")
    raise ValueError(f"xPos: the scales reach 10^{int(log_top / math.log(10))} at {at} for a "
                     f"sequence of {global_len} tokens with these segment lengths ({where}), "
                     f"beyond {rng}: keys would overflow and queries vanish. Use {fix}")


# Significant bits (the implicit one included) of the dtypes q' and k' are stored in.
_SIGNIFICAND_BITS = {torch.bfloat16: 8, torch.float16: 11, torch.float32: 24, torch.float64: 53}
# (segment lengths, scale_base, dtype) already warned about by xpos_precision_check.
_precision_warned: Set[Tuple[Tuple[int, ...], int, torch.dtype]] = set()


def xpos_precision_check(global_len: int, segment_lengths: IntSequence, dtype: torch.dtype,
                         scale_base: int = SCALE_BASE, causal: bool = True,
                         owner: str = "MultiheadDilatedAttention") -> None:
    """Warns (UserWarning, once per segment lengths, scale_base and dtype in a process) when
    attention without the causal mask amplifies xPos scores past what dtype keeps accurate.

    q'_n . k'_m scales pair i of the head dim by zeta_i^((n - m) / scale_base), zeta_0 = 1/3.5:
    a key d tokens after its query has its first pair's term amplified by up to
    A = 3.5^(d / scale_base) against the scores of nearby keys; d reaches the largest segment
    (clipped to global_len) less one. q' and k' are stored with p significant bits, so that
    term's rounding, 2^-p of its size, is 2^-p * A of a typical score, and the softmax passes
    it on to outputs and gradients. Warned past A = 2^(p/2), where fewer than half of dtype's
    bits remain: above 3,400 tokens in float32, 1,134 in bfloat16, 1,559 in float16, 7,508 in
    float64 (scale_base 512). Measured max relative errors against float64 (CPU) follow
    2^-p * A / 4 until the softmax saturates: float32 without the mask 2e-5 at 3,072 tokens
    (A = 2^10.8), 3e-4 at 4,096 (2^14.5), 4e-3 at 5,120, 1e-2 (gradients 0.25) at 8,192, against
    7e-7 with it; bfloat16 2.5e-2 at 1,024 (2^3.6), 6e-2 at 1,536, 0.24 at 2,048, 1 from 3,072,
    against 1.3e-2 with it. A causal query reads no key after it (A <= 1): never warned."""
    if causal:
        return
    bits = _SIGNIFICAND_BITS.get(dtype)
    if bits is None:
        return
    segments = tuple(check_segment_lengths(segment_lengths))
    reach = min(max(segments), global_len) - 1
    log2_amp = reach / scale_base * math.log2(1.4 / 0.4)
    if log2_amp <= bits / 2:
        return
    key = (segments, scale_base, dtype)
    if key in _precision_warned:
        return
    # (Under torch.compile Dynamo guards on the set, so a compiled model warns once too; it
    # cannot trace external_stacklevel's walk of the frames.)
    _precision_warned.add(key)
    stacklevel = 2 if compiling(dynamo_only=True) else external_stacklevel()
    longest = math.floor(bits / 2 * scale_base / math.log2(1.4 / 0.4)) + 1
    name = str(dtype).replace("torch.", "")
    warnings.warn(
        f"{owner}: attention without the causal mask with xPos scales the score of a key d "
        f"tokens after its query by up to 3.5^(d/{scale_base}); with a largest segment "
        f"(clipped to the sequence) of {reach + 1} tokens that is 2^{log2_amp:.2f} = "
        f"{2.0 ** log2_amp:.3g}, past the 2^{bits / 2:g} that {name} keeps accurate (half its "
        f"{bits} significant bits), so outputs and gradients lose precision (measured against "
        f"float64: 0.2 in bfloat16 at 2,048 tokens, 1e-2 in float32 at 8,192). Use causal "
        f"attention (is_causal=True), xpos=False, or a largest segment of at most {longest} "
        f"tokens in {name}",
        UserWarning, stacklevel=stacklevel)


def xpos_apply(q: Tensor, k: Tensor, segment_lengths: IntSequence, position_offset: int = 0,
               global_len: Optional[int] = None,
               scale_base: int = SCALE_BASE) -> Tuple[Tensor, Tensor]:
    """xPos on q and k (B, N_local, H, D), D even, holding global tokens position_offset ..
    + N_local - 1 of a sequence of global_len tokens (default: N_local). Returns (q', k'),
    differentiable, in the inputs' dtype (refused where the scales would pass the range of the
    dtype they are computed in: xpos_range_check)."""
    if q.dim() != 4 or k.dim() != 4:
        raise ValueError(f"xPos: q and k must be (batch, seq_len, heads, head_dim); got q "
                         f"{tuple(q.shape)}, k {tuple(k.shape)}")
    if q.size(1) != k.size(1) or q.size(3) != k.size(3):
        raise ValueError(f"xPos: q and k must have the same seq_len and head_dim; got q "
                         f"{tuple(q.shape)}, k {tuple(k.shape)}")
    D = q.size(3)
    if D < 2 or D % 2:
        raise ValueError(f"xPos: head_dim = {D} must be even and at least 2")
    if not q.is_floating_point() or q.dtype != k.dtype:
        raise TypeError(f"xPos: q and k must have the same floating dtype; got {q.dtype} and "
                        f"{k.dtype}")
    if q.device != k.device:
        raise ValueError(f"xPos: q and k must be on one device; got {q.device} and {k.device}")
    n_local = q.size(1)
    # (positions are int64 tensors, and position_offset + N_local <= global_len)
    global_len = n_local if global_len is None else check_int("xPos: global_len", global_len,
                                                              maximum=2 ** 62)
    scale_base = check_int("xPos: scale_base", scale_base)
    xpos_range_check(global_len, segment_lengths, q.dtype, scale_base)
    compute = torch.float64 if q.dtype == torch.float64 else torch.float32
    with torch.no_grad():
        local = xpos_local_positions(position_offset, n_local, global_len, segment_lengths,
                                     q.device)
        cq, sq, ck, sk = xpos_tables(local, D, scale_base, compute)
    return xpos_rotate(q, cq, sq), xpos_rotate(k, ck, sk)


class XPos(nn.Module):
    """xPos as a module (torchscale's XPOS(head_dim, scale_base) with longnet's local reference
    positions). It has no parameters; the tables depend on the positions."""

    def __init__(self, head_dim: int, scale_base: int = SCALE_BASE) -> None:
        super().__init__()
        head_dim = check_int("XPos: head_dim", head_dim, minimum=2)
        if head_dim % 2:
            raise ValueError(f"XPos: head_dim = {head_dim} must be even and at least 2")
        scale_base = check_int("XPos: scale_base", scale_base)
        self.head_dim = head_dim
        self.scale_base = scale_base

    def forward(self, q: Tensor, k: Tensor, segment_lengths: IntSequence,
                position_offset: int = 0,
                global_len: Optional[int] = None) -> Tuple[Tensor, Tensor]:
        """q, k: (B, N_local, H, head_dim) -> (q', k'); see xpos_apply."""
        if q.dim() != 4 or q.size(3) != self.head_dim:
            raise ValueError(f"XPos: expected q of shape (B, N, H, {self.head_dim}); got "
                             f"{tuple(q.shape)}")
        return xpos_apply(q, k, segment_lengths, position_offset, global_len, self.scale_base)

    def extra_repr(self) -> str:
        return f"head_dim={self.head_dim}, scale_base={self.scale_base}"
