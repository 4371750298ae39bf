"""The precision the engine serves the trunk at, chosen in the descriptor (encoder.precision).

fp32  the trunk as trained (on CUDA the engine runs bf16 autocast whatever is chosen).
int8  dynamic quantisation of the trunk blocks' Linear layers (int8 weights per output channel,
      activations quantised per batch), CPU only; patch embedding and heads stay fp32.
bf16  bf16 autocast on CPUs with native bf16 arithmetic (AVX512-BF16 or AMX), the blocks' Linear
      weights stored in bf16; refused elsewhere, where it would be emulated and slower than fp32.

The runtime (encoder.runtime) is torch, or onnxruntime for the blocks (fp32 or int8, CPU only;
xapp.engine.onnx_blocks).
"""

from __future__ import annotations

import contextlib
import copy
import warnings
from pathlib import Path

import torch
from torch import nn

from xapp.engine.onnx_blocks import onnx_trunk
from xapp.model import Encoder
from xapp.model.precision import device_autocast

PRECISIONS = ("fp32", "int8", "bf16")
RUNTIMES = ("torch", "onnxruntime")
BF16_CPU_FLAGS = ("avx512_bf16", "amx_bf16")


class PrecisionError(Exception):
    """The chosen precision is unknown or not supported on this device."""


class RuntimeMissing(PrecisionError):
    """The chosen runtime is not installed."""


def cpu_has_bf16(cpuinfo: Path = Path("/proc/cpuinfo")) -> bool:
    try:
        flags = cpuinfo.read_text().split()
    except OSError:
        return False
    return any(flag in flags for flag in BF16_CPU_FLAGS)


def serving_trunk(encoder: Encoder, precision: str, runtime: str = "torch") -> Encoder:
    """The encoder to run at `precision` on `runtime`: `encoder` itself for fp32 (and for bf16 on CUDA,
    where autocast serves it), a copy otherwise."""
    device = next(encoder.parameters()).device
    if precision not in PRECISIONS:
        raise PrecisionError(f"encoder.precision {precision!r}: expected one of {PRECISIONS}")
    if runtime not in RUNTIMES:
        raise PrecisionError(f"encoder.runtime {runtime!r}: expected one of {RUNTIMES}")
    if runtime == "onnxruntime":
        if device.type != "cpu" or precision == "bf16":
            raise PrecisionError(f"encoder.runtime onnxruntime serves fp32 or int8 on CPU, not {precision} on {device}")
        try:
            return onnx_trunk(encoder, precision == "int8", torch.get_num_threads())
        except ImportError as exc:
            raise RuntimeMissing(f"encoder.runtime onnxruntime: {exc.name} is not installed "
                                 "(pip install 'xapp[onnx]')") from None
    if precision == "int8":
        if device.type != "cpu":
            raise PrecisionError(f"encoder.precision int8 runs on CPU only, the encoder is on {device}")
        trunk = copy.deepcopy(encoder)
        qconfig = torch.ao.quantization.per_channel_dynamic_qconfig  # closer to fp32 than per-tensor here
        with warnings.catch_warnings():  # torch.ao.quantization's deprecation notes, on every call
            warnings.simplefilter("ignore", DeprecationWarning)
            warnings.filterwarnings("ignore", "torch.quantize_per_tensor", UserWarning)
            trunk.blocks = torch.ao.quantization.quantize_dynamic(trunk.blocks, {nn.Linear: qconfig}, dtype=torch.qint8)
        return trunk
    if precision == "bf16" and device.type == "cpu":
        if not cpu_has_bf16():
            raise PrecisionError(f"encoder.precision bf16: this CPU has none of {BF16_CPU_FLAGS}; use fp32 or int8")
        # Autocast would cast each Linear's weights at every call (2-3 % of a batch): cast them once.
        # The same rounding, so the same decisions.
        trunk = copy.deepcopy(encoder)
        for module in trunk.blocks.modules():
            if isinstance(module, nn.Linear):
                module.to(torch.bfloat16)
        return trunk
    return encoder


def serving_autocast(device: torch.device, precision: str) -> contextlib.AbstractContextManager:
    if precision == "bf16" and device.type == "cpu":
        return torch.autocast("cpu", dtype=torch.bfloat16)
    return device_autocast(device)
