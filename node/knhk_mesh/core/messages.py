"""Immutable wire messages of the mesh protocol (h11-style: plain values, no behaviour)."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from enum import IntEnum

import msgpack

AGENT_ID_BYTES = 8
PUBLIC_KEY_BYTES = 32
SIGNATURE_BYTES = 64
DIGEST_BYTES = 16
AGENT_DIGEST_BYTES = 8

ENTRY_DOMAIN = b"knhk-mesh/entry/1\x00"
ENVELOPE_DOMAIN = b"knhk-mesh/envelope/1\x00"

AgentId = bytes
NO_RECIPIENT = bytes(AGENT_ID_BYTES)
Address = tuple[str, int]


class MessageType(IntEnum):
    """Wire codes; the lower-case names are the schema's `knhk.mesh.message.type` values."""

    PUSH = 1
    PULL_REQUEST = 2
    DELTA = 3
    JOIN = 4
    MEMBERSHIP = 5
    PING = 6
    PONG = 7
    EVIDENCE = 8

    @property
    def label(self) -> str:
        return self.name.lower()


def agent_id_of(public_key: bytes) -> AgentId:
    """An agent's id is the first 8 bytes of its ed25519 public key (self-certifying)."""
    return bytes(public_key[:AGENT_ID_BYTES])


@dataclass(frozen=True, slots=True)
class Entry:
    """One state entry, signed by the agent that owns it; relays forward it unchanged."""

    agent: AgentId
    version: int
    key: str
    value: bytes
    signature: bytes
    signed: bytes = field(default=b"", compare=False, repr=False)
    # 128-bit hash of the entry: the incremental digest's term and the equivocation tie-break.
    fingerprint: int = field(default=0, compare=False, repr=False)

    def __post_init__(self) -> None:
        if not self.signed:
            object.__setattr__(
                self, "signed", entry_signed_bytes(self.agent, self.version, self.key, self.value)
            )
        h = hashlib.blake2b(self.signed, digest_size=DIGEST_BYTES)
        h.update(self.signature)
        object.__setattr__(self, "fingerprint", int.from_bytes(h.digest(), "big"))


def entry_signed_bytes(agent: AgentId, version: int, key: str, value: bytes) -> bytes:
    """The exact bytes an agent signs for an entry (domain-separated, fixed field order)."""
    packed: bytes = msgpack.packb([agent, version, key, value], use_bin_type=True)
    return ENTRY_DOMAIN + packed


@dataclass(frozen=True, slots=True)
class VersionItem:
    """A version-vector component: the agent's highest version held and a digest of its entries."""

    agent: AgentId
    version: int
    digest: bytes


@dataclass(frozen=True, slots=True)
class Push:
    digest: bytes
    versions: tuple[VersionItem, ...]
    entries: tuple[Entry, ...] = ()


@dataclass(frozen=True, slots=True)
class PullRequest:
    digest: bytes
    versions: tuple[VersionItem, ...]


@dataclass(frozen=True, slots=True)
class Delta:
    digest: bytes
    versions: tuple[VersionItem, ...]
    entries: tuple[Entry, ...] = ()


@dataclass(frozen=True, slots=True)
class Join:
    public_key: bytes
    host: str
    port: int
    region: str


@dataclass(frozen=True, slots=True)
class PeerRecord:
    agent: AgentId
    public_key: bytes
    host: str
    port: int
    region: str


@dataclass(frozen=True, slots=True)
class Membership:
    peers: tuple[PeerRecord, ...]


@dataclass(frozen=True, slots=True)
class Ping:
    token: int


@dataclass(frozen=True, slots=True)
class Pong:
    token: int


@dataclass(frozen=True, slots=True)
class Evidence:
    """Two validly signed, different entries for one (agent, version): proof of equivocation."""

    first: Entry
    second: Entry


Body = Push | PullRequest | Delta | Join | Membership | Ping | Pong | Evidence

BODY_TYPES: dict[type[object], MessageType] = {
    Push: MessageType.PUSH,
    PullRequest: MessageType.PULL_REQUEST,
    Delta: MessageType.DELTA,
    Join: MessageType.JOIN,
    Membership: MessageType.MEMBERSHIP,
    Ping: MessageType.PING,
    Pong: MessageType.PONG,
    Evidence: MessageType.EVIDENCE,
}


@dataclass(frozen=True, slots=True)
class Envelope:
    """A decoded frame: who claims to have sent it, to whom, its nonce, body and signed bytes."""

    sender: AgentId
    recipient: AgentId  # NO_RECIPIENT only on a join to an address whose agent is not yet known
    nonce: int
    body: Body
    signed: bytes = field(compare=False, repr=False)
    signature: bytes = field(compare=False, repr=False)

    @property
    def type(self) -> MessageType:
        return BODY_TYPES[type(self.body)]
