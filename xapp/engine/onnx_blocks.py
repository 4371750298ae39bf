"""The trunk's blocks on ONNX Runtime (descriptor `encoder.runtime: onnxruntime`).

Each block is exported to ONNX once, at start-up (with int8: dynamically quantised, weights per
channel), and runs as a session of its own, so the engine still runs block by block and drops rows at
their exits. Tokens, heads and side features stay in torch. Where torch's fp32 matmul is slow on a CPU
(an AMD EPYC here: 91-97 GFLOP/s), ONNX Runtime's kernels serve the same decisions about 1.4x faster;
on another CPU they were slower (`xapp bench --precision` measures both).
"""

from __future__ import annotations

import copy
import logging
import tempfile
import warnings
from pathlib import Path

import torch
from torch import nn

from xapp.model import Encoder


class OrtBlock(nn.Module):
    """One block as an ONNX Runtime session: [rows, tokens, dim] float32 in and out, on the CPU."""

    def __init__(self, session) -> None:
        super().__init__()
        self.session = session

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        return torch.from_numpy(self.session.run(None, {"h": h.contiguous().numpy()})[0])


def onnx_trunk(encoder: Encoder, int8: bool, threads: int) -> Encoder:
    """A copy of `encoder` whose blocks run on ONNX Runtime with `threads` intra-op threads; raises
    ImportError without onnxruntime, or without onnx (torch's exporter needs it)."""
    import onnx  # noqa: F401
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    trunk = copy.deepcopy(encoder)
    with tempfile.TemporaryDirectory(prefix="xapp-onnx-") as workdir:
        sessions = []
        for i, block in enumerate(encoder.blocks):
            path = export_blocks(block, encoder.cfg.dim, Path(workdir) / f"block{i}.onnx")
            if int8:
                path = quantise(path)
            sessions.append(ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"]))
    trunk.blocks = nn.ModuleList(OrtBlock(s) for s in sessions)
    return trunk


def export_blocks(module: nn.Module, dim: int, path: Path) -> Path:
    """`module` (blocks taking and returning [rows, tokens, dim]) as ONNX, rows and tokens dynamic."""
    example = torch.zeros(2, 65, dim)
    with warnings.catch_warnings():  # the TorchScript exporter's deprecation and tracer notes, every call
        warnings.simplefilter("ignore")
        torch.onnx.export(module.eval(), (example,), str(path), input_names=["h"], output_names=["out"],
                          dynamic_axes={"h": {0: "batch", 1: "tokens"}, "out": {0: "batch", 1: "tokens"}},
                          dynamo=False, opset_version=17)
    return path


def quantise(path: Path) -> Path:
    """Dynamic int8 quantisation of an exported model (weights per output channel)."""
    from onnxruntime.quantization import QuantType, quantize_dynamic

    out = path.with_suffix(".int8.onnx")
    quiet = logging.getLogger().level
    logging.getLogger().setLevel(logging.ERROR)  # its advice to pre-process, logged on the root logger
    try:
        quantize_dynamic(str(path), str(out), weight_type=QuantType.QInt8, per_channel=True)
    finally:
        logging.getLogger().setLevel(quiet)
    return out
