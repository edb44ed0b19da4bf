"""Immutable events the engine reports (drained with `next_event()`, also seen by instrumentation)."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from knhk_mesh.core.messages import Address, AgentId, MessageType
from knhk_mesh.core.partition import PartitionStatus
from knhk_mesh.core.topology import TopologySnapshot


class Offence(StrEnum):
    """Byzantine behaviour kinds; values are the schema's `knhk.mesh.byzantine.kind` members."""

    INVALID_SIGNATURE = "invalid_signature"
    EQUIVOCATION = "equivocation"
    REPLAY = "replay"
    RATE_LIMITED = "rate_limited"
    MALFORMED = "malformed"
    UNKNOWN_SENDER = "unknown_sender"
    IMPERSONATION = "impersonation"
    FORGED_RECORD = "forged_record"
    UNPROVEN_RECORD = "unproven_record"


class Rejection(StrEnum):
    """Why a message was dropped; values are the schema's `knhk.mesh.rejection.reason` members."""

    INVALID_SIGNATURE = "invalid_signature"
    EQUIVOCATION = "equivocation"
    REPLAY = "replay"
    RATE_LIMITED = "rate_limited"
    MALFORMED = "malformed"
    UNKNOWN_SENDER = "unknown_sender"
    IMPERSONATION = "impersonation"
    FORGED_RECORD = "forged_record"
    DUPLICATE = "duplicate"
    BARRED = "barred"
    LOW_REPUTATION = "low_reputation"
    OVERSIZED = "oversized"
    READ_ONLY = "read_only"


RECOVERY = "recovery"  # the reputation reason that is not an offence


@dataclass(frozen=True, slots=True)
class PeerJoined:
    peer_id: AgentId
    address: Address
    region: str


@dataclass(frozen=True, slots=True)
class PeerLeft:
    peer_id: AgentId
    reason: str


@dataclass(frozen=True, slots=True)
class Converged:
    rounds: int
    duration: float
    digest: bytes
    round: int


@dataclass(frozen=True, slots=True)
class ByzantineDetected:
    peer_id: AgentId
    kind: Offence
    message_type: MessageType | None
    address: Address | None


@dataclass(frozen=True, slots=True)
class ReputationChanged:
    peer_id: AgentId
    previous: float
    current: float
    reason: str  # an Offence value or RECOVERY


@dataclass(frozen=True, slots=True)
class MessageRejected:
    peer_id: AgentId | None
    address: Address
    reason: Rejection
    detail: str


@dataclass(frozen=True, slots=True)
class MessageSent:
    peer_id: AgentId | None
    address: Address
    type: MessageType
    size: int


@dataclass(frozen=True, slots=True)
class MessageReceived:
    peer_id: AgentId
    type: MessageType
    size: int


@dataclass(frozen=True, slots=True)
class RoundStarted:
    round: int
    fanout: int
    peer_count: int


@dataclass(frozen=True, slots=True)
class EntriesMerged:
    peer_id: AgentId
    applied: int
    digest: bytes


@dataclass(frozen=True, slots=True)
class RttMeasured:
    peer_id: AgentId
    rtt: float
    region: str


@dataclass(frozen=True, slots=True)
class TopologyRebalanced:
    """The node re-clustered its peers; the snapshot is what the shell persists (RDF)."""

    snapshot: TopologySnapshot


@dataclass(frozen=True, slots=True)
class HierarchyCounted:
    """The coordinator's count of agents per (level, region), from the summaries its aggregators sent up."""

    counts: tuple[tuple[str, str, int], ...]  # (level, region, agents)


@dataclass(frozen=True, slots=True)
class PartitionChanged:
    """The partition detector changed status (`duration`: seconds since the partition's detection)."""

    previous: PartitionStatus
    current: PartitionStatus
    reachable: int
    quorum: int
    duration: float
    digest: bytes


@dataclass(frozen=True, slots=True)
class WriteRefused:
    """A local write refused while the agent is partitioned (read-only)."""

    key: str


MeshEvent = (
    PeerJoined
    | PeerLeft
    | Converged
    | ByzantineDetected
    | ReputationChanged
    | MessageRejected
    | MessageSent
    | MessageReceived
    | RoundStarted
    | EntriesMerged
    | RttMeasured
    | TopologyRebalanced
    | HierarchyCounted
    | PartitionChanged
    | WriteRefused
)
