"""Hot reload: a valid edit is applied, an invalid one is counted and the running descriptor stays."""

from __future__ import annotations

import asyncio
from pathlib import Path

import yaml

from polling import until
from test_config import base_doc, make_root, write_doc, write_head
from xapp.config import Descriptor, DescriptorWatcher, load_descriptor
from xapp.ops.metrics import Metrics


def reloads(metrics: Metrics, outcome: str) -> float:
    return metrics.registry.get_sample_value("xapp_descriptor_reloads_total", {"outcome": outcome}) or 0.0


def test_watcher_applies_valid_edits_and_keeps_the_old_on_invalid(tmp_path: Path) -> None:
    make_root(tmp_path)
    write_head(tmp_path / "heads" / "beam" / "exit5.safetensors")
    doc = base_doc()
    path = write_doc(tmp_path, doc)
    running = load_descriptor(path)
    metrics = Metrics()
    applied: asyncio.Queue[Descriptor] = asyncio.Queue()

    async def scenario() -> None:
        watcher = DescriptorWatcher(path, applied.put_nowait, metrics, interval_s=0.01, current=running)
        task = asyncio.create_task(watcher.run())
        try:
            doc["tasks"]["beam"]["exit"] = 5
            doc["tasks"]["beam"]["head"] = "heads/beam/exit5.safetensors"
            write_doc(tmp_path, doc)
            new = await asyncio.wait_for(applied.get(), 10)
            assert new.tasks["beam"].exit == 5 and reloads(metrics, "applied") == 1

            doc["tasks"]["beam"]["exit"] = 11  # deeper than the encoder: refused
            write_doc(tmp_path, doc)
            await until(lambda: reloads(metrics, "rejected") >= 1, "the too-deep exit refused")
            path.write_text("tasks: [unclosed\n")  # and unparsable: refused too
            await until(lambda: reloads(metrics, "rejected") >= 2, "the unparsable file refused")

            doc["tasks"]["beam"]["exit"] = 2
            doc["tasks"]["beam"]["policy"] = {"kind": "fixed"}
            doc["tasks"]["beam"]["head"] = "heads/beam/exit2.safetensors"
            path.write_text(yaml.safe_dump(doc))
            new = await asyncio.wait_for(applied.get(), 10)
            assert new.tasks["beam"].exit == 2
        finally:
            task.cancel()

    asyncio.run(scenario())
    assert applied.empty()  # the rejected edits never reached on_change
    assert reloads(metrics, "applied") == 2 and reloads(metrics, "rejected") == 2


def test_watcher_counts_a_failed_apply_as_rejected(tmp_path: Path) -> None:
    make_root(tmp_path)
    doc = base_doc()
    path = write_doc(tmp_path, doc)
    running = load_descriptor(path)
    metrics = Metrics()

    def refuse(_: Descriptor) -> None:
        raise RuntimeError("engine could not load the head")

    async def scenario() -> None:
        task = asyncio.create_task(DescriptorWatcher(path, refuse, metrics, interval_s=0.01, current=running).run())
        doc["batching"]["max_batch"] = 8
        write_doc(tmp_path, doc)
        await until(lambda: reloads(metrics, "rejected") >= 1, "the edit refused")
        task.cancel()

    asyncio.run(asyncio.wait_for(scenario(), 10))
    assert reloads(metrics, "applied") == 0
