"""Plain settings of the E2 client: who subscribes, what a valid Indication looks like, how to back off."""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from typing import Mapping

from xapp.e2.e2sm_iq import NAME as SERVICE_MODEL_NAME
from xapp.e2.e2sm_iq import VERSION as SERVICE_MODEL_VERSION

__all__ = ["SERVICE_MODEL_NAME", "SERVICE_MODEL_VERSION", "AppIdentity", "Backoff", "FrameLimits"]


@dataclass(frozen=True, slots=True)
class AppIdentity:
    """Who subscribes: the parts of RequestHeaders that are the same for every node."""

    app_id: str
    app_instance_id: str
    service_model: str = SERVICE_MODEL_NAME
    service_model_version: str = SERVICE_MODEL_VERSION


@dataclass(frozen=True, slots=True)
class FrameLimits:
    """What a valid Indication looks like. `tasks` maps each task the xApp serves to its frame
    shape (antennas, samples); frames of any other task are rejected as unknown."""

    max_frame_bytes: int
    tasks: Mapping[str, tuple[int, int]]
    deadline_ms: float
    reporting_period_ms: int = 0  # asked of the node on subscribe; 0 keeps the node's rate
    max_clock_skew_s: float = 30.0  # node timestamps further from now are rejected
    replay_window: int = 4096  # sequence numbers remembered per subscription against replays
    max_frames_per_indication: int = 64  # a multi-frame Indication may hold this many frames of max_frame_bytes


@dataclass(frozen=True, slots=True)
class Backoff:
    """Exponential backoff with multiplicative jitter, as in the descriptor's e2.reconnect block."""

    initial_ms: float = 100.0
    max_ms: float = 5000.0
    jitter: float = 0.2
    rng: random.Random = field(default_factory=random.Random, compare=False)

    def delay(self, attempt: int) -> float:
        """Seconds to wait before retry number `attempt` (0-based)."""
        base = min(self.max_ms, self.initial_ms * 2.0 ** min(attempt, 32))
        return base * (1.0 + self.jitter * self.rng.uniform(-1.0, 1.0)) / 1000.0
