"""`xapp bench --ingest RATES`: how many frames/s one xApp process takes in end to end (E2
Indication in over gRPC, decoded, validated, batched, served, published on ZMQ and Redis) when the
trunk costs next to nothing.

The descriptor's tasks, exits and frame checks are kept; its encoder is replaced by one of the same
depth and token layout at width 8 (one attention head) with random heads, written to a temporary
directory, and batches may grow to INGEST_MAX_BATCH. With the `identity` trunk (the default) the
running xApp's blocks are then made identities, so that the trunk costs what an accelerator would
leave on the host (token embedding, heads, decisions) and the ingest path is what is measured; the
`tiny` trunk keeps the width-8 blocks (on 2 CPU cores their arithmetic caps the rate first). The simulated nodes and the listener run in a
child process (as in `xapp bench` online) at each offered rate in turn, each Indication carrying
one frame or, with `--frames-per-indication N`, N frames of one task (E2SM-IQ's multi-frame form).
The ceiling is the highest rate served in full (`ceiling`): nothing shed, a decision received for
every frame sent (within 2 %), and the offer sent (within 5 %).
"""

from __future__ import annotations

import dataclasses
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import torch
from torch import nn

from xapp.config import Descriptor
from xapp.model import Encoder, Head, save_encoder, save_head

if TYPE_CHECKING:
    from xapp.harness.demo import Embedded

INGEST_DIM = 8
INGEST_MAX_BATCH = 256
SERVED_SHARE = 0.98  # decisions per frame sent: frames in flight at the window's edges
SENT_SHARE = 0.95  # frames sent per frame offered: the nodes' pacing falls a few % short on a busy box


def trivial_model_descriptor(descriptor: Descriptor, encoder: Encoder, classes: dict[str, Sequence[str]],
                             directory: Path) -> Path:
    """A copy of `descriptor` that serves a width-8 encoder and random heads written into `directory`."""
    from xapp.harness.demo import adapt_descriptor

    torch.manual_seed(0)
    small = Encoder(dataclasses.replace(encoder.cfg, dim=INGEST_DIM, heads=1, mlp_ratio=1.0)).eval()
    save_encoder(directory / "encoder.safetensors", small)
    heads = {}
    for task, spec in descriptor.enabled_tasks.items():
        path = directory / f"{task}-exit{spec.exit}.safetensors"
        save_head(path, Head(INGEST_DIM, len(classes[task])), {"task": task, "exit": spec.exit, "classes": list(classes[task])})
        heads[task] = {"exit": spec.exit, "head": str(path), "policy": {"kind": "fixed"}}

    def edit(doc: dict) -> None:
        doc["encoder"]["checkpoint"] = str(directory / "encoder.safetensors")
        doc["encoder"] |= {"precision": "fp32", "runtime": "torch"}  # its blocks become identities anyway
        doc.pop("heads", None)
        doc["tasks"] = heads
        doc["batching"]["max_batch"] = INGEST_MAX_BATCH

    # Endpoints stay the descriptor's: the bench's embedded xApp replaces them with free ones.
    return adapt_descriptor(descriptor.path, directory / "descriptors" / "ingest.yaml", nodes=descriptor.e2.nodes,
                            zmq_endpoint=descriptor.publish.zmq_endpoint, redis_url=descriptor.publish.redis_url,
                            http_port=descriptor.ops.http_port, edit=edit)


def identity_trunk(env: Embedded) -> None:
    """Make the running xApp's trunk blocks identities (the bench's own xApp, before any load)."""
    encoder = env.app.engine.encoder
    encoder.blocks = nn.ModuleList(nn.Identity() for _ in encoder.blocks)


def ceiling(rows: Sequence[dict]) -> float:
    """Highest offered rate served in full: nothing shed, a decision received for every frame the
    nodes sent (within 2 %), and the offer sent (within 5 %; an xApp that reads too slowly holds the
    nodes back through gRPC flow control, far more than that)."""
    served = [r["offered_frames_per_s"] for r in rows
              if r["shed"] == 0 and r["sent_frames_per_s"] >= SENT_SHARE * r["offered_frames_per_s"]
              and r["decisions_per_s"] >= SERVED_SHARE * r["sent_frames_per_s"]]
    return max(served, default=0.0)


async def ingest(descriptor: Descriptor, encoder: Encoder, classes: dict[str, Sequence[str]], rates: Sequence[float],
                 seconds: float, threads: int | None, frames_per_indication: Sequence[int] = (1,),
                 trunk: str = "identity") -> dict:
    """Each rate offered with each count of frames per Indication in turn (so that a machine whose
    load drifts slows them alike); the ceiling per count and the best of them."""
    from xapp.harness.bench import online

    levels = [(None, rate, count) for rate in rates for count in frames_per_indication]
    with tempfile.TemporaryDirectory(prefix="xapp-ingest-") as tmp:
        path = trivial_model_descriptor(descriptor, encoder, classes, Path(tmp))
        rows = await online(path, levels, seconds, threads, identity_trunk if trunk == "identity" else None)
    by_count = {count: ceiling([r for r in rows if r["frames_per_indication"] == count]) for count in frames_per_indication}
    return {"ingest_frames_per_s": max(by_count.values()), "ceiling_by_frames_per_indication": by_count, "levels": rows,
            "max_batch": INGEST_MAX_BATCH, "trunk": trunk,
            "exits": {t: s.exit for t, s in descriptor.enabled_tasks.items()}}
