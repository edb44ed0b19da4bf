"""Byzantine defences: identities and signatures, replay windows, token buckets, reputation penalties."""

from __future__ import annotations

import random
from functools import lru_cache

from nacl._sodium import ffi as _ffi
from nacl._sodium import lib as _lib
from nacl.signing import SigningKey

from knhk_mesh.core.events import Offence
from knhk_mesh.core.messages import (
    ENTRY_DOMAIN,
    PUBLIC_KEY_BYTES,
    SIGNATURE_BYTES,
    AgentId,
    Entry,
    PeerRecord,
    Rotation,
    agent_id_of,
    entry_signed_bytes,
    record_signed_bytes,
    rotation_signed_bytes,
)

# How much one offence costs a peer's reputation (which starts at 1.0; under 0.5 the peer is ignored).
# Only what a correct peer can never send is an offence: network faults (duplicates, reordering,
# loss) never are. Proofs (equivocation, impersonation) cross the threshold at once; offences a
# broken but honest peer might commit once (a corrupt frame) take a few repetitions.
PENALTIES: dict[Offence, float] = {
    Offence.INVALID_SIGNATURE: 0.25,
    Offence.EQUIVOCATION: 0.6,
    Offence.REPLAY: 0.2,
    Offence.RATE_LIMITED: 0.1,
    Offence.MALFORMED: 0.2,
    Offence.UNKNOWN_SENDER: 0.0,
    Offence.IMPERSONATION: 0.6,
    Offence.FORGED_RECORD: 0.25,
    Offence.UNPROVEN_RECORD: 0.2,
}


class Identity:
    """An agent's identity and its current ed25519 key.

    The agent id is fixed by the first (genesis) key; `rotate` moves to a new key, signed by the
    current one, so the id outlives any one key. Entries and records name the key epoch they use.
    """

    __slots__ = ("_key", "agent_id", "genesis_key", "public_key", "rotations")

    def __init__(
        self, key: SigningKey, *, genesis_key: bytes | None = None, rotations: tuple[Rotation, ...] = ()
    ) -> None:
        self._key = key
        self.public_key: bytes = bytes(key.verify_key)
        self.genesis_key: bytes = genesis_key if genesis_key is not None else self.public_key
        self.rotations = rotations
        self.agent_id: AgentId = agent_id_of(self.genesis_key)

    @classmethod
    def generate(cls, rng: random.Random) -> Identity:
        """A key derived from the rng, so a seeded run is reproducible."""
        return cls(SigningKey(rng.randbytes(32)))

    @property
    def hex_id(self) -> str:
        return self.agent_id.hex()

    @property
    def epoch(self) -> int:
        return len(self.rotations)

    @property
    def keys(self) -> tuple[bytes, ...]:
        """Every public key this agent has had, by epoch (its old entries verify against these)."""
        return (self.genesis_key, *(r.public_key for r in self.rotations))

    def sign(self, message: bytes) -> bytes:
        signature: bytes = self._key.sign(message).signature
        return signature

    def sign_entry(self, version: int, key: str, value: bytes) -> Entry:
        signed = entry_signed_bytes(self.agent_id, self.epoch, version, key, value)
        return Entry(self.agent_id, version, key, value, self.sign(signed), self.epoch, signed)

    def record(self, host: str, port: int, region: str, seq: int) -> PeerRecord:
        """This agent's own signed membership record."""
        signed = record_signed_bytes(self.agent_id, self.genesis_key, self.rotations, host, port, region, seq)
        return PeerRecord(
            self.agent_id, self.genesis_key, self.rotations, host, port, region, seq, self.sign(signed)
        )

    def rotate(self, new_key: SigningKey) -> Identity:
        """The same agent under `new_key`; the rotation is signed by the current key. Key epochs only
        move forward: a key this agent has had before is retired, never taken back (ValueError)."""
        public = bytes(new_key.verify_key)
        if public in self.keys:
            epoch = self.keys.index(public)
            raise ValueError(
                f"key of epoch {epoch} of agent {self.hex_id} is retired: keys only move forward"
            )
        proof = self.sign(rotation_signed_bytes(self.agent_id, self.epoch + 1, public))
        return Identity(
            new_key, genesis_key=self.genesis_key, rotations=(*self.rotations, Rotation(public, proof))
        )


_SIGN_OPEN = _lib.crypto_sign_open
_NULL = _ffi.NULL
_new_buffer = _ffi.new


def verify(public_key: bytes, message: bytes, signature: bytes) -> bool:
    """True when `signature` is `public_key`'s ed25519 signature of `message`.

    The same libsodium call PyNaCl's VerifyKey.verify makes (crypto_sign_open over signature ||
    message), without its wrappers' key object, exception and copy of the opened message: this runs
    once per frame and once per entry it carries."""
    if (
        not isinstance(public_key, bytes)
        or not isinstance(signature, bytes)
        or len(public_key) != PUBLIC_KEY_BYTES
        or len(signature) != SIGNATURE_BYTES
    ):
        return False
    try:
        signed = signature + message
    except TypeError:
        return False
    opened = _new_buffer("unsigned char[]", len(signed))
    ok: bool = _SIGN_OPEN(opened, _NULL, signed, len(signed), public_key) == 0
    return ok


def verify_entry(public_key: bytes, entry: Entry) -> bool:
    return entry.signed.startswith(ENTRY_DOMAIN) and verify(public_key, entry.signed, entry.signature)


@lru_cache(maxsize=65536)
def verify_record(record: PeerRecord) -> bool:
    """The record's id is its genesis key's, each rotation is signed by the key before it and names a
    key the chain never had (epochs only move forward: a retired key is not taken back), and the
    current key signed the record. Memoised: a record is relayed many times, and a verdict on the
    same bytes never changes."""
    if agent_id_of(record.genesis_key) != record.agent:
        return False
    if len(set(record.keys)) != len(record.rotations) + 1:
        return False
    key = record.genesis_key
    for epoch, rot in enumerate(record.rotations, start=1):
        if not verify(key, rotation_signed_bytes(record.agent, epoch, rot.public_key), rot.signature):
            return False
        key = rot.public_key
    signed = record_signed_bytes(
        record.agent,
        record.genesis_key,
        record.rotations,
        record.host,
        record.port,
        record.region,
        record.seq,
    )
    return verify(key, signed, record.signature)


class TokenBucket:
    """Rate limiter driven by the engine clock (no wall clock)."""

    __slots__ = ("_last", "_tokens", "burst", "limited", "rate")

    def __init__(self, rate: float, burst: float, now: float) -> None:
        self.rate = rate
        self.burst = burst
        self._tokens = burst
        self._last = now
        self.limited = False  # inside a rate-limited episode (reported once per episode)

    def full(self, now: float) -> bool:
        """Refilled to its burst by `now` (nothing to remember about its source any more)."""
        return self._tokens + (now - self._last) * self.rate >= self.burst

    def take(self, now: float) -> bool:
        if now > self._last:
            self._tokens = min(self.burst, self._tokens + (now - self._last) * self.rate)
            self._last = now
        if self._tokens >= 1.0:
            self._tokens -= 1.0
            if self.limited and self._tokens >= self.burst / 2:
                self.limited = False
            return True
        return False


class ReplayWindow:
    """Sliding window over the nonces one sender used towards this receiver (tolerates reordering
    within `size`); a nonce seen before or older than the window is a duplicate, not an offence."""

    __slots__ = ("_bits", "_highest", "size")

    def __init__(self, size: int) -> None:
        self.size = size
        self._highest = -1
        self._bits = 0  # bit i set: nonce (highest - i) seen

    def accept(self, nonce: int) -> bool:
        if nonce > self._highest:
            shift = nonce - self._highest
            self._bits = ((self._bits << shift) | 1) & ((1 << self.size) - 1) if shift < self.size else 1
            self._highest = nonce
            return True
        offset = self._highest - nonce
        if offset >= self.size or (self._bits >> offset) & 1:
            return False
        self._bits |= 1 << offset
        return True
