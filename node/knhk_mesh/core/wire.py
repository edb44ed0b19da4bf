"""Bytes <-> messages: versioned, deterministic msgpack frames with a hard size limit.

A frame is `signed_part || signature` where `signed_part` is the msgpack array
`[PROTOCOL_VERSION, type, sender, recipient, nonce, body]` and the signature (64 bytes, ed25519) covers
`ENVELOPE_DOMAIN + signed_part`. The signature is checked over the bytes as received, so nothing is
re-encoded to verify. Decoding never raises anything but ProtocolError. See docs/protocol.md.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import msgpack

from knhk_mesh.core.errors import ProtocolError
from knhk_mesh.core.messages import (
    AGENT_ID_BYTES,
    BODY_TYPES,
    DIGEST_BYTES,
    ENVELOPE_DOMAIN,
    PUBLIC_KEY_BYTES,
    SHORT_FINGERPRINT_BYTES,
    SIGNATURE_BYTES,
    AgentId,
    Answer,
    Body,
    Challenge,
    Entry,
    Envelope,
    Evidence,
    Join,
    LeafSummary,
    Membership,
    MessageType,
    NodeHashes,
    NodeId,
    PeerRecord,
    Ping,
    Pong,
    Push,
    Rotation,
    SyncReply,
    SyncRequest,
    decoded_entry,
)

PROTOCOL_VERSION = 2
MAX_MESSAGE_BYTES = 64 * 1024
MAX_KEY_CHARS = 256
MAX_HOST_CHARS = 255
MAX_REGION_CHARS = 64
MAX_ITEMS = 4096
MAX_ROTATIONS = 16
U64_MAX = 2**64 - 1

# The Merkle tree's fixed shape (part of the protocol: both sides must cut the key space alike).
TREE_FANOUT = 16
TREE_DEPTH = 3  # leaves at depth 3: 4096 of them
CHILD_HASHES_BYTES = TREE_FANOUT * DIGEST_BYTES

_UNPACK_LIMITS: dict[str, Any] = {
    "raw": False,
    "use_list": True,
    "strict_map_key": True,
    "max_bin_len": MAX_MESSAGE_BYTES,
    "max_str_len": MAX_MESSAGE_BYTES,
    "max_array_len": MAX_ITEMS,
    "max_map_len": 0,
    "max_ext_len": 0,
}


def _pack(obj: object) -> bytes:
    data: bytes = msgpack.packb(obj, use_bin_type=True)
    return data


# --- encoding -----------------------------------------------------------------------------------


def _entry_fields(e: Entry) -> list[object]:
    return [e.agent, e.epoch, e.version, e.key, e.value, e.signature]


def record_fields(r: PeerRecord) -> list[object]:
    rot = [[x.public_key, x.signature] for x in r.rotations]
    return [r.agent, r.genesis_key, rot, r.host, r.port, r.region, r.seq, r.signature]


def body_fields(body: Body) -> list[object]:
    """The body as a msgpack-ready list, in the protocol's fixed field order."""
    if isinstance(body, Push):
        return [body.root, [_entry_fields(e) for e in body.entries], body.reply]
    if isinstance(body, SyncRequest):
        return [
            body.root,
            [list(n) for n in body.nodes],
            [list(n) for n in body.wants],
            [[leaf.prefix, leaf.fingerprints] for leaf in body.leaves],
        ]
    if isinstance(body, SyncReply):
        return [
            body.root,
            [[c.depth, c.prefix, c.hashes] for c in body.children],
            [_entry_fields(e) for e in body.entries],
            body.last,
            [record_fields(r) for r in body.records],
        ]
    if isinstance(body, Join):
        return [record_fields(body.record)]
    if isinstance(body, Membership):
        return [[record_fields(p) for p in body.peers]]
    if isinstance(body, Ping | Pong):
        return [body.token]
    if isinstance(body, Challenge | Answer):
        return [body.token, record_fields(body.record)]
    return [_entry_fields(body.first), _entry_fields(body.second)]


def encode_signed_part(sender: AgentId, recipient: AgentId, nonce: int, body: Body) -> bytes:
    """The part of a frame the sender signs (the recipient is bound in, so frames cannot be redirected)."""
    return _pack([PROTOCOL_VERSION, int(BODY_TYPES[type(body)]), sender, recipient, nonce, body_fields(body)])


def frame(signed_part: bytes, signature: bytes) -> bytes:
    return signed_part + signature


def envelope_message(signed_part: bytes) -> bytes:
    """The bytes an envelope signature covers."""
    return ENVELOPE_DOMAIN + signed_part


def encoded_entry_size(e: Entry) -> int:
    return len(_pack(_entry_fields(e)))


# Fixed costs of a frame beyond its entries: envelope (version, type, ids, nonce, signature), root,
# array headers. An upper bound: fitting entries against it never builds an oversized frame.
FRAME_OVERHEAD = 160


def record_wire_size(r: PeerRecord) -> int:
    return 200 + len(r.host) + len(r.region) + 100 * len(r.rotations)


def entry_wire_size(e: Entry) -> int:
    """Upper bound of an entry's encoded size (cheap: no encoding)."""
    return 32 + SIGNATURE_BYTES + AGENT_ID_BYTES + len(e.key.encode()) + len(e.value)


def max_value_bytes(key: str, limit: int = MAX_MESSAGE_BYTES) -> int:
    """The largest value an entry under `key` may carry and still travel in one frame."""
    return limit - FRAME_OVERHEAD - (32 + SIGNATURE_BYTES + AGENT_ID_BYTES + len(key.encode()))


# --- decoding -----------------------------------------------------------------------------------


def _fail(reason: str, detail: str) -> ProtocolError:
    return ProtocolError(reason, detail)


def _list(x: object, what: str, length: int | None = None) -> list[Any]:
    if type(x) is not list:
        raise _fail("bad_field", f"{what} is not an array")
    if length is not None and len(x) != length:
        raise _fail("bad_field", f"{what} has {len(x)} fields, expected {length}")
    return x


def _bin(x: object, what: str, size: int | None = None, max_size: int = MAX_MESSAGE_BYTES) -> bytes:
    if type(x) is not bytes:
        raise _fail("bad_field", f"{what} is not binary")
    if size is not None and len(x) != size:
        raise _fail("bad_field", f"{what} has {len(x)} bytes, expected {size}")
    if len(x) > max_size:
        raise _fail("bad_field", f"{what} longer than {max_size} bytes")
    return x


def _int(x: object, what: str, lo: int = 0, hi: int = U64_MAX) -> int:
    if type(x) is not int or not lo <= x <= hi:
        raise _fail("bad_field", f"{what} is not an integer in [{lo}, {hi}]")
    return x


def _str(x: object, what: str, max_chars: int) -> str:
    if type(x) is not str or len(x) > max_chars:
        raise _fail("bad_field", f"{what} is not a string of at most {max_chars} characters")
    return x


def _entry(x: object) -> Entry:
    # The common case in one expression (an entry is decoded per entry of every push and reply); any
    # failure goes through the field-by-field checks below, which name what is wrong.
    if type(x) is list and len(x) == 6:
        agent, epoch, version, key, value, signature = x
        if (
            type(agent) is bytes
            and len(agent) == AGENT_ID_BYTES
            and type(epoch) is int
            and 0 <= epoch <= MAX_ROTATIONS
            and type(version) is int
            and 1 <= version <= U64_MAX
            and type(key) is str
            and len(key) <= MAX_KEY_CHARS
            and type(value) is bytes
            and len(value) <= MAX_MESSAGE_BYTES
            and type(signature) is bytes
            and len(signature) == SIGNATURE_BYTES
        ):
            return decoded_entry(agent, version, key, value, signature, epoch)
    return _checked_entry(x)


def _checked_entry(x: object) -> Entry:
    f = _list(x, "entry", 6)
    return Entry(
        agent=_bin(f[0], "entry.agent", AGENT_ID_BYTES),
        epoch=_int(f[1], "entry.epoch", 0, MAX_ROTATIONS),
        version=_int(f[2], "entry.version", 1),
        key=_str(f[3], "entry.key", MAX_KEY_CHARS),
        value=_bin(f[4], "entry.value"),
        signature=_bin(f[5], "entry.signature", SIGNATURE_BYTES),
    )


def _entries(x: object) -> tuple[Entry, ...]:
    return tuple(_entry(e) for e in _list(x, "entries"))


def _digest(x: object, what: str = "root") -> bytes:
    return _bin(x, what, DIGEST_BYTES)


def _record(x: object) -> PeerRecord:
    f = _list(x, "peer record", 8)
    rotations = []
    for raw in _list(f[2], "record.rotations"):
        r = _list(raw, "rotation", 2)
        rotations.append(
            Rotation(
                _bin(r[0], "rotation.public_key", PUBLIC_KEY_BYTES),
                _bin(r[1], "rotation.signature", SIGNATURE_BYTES),
            )
        )
    if len(rotations) > MAX_ROTATIONS:
        raise _fail("bad_field", f"record.rotations has {len(rotations)} keys, at most {MAX_ROTATIONS}")
    return PeerRecord(
        agent=_bin(f[0], "record.agent", AGENT_ID_BYTES),
        genesis_key=_bin(f[1], "record.genesis_key", PUBLIC_KEY_BYTES),
        rotations=tuple(rotations),
        host=_str(f[3], "record.host", MAX_HOST_CHARS),
        port=_int(f[4], "record.port", 0, 65535),
        region=_str(f[5], "record.region", MAX_REGION_CHARS),
        seq=_int(f[6], "record.seq"),
        signature=_bin(f[7], "record.signature", SIGNATURE_BYTES),
    )


def _node(x: object, what: str) -> NodeId:
    f = _list(x, what, 2)
    depth = _int(f[0], f"{what}.depth", 0, TREE_DEPTH)
    prefix = _int(f[1], f"{what}.prefix", 0, TREE_FANOUT**depth - 1)
    return (depth, prefix)


def _push(f: list[Any]) -> Body:
    _list(f, "push body", 3)
    if type(f[2]) is not bool:
        raise _fail("bad_field", "push.reply is not a boolean")
    return Push(_digest(f[0]), _entries(f[1]), f[2])


def _sync_request(f: list[Any]) -> Body:
    _list(f, "sync_request body", 4)
    nodes = tuple(_node(n, "sync_request.node") for n in _list(f[1], "sync_request.nodes"))
    if any(depth >= TREE_DEPTH for depth, _ in nodes):
        raise _fail("bad_field", "sync_request.nodes names a leaf (leaves have no children)")
    wants = tuple(_node(n, "sync_request.want") for n in _list(f[2], "sync_request.wants"))
    leaves = []
    for raw in _list(f[3], "sync_request.leaves"):
        p = _list(raw, "leaf summary", 2)
        fps = _bin(p[1], "leaf.fingerprints")
        if len(fps) % SHORT_FINGERPRINT_BYTES:
            raise _fail(
                "bad_field", f"leaf.fingerprints is not a multiple of {SHORT_FINGERPRINT_BYTES} bytes"
            )
        leaves.append(LeafSummary(_int(p[0], "leaf.prefix", 0, TREE_FANOUT**TREE_DEPTH - 1), fps))
    return SyncRequest(_digest(f[0]), nodes, wants, tuple(leaves))


def _sync_reply(f: list[Any]) -> Body:
    _list(f, "sync_reply body", 5)
    children = []
    for raw in _list(f[1], "sync_reply.children"):
        c = _list(raw, "node hashes", 3)
        depth, prefix = _node(c[:2], "sync_reply.node")
        if depth >= TREE_DEPTH:
            raise _fail("bad_field", "sync_reply.children names a leaf")
        children.append(NodeHashes(depth, prefix, _bin(c[2], "node.hashes", CHILD_HASHES_BYTES)))
    if type(f[3]) is not bool:
        raise _fail("bad_field", "sync_reply.last is not a boolean")
    records = tuple(_record(r) for r in _list(f[4], "sync_reply.records"))
    return SyncReply(_digest(f[0]), tuple(children), _entries(f[2]), f[3], records)


def _join(f: list[Any]) -> Body:
    _list(f, "join body", 1)
    return Join(_record(f[0]))


def _membership(f: list[Any]) -> Body:
    _list(f, "membership body", 1)
    return Membership(tuple(_record(r) for r in _list(f[0], "membership.peers")))


def _ping(f: list[Any]) -> Body:
    _list(f, "ping body", 1)
    return Ping(_int(f[0], "ping.token"))


def _pong(f: list[Any]) -> Body:
    _list(f, "pong body", 1)
    return Pong(_int(f[0], "pong.token"))


def _evidence(f: list[Any]) -> Body:
    _list(f, "evidence body", 2)
    return Evidence(_entry(f[0]), _entry(f[1]))


def _challenge(f: list[Any]) -> Body:
    _list(f, "challenge body", 2)
    return Challenge(_int(f[0], "challenge.token"), _record(f[1]))


def _answer(f: list[Any]) -> Body:
    _list(f, "answer body", 2)
    return Answer(_int(f[0], "answer.token"), _record(f[1]))


_BODY_DECODERS: dict[MessageType, Callable[[list[Any]], Body]] = {
    MessageType.PUSH: _push,
    MessageType.SYNC_REQUEST: _sync_request,
    MessageType.SYNC_REPLY: _sync_reply,
    MessageType.JOIN: _join,
    MessageType.MEMBERSHIP: _membership,
    MessageType.PING: _ping,
    MessageType.PONG: _pong,
    MessageType.EVIDENCE: _evidence,
    MessageType.CHALLENGE: _challenge,
    MessageType.ANSWER: _answer,
}

# by wire code, so decoding looks the type up without building the enum member
_DECODERS_BY_CODE: dict[int, Callable[[list[Any]], Body]] = {int(t): f for t, f in _BODY_DECODERS.items()}


def decode(data: bytes) -> Envelope:
    """Parse a frame (signature not yet checked); raises ProtocolError and nothing else."""
    if len(data) > MAX_MESSAGE_BYTES:
        raise _fail("oversized", f"{len(data)} bytes exceeds the {MAX_MESSAGE_BYTES}-byte limit")
    if len(data) <= SIGNATURE_BYTES:
        raise _fail("truncated", f"{len(data)} bytes is shorter than a signed frame")
    signed, signature = data[:-SIGNATURE_BYTES], data[-SIGNATURE_BYTES:]
    try:
        raw = msgpack.unpackb(signed, **_UNPACK_LIMITS)
    except (ValueError, TypeError, OverflowError, RecursionError, msgpack.UnpackException) as exc:
        raise _fail("undecodable", f"{type(exc).__name__}: {exc}") from exc
    top = _list(raw, "frame", 6)
    version = _int(top[0], "protocol version", 0, 255)
    if version != PROTOCOL_VERSION:
        raise _fail("unsupported_version", f"protocol version {version}, expected {PROTOCOL_VERSION}")
    code = _int(top[1], "message type", 0, 255)
    decoder = _DECODERS_BY_CODE.get(code)
    if decoder is None:
        raise _fail("unknown_type", f"message type {code}")
    sender = _bin(top[2], "sender", AGENT_ID_BYTES)
    recipient = _bin(top[3], "recipient", AGENT_ID_BYTES)
    nonce = _int(top[4], "nonce")
    body = decoder(_list(top[5], "body"))
    return Envelope(
        sender=sender, recipient=recipient, nonce=nonce, body=body, signed=signed, signature=signature
    )


def peek_type(data: bytes) -> MessageType | None:
    """Best-effort message type of a frame without validating it (for telemetry of rejects)."""
    try:
        return decode(data).type
    except ProtocolError:
        return None
