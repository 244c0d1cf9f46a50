"""LongNet layers and models, parameter for parameter and function for function the C++ ones
(core/longnet_model.h): MAGNETO pre-LN layers with residuals and sub-LayerNorms, xPos inside every
attention, MAGNETO init gains; the reference library's LongNet (encoder-decoder) and LongNetLM in
the reference's encoder-decoder form or the paper's decoder-only form.

Parameter names equal the C++ modules' named_parameters(), so a `longnet train` checkpoint loads
with load_state_dict (LongNetLM.from_checkpoint does it from the file).
"""

from __future__ import annotations

import json
import math
import numbers
import os
from pathlib import Path
from typing import Any, Callable, Dict, Mapping, Optional, Set, Union

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from longnet.attention import (FLOAT32_TINY, MultiheadDilatedAttention, _check_dtype,
                               _check_int, _check_layer_norm_eps, _check_weight_size,
                               check_heads, check_input)
from longnet._ops import (FLOAT_DTYPES, DeviceArg, IntSequence, PathArg, check_branches,
                          check_dense, check_int, compiling, short_repr, check_probability,
                          device_move_hint, to_float)

# The paper's base configuration (docs/design.md section 4).
DEFAULT_SEGMENT_LENGTHS = (2048, 4096, 8192, 16384, 32768)
DEFAULT_DILATION_RATES = (1, 2, 4, 6, 12)

# Set to 1 to range-check LongNetLM's token ids on CUDA too (a host sync per forward).
TOKEN_ID_CHECK_ENV = "LONGNET_CHECK_TOKEN_IDS"

Activation = Union[str, Callable[[Tensor], Tensor]]
Device = DeviceArg
# config.json's "format" as `longnet export` writes it (train/model_export.cpp).
EXPORT_FORMAT = "longnet-export-1"


def _check_load_device(owner: str, device: Device) -> None:
    """Loading parameters onto the meta device would keep none of them (a model of empty
    tensors, with a warning per parameter): refused."""
    if device is None:
        return
    try:
        torch.device(device)
    except (RuntimeError, TypeError) as e:
        raise ValueError(f"LongNetLM.{owner}: device={device!r} is not a device "
                         f"({str(e).splitlines()[0]}); give 'cpu', 'cuda', 'cuda:N' or a "
                         f"torch.device") from None
    if torch.device(device).type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"LongNetLM.{owner}: device={device!r}, but this torch sees no CUDA "
                         f"device; load with device='cpu'")
    if torch.device(device).type == "meta":
        raise ValueError(f"LongNetLM.{owner}: device='meta' holds no data, so no parameters "
                         f"would be loaded; build the architecture alone with "
                         f"LongNetLM.from_config(config, device='meta')")

# core/options.cpp's ranges of the `model:` keys (options_visit(LongNetLMOptions)).
MAX_LAYERS = 1 << 16
MODEL_INT_RANGES: Mapping[str, tuple[int, int]] = {
    "vocab_size": (1, 2**31 - 1),
    "d_model": (1, 1 << 20),
    "num_heads": (1, 1 << 16),
    "num_layers": (1, MAX_LAYERS),
    "num_encoder_layers": (0, MAX_LAYERS),
    "dim_feedforward": (1, 1 << 22),
    "checkpoint_layers": (0, MAX_LAYERS),
}


def _check_parameter_memory(owner: str, elements: int, device: Device,
                            dtype: Optional[torch.dtype], fix: str) -> None:
    """Refuses, before anything is allocated, a model whose parameters alone (at least
    `elements` of dtype) exceed the memory of the device they would be built on (the CPU's
    physical memory, a CUDA device's memory; other devices, meta included, are not checked)."""
    try:
        dev = torch.device(device) if device is not None else torch.get_default_device()
    except (AttributeError, RuntimeError, TypeError):
        return  # torch names a bad device when the first parameter is made
    try:
        if dev.type == "cpu":
            total = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
        elif dev.type == "cuda" and torch.cuda.is_available():
            index = dev.index if dev.index is not None else torch.cuda.current_device()
            total = torch.cuda.get_device_properties(index).total_memory
        else:
            return
    except (OSError, ValueError, RuntimeError, AssertionError):
        return
    size = (dtype or torch.get_default_dtype()).itemsize
    if elements * size <= total:
        return
    gib = 1 << 30
    raise ValueError(f"{owner}: the parameters alone need at least {elements * size / gib:,.1f} "
                     f"GiB ({elements:,} elements of {size} bytes), more than the "
                     f"{total / gib:,.1f} GiB of memory on {dev}; reduce {fix} (or build it on "
                     f"device='meta' to inspect it)")


def _layer_elements(d_model: int, dim_feedforward: int, cross_attention: bool) -> int:
    """A lower bound on one layer's parameters: its projections and FFN weights."""
    return (8 if cross_attention else 4) * d_model * d_model + 2 * d_model * dim_feedforward


def _activation_name(activation: Activation) -> str:
    """'relu' or 'gelu' from a name or the matching torch function (the C++ models know only
    these two)."""
    if isinstance(activation, str):
        if activation in ("relu", "gelu"):
            return activation
    elif activation in (F.relu, torch.relu):
        return "relu"
    elif activation is F.gelu:
        return "gelu"
    raise ValueError(f"activation {activation!r} is not supported; allowed values: 'relu', "
                     f"'gelu' (or F.relu, F.gelu)")


def magneto_encoder_gamma(num_encoder_layers: int, num_decoder_layers: int) -> float:
    """MAGNETO's init gain of an encoder-decoder's encoder layers (arXiv 2210.06423, Fig. 2)."""
    return math.sqrt(math.log(3.0 * num_decoder_layers) * math.log(2.0 * num_encoder_layers) / 3.0)


def magneto_decoder_gamma(num_decoder_layers: int) -> float:
    """MAGNETO's init gain of an encoder-decoder's decoder layers: sqrt(log 3M)."""
    return math.sqrt(math.log(3.0 * num_decoder_layers))


def magneto_decoder_only_gamma(num_decoder_layers: int) -> float:
    """MAGNETO's init gain of a decoder-only model's layers: sqrt(log 2M)."""
    return math.sqrt(math.log(2.0 * num_decoder_layers))


def _ffn_init(linear1: nn.Linear, linear2: nn.Linear, gamma: float) -> None:
    with torch.no_grad():
        for lin in (linear1, linear2):
            nn.init.xavier_normal_(lin.weight, gain=gamma)
            lin.bias.zero_()


def _ffn(x: Tensor, linear1: nn.Module, sub: nn.LayerNorm, linear2: nn.Module,
         dropout: nn.Dropout, gelu: bool) -> Tensor:
    """x (already pre-normalised) -> linear1 -> act -> dropout -> sub-LN -> linear2 -> dropout.
    The linears are called as modules, so that hooks, pruning, quantization and adapters put in
    their place take effect."""
    a = linear1(x)
    a = F.gelu(a) if gelu else F.relu(a)
    z = sub(dropout(a))
    return dropout(linear2(z))


def _check_layer_sizes(owner: str, d_model: object, dim_feedforward: object) -> tuple[int, int]:
    """d_model and dim_feedforward as ints >= 1 whose weights (d_model^2, d_model *
    dim_feedforward) stay within MAX_WEIGHT_ELEMENTS; checked before any parameter exists."""
    d_model = _check_int("d_model", d_model)
    dim_feedforward = _check_int("dim_feedforward", dim_feedforward)
    _check_weight_size(owner, "d_model", d_model, "d_model", d_model)
    _check_weight_size(owner, "dim_feedforward", dim_feedforward, "d_model", d_model)
    return d_model, dim_feedforward


def _safetensors_metadata(path: Path) -> Dict[str, str]:
    """The __metadata__ strings of a safetensors file's header ({} when it has none or the
    header is not readable: the package's own reader reports such files)."""
    try:
        with open(path, "rb") as f:
            size = int.from_bytes(f.read(8), "little")
            if size > 100 << 20:
                return {}
            meta = json.loads(f.read(size)).get("__metadata__") or {}
        return {k: v for k, v in meta.items() if isinstance(v, str)}
    except (OSError, ValueError, AttributeError):
        return {}

class DilatedTransformerEncoderLayer(nn.Module):
    """Pre-LN MAGNETO encoder layer with residuals (core/'s EncoderLayer):

        x = x + dropout(self_attn(norm1(x)))                 (self_attn has its own sub-LN)
        x = x + dropout(linear2(norm3(dropout(act(linear1(norm2(x)))))))

    Arguments as the reference library's DilatedTransformerEncoderLayer (d_model, nhead,
    segment_lengths, dilation_rates, dim_feedforward=2048, dropout=0.1, activation,
    layer_norm_eps, gamma_init, device, dtype). Unlike the reference, the residual connections
    are kept (MAGNETO has them). forward(src, is_causal=False): (B, N, d_model) -> same.
    """

    def __init__(self, d_model: int, nhead: int, segment_lengths: IntSequence,
                 dilation_rates: IntSequence, dim_feedforward: int = 2048,
                 dropout: float = 0.1, activation: Activation = F.relu,
                 layer_norm_eps: float = 1e-5, gamma_init: float = 1.0, device: Device = None,
                 dtype: Optional[torch.dtype] = None) -> None:
        super().__init__()
        _check_dtype("DilatedTransformerEncoderLayer", dtype)
        self._gelu = _activation_name(activation) == "gelu"
        d_model, dim_feedforward = _check_layer_sizes("DilatedTransformerEncoderLayer", d_model,
                                                      dim_feedforward)
        check_heads("DilatedTransformerEncoderLayer", "d_model", d_model, "nhead", nhead)
        self.d_model = d_model
        f: Dict[str, Any] = {"device": device, "dtype": dtype}
        self.norm1 = nn.LayerNorm(d_model, eps=layer_norm_eps, **f)
        self.self_attn = MultiheadDilatedAttention(
            d_model, nhead, dilation_rates=dilation_rates, segment_lengths=segment_lengths,
            dropout=dropout, layer_norm=True, layer_norm_eps=layer_norm_eps,
            gamma_init=gamma_init, **f)
        self.norm2 = nn.LayerNorm(d_model, eps=layer_norm_eps, **f)
        self.linear1 = nn.Linear(d_model, dim_feedforward, **f)
        self.norm3 = nn.LayerNorm(dim_feedforward, eps=layer_norm_eps, **f)
        self.linear2 = nn.Linear(dim_feedforward, d_model, **f)
        self.dropout = nn.Dropout(dropout)
        _ffn_init(self.linear1, self.linear2, gamma_init)

    def forward(self, src: Tensor, is_causal: bool = False) -> Tensor:
        """src: (batch, seq_len, d_model) -> (batch, seq_len, d_model)."""
        check_input("DilatedTransformerEncoderLayer", "src", src, "d_model", self.d_model,
                    self.norm1.weight)
        h = self.norm1(src)
        x = src + self.dropout(self.self_attn(h, h, h, is_causal=is_causal)[0])
        return x + _ffn(self.norm2(x), self.linear1, self.norm3, self.linear2, self.dropout,
                        self._gelu)


class DilatedTransformerDecoderLayer(nn.Module):
    """Pre-LN MAGNETO decoder layer with residuals (core/'s DecoderLayer):

        x = x + dropout(self_attn(norm1(x)))
        x = x + dropout(multihead_attn(norm2(x), memory, memory))   (with cross_attention)
        x = x + dropout(linear2(norm4(dropout(act(linear1(norm3(x)))))))

    Arguments as the reference library's DilatedTransformerDecoderLayer, plus keyword-only
    cross_attention (default True; False gives the decoder-only layer, without norm2 and
    multihead_attn). As MAGNETO, cross-attention has no sub-LN and init gain 1. forward(tgt,
    memory=None, tgt_is_causal=False, memory_is_causal=False): (B, N, d_model) -> same; memory
    (B, N, d_model) holds the same positions as tgt.
    """

    def __init__(self, d_model: int, nhead: int, segment_lengths: IntSequence,
                 dilation_rates: IntSequence, dim_feedforward: int = 2048,
                 dropout: float = 0.1, activation: Activation = F.relu,
                 layer_norm_eps: float = 1e-5, gamma_init: float = 1.0, device: Device = None,
                 dtype: Optional[torch.dtype] = None, *, cross_attention: bool = True) -> None:
        super().__init__()
        _check_dtype("DilatedTransformerDecoderLayer", dtype)
        self._gelu = _activation_name(activation) == "gelu"
        d_model, dim_feedforward = _check_layer_sizes("DilatedTransformerDecoderLayer", d_model,
                                                      dim_feedforward)
        check_heads("DilatedTransformerDecoderLayer", "d_model", d_model, "nhead", nhead)
        self.d_model = d_model
        f: Dict[str, Any] = {"device": device, "dtype": dtype}
        self.norm1 = nn.LayerNorm(d_model, eps=layer_norm_eps, **f)
        self.self_attn = MultiheadDilatedAttention(
            d_model, nhead, dilation_rates=dilation_rates, segment_lengths=segment_lengths,
            dropout=dropout, layer_norm=True, layer_norm_eps=layer_norm_eps,
            gamma_init=gamma_init, **f)
        self.norm2: Optional[nn.LayerNorm] = None
        self.multihead_attn: Optional[MultiheadDilatedAttention] = None
        if cross_attention:
            self.norm2 = nn.LayerNorm(d_model, eps=layer_norm_eps, **f)
            self.multihead_attn = MultiheadDilatedAttention(
                d_model, nhead, dilation_rates=dilation_rates, segment_lengths=segment_lengths,
                dropout=dropout, layer_norm=False, layer_norm_eps=layer_norm_eps, gamma_init=1.0,
                **f)
        self.norm3 = nn.LayerNorm(d_model, eps=layer_norm_eps, **f)
        self.linear1 = nn.Linear(d_model, dim_feedforward, **f)
        self.norm4 = nn.LayerNorm(dim_feedforward, eps=layer_norm_eps, **f)
        self.linear2 = nn.Linear(dim_feedforward, d_model, **f)
        self.dropout = nn.Dropout(dropout)
        _ffn_init(self.linear1, self.linear2, gamma_init)

    def forward(self, tgt: Tensor, memory: Optional[Tensor] = None, tgt_is_causal: bool = False,
                memory_is_causal: bool = False) -> Tensor:
        """tgt: (batch, seq_len, d_model); memory: the same shape, or None without
        cross-attention. Returns (batch, seq_len, d_model)."""
        if (memory is None) != (self.multihead_attn is None):
            raise ValueError("DilatedTransformerDecoderLayer: " + (
                "this layer has no cross-attention, but memory was given"
                if self.multihead_attn is None else
                "this layer cross-attends, but no memory was given"))
        check_input("DilatedTransformerDecoderLayer", "tgt", tgt, "d_model", self.d_model,
                    self.norm1.weight)
        if memory is not None:
            check_input("DilatedTransformerDecoderLayer", "memory", memory, "d_model",
                        self.d_model, self.norm1.weight)
            if memory.shape != tgt.shape:
                raise ValueError(f"DilatedTransformerDecoderLayer: memory must have tgt's shape "
                                 f"(dilated cross-attention pairs their positions); got tgt "
                                 f"{tuple(tgt.shape)}, memory {tuple(memory.shape)}")
        h = self.norm1(tgt)
        x = tgt + self.dropout(self.self_attn(h, h, h, is_causal=tgt_is_causal)[0])
        if self.multihead_attn is not None:
            assert self.norm2 is not None and memory is not None
            x = x + self.dropout(self.multihead_attn(self.norm2(x), memory, memory,
                                                     is_causal=memory_is_causal)[0])
        return x + _ffn(self.norm3(x), self.linear1, self.norm4, self.linear2, self.dropout,
                        self._gelu)


class LongNet(nn.Module):
    """The reference library's LongNet encoder-decoder (core/'s LongNet): encoder layers over x,
    a final encoder LayerNorm, then decoder layers over x that cross-attend to the encoder's
    output. The decoder's output is left unnormalised (LongNetLM's final norm follows it).

    Arguments and defaults are the reference's (d_model 768, nhead 12, 12 + 12 layers, FFN
    3072, dropout 0, relu, eps 1e-5, device, dtype), except the branches: the paper's
    segment_lengths [2048, 4096, 8192, 16384, 32768] and dilation_rates [1, 2, 4, 6, 12] (the
    reference repeats the last branch to make 12 heads divisible by the branch count; longnet
    needs no such thing). Init gains are MAGNETO's for the layer counts.
    forward(x, is_causal=True): (B, N, d_model) -> (B, N, d_model); is_causal applies to every
    attention. Parameters: encoder_layers.N..., encoder_norm, decoder_layers.N...
    """

    def __init__(self, d_model: int = 768, nhead: int = 12, num_encoder_layers: int = 12,
                 num_decoder_layers: int = 12, dim_feedforward: int = 3072,
                 segment_lengths: IntSequence = DEFAULT_SEGMENT_LENGTHS,
                 dilation_rates: IntSequence = DEFAULT_DILATION_RATES, dropout: float = 0.0,
                 activation: Activation = F.relu, layer_norm_eps: float = 1e-5,
                 device: Device = None, dtype: Optional[torch.dtype] = None) -> None:
        super().__init__()
        _check_dtype("LongNet", dtype)
        num_encoder_layers = _check_int("num_encoder_layers", num_encoder_layers,
                                        maximum=MAX_LAYERS)
        num_decoder_layers = _check_int("num_decoder_layers", num_decoder_layers,
                                        maximum=MAX_LAYERS)
        d_model, dim_feedforward = _check_layer_sizes("LongNet", d_model, dim_feedforward)
        check_heads("LongNet", "d_model", d_model, "nhead", nhead)
        _check_parameter_memory(
            "LongNet", num_encoder_layers * _layer_elements(d_model, dim_feedforward, False) +
            num_decoder_layers * _layer_elements(d_model, dim_feedforward, True), device, dtype,
            "num_encoder_layers, num_decoder_layers, d_model or dim_feedforward")
        self.d_model = d_model
        common = dict(d_model=d_model, nhead=nhead, segment_lengths=segment_lengths,
                      dilation_rates=dilation_rates, dim_feedforward=dim_feedforward,
                      dropout=dropout, activation=activation, layer_norm_eps=layer_norm_eps,
                      device=device, dtype=dtype)
        enc = magneto_encoder_gamma(num_encoder_layers, num_decoder_layers)
        dec = magneto_decoder_gamma(num_decoder_layers)
        self.encoder_layers = nn.ModuleList(
            [DilatedTransformerEncoderLayer(gamma_init=enc, **common)  # type: ignore[arg-type]
             for _ in range(num_encoder_layers)])
        self.encoder_norm = nn.LayerNorm(d_model, eps=layer_norm_eps, device=device, dtype=dtype)
        self.decoder_layers = nn.ModuleList(
            [DilatedTransformerDecoderLayer(gamma_init=dec, **common)  # type: ignore[arg-type]
             for _ in range(num_decoder_layers)])

    def forward(self, x: Tensor, is_causal: bool = True) -> Tensor:
        """x: (batch, seq_len, d_model) -> (batch, seq_len, d_model)."""
        check_input("LongNet", "x", x, "d_model", self.d_model, self.encoder_norm.weight)
        mem = x
        for layer in self.encoder_layers:
            mem = layer(mem, is_causal=is_causal)
        mem = self.encoder_norm(mem)
        tgt = x
        for layer in self.decoder_layers:
            tgt = layer(tgt, mem, tgt_is_causal=is_causal, memory_is_causal=is_causal)
        return tgt


# core/options.h LongNetLMOptions (options_visit): the keys of a config's `model:` section and
# their defaults. activation_checkpointing and checkpoint_layers only change how training runs,
# not the function.
MODEL_CONFIG_DEFAULTS: Mapping[str, Any] = {
    "variant": "decoder_only",
    "vocab_size": 256,
    "d_model": 768,
    "num_heads": 12,
    "num_layers": 12,
    "num_encoder_layers": 0,
    "dim_feedforward": 3072,
    "segment_lengths": list(DEFAULT_SEGMENT_LENGTHS),
    "dilation_rates": list(DEFAULT_DILATION_RATES),
    "dropout": 0.0,
    "activation": "gelu",
    "layer_norm_eps": 1.0e-5,
    "activation_checkpointing": False,
    "checkpoint_layers": 0,
}


def _check_model_config(model: Mapping[str, Any]) -> dict:
    """The `model:` section with defaults filled in, checked as core/options.cpp checks it
    (lm_options_check): each key's type and range, then the rules between keys. Errors name the
    key as the config spells it (model.KEY)."""
    m = {**MODEL_CONFIG_DEFAULTS, **model}
    for key, (lo, hi) in MODEL_INT_RANGES.items():
        check_int(f"model.{key}", m[key], minimum=lo, maximum=hi)
    for key in ("dropout", "layer_norm_eps"):
        if isinstance(m[key], bool) or not isinstance(m[key], numbers.Real):
            raise TypeError(f"model.{key} must be a number, got {short_repr(m[key])}")
    check_probability("model.dropout", m["dropout"])
    if not FLOAT32_TINY <= to_float("model.layer_norm_eps", m["layer_norm_eps"]) <= 1:
        raise ValueError(f"model.layer_norm_eps = {m['layer_norm_eps']} is out of range; it must "
                         f"be in [{FLOAT32_TINY:.6g}, 1] (not 0 in float32)")
    for key, allowed in (("variant", ("decoder_only", "encoder_decoder")),
                         ("activation", ("gelu", "relu"))):
        if m[key] not in allowed:
            raise ValueError(f"model.{key} = {short_repr(m[key])}; allowed values: "
                             f"{', '.join(allowed)}")
    if not isinstance(m["activation_checkpointing"], bool):
        raise TypeError(f"model.activation_checkpointing must be true or false, got "
                        f"{short_repr(m['activation_checkpointing'])}")
    check_branches(m["segment_lengths"], m["dilation_rates"],
                   names=("model.segment_lengths", "model.dilation_rates"))
    # What the constructor checks of its arguments, named as the config's keys.
    check_heads("", "model.d_model", m["d_model"], "model.num_heads", m["num_heads"])
    _check_weight_size("", "model.d_model", m["d_model"], "model.d_model", m["d_model"])
    _check_weight_size("", "model.dim_feedforward", m["dim_feedforward"], "model.d_model",
                       m["d_model"])
    _check_weight_size("", "model.vocab_size", m["vocab_size"], "model.d_model", m["d_model"])
    variant, enc = m["variant"], m["num_encoder_layers"]
    if variant == "encoder_decoder" and enc < 1:
        raise ValueError("model.num_encoder_layers is 0 but model.variant is encoder_decoder; set "
                         "num_encoder_layers >= 1 (e.g. 12) or use variant decoder_only")
    if variant == "decoder_only" and enc != 0:
        raise ValueError(f"model.num_encoder_layers is {enc} but model.variant is decoder_only; "
                         f"set it to 0 or use variant encoder_decoder")
    if m["activation_checkpointing"] and variant != "decoder_only":
        raise ValueError("model.activation_checkpointing is supported for variant decoder_only; "
                         "turn it off for encoder_decoder")
    if m["checkpoint_layers"] != 0 and not m["activation_checkpointing"]:
        raise ValueError(f"model.checkpoint_layers is {m['checkpoint_layers']} but "
                         f"activation_checkpointing is off; set activation_checkpointing: true, "
                         f"or checkpoint_layers: 0")
    if m["checkpoint_layers"] > m["num_layers"]:
        raise ValueError(f"model.checkpoint_layers is {m['checkpoint_layers']} but the model has "
                         f"{m['num_layers']} decoder layers; use at most num_layers (0 also "
                         f"means all)")
    return m


class LongNetLM(nn.Module):
    """A causal language model: token_embedding -> body -> norm -> out (logits over num_tokens),
    core/'s LongNetLM parameter for parameter. Positions come from xPos inside every attention
    (no position embedding).

    Arguments are the reference library's LongNetLM (num_tokens, d_model=768, nhead=12,
    num_encoder_layers, num_decoder_layers=12, dim_feedforward=3072, segment_lengths,
    dilation_rates, dropout=0.0, activation=relu, layer_norm_eps=1e-5, device, dtype), with the
    paper's five branches as defaults (see LongNet), plus keyword-only `variant`:

      "encoder_decoder" (default, the reference's model): LongNet under `long_net`, with
          num_encoder_layers (default 12) and num_decoder_layers layers.
      "decoder_only" (the paper's LM and `longnet train`'s default): num_decoder_layers MAGNETO
          decoder layers without cross-attention under `layers`; num_encoder_layers must be left
          out (or 0).

    forward(x, is_causal=True): x (batch, seq_len) int64 or int32 token ids -> logits (batch,
    seq_len, num_tokens). LongNetLM.from_checkpoint(path) builds the model of a `longnet train`
    checkpoint and loads its parameters.

    Token ids outside [0, num_tokens) are a ValueError naming the id and its position. On the
    CPU they are always checked. On other devices (CUDA) reading the ids' min and max waits for
    the device, a host synchronisation every step, so they are checked only when the attribute
    `check_token_ids_on_device` is True: it starts as the environment variable
    LONGNET_CHECK_TOKEN_IDS=1 says (default off) and may be set on a model at any time. Unchecked,
    a bad id on CUDA ends in a device-side assert that leaves the CUDA context unusable; turn the
    check on while debugging. While torch.export or torch.compile records a graph the ids have no
    values to read: the check goes into the graph as torch._assert_async (a RuntimeError giving
    the range, not the position), so the model exports with static shapes (non-strict).
    """

    check_token_ids_on_device: bool

    def __init__(self, num_tokens: int, d_model: int = 768, nhead: int = 12,
                 num_encoder_layers: Optional[int] = None, num_decoder_layers: int = 12,
                 dim_feedforward: int = 3072,
                 segment_lengths: IntSequence = DEFAULT_SEGMENT_LENGTHS,
                 dilation_rates: IntSequence = DEFAULT_DILATION_RATES, dropout: float = 0.0,
                 activation: Activation = F.relu, layer_norm_eps: float = 1e-5,
                 device: Device = None, dtype: Optional[torch.dtype] = None, *,
                 variant: str = "encoder_decoder") -> None:
        super().__init__()
        _check_dtype("LongNetLM", dtype)
        num_tokens = _check_int("num_tokens", num_tokens)
        d_model, dim_feedforward = _check_layer_sizes("LongNetLM", d_model, dim_feedforward)
        check_heads("LongNetLM", "d_model", d_model, "nhead", nhead)
        _check_weight_size("LongNetLM", "num_tokens", num_tokens, "d_model", d_model)
        num_decoder_layers = _check_int("num_decoder_layers", num_decoder_layers,
                                        maximum=MAX_LAYERS)
        layer_norm_eps = _check_layer_norm_eps(layer_norm_eps)
        if variant not in ("decoder_only", "encoder_decoder"):
            raise ValueError(f"unknown LongNetLM variant {short_repr(variant)}; allowed values: "
                             f"'decoder_only', 'encoder_decoder'")
        if num_encoder_layers is not None:
            num_encoder_layers = _check_int("num_encoder_layers", num_encoder_layers, minimum=0,
                                            maximum=MAX_LAYERS)
        if variant == "decoder_only" and num_encoder_layers not in (None, 0):
            raise ValueError(f"num_encoder_layers = {num_encoder_layers} but variant is "
                             f"'decoder_only' (no encoder); leave it out, or use "
                             f"variant='encoder_decoder'")
        if variant == "decoder_only":
            _check_parameter_memory(
                "LongNetLM", 2 * num_tokens * d_model +
                num_decoder_layers * _layer_elements(d_model, dim_feedforward, False), device,
                dtype, "num_decoder_layers, d_model, dim_feedforward or num_tokens")
        self.variant = variant
        self.num_tokens = num_tokens
        self.check_token_ids_on_device = os.environ.get(TOKEN_ID_CHECK_ENV, "") not in ("", "0")
        f: Dict[str, Any] = {"device": device, "dtype": dtype}
        self.token_embedding = nn.Embedding(num_tokens, d_model, **f)
        self.layers: Optional[nn.ModuleList] = None
        self.long_net: Optional[LongNet] = None
        if variant == "decoder_only":
            gamma = magneto_decoder_only_gamma(num_decoder_layers)
            self.layers = nn.ModuleList([
                DilatedTransformerDecoderLayer(
                    d_model, nhead, segment_lengths, dilation_rates,
                    dim_feedforward=dim_feedforward, dropout=dropout, activation=activation,
                    layer_norm_eps=layer_norm_eps, gamma_init=gamma, cross_attention=False, **f)
                for _ in range(num_decoder_layers)])
        else:
            self.long_net = LongNet(
                d_model, nhead, 12 if num_encoder_layers is None else num_encoder_layers,
                num_decoder_layers, dim_feedforward, segment_lengths, dilation_rates, dropout,
                activation, layer_norm_eps, **f)
        self.norm = nn.LayerNorm(d_model, eps=layer_norm_eps, **f)
        self.out = nn.Linear(d_model, num_tokens, **f)
        with torch.no_grad():  # logits near unit scale: the final LayerNorm's output has unit variance
            nn.init.normal_(self.out.weight, 0.0, 1.0 / math.sqrt(d_model))
            self.out.bias.zero_()

    def _check_tokens(self, x: object) -> None:
        """x must be dense (batch, seq_len) int64/int32 ids, batch and seq_len >= 1, on the
        embedding's device, in [0, num_tokens) (see the class docstring for when ids are read)."""
        if not isinstance(x, Tensor):
            raise TypeError(f"LongNetLM: x must be a torch.Tensor of token ids, got "
                            f"{type(x).__name__}")
        check_dense("x", x)
        if x.dtype not in (torch.long, torch.int32):
            raise TypeError(f"LongNetLM: x must hold int64 (or int32) token ids, got {x.dtype}; "
                            f"pass x.long() if the values are whole numbers")
        shape = tuple(x.shape)
        if x.dim() != 2:
            raise ValueError(f"LongNetLM: x must be (batch, seq_len) int64 token ids; got "
                             f"shape {shape}"
                             + ("; for one sequence pass x.unsqueeze(0)" if x.dim() == 1 else ""))
        if x.numel() == 0:
            which = " and ".join(d for d, n in zip(("batch", "seq_len"), shape) if n == 0)
            raise ValueError(f"LongNetLM: x has shape {shape} ({which} = 0); batch and seq_len "
                             f"must be >= 1")
        weight = self.token_embedding.weight
        if x.device != weight.device:
            raise ValueError(f"LongNetLM: x is on {x.device} but the model's parameters are on "
                             f"{weight.device}; "
                             f"{device_move_hint('model', x.device, weight.device)}"
                             + ("" if weight.device.type == "meta" else
                                f" or the ids (x.to({str(weight.device)!r}))"))
        if x.device.type == "meta" or (x.device.type != "cpu" and
                                       not self.check_token_ids_on_device):
            return
        if torch.jit.is_tracing() or compiling():
            # A graph being recorded has no values to read (export refuses the branch on them,
            # Dynamo breaks its graph there): the range goes into the graph as an assert, which
            # cannot say which id.
            torch._assert_async(((x >= 0) & (x < self.num_tokens)).all(),
                                f"LongNetLM: a token id is outside [0, num_tokens = "
                                f"{self.num_tokens}); run the model eagerly to see which")
            return
        lo, hi = torch.stack(list(torch.aminmax(x))).tolist()  # one host sync off the CPU
        if lo >= 0 and hi < self.num_tokens:
            return
        where = ((x < 0) | (x >= self.num_tokens)).nonzero()[0].tolist()
        bad = int(x[where[0], where[1]])
        fix = (f"replace negative ids (padding or ignore markers such as -100) by real tokens"
               if bad < 0 else
               f"the ids must come from a tokenizer of at most {self.num_tokens} tokens, or the "
               f"model needs num_tokens >= {hi + 1}")
        raise ValueError(f"LongNetLM: token id {bad} at x[{where[0]}, {where[1]}] is outside "
                         f"[0, num_tokens = {self.num_tokens}) (ids in x span [{lo}, {hi}]); "
                         f"{fix}")

    def forward(self, x: Tensor, is_causal: bool = True) -> Tensor:
        """x: (batch, seq_len) int64 or int32 token ids in [0, num_tokens) -> logits (batch,
        seq_len, num_tokens). Ids are range-checked on the CPU always, elsewhere only when
        check_token_ids_on_device is True (see the class docstring)."""
        self._check_tokens(x)
        h = self.token_embedding(x)
        if self.layers is not None:
            for layer in self.layers:
                h = layer(h, None, tgt_is_causal=is_causal, memory_is_causal=is_causal)
        else:
            assert self.long_net is not None
            h = self.long_net(h, is_causal=is_causal)
        return self.out(self.norm(h))

    @classmethod
    def from_config(cls, model: Mapping[str, Any], device: Device = None,
                    dtype: Optional[torch.dtype] = None) -> "LongNetLM":
        """The model of a `longnet train` config's `model:` section (the keys of
        LongNetLMOptions in core/options.h: variant, vocab_size, d_model, num_heads, num_layers,
        num_encoder_layers, dim_feedforward, segment_lengths, dilation_rates, dropout,
        activation, layer_norm_eps, activation_checkpointing, checkpoint_layers; missing keys take
        its defaults),
        built as the trainer builds it. Unknown keys are an error."""
        if not isinstance(model, Mapping):
            raise TypeError(f"model config must be a mapping of the `model:` keys, got "
                            f"{type(model).__name__} {short_repr(model)}")
        unknown = sorted(set(model) - set(MODEL_CONFIG_DEFAULTS))
        if unknown:
            raise ValueError(f"model config: unknown key(s) {unknown}; known: "
                             f"{list(MODEL_CONFIG_DEFAULTS)}")
        m = _check_model_config(model)
        variant = m["variant"]
        return cls(m["vocab_size"], d_model=m["d_model"], nhead=m["num_heads"],
                   num_encoder_layers=m["num_encoder_layers"] if variant == "encoder_decoder"
                   else None, num_decoder_layers=m["num_layers"],
                   dim_feedforward=m["dim_feedforward"], segment_lengths=m["segment_lengths"],
                   dilation_rates=m["dilation_rates"], dropout=float(m["dropout"]),
                   activation=m["activation"], layer_norm_eps=float(m["layer_norm_eps"]),
                   device=device, dtype=dtype, variant=variant)

    @classmethod
    def from_checkpoint(cls, path: PathArg, device: Device = None,
                        dtype: Optional[torch.dtype] = None, *,
                        weights_only: Optional[bool] = True) -> "LongNetLM":
        """The model of a `longnet train` checkpoint (runs/.../step_00000100.ckpt), with its
        parameters loaded. The architecture comes from the checkpoint's own resolved config
        ("config", its `model:` section), the parameters from its "model" dict. See
        longnet.load_checkpoint for weights_only. The model is returned in training mode, as
        every new module; call .eval() for inference."""
        from longnet.checkpoint import load_checkpoint, parse_config, path_argument

        _check_load_device("from_checkpoint", device)
        path = path_argument("LongNetLM.from_checkpoint", "path", path)
        if path.is_dir() and (path / "config.json").is_file():
            raise ValueError(f"{path} is a folder of `longnet export`, not a checkpoint; load it "
                             f"with LongNetLM.from_export({str(path)!r})")
        ckpt = load_checkpoint(path, weights_only=weights_only)
        try:
            config = parse_config(ckpt["config"])
        except ValueError as e:
            raise ValueError(f"checkpoint {path}: {e}") from e
        if "model" not in config:
            raise ValueError(f"checkpoint {path}: its config has no 'model' section")
        source = f"checkpoint {path}"
        cls._check_fits(ckpt["model"], config["model"], source, "its config's model")
        model = cls.from_config(config["model"], device=device, dtype=dtype)
        model._load_parameters(ckpt["model"], source)
        return model

    @classmethod
    def from_export(cls, directory: PathArg, device: Device = None,
                    dtype: Optional[torch.dtype] = None) -> "LongNetLM":
        """The model of a `longnet export CKPT --out DIR` folder: its architecture from
        DIR/config.json, its parameters from DIR/model.safetensors (read with the `safetensors`
        package; converted to dtype when given, else kept as exported). The model is returned
        in training mode; call .eval() for inference."""
        import json

        from longnet.checkpoint import path_argument

        _check_load_device("from_export", device)
        if isinstance(directory, (str, bytes)) and not directory:
            raise ValueError("LongNetLM.from_export: the folder is an empty path; give the --out "
                             "folder of `longnet export`")
        folder = path_argument("LongNetLM.from_export", "directory", directory)
        if not folder.is_dir():
            hint = ""
            if folder.is_file() and folder.name in ("config.json", "model.safetensors"):
                hint = (f"; give the folder that holds it: "
                        f"LongNetLM.from_export({str(folder.parent)!r})")
            elif folder.is_file():
                hint = (f"; {folder} is a file: a trainer checkpoint loads with "
                        f"LongNetLM.from_checkpoint({str(folder)!r})")
            raise ValueError(f"export {folder}: not a directory (give the --out folder of "
                             f"`longnet export`){hint}")
        config_path, weights_path = folder / "config.json", folder / "model.safetensors"
        for f in (config_path, weights_path):
            if not f.is_file():
                raise ValueError(f"export {folder}: {f.name} is missing or not a regular file "
                                 f"(`longnet export` writes config.json and model.safetensors)")
        try:
            with open(config_path, encoding="utf-8") as fh:
                config = json.load(fh, object_pairs_hook=_json_object_unique)
        except (OSError, UnicodeDecodeError, ValueError) as e:  # (a JSONDecodeError, or an
            # integer of more digits than Python converts)
            raise ValueError(f"export {folder}: config.json is not readable JSON ({e})") from None
        except RecursionError:
            raise ValueError(f"export {folder}: config.json is nested too deeply to be a longnet "
                             f"export's") from None
        if (not isinstance(config, dict) or config.get("architecture") != "LongNetLM"
                or not isinstance(config.get("model"), dict)):
            raise ValueError(f"export {folder}: config.json is not a longnet export (it needs "
                             f"\"architecture\": \"LongNetLM\" and a \"model\" object)")
        if config.get("format") != EXPORT_FORMAT:
            raise ValueError(f"export {folder}: config.json has format {config.get('format')!r}; "
                             f"this version reads {EXPORT_FORMAT!r} (export the checkpoint again "
                             f"with this version's `longnet export`)")
        try:
            from safetensors.torch import load_file
        except ImportError:
            raise ImportError("LongNetLM.from_export reads model.safetensors with the "
                              "`safetensors` package: pip install safetensors") from None
        try:
            try:
                str(weights_path).encode("utf-8")
                state = load_file(str(weights_path))
            except UnicodeEncodeError:  # (the package takes UTF-8 paths only: read the bytes)
                from safetensors.torch import load as load_bytes
                state = load_bytes(weights_path.read_bytes())
        except Exception as e:  # the package's own errors (header, truncation) vary by version
            raise ValueError(f"export {folder}: model.safetensors cannot be read "
                             f"({type(e).__name__}: {e})") from None
        source = f"export {folder}"
        # The two files are of one export: the step config.json names is the one the weights'
        # metadata records (a pair mixed by an export cut short would load the wrong model).
        step = _safetensors_metadata(weights_path).get("longnet_step")
        if step is not None and "step" in config and str(config["step"]) != step:
            raise ValueError(f"{source}: config.json is of step {config['step']} but "
                             f"model.safetensors of step {step}: they are of two exports (one cut "
                             f"short?); run `longnet export` again into this folder")
        cls._check_fits(state, config["model"], source, "config.json's model")
        dtypes = {t.dtype for t in state.values()}  # float: _check_fits checked them
        if len(dtypes) > 1 and dtype is None:
            raise ValueError(f"{source}: model.safetensors holds tensors of several dtypes "
                             f"({', '.join(sorted(str(d) for d in dtypes))}); `longnet export` "
                             f"writes one. Give dtype= to load them all in one")
        model = cls.from_config(config["model"], device=device, dtype=dtype or next(iter(dtypes)))
        model._load_parameters(state, source)
        return model

    @classmethod
    def _check_fits(cls, state: Mapping[str, Tensor], model: Any, source: str,
                    section: str) -> None:
        """Before the model of config section `model` is built for real: it is built on the meta
        device (no memory) and must hold exactly the parameter names and shapes of `state`, so
        a config edited or forged to describe a larger model than its parameters is refused
        without allocating anything. Every error names `source` (and `section`, the config's
        part, where the config's values are refused)."""
        try:
            if isinstance(model, Mapping):
                required = ["variant", "vocab_size", "d_model", "num_heads", "num_layers",
                            "dim_feedforward", "segment_lengths", "dilation_rates", "activation",
                            "layer_norm_eps"]
                if model.get("variant") == "encoder_decoder":
                    required.append("num_encoder_layers")
                missing = [k for k in required if k not in model]
                if missing:
                    raise ValueError(f"missing key(s) {missing}: `longnet train` and `longnet "
                                     f"export` write every key that shapes the model, so the file "
                                     f"was edited; defaults would describe another model")
            _check_state_fits_config(state, model, source)
            cls.from_config(model, device="meta")._check_parameters(state, source)
        except (TypeError, ValueError) as e:
            if str(e).startswith(source):
                raise
            raise type(e)(f"{source}: {section}: {e}") from None

    def _check_parameters(self, state: Mapping[str, Tensor], source: str) -> None:
        """state must hold exactly this model's parameter names and shapes, as float tensors;
        else ValueError naming `source` and what differs."""
        own = dict(self.named_parameters())
        for name, t in state.items():
            if not isinstance(t, Tensor):
                raise ValueError(f"{source}: parameter {name!r} is a {type(t).__name__}, not a "
                                 f"tensor")
            if t.layout != torch.strided or t.is_meta:
                raise ValueError(f"{source}: parameter {name!r} is a "
                                 f"{'meta' if t.is_meta else str(t.layout)} tensor, which holds "
                                 f"no dense values to load")
            if t.dtype not in FLOAT_DTYPES:
                raise ValueError(f"{source}: parameter {name!r} is {t.dtype}; parameters are "
                                 f"float32, float64, float16 or bfloat16")
        missing = sorted(set(own) - set(state))
        unexpected = sorted(set(state) - set(own))
        if missing or unexpected:
            raise ValueError(f"{source}: parameters do not match the model of its config; "
                             f"missing {missing[:8]}, unexpected {unexpected[:8]}")
        for name, p in own.items():
            if tuple(state[name].shape) != tuple(p.shape):
                raise ValueError(f"{source}: parameter {name!r} has shape "
                                 f"{tuple(state[name].shape)}, the model wants {tuple(p.shape)}")

    def _load_parameters(self, state: Mapping[str, Tensor], source: str) -> None:
        """Loads state (exactly this model's parameter names and shapes; converted to each
        parameter's dtype and device) or raises ValueError naming `source` and what differs."""
        self._check_parameters(state, source)
        own = dict(self.named_parameters())
        for name, t in state.items():
            # As the C++ loader: non-finite values would give nonsense without an error, and
            # values past the range of the dtype loaded into would become infinities.
            finite = torch.isfinite(t)
            if not bool(finite.all()):
                raise ValueError(f"{source}: parameter {name!r} holds "
                                 f"{int((~finite).sum())} NaN or infinite value(s); the model "
                                 f"would produce nonsense. Use an earlier checkpoint (training "
                                 f"skips non-finite steps, so a file like this was damaged or "
                                 f"made elsewhere)")
            target = own[name].dtype
            if t.numel() and torch.finfo(target).max < torch.finfo(t.dtype).max and \
                    not bool(torch.isfinite(t.to(target)).all()):  # (what rounds to max is fine)
                wider = "torch.float64" if t.dtype == torch.float64 else "torch.float32"
                raise ValueError(f"{source}: parameter {name!r} holds values up to "
                                 f"{float(t.abs().max()):g} in absolute value, past the range of "
                                 f"{target} (largest {torch.finfo(target).max:g}): in it the "
                                 f"model would compute with infinities. Load with dtype={wider}")
        self.load_state_dict(dict(state), strict=True)


def _json_object_unique(pairs: list) -> dict:
    """json.load's object hook: a key given twice is an error (Python keeps the last silently;
    longnet's own readers refuse it)."""
    out: dict = {}
    for key, value in pairs:
        if key in out:
            raise ValueError(f"the key {key!r} is given twice in one object")
        out[key] = value
    return out


def _check_state_fits_config(state: Any, model: Any, source: str) -> None:
    """Before a model is built from a stored config: its layer counts and the embedding's shape
    must be those of the stored parameters, so a config that was edited (or forged) to ask for a
    billion layers is refused instead of exhausting memory while the model is built."""
    if not isinstance(state, Mapping):
        raise ValueError(f"{source}: its parameters are a {type(state).__name__}, not a dict of "
                         f"tensors")
    if not isinstance(model, Mapping):
        return  # from_config names it
    import re

    m = {**MODEL_CONFIG_DEFAULTS, **model}
    encoder_decoder = m.get("variant") == "encoder_decoder"
    counts: Dict[str, Set[int]] = {"num_layers": set(), "num_encoder_layers": set()}
    for name in state:
        hit = re.match(r"(?:long_net\.)?(layers|decoder_layers|encoder_layers)\.(\d+)\.", str(name))
        if hit:
            key = "num_encoder_layers" if hit.group(1) == "encoder_layers" else "num_layers"
            counts[key].add(int(hit.group(2)))
    for key in ("num_layers", "num_encoder_layers", "vocab_size", "d_model", "dim_feedforward"):
        v = m.get(key)
        if key in model and (isinstance(v, bool) or not isinstance(v, int)):
            raise TypeError(f"{source}: the config's model.{key} must be an int, got "
                            f"{type(v).__name__} {short_repr(v)}")
    for key, found in counts.items():
        want = m.get(key) if key == "num_layers" or encoder_decoder else 0
        if found != set(range(len(found))) or want != len(found):
            raise ValueError(f"{source}: the config's model.{key} = {short_repr(want)} but "
                             f"the parameters hold {len(found)} such layers; the config does "
                             f"not describe them")
    sizes = {"token_embedding.weight": ("vocab_size", "d_model")}
    first_ffn = next((n for n in state if str(n).endswith(".linear1.weight")), None)
    if first_ffn is not None:
        sizes[first_ffn] = ("dim_feedforward", "d_model")
    for name, keys in sizes.items():
        t, want = state.get(name), tuple(m.get(k) for k in keys)
        if isinstance(t, Tensor) and tuple(t.shape) != want:
            raise ValueError(f"{source}: {name} has shape {tuple(t.shape)}, the config's "
                             f"(model.{keys[0]}, model.{keys[1]}) = {want}; the config does not "
                             f"describe the parameters")
