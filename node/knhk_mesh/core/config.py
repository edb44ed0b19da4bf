"""The mesh's configuration: one typed object built at the edge (CLI, tests) and passed in."""

from __future__ import annotations

from dataclasses import dataclass

from knhk_mesh.core.wire import MAX_MESSAGE_BYTES


@dataclass(frozen=True)
class MeshConfig:
    fanout: int = 10  # k peers per round
    round_interval: float = 0.1  # seconds between rounds (engine clock)
    converge_rounds: int = 2  # rounds of digest agreement before Converged
    rate_per_second: float = 1000.0  # token bucket refill per peer
    burst: float = 1000.0  # token bucket capacity per peer
    min_reputation: float = 0.5  # peers under this are ignored
    stale_timeout: float = 30.0  # peers silent this long are pruned
    prune_every_rounds: int = 50
    membership_every_rounds: int = 5
    membership_sample: int = 16
    evidence_rounds: int = 3  # rounds an equivocation proof is gossiped after it is learnt
    recovery_every_rounds: int = 20
    recovery_step: float = 0.05
    ping_every_rounds: int = 10
    replay_window: int = 1024
    max_message_bytes: int = MAX_MESSAGE_BYTES
    region: str = ""
    jitter_start: bool = True  # spread first rounds over one interval; False gives lock-step rounds
    nonce_base: int = 0  # first envelope nonce; transports derive it from a clock so restarts move on

    def __post_init__(self) -> None:
        if self.fanout < 1:
            raise ValueError(f"fanout must be >= 1, got {self.fanout}")
        if self.round_interval <= 0:
            raise ValueError(f"round_interval must be > 0, got {self.round_interval}")
        if self.converge_rounds < 1:
            raise ValueError(f"converge_rounds must be >= 1, got {self.converge_rounds}")
        if not 0.0 <= self.min_reputation <= 1.0:
            raise ValueError(f"min_reputation must be within [0, 1], got {self.min_reputation}")
        if self.rate_per_second <= 0 or self.burst < 1:
            raise ValueError("rate_per_second must be > 0 and burst >= 1")
