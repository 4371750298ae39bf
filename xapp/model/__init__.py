"""The shared early-exit encoder, its per-task heads, checkpoints and FLOP accounting."""

from xapp.model.checkpoint import DEFAULT_ENCODER, load_encoder, save_encoder
from xapp.model.config import EncoderConfig
from xapp.model.encoder import Encoder
from xapp.model.flops import exit_flops, head_flops
from xapp.model.heads import Head, load_head, save_head
from xapp.model.safefile import WeightsFileError

__all__ = [
    "DEFAULT_ENCODER",
    "Encoder",
    "EncoderConfig",
    "Head",
    "WeightsFileError",
    "exit_flops",
    "head_flops",
    "load_encoder",
    "load_head",
    "save_encoder",
    "save_head",
]
