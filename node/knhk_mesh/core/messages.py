"""Immutable wire messages of the mesh protocol (h11-style: plain values, no behaviour)."""

from __future__ import annotations

import hashlib
import threading
from dataclasses import dataclass, field, fields
from enum import IntEnum

import msgpack

AGENT_ID_BYTES = 8
PUBLIC_KEY_BYTES = 32
SIGNATURE_BYTES = 64
DIGEST_BYTES = 16
SHORT_FINGERPRINT_BYTES = 8  # how a leaf summary names an entry

ENTRY_DOMAIN = b"knhk-mesh/entry/2\x00"
ENVELOPE_DOMAIN = b"knhk-mesh/envelope/2\x00"
RECORD_DOMAIN = b"knhk-mesh/record/2\x00"
ROTATION_DOMAIN = b"knhk-mesh/rotation/2\x00"

AgentId = bytes
NO_RECIPIENT = bytes(AGENT_ID_BYTES)
Address = tuple[str, int]


class MessageType(IntEnum):
    """Wire codes; the lower-case names are the schema's `knhk.mesh.message.type` values."""

    PUSH = 1
    SYNC_REQUEST = 2
    SYNC_REPLY = 3
    JOIN = 4
    MEMBERSHIP = 5
    PING = 6
    PONG = 7
    EVIDENCE = 8
    CHALLENGE = 9
    ANSWER = 10

    @property
    def label(self) -> str:
        return self.name.lower()


def agent_id_of(public_key: bytes) -> AgentId:
    """An agent's id: the first 8 bytes of its first (genesis) ed25519 public key."""
    return bytes(public_key[:AGENT_ID_BYTES])


@dataclass(frozen=True, slots=True)
class Entry:
    """One state entry, signed by the agent that owns it (with the key of `epoch`); relays forward it
    unchanged."""

    agent: AgentId
    version: int
    key: str
    value: bytes
    signature: bytes
    epoch: int = 0  # which of the agent's keys signed it (0: genesis, i: after the i-th rotation)
    signed: bytes = field(default=b"", compare=False, repr=False)
    # 128-bit hash of the entry: its leaf in the Merkle tree and the equivocation tie-break.
    fingerprint: int = field(default=0, compare=False, repr=False)

    def __post_init__(self) -> None:
        if not self.signed:
            object.__setattr__(
                self, "signed", entry_signed_bytes(self.agent, self.epoch, self.version, self.key, self.value)
            )
        object.__setattr__(self, "fingerprint", _fingerprint(self.signed, self.signature))


def _fingerprint(signed: bytes, signature: bytes) -> int:
    h = hashlib.blake2b(signed, digest_size=DIGEST_BYTES)
    h.update(signature)
    return int.from_bytes(h.digest(), "big")


class _Packers(threading.local):
    """One msgpack Packer per thread: `msgpack.packb` builds a new Packer (and its buffer) per call, and
    an entry's signed bytes are packed once per entry decoded."""

    def __init__(self) -> None:
        self.packer = msgpack.Packer(use_bin_type=True)


_PACKERS = _Packers()


def entry_signed_bytes(agent: AgentId, epoch: int, version: int, key: str, value: bytes) -> bytes:
    """The exact bytes an agent signs for an entry (domain-separated, fixed field order)."""
    packed: bytes = _PACKERS.packer.pack([agent, epoch, version, key, value])
    return ENTRY_DOMAIN + packed


# Entry's slots, set directly: a decoded entry is built without the frozen dataclass's __init__, whose
# object.__setattr__ per field (ten with __post_init__) costs more than the fields' own checks. The
# order is the dataclass's; the check below fails the import when a field is added and not set here.
_ENTRY_FIELDS = ("agent", "version", "key", "value", "signature", "epoch", "signed", "fingerprint")
if tuple(f.name for f in fields(Entry)) != _ENTRY_FIELDS:
    raise RuntimeError("decoded_entry must set every Entry field: update _ENTRY_FIELDS and decoded_entry")
_set_agent, _set_version, _set_key, _set_value, _set_signature, _set_epoch, _set_signed, _set_fp = (
    Entry.__dict__[name].__set__ for name in _ENTRY_FIELDS
)
_new_object = object.__new__


def decoded_entry(
    agent: AgentId, version: int, key: str, value: bytes, signature: bytes, epoch: int
) -> Entry:
    """`Entry(agent, version, key, value, signature, epoch)`, equal in every field, for a decoder that
    has checked the field types (once per entry of every push and reply)."""
    e: Entry = _new_object(Entry)
    _set_agent(e, agent)
    _set_version(e, version)
    _set_key(e, key)
    _set_value(e, value)
    _set_signature(e, signature)
    _set_epoch(e, epoch)
    signed = entry_signed_bytes(agent, epoch, version, key, value)
    _set_signed(e, signed)
    _set_fp(e, _fingerprint(signed, signature))
    return e


@dataclass(frozen=True, slots=True)
class Rotation:
    """The agent's key number `len(previous rotations) + 1`, signed by the key before it."""

    public_key: bytes
    signature: bytes


def rotation_signed_bytes(agent: AgentId, epoch: int, public_key: bytes) -> bytes:
    packed: bytes = msgpack.packb([agent, epoch, public_key], use_bin_type=True)
    return ROTATION_DOMAIN + packed


@dataclass(frozen=True, slots=True)
class PeerRecord:
    """A member's own, signed description of itself: identity, keys, where it listens.

    `genesis_key` fixes the agent id; `rotations` lead from it to the current key, each signed by
    the key before; the record is signed by the current key. `seq` orders a member's records.
    """

    agent: AgentId
    genesis_key: bytes
    rotations: tuple[Rotation, ...]
    host: str
    port: int
    region: str
    seq: int
    signature: bytes

    @property
    def public_key(self) -> bytes:
        return self.rotations[-1].public_key if self.rotations else self.genesis_key

    @property
    def address(self) -> Address:
        return (self.host, self.port)

    @property
    def keys(self) -> tuple[bytes, ...]:
        return (self.genesis_key, *(r.public_key for r in self.rotations))


def record_signed_bytes(
    agent: AgentId,
    genesis_key: bytes,
    rotations: tuple[Rotation, ...],
    host: str,
    port: int,
    region: str,
    seq: int,
) -> bytes:
    rot = [[r.public_key, r.signature] for r in rotations]
    packed: bytes = msgpack.packb([agent, genesis_key, rot, host, port, region, seq], use_bin_type=True)
    return RECORD_DOMAIN + packed


NodeId = tuple[int, int]  # (depth, prefix) of a Merkle tree node; depth 0 is the root


@dataclass(frozen=True, slots=True)
class LeafSummary:
    """The short fingerprints of every entry one side holds in a leaf, sorted."""

    prefix: int
    fingerprints: bytes  # SHORT_FINGERPRINT_BYTES each


@dataclass(frozen=True, slots=True)
class NodeHashes:
    """The hashes of a node's children, in order (DIGEST_BYTES each; zero for an empty child)."""

    depth: int
    prefix: int
    hashes: bytes


@dataclass(frozen=True, slots=True)
class Push:
    """Round gossip: the sender's Merkle root and its recent entries. A receiver whose root differs
    answers at once with its own recent entries the push lacked (`reply`, never answered): push-pull."""

    root: bytes
    entries: tuple[Entry, ...] = ()
    reply: bool = False


@dataclass(frozen=True, slots=True)
class SyncRequest:
    """One step of a pull: children of `nodes`, every entry under `wants`, and the entries of each
    summarised leaf that the summary lacks."""

    root: bytes
    nodes: tuple[NodeId, ...] = ()
    wants: tuple[NodeId, ...] = ()
    leaves: tuple[LeafSummary, ...] = ()


@dataclass(frozen=True, slots=True)
class SyncReply:
    """Answer to a SyncRequest, streamed over as many frames as it takes; `last` on the final one.

    `records` let the requester verify entries of owners it has not met; they are no proof of address.
    """

    root: bytes
    children: tuple[NodeHashes, ...] = ()
    entries: tuple[Entry, ...] = ()
    last: bool = True
    records: tuple[PeerRecord, ...] = ()  # the owners of entries the requester may not know (keys only)


@dataclass(frozen=True, slots=True)
class Join:
    """A newcomer's own record: challenge me at my address, then let me in."""

    record: PeerRecord


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


@dataclass(frozen=True, slots=True)
class Challenge:
    """Prove you receive at the address of your record: echo `token`. Carries the challenger's record."""

    token: int
    record: PeerRecord


@dataclass(frozen=True, slots=True)
class Answer:
    """The token of a challenge, echoed, with the answerer's own record."""

    token: int
    record: PeerRecord


Body = Push | SyncRequest | SyncReply | Join | Membership | Ping | Pong | Evidence | Challenge | Answer

BODY_TYPES: dict[type[object], MessageType] = {
    Push: MessageType.PUSH,
    SyncRequest: MessageType.SYNC_REQUEST,
    SyncReply: MessageType.SYNC_REPLY,
    Join: MessageType.JOIN,
    Membership: MessageType.MEMBERSHIP,
    Ping: MessageType.PING,
    Pong: MessageType.PONG,
    Evidence: MessageType.EVIDENCE,
    Challenge: MessageType.CHALLENGE,
    Answer: MessageType.ANSWER,
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
