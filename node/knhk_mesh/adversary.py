"""Byzantine agents for tests and demos: a real engine that also attacks its honest peers.

Each adversary takes part in gossip like any agent (so it stays registered and sees traffic) and,
for a few rounds after it starts attacking, sends every honest peer frames of one attack kind. Beside
them: a relay that leaves gaps, and makers of fake membership records and Sybil joins.
"""

from __future__ import annotations

import dataclasses
import random
from collections.abc import Callable, Sequence
from enum import StrEnum

from nacl.signing import SigningKey

from knhk_mesh.core.engine import MeshEngine
from knhk_mesh.core.events import MeshEvent
from knhk_mesh.core.messages import (
    NO_RECIPIENT,
    Address,
    AgentId,
    Body,
    Entry,
    Join,
    Membership,
    PeerRecord,
    Ping,
    Push,
    SyncReply,
    entry_signed_bytes,
)
from knhk_mesh.core.security import Identity
from knhk_mesh.core.wire import decode, encode_signed_part, encoded_entry_size, envelope_message, frame


class Attack(StrEnum):
    FORGED_SIGNATURE = "forged_signature"
    EQUIVOCATION = "equivocation"
    REPLAY = "replay"
    FLOODING = "flooding"
    MALFORMED = "malformed"
    IMPERSONATION = "impersonation"


class Adversary:
    """Wraps an engine; from round `start_round` it attacks every honest peer for `attack_rounds` rounds."""

    def __init__(
        self,
        engine: MeshEngine,
        rng: random.Random,
        targets: Sequence[MeshEngine],
        attack: Attack,
        *,
        start_round: int = 2,
        attack_rounds: int = 3,
    ) -> None:
        self.engine = engine
        self.rng = rng
        self.attack = attack
        self.targets = [(t.agent_id, t.address) for t in targets]
        self.start_round = start_round
        self.attack_rounds = attack_rounds
        self.address: Address = engine.address
        self._extra: list[tuple[Address, bytes]] = []
        self._captured: list[tuple[Address, bytes]] = []
        self._nonce = engine.config.nonce_base + 10**12  # far above the engine's own nonces
        self._attacked_rounds = 0
        self._equivocated = False
        self.frames_sent = 0

    @property
    def agent_id(self) -> AgentId:
        return self.engine.agent_id

    # --- Node surface -------------------------------------------------------------------------------

    def receive(self, address: Address, data: bytes, now: float) -> None:
        self.engine.receive(address, data, now)

    def messages_to_send(self, now: float) -> list[tuple[Address, bytes]]:
        out = self.engine.messages_to_send(now)
        if len(self._captured) < 256:
            self._captured.extend(out[: 256 - len(self._captured)])
        extra, self._extra = self._extra, []
        self.frames_sent += len(extra)
        return out + extra

    def next_event(self) -> MeshEvent | None:
        return self.engine.next_event()

    def get_timer(self) -> float | None:
        return self.engine.get_timer()

    def handle_timer(self, now: float) -> None:
        before = self.engine.round_no
        self.engine.handle_timer(now)
        started = self.engine.round_no != before and self.engine.round_no >= self.start_round
        if started and self._attacked_rounds < self.attack_rounds:
            self._attacked_rounds += 1
            self._strike(now)

    # --- attacks ------------------------------------------------------------------------------------

    def _frame(self, signer: Identity, sender: AgentId, recipient: AgentId, body: Body) -> bytes:
        self._nonce += 1
        signed = encode_signed_part(sender, recipient, self._nonce, body)
        return frame(signed, signer.sign(envelope_message(signed)))

    def _push(self, entries: tuple[Entry, ...]) -> Push:
        return Push(self.engine.state.digest, entries)

    def _strike(self, now: float) -> None:
        me = self.engine.identity
        if self.attack is Attack.FORGED_SIGNATURE:
            for agent, address in self.targets:
                victim = self.rng.choice(self.targets)[0]
                forged = Entry(victim, 10**6, "forged", b"x", self.rng.randbytes(64))
                self._extra.append((address, self._frame(me, me.agent_id, agent, self._push((forged,)))))
        elif self.attack is Attack.EQUIVOCATION:
            if self._equivocated:
                return
            self._equivocated = True
            version = self.engine.state.version_of(me.agent_id) + 1
            for i, (agent, address) in enumerate(self.targets):
                value = b"left" if i % 2 == 0 else b"right"
                signed = entry_signed_bytes(me.agent_id, me.epoch, version, "equivocal", value)
                e = Entry(me.agent_id, version, "equivocal", value, me.sign(signed), me.epoch, signed)
                self._extra.append((address, self._frame(me, me.agent_id, agent, self._push((e,)))))
        elif self.attack is Attack.REPLAY:
            if not self._captured:
                return
            for _agent, address in self.targets:
                # a frame captured on its way to another agent (one re-sent to its own addressee is
                # a harmless duplicate, dropped without blame)
                others = [data for dst, data in self._captured if dst != address]
                if others:
                    self._extra.append((address, self.rng.choice(others)))
        elif self.attack is Attack.FLOODING:
            count = int(self.engine.config.burst * 1.2) + 10
            for agent, address in self.targets:
                for _ in range(count):
                    self._extra.append((address, self._frame(me, me.agent_id, agent, Ping(self._nonce))))
        elif self.attack is Attack.MALFORMED:
            for _agent, address in self.targets:
                self._extra.append((address, self.rng.randbytes(self.rng.randint(1, 200))))
        elif self.attack is Attack.IMPERSONATION:
            for agent, address in self.targets:
                victim = self.rng.choice([a for a, _ in self.targets if a != agent] or [agent])
                self._extra.append((address, self._frame(me, victim, agent, self._push(()))))


def adversary(
    attack: Attack, **kwargs: int
) -> Callable[[MeshEngine, random.Random, Sequence[MeshEngine]], Adversary]:
    """A cluster factory for one adversary of the given attack kind."""

    def make(engine: MeshEngine, rng: random.Random, targets: Sequence[MeshEngine]) -> Adversary:
        return Adversary(engine, rng, targets, attack, **kwargs)

    return make


class WithholdingRelay:
    """A member that gossips like any other but forwards, of each owner's entries in a frame, only the
    newest: it leaves gaps below versions its peers already hold (what version vectors could not see)."""

    def __init__(self, engine: MeshEngine) -> None:
        self.engine = engine
        self.address: Address = engine.address
        self.withheld = 0  # entries left out of frames
        self.withheld_bytes = 0  # their encoded size, each (recipient, entry) counted once
        self._withheld_from: set[tuple[Address, AgentId, str, int]] = set()

    @property
    def agent_id(self) -> AgentId:
        return self.engine.agent_id

    def receive(self, address: Address, data: bytes, now: float) -> None:
        self.engine.receive(address, data, now)

    def messages_to_send(self, now: float) -> list[tuple[Address, bytes]]:
        return [(dst, self._thin(dst, data)) for dst, data in self.engine.messages_to_send(now)]

    def _thin(self, dst: Address, data: bytes) -> bytes:
        env = decode(data)
        body = env.body
        if not isinstance(body, Push | SyncReply) or not body.entries:
            return data
        newest: dict[AgentId, Entry] = {}
        for e in body.entries:
            if e.agent not in newest or e.version > newest[e.agent].version:
                newest[e.agent] = e
        kept = tuple(e for e in body.entries if newest[e.agent] is e)
        self.withheld += len(body.entries) - len(kept)
        for e in body.entries:
            if newest[e.agent] is not e and (dst, e.agent, e.key, e.version) not in self._withheld_from:
                self._withheld_from.add((dst, e.agent, e.key, e.version))
                self.withheld_bytes += encoded_entry_size(e)
        thinned: Body = dataclasses.replace(body, entries=kept)
        signed = encode_signed_part(env.sender, env.recipient, env.nonce, thinned)
        return frame(signed, self.engine.identity.sign(envelope_message(signed)))

    def next_event(self) -> MeshEvent | None:
        return self.engine.next_event()

    def get_timer(self) -> float | None:
        return self.engine.get_timer()

    def handle_timer(self, now: float) -> None:
        self.engine.handle_timer(now)


def withholding_relay(
    engine: MeshEngine, rng: random.Random, targets: Sequence[MeshEngine]
) -> WithholdingRelay:
    """A cluster factory for a gap-making relay."""
    return WithholdingRelay(engine)


def fake_records(rng: random.Random, count: int, *, forged: int = 0) -> list[PeerRecord]:
    """Records of members that do not exist: validly self-signed by fresh keys, at addresses where
    nobody listens; the last `forged` of them carry a signature that does not verify."""
    out = []
    for i in range(count):
        ident = Identity(SigningKey(rng.randbytes(32)))
        rec = ident.record(f"10.{i >> 16 & 255}.{i >> 8 & 255}.{i & 255}", 9000, "", 1)
        if i >= count - forged:
            rec = dataclasses.replace(rec, port=9001)  # moved after signing: the signature no longer holds
        out.append(rec)
    return out


def membership_frames(
    liar: MeshEngine, target: MeshEngine, records: Sequence[PeerRecord], per_frame: int = 200
) -> list[bytes]:
    """Membership messages from `liar` to `target` carrying `records`, as many frames as they take."""
    frames = []
    for start in range(0, len(records), per_frame):
        body = Membership((liar.record, *records[start : start + per_frame]))
        liar._nonces[target.address] = nonce = liar._nonces.get(target.address, 0) + 1
        signed = encode_signed_part(liar.agent_id, target.agent_id, nonce, body)
        frames.append(frame(signed, liar.identity.sign(envelope_message(signed))))
    return frames


def sybil_joins(rng: random.Random, count: int) -> list[tuple[Address, bytes]]:
    """`count` join frames of fresh identities, each from its own (spoofed) source address and claiming
    an address where nobody listens."""
    out = []
    for i in range(count):
        ident = Identity(SigningKey(rng.randbytes(32)))
        rec = ident.record(f"172.16.{i >> 8 & 255}.{i & 255}", 7000, "", 1)
        signed = encode_signed_part(ident.agent_id, NO_RECIPIENT, 1, Join(rec))
        out.append(
            ((f"172.16.{i >> 8 & 255}.{i & 255}", 7000), frame(signed, ident.sign(envelope_message(signed))))
        )
    return out
