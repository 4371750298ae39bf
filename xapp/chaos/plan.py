"""What a fault campaign runs: its size and pacing. Kept apart from xapp.chaos.campaign, which pulls in
the whole xApp (gRPC stubs included), so that the CLI can read the defaults without importing it."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class ChaosPlan:
    nodes: int = 4
    rate_hz: float = 50.0  # Indications per second per node while a phase runs
    flood_rounds: int = 5  # each round: every malformed kind once per node, then as many replays
    wire_rounds: int = 1  # each round: every wire fault once per node
    churn_cycles: int = 1  # each cycle: every churn fault once per node
    max_down_s: float = 1.0  # descriptor e2.max_down_s for the run
    outage_s: float = 2.5  # one node down this long (must exceed max_down_s)
    redis_outage_s: float = 3.0
    redis_buffer: int = 64  # descriptor publish.redis.buffer: small, so the outage overflows it
    soak_s: float = 10.0
    pool: int = 16  # frames pre-generated per task
    seed: int = 0
    threads: int | None = None
