"""Byzantine defences: identities and signatures, replay windows, token buckets, reputation penalties."""

from __future__ import annotations

import random
from functools import lru_cache

from nacl.exceptions import CryptoError
from nacl.signing import SigningKey, VerifyKey

from knhk_mesh.core.events import Offence
from knhk_mesh.core.messages import ENTRY_DOMAIN, AgentId, Entry, agent_id_of, entry_signed_bytes

# How much one offence costs a peer's reputation (which starts at 1.0; under 0.5 the peer is ignored).
# Proofs (equivocation, impersonation) cross the threshold at once; offences an honest but broken
# peer might commit once (a corrupt frame, a replayed datagram) take a few repetitions.
PENALTIES: dict[Offence, float] = {
    Offence.INVALID_SIGNATURE: 0.25,
    Offence.EQUIVOCATION: 0.6,
    Offence.REPLAY: 0.2,
    Offence.RATE_LIMITED: 0.1,
    Offence.MALFORMED: 0.2,
    Offence.UNKNOWN_SENDER: 0.0,
    Offence.IMPERSONATION: 0.6,
}


class Identity:
    """An agent's ed25519 key pair; the agent id is the first 8 bytes of the public key."""

    __slots__ = ("_key", "agent_id", "public_key")

    def __init__(self, key: SigningKey) -> None:
        self._key = key
        self.public_key: bytes = bytes(key.verify_key)
        self.agent_id: AgentId = agent_id_of(self.public_key)

    @classmethod
    def generate(cls, rng: random.Random) -> Identity:
        """A key derived from the rng, so a seeded run is reproducible."""
        return cls(SigningKey(rng.randbytes(32)))

    @property
    def hex_id(self) -> str:
        return self.agent_id.hex()

    def sign(self, message: bytes) -> bytes:
        signature: bytes = self._key.sign(message).signature
        return signature

    def sign_entry(self, version: int, key: str, value: bytes) -> Entry:
        signed = entry_signed_bytes(self.agent_id, version, key, value)
        return Entry(self.agent_id, version, key, value, self.sign(signed), signed)


@lru_cache(maxsize=65536)
def _verify_key(public_key: bytes) -> VerifyKey:
    return VerifyKey(public_key)


def verify(public_key: bytes, message: bytes, signature: bytes) -> bool:
    """True when `signature` is `public_key`'s ed25519 signature of `message`."""
    try:
        _verify_key(public_key).verify(message, signature)
    except (CryptoError, ValueError, TypeError):
        return False
    return True


def verify_entry(public_key: bytes, entry: Entry) -> bool:
    return entry.signed.startswith(ENTRY_DOMAIN) and verify(public_key, entry.signed, entry.signature)


class TokenBucket:
    """Rate limiter driven by the engine clock (no wall clock)."""

    __slots__ = ("_last", "_tokens", "burst", "limited", "rate")

    def __init__(self, rate: float, burst: float, now: float) -> None:
        self.rate = rate
        self.burst = burst
        self._tokens = burst
        self._last = now
        self.limited = False  # inside a rate-limited episode (reported once per episode)

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
    """Sliding anti-replay window over a sender's nonces (tolerates reordering within `size`)."""

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
