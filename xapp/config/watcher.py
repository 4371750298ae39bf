"""Hot reload: poll the descriptor's content, validate a changed one off the event loop, and hand
it to the runtime only if it is valid. An invalid edit is logged in full, counted, and the running
descriptor stays."""

from __future__ import annotations

import asyncio
import hashlib
import logging
import os
from collections.abc import Callable
from pathlib import Path

from xapp.config.descriptor import parse_descriptor
from xapp.config.types import Descriptor, DescriptorError
from xapp.ops.metrics import Metrics

log = logging.getLogger(__name__)


class DescriptorWatcher:
    """`await run()` until cancelled. A change is acted on once the same content is seen on two
    consecutive polls, so a file caught half-written is not reported as a broken edit.
    `current` is the descriptor already running (its source_sha256 is the baseline); without it the
    content present when run() starts is the baseline."""

    def __init__(
        self,
        path: str | os.PathLike[str],
        on_change: Callable[[Descriptor], None],
        metrics: Metrics,
        interval_s: float = 0.5,
        current: Descriptor | None = None,
    ) -> None:
        self.path = Path(path)
        self.on_change = on_change
        self.metrics = metrics
        self.interval_s = interval_s
        self._seen = current.source_sha256 if current is not None else None  # last content acted on

    async def run(self) -> None:
        if self._seen is None:
            self._seen = await asyncio.to_thread(self._digest)
        pending: str | None = None
        while True:
            await asyncio.sleep(self.interval_s)
            digest = await asyncio.to_thread(self._digest)
            if digest is None or digest == self._seen:
                pending = None
            elif digest != pending:
                pending = digest  # changed; wait one poll for it to settle
            else:
                pending = None
                await self._reload(digest)

    async def _reload(self, digest: str) -> None:
        self._seen = digest
        try:
            raw = await asyncio.to_thread(self.path.read_bytes)
            descriptor = await asyncio.to_thread(parse_descriptor, raw, self.path)
        except (OSError, DescriptorError) as exc:
            self.metrics.descriptor_reloads.labels(outcome="rejected").inc()
            log.error("descriptor edit rejected, keeping the running one: %s", exc)
            return
        if descriptor.source_sha256 != digest:  # edited again between polls; the next poll sees it
            self._seen = descriptor.source_sha256
        try:
            self.on_change(descriptor)
        except Exception:
            self.metrics.descriptor_reloads.labels(outcome="rejected").inc()
            log.exception("descriptor %s is valid but could not be applied; keeping the running one", self.path)
            return
        self.metrics.descriptor_reloads.labels(outcome="applied").inc()
        log.info("descriptor %s applied (sha256 %s)", self.path, descriptor.source_sha256[:12])

    def _digest(self) -> str | None:
        try:
            return hashlib.sha256(self.path.read_bytes()).hexdigest()
        except OSError:
            return None  # mid-replace (ConfigMap symlink swap) or deleted: keep polling
