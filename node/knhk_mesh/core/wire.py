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
    AGENT_DIGEST_BYTES,
    AGENT_ID_BYTES,
    BODY_TYPES,
    DIGEST_BYTES,
    ENVELOPE_DOMAIN,
    PUBLIC_KEY_BYTES,
    SIGNATURE_BYTES,
    AgentId,
    Body,
    Delta,
    Entry,
    Envelope,
    Evidence,
    Join,
    Membership,
    MessageType,
    PeerRecord,
    Ping,
    Pong,
    PullRequest,
    Push,
    VersionItem,
)

PROTOCOL_VERSION = 1
MAX_MESSAGE_BYTES = 64 * 1024
MAX_KEY_CHARS = 256
MAX_HOST_CHARS = 255
MAX_REGION_CHARS = 64
MAX_ITEMS = 4096
U64_MAX = 2**64 - 1

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
    return [e.agent, e.version, e.key, e.value, e.signature]


def _versions_fields(items: tuple[VersionItem, ...]) -> list[object]:
    return [[v.agent, v.version, v.digest] for v in items]


def body_fields(body: Body) -> list[object]:
    """The body as a msgpack-ready list, in the protocol's fixed field order."""
    if isinstance(body, Push | Delta):
        return [body.digest, _versions_fields(body.versions), [_entry_fields(e) for e in body.entries]]
    if isinstance(body, PullRequest):
        return [body.digest, _versions_fields(body.versions)]
    if isinstance(body, Join):
        return [body.public_key, body.host, body.port, body.region]
    if isinstance(body, Membership):
        return [[[p.agent, p.public_key, p.host, p.port, p.region] for p in body.peers]]
    if isinstance(body, Ping | Pong):
        return [body.token]
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
    f = _list(x, "entry", 5)
    return Entry(
        agent=_bin(f[0], "entry.agent", AGENT_ID_BYTES),
        version=_int(f[1], "entry.version", 1),
        key=_str(f[2], "entry.key", MAX_KEY_CHARS),
        value=_bin(f[3], "entry.value"),
        signature=_bin(f[4], "entry.signature", SIGNATURE_BYTES),
    )


def _versions(x: object) -> tuple[VersionItem, ...]:
    items = []
    for raw in _list(x, "versions"):
        f = _list(raw, "version item", 3)
        items.append(
            VersionItem(
                _bin(f[0], "version.agent", AGENT_ID_BYTES),
                _int(f[1], "version.version"),
                _bin(f[2], "version.digest", AGENT_DIGEST_BYTES),
            )
        )
    return tuple(items)


def _entries(x: object) -> tuple[Entry, ...]:
    return tuple(_entry(e) for e in _list(x, "entries"))


def _digest(x: object) -> bytes:
    return _bin(x, "digest", DIGEST_BYTES)


def _push(f: list[Any]) -> Body:
    _list(f, "push body", 3)
    return Push(_digest(f[0]), _versions(f[1]), _entries(f[2]))


def _delta(f: list[Any]) -> Body:
    _list(f, "delta body", 3)
    return Delta(_digest(f[0]), _versions(f[1]), _entries(f[2]))


def _pull(f: list[Any]) -> Body:
    _list(f, "pull_request body", 2)
    return PullRequest(_digest(f[0]), _versions(f[1]))


def _join(f: list[Any]) -> Body:
    _list(f, "join body", 4)
    return Join(
        _bin(f[0], "join.public_key", PUBLIC_KEY_BYTES),
        _str(f[1], "join.host", MAX_HOST_CHARS),
        _int(f[2], "join.port", 0, 65535),
        _str(f[3], "join.region", MAX_REGION_CHARS),
    )


def _membership(f: list[Any]) -> Body:
    _list(f, "membership body", 1)
    peers = []
    for raw in _list(f[0], "membership.peers"):
        p = _list(raw, "peer record", 5)
        peers.append(
            PeerRecord(
                _bin(p[0], "peer.agent", AGENT_ID_BYTES),
                _bin(p[1], "peer.public_key", PUBLIC_KEY_BYTES),
                _str(p[2], "peer.host", MAX_HOST_CHARS),
                _int(p[3], "peer.port", 0, 65535),
                _str(p[4], "peer.region", MAX_REGION_CHARS),
            )
        )
    return Membership(tuple(peers))


def _ping(f: list[Any]) -> Body:
    _list(f, "ping body", 1)
    return Ping(_int(f[0], "ping.token"))


def _pong(f: list[Any]) -> Body:
    _list(f, "pong body", 1)
    return Pong(_int(f[0], "pong.token"))


def _evidence(f: list[Any]) -> Body:
    _list(f, "evidence body", 2)
    return Evidence(_entry(f[0]), _entry(f[1]))


_BODY_DECODERS: dict[MessageType, Callable[[list[Any]], Body]] = {
    MessageType.PUSH: _push,
    MessageType.PULL_REQUEST: _pull,
    MessageType.DELTA: _delta,
    MessageType.JOIN: _join,
    MessageType.MEMBERSHIP: _membership,
    MessageType.PING: _ping,
    MessageType.PONG: _pong,
    MessageType.EVIDENCE: _evidence,
}


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
    try:
        mtype = MessageType(code)
    except ValueError as exc:
        raise _fail("unknown_type", f"message type {code}") from exc
    sender = _bin(top[2], "sender", AGENT_ID_BYTES)
    recipient = _bin(top[3], "recipient", AGENT_ID_BYTES)
    nonce = _int(top[4], "nonce")
    body = _BODY_DECODERS[mtype](_list(top[5], "body"))
    return Envelope(
        sender=sender, recipient=recipient, nonce=nonce, body=body, signed=signed, signature=signature
    )


def peek_type(data: bytes) -> MessageType | None:
    """Best-effort message type of a frame without validating it (for telemetry of rejects)."""
    try:
        return decode(data).type
    except ProtocolError:
        return None
