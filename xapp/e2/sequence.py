"""Replay protection and gap counting for one subscription's sequence numbers."""

from __future__ import annotations

from collections import deque

from prometheus_client import Counter

from xapp.e2.frames import FrameRejected


class SequenceGuard:
    """Remembers the last `window` sequence numbers of one (node, subscription): a number seen
    again, or older than the window (unknowable, so treated alike), is a replay; a jump forward
    adds the skipped numbers to `gaps`."""

    def __init__(self, window: int, gaps: Counter) -> None:
        self.window = window
        self._gaps = gaps
        self._seen: set[int] = set()
        self._order: deque[int] = deque()
        self._highest: int | None = None

    def admit(self, seq: int) -> None:
        """Record `seq`; raises FrameRejected("replay") for a duplicate or a number behind the window."""
        if seq in self._seen:
            raise FrameRejected("replay", f"sequence number {seq} already received on this subscription", seq)
        highest = self._highest
        if highest is not None and seq <= highest - self.window:
            raise FrameRejected("replay", f"sequence number {seq} is {highest - seq} behind {highest}, "
                                f"outside the replay window ({self.window})", seq)
        if highest is None or seq > highest:
            if highest is not None and seq > highest + 1:
                self._gaps.inc(seq - highest - 1)
            self._highest = seq
        self._seen.add(seq)
        self._order.append(seq)
        if len(self._order) > self.window:
            self._seen.discard(self._order.popleft())
