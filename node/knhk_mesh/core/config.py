"""The mesh's configuration: one typed object built at the edge (CLI, tests) and passed in."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from enum import StrEnum
from typing import TypeVar

from knhk_mesh.core.partition import PartitionConfig
from knhk_mesh.core.topology import Strategy, TopologyKind
from knhk_mesh.core.wire import MAX_MESSAGE_BYTES

_E = TypeVar("_E", bound=StrEnum)


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
    replay_window: int = 1024  # per (sender, receiver): nonces count frames towards this receiver
    hot_rounds: int = 2  # rounds a newly learnt entry rides on the pushes (rumour), before repair takes over
    forward_frames_per_round: int = 40  # eager forwards of fresh entries on receipt, in frames per round
    sync_peers_per_round: int = 1  # anti-entropy pulls started per round (each from one differing peer)
    repair_budget_bytes: int = (
        256 * 1024
    )  # repair bytes one pull may fetch, and one peer may be served, per round
    max_known_records: int = 1_000_000  # keys of members met through repair (verify entries only)
    max_orphans: int = 65_536  # entries held until their owner's record arrives
    max_pending: int = 256  # records awaiting an address challenge
    pending_per_relayer: int = 16  # of which from any one relayer
    challenges_per_round: int = 32  # new address challenges sent per round (joins included)
    challenge_tries: int = 3
    challenge_retry_rounds: int = 3
    join_interval: float = 1.0  # seconds between joins accepted from one source address
    rejoin_after: float = 5.0  # seconds without a frame from any peer before re-announcing our record
    max_message_bytes: int = MAX_MESSAGE_BYTES
    region: str = ""
    liveness_rounds: int = 20  # a region member unheard from this long is not live (for the leader rule)
    cross_region_fanout: int = 3  # other regions' leaders a leader pushes to each round
    summary_every_rounds: int = 5  # hierarchical: how often aggregators and the coordinator summarise
    jitter_start: bool = True  # spread first rounds over one interval; False gives lock-step rounds
    nonce_base: int = 0  # first envelope nonce; transports derive it from a clock so restarts move on
    peer_selection: Strategy = Strategy.RANDOM  # how round targets are chosen (core.topology)
    nearest_fraction: float = 0.2  # hybrid: share of targets taken from the nearest cluster
    rebalance_every_rounds: int = 100  # rounds between topology rebalances (re-clustering)
    topology: TopologyKind = TopologyKind.SINGLE_REGION  # deployment topology (telemetry, RDF)
    partition: PartitionConfig = field(default_factory=PartitionConfig)  # the partition detector

    def __post_init__(self) -> None:
        if self.fanout < 1:
            raise ValueError(f"fanout must be >= 1, got {self.fanout}")
        if not 0 < self.round_interval < math.inf:  # NaN fails too
            raise ValueError(f"round_interval must be a finite number > 0, got {self.round_interval}")
        if not self.stale_timeout > 0:  # infinite: never prune
            raise ValueError(f"stale_timeout must be > 0 seconds, got {self.stale_timeout}")
        if self.converge_rounds < 1:
            raise ValueError(f"converge_rounds must be >= 1, got {self.converge_rounds}")
        if not 0.0 <= self.min_reputation <= 1.0:
            raise ValueError(f"min_reputation must be within [0, 1], got {self.min_reputation}")
        if self.hot_rounds < 1 or self.repair_budget_bytes < self.max_message_bytes:
            raise ValueError("hot_rounds must be >= 1 and repair_budget_bytes at least one frame")
        object.__setattr__(self, "peer_selection", _member(Strategy, self.peer_selection, "peer_selection"))
        object.__setattr__(self, "topology", _member(TopologyKind, self.topology, "topology"))
        if not 0.0 <= self.nearest_fraction <= 1.0:
            raise ValueError(f"nearest_fraction must be within [0, 1], got {self.nearest_fraction}")
        if self.rebalance_every_rounds < 1:
            raise ValueError(f"rebalance_every_rounds must be >= 1, got {self.rebalance_every_rounds}")
        if not self.rejoin_after > 0:
            raise ValueError(f"rejoin_after must be > 0, got {self.rejoin_after}")
        if self.liveness_rounds < 1 or self.cross_region_fanout < 1 or self.summary_every_rounds < 1:
            raise ValueError("liveness_rounds, cross_region_fanout and summary_every_rounds must be >= 1")
        if self.forward_frames_per_round < 0:
            raise ValueError(f"forward_frames_per_round must be >= 0, got {self.forward_frames_per_round}")
        if self.rate_per_second <= 0 or self.burst < 1:
            raise ValueError("rate_per_second must be > 0 and burst >= 1")


def _member(kind: type[_E], value: str, name: str) -> _E:
    """Accept the enum or its string value (configs come from YAML and command lines)."""
    try:
        return kind(value)
    except ValueError:
        known = ", ".join(m.value for m in kind)
        raise ValueError(f"{name} must be one of {known}, got {value!r}") from None
