"""longnet: LongNet dilated attention (arXiv 2307.02486), exact, from C++ kernels.

    import torch, longnet
    attn = longnet.MultiheadDilatedAttention(512, 8, dilation_rates=[1, 2, 4],
                                             segment_lengths=[2048, 4096, 8192])
    x = torch.randn(1, 10000, 512)            # any length: no multiple of a segment needed
    y, _ = attn(x, x, x, is_causal=True)

    lm = longnet.LongNetLM.from_checkpoint("runs/x/checkpoints/step_00001000.ckpt").eval()

Classes follow the reference Python library (dilated-attention-pytorch) keyword for keyword:
DilatedAttention, MultiheadDilatedAttention, LongNet, LongNetLM; their maths and parameter names
are longnet's C++ models'. python/README.md says how results differ from the reference library.
The op itself is longnet.dilated_attention (torch.ops.longnet.dilated_attention).
"""

from longnet._ops import LibraryNotFoundError, dilated_attention, library_path, load_library
from longnet.attention import DilatedAttention, MultiheadDilatedAttention
from longnet.checkpoint import load_checkpoint, parse_config
from longnet.models import (DilatedTransformerDecoderLayer, DilatedTransformerEncoderLayer,
                            LongNet, LongNetLM)
from longnet.xpos import XPos, xpos_apply

try:
    from longnet._build_info import VERSION as _VERSION  # type: ignore[import-not-found]
except ImportError:  # a source checkout
    _VERSION = "0.1.0+source"
__version__: str = _VERSION

__all__ = [
    "DilatedAttention",
    "MultiheadDilatedAttention",
    "LongNet",
    "LongNetLM",
    "DilatedTransformerEncoderLayer",
    "DilatedTransformerDecoderLayer",
    "XPos",
    "xpos_apply",
    "dilated_attention",
    "load_library",
    "library_path",
    "LibraryNotFoundError",
    "load_checkpoint",
    "parse_config",
]
