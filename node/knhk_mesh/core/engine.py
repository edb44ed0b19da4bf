"""The mesh protocol engine, sans I/O: bytes and a clock in, bytes and events out.

Shaped like aioquic's QuicConnection: `receive(addr, data, now)`, `messages_to_send(now)`,
`next_event()`, `get_timer()`, `handle_timer(now)`. It owns no socket, reads no clock and draws
randomness only from the `random.Random` it is given, so every run is reproducible from a seed.
Transports (memory, QUIC) and simulators are thin shells that move bytes and call the timer.
"""

from __future__ import annotations

import logging
import random
from collections import deque
from collections.abc import Sequence

from knhk_mesh.core.config import MeshConfig
from knhk_mesh.core.errors import ProtocolError
from knhk_mesh.core.events import (
    RECOVERY,
    ByzantineDetected,
    Converged,
    EntriesMerged,
    MeshEvent,
    MessageReceived,
    MessageRejected,
    MessageSent,
    Offence,
    PeerJoined,
    PeerLeft,
    Rejection,
    ReputationChanged,
    RoundStarted,
    RttMeasured,
)
from knhk_mesh.core.gossip import ConvergenceTracker, EvidenceBook, PeerView, fit_entries
from knhk_mesh.core.instrument import NOOP, Instrumentation, Operation, Scope
from knhk_mesh.core.messages import (
    BODY_TYPES,
    NO_RECIPIENT,
    Address,
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
    agent_id_of,
)
from knhk_mesh.core.registry import PeerRegistry
from knhk_mesh.core.security import PENALTIES, Identity, ReplayWindow, TokenBucket, verify, verify_entry
from knhk_mesh.core.state import Applied, State
from knhk_mesh.core.wire import decode, encode_signed_part, envelope_message, frame

log = logging.getLogger(__name__)

_MAX_EVENTS = 100_000  # undrained events beyond this are dropped oldest-first (and logged)


class _Rejected(Exception):
    """Internal control flow: the message was rejected (already reported)."""


class MeshEngine:
    """One agent of the mesh."""

    def __init__(
        self,
        identity: Identity,
        address: Address,
        *,
        rng: random.Random,
        config: MeshConfig | None = None,
        instrumentation: Instrumentation = NOOP,
        seeds: Sequence[Address] = (),
        registry: PeerRegistry | None = None,
    ) -> None:
        """`registry` may carry a statically configured membership (its peers count as introduced)."""
        self.identity = identity
        self.agent_id = identity.agent_id
        self.address = address
        self.config = config or MeshConfig()
        self.rng = rng
        self.instr = instrumentation
        self.registry = registry if registry is not None else PeerRegistry()
        self.registry.remove(self.agent_id)
        self.state = State()
        self.seeds = tuple(seeds)
        self.round_no = 0
        self.evidence = EvidenceBook(self.config.evidence_rounds)
        self.convergence = ConvergenceTracker(self.config.converge_rounds)
        self.offences: dict[Offence, int] = dict.fromkeys(Offence, 0)
        self.ignored = {"stale_entry": 0, "duplicate_entry": 0, "unverifiable_entry": 0}
        self._views: dict[AgentId, PeerView] = {}
        self._buckets: dict[Address, TokenBucket] = {}
        self._windows: dict[AgentId, ReplayWindow] = {}
        self._outbox: list[tuple[Address, bytes]] = []
        self._events: deque[MeshEvent] = deque()
        self._pings: dict[int, tuple[AgentId, float]] = {}
        self._nonce = self.config.nonce_base
        self._version = 0
        self._announced = 0  # own entries up to this version went out in an eager push
        self._announce_round = -1  # the round of the last eager push (at most one per round)
        self._next_round: float | None = None
        self._joined = not self.seeds
        self._offended: set[AgentId] = set()
        self._now = 0.0

    # --- public API ---------------------------------------------------------------------------------

    @property
    def node_id(self) -> str:
        return self.identity.hex_id

    def add_peer(
        self, agent_id: AgentId, public_key: bytes, address: Address, *, region: str = "", now: float = 0.0
    ) -> None:
        """Register a peer from static configuration (it is assumed to know us too)."""
        if agent_id_of(public_key) != agent_id:
            raise ValueError(f"agent id {agent_id.hex()} is not derived from its public key")
        if agent_id == self.agent_id:
            return
        self._register(agent_id, public_key, address, region, now, introduced=True)

    def write(self, key: str, value: bytes, now: float) -> Entry:
        """Sign and apply a new entry of this agent and push it to `fanout` peers at once.

        A write does not wait for the next round: the first write of a round is pushed immediately
        (with every own entry not pushed eagerly before, oldest first), later writes of the same round
        ride on the round's gossip. The frames are in `messages_to_send` after this call.
        """
        self._now = now
        self._version = max(self._version, self.state.version_of(self.agent_id)) + 1
        entry = self.identity.sign_entry(self._version, key, value)
        self.state.apply(entry)
        self.convergence.state_changed(self.round_no, now)
        if self._announce_round != self.round_no:
            self._announce(now)
        return entry

    def receive(self, address: Address, data: bytes, now: float) -> None:
        """Handle one frame from the transport address `address`."""
        self._now = now
        peer = self.registry.agent_at(address)
        with self.instr.receive(address, len(data), peer) as scope:  # also measures Operation.MESSAGE
            try:  # noqa: SIM105 (cheaper than contextlib.suppress on the per-frame path)
                self._receive(address, data, now, scope, peer)
            except _Rejected:
                pass

    def messages_to_send(self, now: float) -> list[tuple[Address, bytes]]:
        out, self._outbox = self._outbox, []
        return out

    def next_event(self) -> MeshEvent | None:
        return self._events.popleft() if self._events else None

    def get_timer(self) -> float | None:
        return self._next_round

    def start(self, now: float) -> None:
        """Arm the round timer (first round one interval from now, jittered to spread the mesh)."""
        if self._next_round is None:
            phase = self.rng.random() if self.config.jitter_start else 1.0
            self._next_round = now + self.config.round_interval * phase
        if not self._joined:
            for seed in self.seeds:
                self._send(
                    None,
                    seed,
                    Join(self.identity.public_key, self.address[0], self.address[1], self.config.region),
                )
            self._joined = True

    def handle_timer(self, now: float) -> None:
        self._now = now
        if self._next_round is None:
            self.start(now)
        assert self._next_round is not None
        if now < self._next_round:
            return
        self._run_round(now)
        self._next_round += self.config.round_interval
        if self._next_round <= now:
            self._next_round = now + self.config.round_interval

    # --- rounds -------------------------------------------------------------------------------------

    def _run_round(self, now: float) -> None:
        cfg = self.config
        with self.instr.measure(Operation.CONVERGENCE_CHECK):
            closed = self.convergence.end_round(self.round_no)
        if closed:
            self._emit(
                Converged(
                    rounds=self.convergence.rounds,
                    duration=now - self.convergence.change_time,
                    digest=self.state.digest,
                    round=self.round_no,
                )
            )
        self.round_no += 1
        with self.instr.measure(Operation.PEER_SELECTION):
            peers = self.registry.random_peers(
                cfg.fanout, self.rng, exclude=self.agent_id, min_reputation=cfg.min_reputation
            )
        self._emit(RoundStarted(self.round_no, len(peers), len(self.registry)))
        with self.instr.round(self.round_no, len(peers), len(self.registry)):
            digest, versions = self.state.digest, self.state.versions()
            proofs = self.evidence.to_gossip()
            for peer in peers:
                address = self.registry.address_of(peer)
                assert address is not None
                if not self.registry.introduced(peer):
                    self._introduce(peer, address)
                view = self._views.get(peer)
                entries: tuple[Entry, ...] = ()
                if view is not None and view.known and view.digest != digest:
                    entries = fit_entries(
                        self.state.missing_for(view.versions), versions, cfg.max_message_bytes
                    )
                self._send(peer, address, Push(digest, versions, entries))
                for first, second in proofs:
                    self._send(peer, address, Evidence(first, second))
            if peers and self.round_no % cfg.membership_every_rounds == 0:
                self._gossip_membership(peers[0])
            if peers and self.round_no % cfg.ping_every_rounds == 0:
                self._ping(peers[-1], now)
            if self.round_no % cfg.prune_every_rounds == 0:
                self._prune(now)
            if self.round_no % cfg.recovery_every_rounds == 0:
                self._recover()

    def _announce(self, now: float) -> None:
        """Eager push of own entries written since the last one: every receiver lacks them."""
        cfg = self.config
        own = [e for e in self.state.entries_of(self.agent_id) if e.version > self._announced]
        if not own:
            return
        own.sort(key=lambda e: e.version)
        self._announce_round = self.round_no
        self._announced = own[-1].version
        with self.instr.measure(Operation.PEER_SELECTION):
            peers = self.registry.random_peers(
                cfg.fanout, self.rng, exclude=self.agent_id, min_reputation=cfg.min_reputation
            )
        if not peers:
            return
        versions = self.state.versions()
        push = Push(self.state.digest, versions, fit_entries(own, versions, cfg.max_message_bytes))
        for peer in peers:
            address = self.registry.address_of(peer)
            assert address is not None
            if not self.registry.introduced(peer):
                self._introduce(peer, address)
            self._send(peer, address, push)

    def _introduce(self, peer: AgentId, address: Address) -> None:
        me = self.identity
        self._send(peer, address, Join(me.public_key, self.address[0], self.address[1], self.config.region))
        self.registry.mark_introduced(peer)

    def _gossip_membership(self, peer: AgentId) -> None:
        address = self.registry.address_of(peer)
        if address is not None:
            self._send(peer, address, self._membership_sample())

    def _membership_sample(self) -> Membership:
        me = self.identity
        records = [
            PeerRecord(me.agent_id, me.public_key, self.address[0], self.address[1], self.config.region)
        ]
        for agent in self.registry.random_peers(
            self.config.membership_sample, self.rng, min_reputation=self.config.min_reputation
        ):
            info = self.registry.get(agent)
            assert info is not None
            records.append(PeerRecord(agent, info.public_key, info.address[0], info.address[1], info.region))
        return Membership(tuple(records))

    def _ping(self, peer: AgentId, now: float) -> None:
        address = self.registry.address_of(peer)
        if address is None:
            return
        token = self.rng.getrandbits(63)
        self._pings[token] = (peer, now)
        if len(self._pings) > 1024:
            self._pings.pop(next(iter(self._pings)))
        self._send(peer, address, Ping(token))

    def _prune(self, now: float) -> None:
        for agent in self.registry.prune_stale(now, self.config.stale_timeout):
            self._views.pop(agent, None)
            self._windows.pop(agent, None)
            self._emit(PeerLeft(agent, "stale"))
        # buckets of addresses nobody is registered at (strangers, departed peers) would grow forever
        for address in [a for a in self._buckets if self.registry.agent_at(a) is None]:
            del self._buckets[address]

    def _recover(self) -> None:
        """Peers that stayed above the threshold and offended no more regain a little standing."""
        for info in list(self.registry.peers()):
            if info.agent_id in self._offended or not self.config.min_reputation <= info.reputation < 1.0:
                continue
            previous, current = self.registry.update_reputation(info.agent_id, self.config.recovery_step)
            if current != previous:
                self._emit(ReputationChanged(info.agent_id, previous, current, RECOVERY))
        self._offended.clear()

    # --- sending ------------------------------------------------------------------------------------

    def _send(self, peer: AgentId | None, address: Address, body: Body) -> None:
        mtype = BODY_TYPES[type(body)]
        with self.instr.send(peer, address, mtype) as scope:
            self._nonce += 1
            signed = encode_signed_part(self.agent_id, peer or NO_RECIPIENT, self._nonce, body)
            data = frame(signed, self.identity.sign(envelope_message(signed)))
            scope.size(len(data))
        self._outbox.append((address, data))
        self._emit(MessageSent(peer, address, mtype, len(data)))

    # --- receiving ----------------------------------------------------------------------------------

    def _reject(
        self, scope: Scope, address: Address, peer: AgentId | None, reason: Rejection, detail: str = ""
    ) -> _Rejected:
        scope.reject(reason)
        self._emit(MessageRejected(peer, address, reason, detail))
        return _Rejected()

    def _offence(
        self,
        agent: AgentId,
        kind: Offence,
        mtype: MessageType | None,
        address: Address | None,
        *,
        report: bool = True,
    ) -> None:
        self.offences[kind] += 1
        self._offended.add(agent)
        if report:
            self._emit(ByzantineDetected(agent, kind, mtype, address))
        previous, current = self.registry.update_reputation(agent, -PENALTIES[kind])
        if current != previous:
            self._emit(ReputationChanged(agent, previous, current, kind.value))

    def _receive(self, address: Address, data: bytes, now: float, scope: Scope, peer: AgentId | None) -> None:
        cfg = self.config
        if len(data) > cfg.max_message_bytes:
            raise self._reject(scope, address, peer, Rejection.OVERSIZED, f"{len(data)} bytes")
        bucket = self._buckets.get(address)
        if bucket is None:
            bucket = self._buckets[address] = TokenBucket(cfg.rate_per_second, cfg.burst, now)
        if not bucket.take(now):
            if peer is not None:
                self._offence(peer, Offence.RATE_LIMITED, None, address, report=not bucket.limited)
            bucket.limited = True
            raise self._reject(scope, address, peer, Rejection.RATE_LIMITED)
        if peer is not None and self.registry.reputation(peer) < cfg.min_reputation:
            raise self._reject(scope, address, peer, Rejection.LOW_REPUTATION)
        try:
            env = decode(data)
        except ProtocolError as exc:
            if peer is not None:
                self._offence(peer, Offence.MALFORMED, None, address)
            raise self._reject(scope, address, peer, Rejection.MALFORMED, str(exc)) from None
        scope.message_type(env.type)
        with self.instr.measure(Operation.VALIDATION):
            self._authenticate(env, address, peer, scope)
            entries = self._validate_entries(env, address, scope)
        self.registry.touch(env.sender, now)
        self._emit(MessageReceived(env.sender, env.type, len(data)))
        self._dispatch(env, address, entries, now, scope)

    def _authenticate(self, env: Envelope, address: Address, peer: AgentId | None, scope: Scope) -> None:
        """Who sent this, and may we believe it: key, signature, address binding, nonce."""
        sender, mtype = env.sender, env.type
        key = self.registry.public_key(sender)
        if isinstance(env.body, Join):
            claimed = env.body.public_key
            if agent_id_of(claimed) != sender or (key is not None and key != claimed):
                if peer is not None:
                    self._offence(peer, Offence.IMPERSONATION, mtype, address)
                raise self._reject(scope, address, peer, Rejection.IMPERSONATION, f"join as {sender.hex()}")
            key = claimed
        elif key is None or peer is None:
            key = self._seed_key(env, address)
        if key is None:
            # Neither registered nor joining; unverifiable, so nobody's reputation can pay for it.
            self.offences[Offence.UNKNOWN_SENDER] += 1
            self._emit(ByzantineDetected(sender, Offence.UNKNOWN_SENDER, mtype, address))
            raise self._reject(scope, address, peer, Rejection.UNKNOWN_SENDER, sender.hex())
        if not verify(key, envelope_message(env.signed), env.signature):
            if peer is not None and peer != sender:
                self._offence(peer, Offence.IMPERSONATION, mtype, address)
                raise self._reject(scope, address, peer, Rejection.IMPERSONATION, f"claimed {sender.hex()}")
            if peer is not None:
                self._offence(peer, Offence.INVALID_SIGNATURE, mtype, address)
            raise self._reject(scope, address, peer, Rejection.INVALID_SIGNATURE, "envelope")
        if peer is not None and peer != sender:
            # A genuine frame of another agent, re-sent from this address.
            self._offence(peer, Offence.REPLAY, mtype, address)
            raise self._reject(scope, address, peer, Rejection.REPLAY, f"frame of {sender.hex()}")
        if env.recipient != self.agent_id and not (
            env.recipient == NO_RECIPIENT and isinstance(env.body, Join)
        ):
            # Validly signed, but addressed to another agent: a captured frame replayed here.
            if peer is not None:
                self._offence(peer, Offence.REPLAY, mtype, address)
            raise self._reject(scope, address, peer, Rejection.REPLAY, f"frame for {env.recipient.hex()}")
        window = self._windows.get(sender)
        if window is None:
            window = self._windows[sender] = ReplayWindow(self.config.replay_window)
        if not window.accept(env.nonce):
            if peer is not None:
                self._offence(peer, Offence.REPLAY, mtype, address)
            raise self._reject(scope, address, peer, Rejection.REPLAY, f"nonce {env.nonce}")

    def _seed_key(self, env: Envelope, address: Address) -> bytes | None:
        """A seed answers our join with a membership list holding its own (self-certifying) record."""
        body = env.body
        if address not in self.seeds or not isinstance(body, Membership):
            return None
        for rec in body.peers:
            if (
                rec.agent == env.sender
                and (rec.host, rec.port) == address
                and agent_id_of(rec.public_key) == rec.agent
            ):
                return rec.public_key
        return None

    def _validate_entries(self, env: Envelope, address: Address, scope: Scope) -> list[Entry]:
        """Entries worth merging, each verified against its owner's key; one forgery rejects the frame."""
        body = env.body
        if isinstance(body, Push | Delta):
            candidates: Sequence[Entry] = body.entries
        elif isinstance(body, Evidence):
            candidates = (body.first, body.second)
        else:
            return []
        out: list[Entry] = []
        state = self.state
        for e in candidates:
            held = state.get(e.agent, e.key)
            if held is not None and not isinstance(body, Evidence):
                if held == e:
                    self.ignored["duplicate_entry"] += 1
                    continue
                if held.version > e.version:
                    self.ignored["stale_entry"] += 1
                    continue
            key = self.identity.public_key if e.agent == self.agent_id else self.registry.public_key(e.agent)
            if key is None:
                self.ignored["unverifiable_entry"] += 1
                continue
            if not verify_entry(key, e):
                self._offence(env.sender, Offence.INVALID_SIGNATURE, env.type, address)
                raise self._reject(
                    scope, address, env.sender, Rejection.INVALID_SIGNATURE, f"entry of {e.agent.hex()}"
                )
            out.append(e)
        if isinstance(body, Evidence) and (
            len(out) != 2
            or body.first.agent != body.second.agent
            or body.first.version != body.second.version
            or body.first == body.second
        ):
            if len(out) == 2:
                self._offence(env.sender, Offence.MALFORMED, env.type, address)
                raise self._reject(scope, address, env.sender, Rejection.MALFORMED, "evidence proves nothing")
            return []  # an owner we cannot verify yet: keep nothing, blame nobody
        return out

    def _dispatch(
        self, env: Envelope, address: Address, entries: list[Entry], now: float, scope: Scope
    ) -> None:
        body, sender = env.body, env.sender
        if isinstance(body, Push):
            self._merge(sender, entries, now)
            self._observe(sender, body.digest, body.versions)
            self._answer_push(sender, address, body)
        elif isinstance(body, PullRequest):
            self._observe(sender, body.digest, body.versions)
            self._send_delta(sender, address, body.versions)
        elif isinstance(body, Delta):
            self._merge(sender, entries, now)
            self._observe(sender, body.digest, body.versions)
        elif isinstance(body, Evidence):
            if entries:
                self._learn_equivocation(body.first, body.second)
                self._merge(sender, entries, now)
        elif isinstance(body, Join):
            self._on_join(sender, address, body, now)
        elif isinstance(body, Membership):
            self._on_membership(sender, body, now)
        elif isinstance(body, Ping):
            self._send(sender, address, Pong(body.token))
        elif isinstance(body, Pong):
            sent = self._pings.pop(body.token, None)
            if sent is not None and sent[0] == sender:
                self.registry.set_rtt(sender, now - sent[1])
                info = self.registry.get(sender)
                self._emit(RttMeasured(sender, now - sent[1], info.region if info else ""))

    def _observe(self, peer: AgentId, digest: bytes, versions: tuple[VersionItem, ...]) -> None:
        view = self._views.get(peer)
        if view is None:
            view = self._views[peer] = PeerView()
        view.versions, view.digest, view.known = versions, digest, True
        # one comparison per message; the convergence check proper is measured once per round
        self.convergence.heard(digest == self.state.digest)

    def _answer_push(self, peer: AgentId, address: Address, push: Push) -> None:
        if push.digest == self.state.digest:
            return
        self._send_delta(peer, address, push.versions)
        if self.state.lacks_from(push.versions):
            self._send(peer, address, PullRequest(self.state.digest, self.state.versions()))

    def _send_delta(self, peer: AgentId, address: Address, theirs: tuple[VersionItem, ...]) -> None:
        missing = self.state.missing_for(theirs)
        if missing:
            versions = self.state.versions()
            entries = fit_entries(missing, versions, self.config.max_message_bytes)
            self._send(peer, address, Delta(self.state.digest, versions, entries))

    def _merge(self, peer: AgentId, entries: list[Entry], now: float) -> None:
        if not entries:
            return
        applied = 0
        with self.instr.merge(peer, len(entries), self.round_no):  # also measures Operation.MERGE
            for e in entries:
                result = self.state.apply(e)
                if result.conflict is not None:
                    self._learn_equivocation(e, result.conflict)
                if result.outcome is Applied.NEW:
                    applied += 1
        if applied:
            self.convergence.state_changed(self.round_no, now)
            self._emit(EntriesMerged(peer, applied, self.state.digest))

    def _learn_equivocation(self, a: Entry, b: Entry) -> None:
        if self.evidence.add(a, b) and a.agent != self.agent_id:
            self._offence(
                a.agent, Offence.EQUIVOCATION, MessageType.EVIDENCE, self.registry.address_of(a.agent)
            )

    def _on_join(self, sender: AgentId, address: Address, join: Join, now: float) -> None:
        self._register(sender, join.public_key, address, join.region, now, introduced=True)
        self._send(sender, address, self._membership_sample())

    def _on_membership(self, sender: AgentId, membership: Membership, now: float) -> None:
        for rec in membership.peers:
            if rec.agent == self.agent_id or agent_id_of(rec.public_key) != rec.agent:
                continue
            if rec.agent == sender:
                self._register(
                    rec.agent, rec.public_key, (rec.host, rec.port), rec.region, now, introduced=True
                )
            elif rec.agent not in self.registry:
                self._register(
                    rec.agent, rec.public_key, (rec.host, rec.port), rec.region, now, introduced=False
                )

    def _register(
        self, agent: AgentId, key: bytes, address: Address, region: str, now: float, *, introduced: bool
    ) -> None:
        known = agent in self.registry
        with self.instr.register(agent, address, region, len(self.registry) + (0 if known else 1)):
            added = self.registry.register(agent, address, key, region=region, now=now, introduced=introduced)
        if added:
            self._emit(PeerJoined(agent, address, region))

    def _emit(self, event: MeshEvent) -> None:
        self.instr.event(event)
        if len(self._events) >= _MAX_EVENTS:
            self._events.popleft()
            log.warning("node %s: event queue full, dropping the oldest event", self.node_id)
        self._events.append(event)
