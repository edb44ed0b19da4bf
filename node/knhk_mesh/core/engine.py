"""The mesh protocol engine, sans I/O: bytes and a clock in, bytes and events out.

Shaped like aioquic's QuicConnection: `receive(addr, data, now)`, `messages_to_send(now)`,
`next_event()`, `get_timer()`, `handle_timer(now)`. It owns no socket, reads no clock and draws
randomness only from the `random.Random` it is given, so every run is reproducible from a seed.
Transports (memory, QUIC) and simulators are thin shells that move bytes and call the timer.

Spreading is rumour plus repair: an entry new to an agent goes on at once to `fanout` peers (rumour
mongering: once per entry and agent, within a per-round budget of frames) and rides on every push for
`hot_rounds` rounds after it is learnt; anti-entropy pulls (Merkle root first, down to the differing
leaves) repair whatever the rumour missed, bounded per round. Membership records are signed by their
member and admitted only after a challenge sent to their address is answered.
"""

from __future__ import annotations

import logging
import math
import random
from collections import deque
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field, replace

from knhk_mesh.core.config import MeshConfig
from knhk_mesh.core.errors import PartitionedError, ProtocolError
from knhk_mesh.core.events import (
    RECOVERY,
    ByzantineDetected,
    Converged,
    EntriesMerged,
    HierarchyCounted,
    MeshEvent,
    MessageReceived,
    MessageRejected,
    MessageSent,
    Offence,
    PartitionChanged,
    PeerJoined,
    PeerLeft,
    Rejection,
    ReputationChanged,
    RoundStarted,
    RttMeasured,
    TopologyRebalanced,
    WriteRefused,
)
from knhk_mesh.core.gossip import ConvergenceTracker, EvidenceBook, fit_entries
from knhk_mesh.core.instrument import NOOP, Instrumentation, Operation, Scope
from knhk_mesh.core.messages import (
    BODY_TYPES,
    DIGEST_BYTES,
    NO_RECIPIENT,
    SHORT_FINGERPRINT_BYTES,
    Address,
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
    SyncReply,
    SyncRequest,
    agent_id_of,
)
from knhk_mesh.core.partition import Check, PartitionDetector, PartitionStatus, RoundClock
from knhk_mesh.core.regions import GLOBAL_SUMMARY_KEY, GlobalSummary, RegionalRole
from knhk_mesh.core.registry import PeerRegistry, RegistryPool
from knhk_mesh.core.security import (
    PENALTIES,
    Identity,
    ReplayWindow,
    TokenBucket,
    verify,
    verify_entry,
    verify_record,
)
from knhk_mesh.core.state import EMPTY, Applied, State
from knhk_mesh.core.topology import (
    Candidate,
    ListPool,
    Strategy,
    TopologyKind,
    TopologyManager,
    cluster_peers,
)
from knhk_mesh.core.wire import (
    CHILD_HASHES_BYTES,
    FRAME_OVERHEAD,
    MAX_ITEMS,
    TREE_DEPTH,
    TREE_FANOUT,
    decode,
    encode_signed_part,
    entry_wire_size,
    envelope_message,
    frame,
    max_value_bytes,
    record_wire_size,
)

log = logging.getLogger(__name__)

_MAX_EVENTS = 100_000  # undrained events beyond this are dropped oldest-first (and logged)
_STALE_ROUNDS_CAP = 1024  # own rounds a silent peer must also miss, at most (2 min at 0.1 s)
_HELD_PER_SENDER = 16  # frames held for a key not announced yet, per sender and ...
_HELD_FRAMES = 256  # ... in all (beyond, such frames are dropped, still without penalty)
_FALLBACK_ADDRESSES = 16  # addresses of pruned peers kept to knock on when nobody answers any more
_REJOIN_BACKOFF = 8  # the wait between re-announcements doubles up to this many times rejoin_after
_NODE_BYTES = 8  # encoded size of one (depth, prefix) pair, at most
_CHILDREN_BYTES = CHILD_HASHES_BYTES + 2 * _NODE_BYTES


class _Rejected(Exception):
    """Internal control flow: the message was rejected (already reported)."""


class ValueTooLarge(ValueError):
    """A write whose entry could never leave this agent in one frame."""


@dataclass
class _Pending:
    """A member waiting to answer a challenge sent to its address: from its record, or (record None)
    from the address a frame of a member we do not know came from; its answer brings the record."""

    agent: AgentId
    address: Address
    record: PeerRecord | None
    token: int
    relayer: AgentId | None
    join: bool  # the member asked to join through us: send it a membership sample once proven
    tries: int = 0
    next_round: int = 0


@dataclass
class _Pull:
    """One anti-entropy pull from one peer, in steps: each request is answered by a stream of replies."""

    peer: AgentId
    address: Address
    fetched: int = 0  # repair bytes received this round
    waiting: bool = False
    new_in_pass: int = 0
    passes: int = 0
    children: list[NodeHashes] = field(default_factory=list)


@dataclass
class _RelayerScore:
    proven: int = 0
    failed: int = 0


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
        """`registry` may carry a statically configured membership (its peers count as proven)."""
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
        self.topology = TopologyManager(
            self.config.peer_selection,
            topology=self.config.topology,
            region=self.config.region,
            nearest_fraction=self.config.nearest_fraction,
            rebalance_every_rounds=self.config.rebalance_every_rounds,
        )
        self.evidence = EvidenceBook(self.config.evidence_rounds)
        self.convergence = ConvergenceTracker(self.config.converge_rounds)
        self.offences: dict[Offence, int] = dict.fromkeys(Offence, 0)
        self.ignored = {
            "stale_entry": 0,
            "duplicate_entry": 0,
            "unverifiable_entry": 0,
            "duplicate_frame": 0,
            "pending_full": 0,
            "join_limited": 0,
            "held_frame": 0,  # signed by a key we do not know for its sender (yet)
            "held_dropped": 0,
        }
        self.repair = {
            "requests": 0,
            "replies": 0,
            "bytes_fetched": 0,
            "bytes_served": 0,
            "entries_fetched": 0,
            "bytes_sent": 0,  # every sync request and reply frame this agent sent, whole
            "bytes_received": 0,  # every sync reply frame that reached it, whole (late ones too)
        }
        self.barred: set[AgentId] = set()  # proven equivocators: kept after pruning, never recovered
        self._roots: dict[AgentId, tuple[bytes, int]] = {}  # last root heard from a peer, and the round
        self._buckets: dict[Address, TokenBucket] = {}
        self._join_buckets: dict[Address, TokenBucket] = {}
        self._windows: dict[AgentId, ReplayWindow] = {}
        self._nonces: dict[Address, int] = {}
        self._outbox: list[tuple[Address, bytes]] = []
        self._events: deque[MeshEvent] = deque()
        self._pings: dict[int, tuple[AgentId, float]] = {}
        self._pending: dict[AgentId, _Pending] = {}
        self._tokens: dict[int, AgentId] = {}
        self._relayers: dict[AgentId, _RelayerScore] = {}
        self._challenges_left = self.config.challenges_per_round
        self._pulls: dict[AgentId, _Pull] = {}
        self._served: dict[AgentId, int] = {}
        self._told: dict[AgentId, set[AgentId]] = {}  # owners whose records a peer got from us
        self._known_records: dict[AgentId, PeerRecord] = {}  # keys of members not (yet) proven
        self._orphans: dict[AgentId, list[Entry]] = {}  # entries waiting for their owner's keys
        self._orphan_count = 0
        self._hot: deque[list[Entry]] = deque([[]], maxlen=self.config.hot_rounds + 1)
        self._replied: dict[AgentId, int] = {}  # this round: how much of _hot[-1] a pusher was sent back
        self._forward_budget = self.config.forward_frames_per_round  # eager forward frames left this round
        self.forwarded = {"frames": 0, "entries": 0, "over_budget": 0}  # eager forwards on receipt
        self._record_seq = self.config.nonce_base
        self._record: PeerRecord | None = None
        self._version = 0
        self._announced = 0  # own entries up to this version went out in an eager push
        self._announce_round = -1  # the round of the last eager push (at most one per round)
        self._next_round: float | None = None
        self._joined = not self.seeds
        self._held: dict[AgentId, list[tuple[Address, bytes]]] = {}  # frames awaiting a key rotation
        self._held_count = 0
        self._release: list[AgentId] = []  # senders whose key changed: their held frames go again
        self._heard = 0.0  # when the last authenticated frame of a registered peer arrived
        self._fallback: deque[Address] = deque(maxlen=_FALLBACK_ADDRESSES)
        self._rejoin_next = 0.0
        self._rejoin_wait = self.config.rejoin_after
        self.rejoins = 0  # re-announcements sent after a silence
        self._offended: set[AgentId] = set()
        self._now = 0.0
        self.regions: RegionalRole | None = None  # multi-region and hierarchical meshes
        # when this node's rounds started: windows (partition, liveness, staleness) count rounds it ran
        self._round_clock = RoundClock(self.config.round_interval)
        layout = self.config.topology
        if layout is not TopologyKind.SINGLE_REGION:
            cfg = self.config
            self.regions = RegionalRole(
                layout,
                cfg.region,
                fanout=cfg.fanout,
                round_interval=cfg.round_interval,
                liveness_rounds=cfg.liveness_rounds,
                cross_region_fanout=cfg.cross_region_fanout,
                summary_every_rounds=cfg.summary_every_rounds,
                clock=self._round_clock,
            )
        self.partition = PartitionDetector(self.config.partition)
        self._root_votes = [0, 0]  # roots heard this round: equal to ours, different
        self._probe_cursor = 0

    # --- public API ---------------------------------------------------------------------------------

    @property
    def node_id(self) -> str:
        return self.identity.hex_id

    @property
    def record(self) -> PeerRecord:
        """This agent's own signed membership record (re-signed when its key or address changes)."""
        rec = self._record
        me = self.identity
        if rec is None or rec.public_key != me.public_key or rec.address != self.address:
            self._record_seq += 1
            rec = self._record = me.record(
                self.address[0], self.address[1], self.config.region, self._record_seq
            )
        return rec

    def add_peer(
        self,
        agent_id: AgentId,
        public_key: bytes,
        address: Address,
        *,
        region: str = "",
        now: float = 0.0,
        record: PeerRecord | None = None,
    ) -> None:
        """Register a peer from static configuration (trusted: no challenge)."""
        if record is not None and (record.agent != agent_id or not verify_record(record)):
            raise ValueError(f"the record of {agent_id.hex()} does not verify")
        if record is None and agent_id_of(public_key) != agent_id:
            raise ValueError(f"agent id {agent_id.hex()} is not derived from its public key")
        if agent_id == self.agent_id:
            return
        self._register(agent_id, public_key, address, region, now)
        if record is not None:
            self.registry.set_record(record)

    def remove_peer(self, agent_id: AgentId, reason: str) -> bool:
        """Take a peer out of membership for a reason the shell knows and the engine cannot see (its
        certificate revoked, say), reported like a pruned one (`PeerLeft` with `reason`). Its address
        is not kept to knock at again. False when it was not a member."""
        if not self.registry.remove(agent_id):
            return False
        self._left(agent_id, reason)
        return True

    def rotate_key(self, identity: Identity) -> None:
        """Move to the next key of this agent (from `Identity.rotate`) and tell every peer at once: our
        new record carries the rotation, signed by the previous key, so the agent id stays."""
        if (
            identity.agent_id != self.agent_id
            or identity.rotations[: self.identity.epoch] != self.identity.rotations
        ):
            raise ValueError("a rotation must extend this agent's own key chain")
        self.identity = identity
        announce = Membership((self.record,))  # signed with the new key, carrying the chain
        for info in list(self.registry.peers()):
            self._send(info.agent_id, info.address, announce)

    def write(self, key: str, value: bytes, now: float) -> Entry:
        """Sign and apply a new entry of this agent and push it to `fanout` peers at once.

        A value that could not travel in one frame is refused (ValueTooLarge), since nobody else could
        ever receive it. A write does not wait for the next round: the first write of a round is pushed
        immediately (with every own entry not pushed eagerly before, oldest first), later writes of the
        same round ride on the round's gossip. The frames are in `messages_to_send` after this call.
        """
        if self.partition.read_only:
            self._emit(WriteRefused(key))
            p = self.partition
            raise PartitionedError(self.node_id, p.reachable, p.members, p.quorum)
        limit = max_value_bytes(key, self.config.max_message_bytes)
        if len(value) > limit:
            raise ValueTooLarge(
                f"value of {len(value)} bytes under key {key[:40]!r} exceeds the {limit}-byte limit "
                f"of one frame ({self.config.max_message_bytes} bytes)"
            )
        if len(key) > 256:
            raise ValueTooLarge(f"key of {len(key)} characters exceeds the 256-character limit")
        self._now = now
        self._version = max(self._version, self.state.version_of(self.agent_id)) + 1
        entry = self.identity.sign_entry(self._version, key, value)
        self.state.apply(entry)
        self._hot[-1].append(entry)
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
        while self._release:  # bounded: each held frame is taken out before it is tried again
            for held_at, held in self._held.pop(self._release.pop(), []):
                self._held_count -= 1
                self.receive(held_at, held, now)

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
            self._heard = now
            phase = self.rng.random() if self.config.jitter_start else 1.0
            self._next_round = now + self.config.round_interval * phase
        if not self._joined:
            for seed in self.seeds:
                self._send(None, seed, Join(self.record))
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
        self._round_clock.started(now)
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
        self._hot.append([])
        self._replied.clear()
        self._forward_budget = cfg.forward_frames_per_round
        self._served.clear()
        self._pulls.clear()
        self._challenges_left = cfg.challenges_per_round
        with self.instr.measure(Operation.PEER_SELECTION):
            peers = self._select(cfg.fanout)
        self._emit(RoundStarted(self.round_no, len(peers), len(self.registry)))
        with self.instr.round(self.round_no, len(peers), len(self.registry)):
            recovering = self._check_partition(now)
            push = Push(self.state.digest, self._hot_entries())
            proofs = self.evidence.to_gossip()
            for peer in peers:
                address = self.registry.address_of(peer)
                assert address is not None
                self._send(peer, address, push)
                for first, second in proofs:
                    self._send(peer, address, Evidence(first, second))
            if recovering:
                p = self.partition
                with self.instr.partition_recover(p.status, p.reachable, len(self.state)):
                    self._start_pulls()
            else:
                self._start_pulls()
            if peers and self.round_no % cfg.membership_every_rounds == 0:
                self._gossip_membership(peers[0])
            if peers and self.round_no % cfg.ping_every_rounds == 0:
                self._ping(self._ping_target(peers), now)
            self._challenge_pending()
            if self.seeds and len(self.registry) == 0 and self.round_no % 5 == 1:
                for seed in self.seeds:  # not let in yet (a lost join, a busy seed): knock again
                    self._send(None, seed, Join(self.record))
            self._rejoin(now)
            if self.round_no % cfg.prune_every_rounds == 0:
                self._prune(now)
            if self.round_no % cfg.recovery_every_rounds == 0:
                self._recover()
            if self.topology.due(self.round_no):
                self._rebalance(now)
            if self.regions is not None:
                self._summarise(now)

    def _candidates(self) -> list[Candidate]:
        """The peers a strategy may choose from (eligible ones, with RTT and region)."""
        return self.registry.candidates(exclude=self.agent_id, min_reputation=self.config.min_reputation)

    def _select(self, k: int) -> list[AgentId]:
        """This round's targets: by region in a multi-region or hierarchical mesh (core.regions, the
        strategy choosing among the region's members), else by the configured strategy; random keeps
        the registry's O(k) sampler."""
        topo = self.topology
        regions = self.regions
        if regions is not None:
            regions.observe(
                self.agent_id,
                self.registry,
                self.barred,
                round_no=self.round_no,
                now=self._now,
                min_reputation=self.config.min_reputation,
            )
            choose = None if topo.strategy is Strategy.RANDOM else self._choose_among
            peers = regions.targets(k, self.rng, self.agent_id, choose)
            topo.count(peers, self.registry.rtt)
            return peers
        if topo.strategy is Strategy.RANDOM:
            peers = self._sample(k)
            topo.count(peers, self.registry.rtt)
            return peers
        return topo.select(self._pool(), k, self.rng, self.registry.rtt)

    def _pool(self) -> RegistryPool:
        return RegistryPool(self.registry, exclude=self.agent_id, min_reputation=self.config.min_reputation)

    def _choose_among(self, members: list[AgentId], k: int) -> list[AgentId]:
        """The configured strategy, narrowed to `members` (this agent's region): O(region), not O(n)."""
        reg, pool = self.registry, self._pool()
        candidates = []
        for agent in members:
            info = reg.get(agent) if pool.eligible(agent) else None
            if info is not None:
                candidates.append(Candidate(agent, info.rtt, info.region))
        return self.topology.selector.select(ListPool(candidates, pool.everyone), k, self.rng)

    def _ping_target(self, peers: list[AgentId]) -> AgentId:
        """Random selection pings a target it gossips with anyway; the others explore unmeasured peers."""
        if self.topology.strategy is Strategy.RANDOM:
            return peers[-1]
        return self.topology.ping_target(self._pool(), self.rng, self.registry.rtt) or peers[-1]

    def _rebalance(self, now: float) -> None:
        """Re-cluster the peers by region and RTT (core.topology) and report the new topology."""
        candidates = self._candidates()
        clustering = cluster_peers(candidates)
        with self.instr.rebalance(len(clustering)):
            self.topology.rebalance(clustering)
            snapshot = self.topology.snapshot(self.agent_id, candidates, self.round_no, now)
            if self.regions is not None:  # leaders and hierarchy levels as this agent sees them
                leaders, levels = self.regions.roles(snapshot.regions)
                snapshot = replace(snapshot, leaders=leaders, levels=levels)
            self._emit(TopologyRebalanced(snapshot))

    def _summarise(self, now: float) -> None:
        """Hierarchical aggregators and coordinator write their summaries as ordinary signed entries."""
        assert self.regions is not None
        if self.partition.read_only:
            return  # cut off from the quorum: writes are refused, the summaries wait for the heal
        for key, value in self.regions.summaries(self.agent_id, self.state, self.round_no):
            self.write(key, value, now)
            self.regions.written(key, value)
            summary = GlobalSummary.decode(value) if key == GLOBAL_SUMMARY_KEY else None
            if summary is not None:
                counts = tuple((lv.value, r, n) for lv, r, n in summary.agents_per_level())
                self._emit(HierarchyCounted(counts))

    def _check_partition(self, now: float) -> bool:
        """One health check of the partition detector (see core/partition.py), and probes of peers
        silent for half its window; returns whether this round's repair is a recovery."""
        cfg, det, clock = self.config, self.partition, self._round_clock
        agreeing, differing = self._root_votes
        self._root_votes = [0, 0]
        if not cfg.partition.enabled:
            return False
        members, _ = self.registry.reachability(now, cfg.min_reputation)
        window = cfg.partition.window_for(members + 1, cfg.fanout)
        half = max(1, window // 2)
        # both thresholds count rounds this node ran (core.partition.RoundClock), so a starved or
        # suspended process does not find its peers silent merely because its own rounds came late
        silent, self._probe_cursor = self.registry.silent_since(
            clock.since(half, now), self._probe_cursor, -(-members // half), cfg.min_reputation
        )
        for peer in silent:  # a pong is a frame heard: quiet peers are asked rather than presumed gone
            self._ping(peer, now)
        if self.round_no <= window:
            return False  # no verdict before a whole window of evidence
        _, heard = self.registry.reachability(clock.since(window, now), cfg.min_reputation)
        check = Check(members + 1, heard, agreeing, differing)
        quiet = det.quiet(check)
        move = det.check(check, now)
        if not quiet or move is not None:
            with self.instr.partition_detect(det.status, det.reachable, det.quorum):
                if move is not None:
                    self._emit(
                        PartitionChanged(
                            move.previous,
                            move.current,
                            move.reachable,
                            move.quorum,
                            now - move.detected_at,
                            self.state.digest,
                        )
                    )
        return det.status is PartitionStatus.RECOVERING or (move is not None and move.healed)

    def _sample(self, k: int) -> list[AgentId]:
        return self.registry.random_peers(
            k, self.rng, exclude=self.agent_id, min_reputation=self.config.min_reputation
        )

    def _hot_entries(self) -> tuple[Entry, ...]:
        """Entries learnt in the last `hot_rounds` rounds, newest first, as many as fit one frame."""
        newest_first = (e for batch in reversed(self._hot) for e in reversed(batch))
        return fit_entries(newest_first, self.config.max_message_bytes)

    def _push_back(self, peer: AgentId, address: Address, push: Push) -> None:
        """The pull half of push-pull: our recent entries the pusher did not send, at once.

        Once per peer and round the whole hot set goes back; later pushes of that peer in the same
        round get only what became hot since (a peer pushing a burst would otherwise get the same
        frame-sized reply to each push). What a lost reply carried still rides our pushes and repair."""
        current = self._hot[-1]
        done = self._replied.get(peer)
        if done is None:
            batches: Iterator[list[Entry]] = reversed(self._hot)
        elif done < len(current):
            batches = iter((current[done:],))
        else:
            return
        sent = set(push.entries)
        newest_first = (e for batch in batches for e in reversed(batch) if e not in sent)
        entries = fit_entries(newest_first, self.config.max_message_bytes)
        self._replied[peer] = len(current)
        if entries:
            self._send(peer, address, Push(self.state.digest, entries, reply=True))

    def _forward(self, sender: AgentId, fresh: list[Entry]) -> None:
        """Rumour mongering: entries new to us (from a push) go on at once to `fanout` peers, not back
        to the sender, so a write crosses the mesh in network hops instead of rounds. An entry is new to
        an agent once, so each agent forwards it at most once; `forward_frames_per_round` bounds the
        frames, so a burst cannot flood. What the budget leaves out still rides the next pushes."""
        budget = self._forward_budget
        if budget <= 0:
            self.forwarded["over_budget"] += 1
            return
        with self.instr.measure(Operation.PEER_SELECTION):
            peers = [p for p in self._select(self.config.fanout) if p != sender][:budget]
        if not peers:
            return
        self._forward_budget = budget - len(peers)
        entries = fit_entries(reversed(fresh), self.config.max_message_bytes)
        push = Push(self.state.digest, entries)
        for peer in peers:
            address = self.registry.address_of(peer)
            assert address is not None
            self._send(peer, address, push)
        self.forwarded["frames"] += len(peers)
        self.forwarded["entries"] += len(entries)

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
            peers = self._select(cfg.fanout)
        if not peers:
            return
        push = Push(self.state.digest, fit_entries(own, cfg.max_message_bytes))
        for peer in peers:
            address = self.registry.address_of(peer)
            assert address is not None
            self._send(peer, address, push)

    def _gossip_membership(self, peer: AgentId) -> None:
        address = self.registry.address_of(peer)
        if address is not None:
            self._send(peer, address, self._membership_sample())

    def _membership_sample(self) -> Membership:
        """Our own record and those of a few address-proven peers (records we hold, signed by them)."""
        records = [self.record]
        for agent in self._sample(self.config.membership_sample):
            rec = self.registry.record(agent)
            if rec is not None:
                records.append(rec)
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

    def _rejoin(self, now: float) -> None:
        """Silence from every peer for `rejoin_after` seconds means we were probably pruned (killed and
        restarted, starved by loss, cut off) or pruned everyone ourselves: re-announce our signed record
        to the seeds, a sample of known peers and the last addresses of pruned ones, so the mesh admits
        us again through the usual address challenge. While the silence lasts the wait doubles, up to
        _REJOIN_BACKOFF times, so a lone agent knocks rarely."""
        cfg = self.config
        if now - self._heard < cfg.rejoin_after:
            self._rejoin_wait = cfg.rejoin_after
            return
        if now < self._rejoin_next:
            return
        self._rejoin_next = now + self._rejoin_wait
        self._rejoin_wait = min(2 * self._rejoin_wait, _REJOIN_BACKOFF * cfg.rejoin_after)
        targets: dict[Address, AgentId | None] = dict.fromkeys((*self.seeds, *self._fallback))
        for agent in self._sample(cfg.fanout):
            known_at = self.registry.address_of(agent)
            if known_at is not None:
                targets[known_at] = agent
        if not targets:
            return
        self.rejoins += 1
        join = Join(self.record)
        for address, recipient in targets.items():
            self._send(recipient, address, join)

    def _prune(self, now: float) -> None:
        # not while cut off: the silent peers are across the partition, and healing needs their addresses
        if not self.partition.read_only:
            for agent, address in self.registry.prune_stale_at(now, now - self._stale_before(now)):
                self._fallback.append(address)
                self._left(agent, "stale")
        # buckets of addresses nobody is registered at (strangers, departed peers) would grow forever
        for address in [a for a in self._buckets if self.registry.agent_at(a) is None]:
            del self._buckets[address]
        self._told.clear()
        self._held.clear()  # frames whose key never came: dropped, as the network might have
        self._held_count = 0
        self._orphans.clear()  # owners that never showed up: their entries come again with them
        self._orphan_count = 0
        for address in [a for a, b in self._join_buckets.items() if b.full(now)]:
            del self._join_buckets[address]

    def _recover(self) -> None:
        """Peers that offended no more in the last period regain a little standing, even from under
        the threshold (so a fault that stopped is forgiven); proven equivocators never do."""
        for info in list(self.registry.peers()):
            if info.agent_id in self._offended or info.agent_id in self.barred or info.reputation >= 1.0:
                continue
            previous, current = self.registry.update_reputation(info.agent_id, self.config.recovery_step)
            if current != previous:
                self._emit(ReputationChanged(info.agent_id, previous, current, RECOVERY))
        self._offended.clear()
        for agent, score in list(self._relayers.items()):
            if score.failed >= 8 and score.failed > 2 * score.proven + 4:
                self._offence(
                    agent, Offence.UNPROVEN_RECORD, MessageType.MEMBERSHIP, self.registry.address_of(agent)
                )
            del self._relayers[agent]

    # --- anti-entropy (pull side) --------------------------------------------------------------------

    def _start_pulls(self) -> None:
        """Pull from peers whose recently heard root differs from ours, one differing peer at a time."""
        mine = self.state.digest
        recent = self.round_no - 2
        differing = [
            a
            for a, (root, heard) in self._roots.items()
            if root != mine and heard >= recent and self.registry.reputation(a) >= self.config.min_reputation
        ]
        if not differing:
            return
        for peer in self.rng.sample(differing, min(len(differing), self.config.sync_peers_per_round)):
            address = self.registry.address_of(peer)
            if address is None:
                continue
            pull = self._pulls[peer] = _Pull(peer, address)
            self._pull_from_root(pull)

    def _pull_from_root(self, pull: _Pull) -> None:
        pull.passes += 1
        pull.new_in_pass = 0
        root: NodeId = (0, 0)
        if self.state.digest == EMPTY:
            self._request(pull, SyncRequest(self.state.digest, wants=(root,)))
        else:
            self._request(pull, SyncRequest(self.state.digest, nodes=(root,)))

    def _request(self, pull: _Pull, request: SyncRequest) -> None:
        pull.waiting = True
        self.repair["requests"] += 1
        self._send(pull.peer, pull.address, request)

    def _next_pull_step(self, pull: _Pull, their_root: bytes) -> None:
        """After a complete reply: descend where their children differ from ours, or start over."""
        children, pull.children = pull.children, []
        nodes: list[NodeId] = []
        wants: list[NodeId] = []
        leaves: list[LeafSummary] = []
        budget = self.config.max_message_bytes - FRAME_OVERHEAD
        for child in self._differing_children(children):
            if len(nodes) + len(wants) + len(leaves) >= MAX_ITEMS or budget < 3 * _NODE_BYTES:
                break  # one request frame is full: the rest waits for the next pass
            if self.state.node_hash(child) == EMPTY:
                wants.append(child)
                budget -= _NODE_BYTES
            elif child[0] == TREE_DEPTH:
                fps = self.state.leaf_fingerprints(child[1])
                room = (budget - 2 * _NODE_BYTES) // SHORT_FINGERPRINT_BYTES * SHORT_FINGERPRINT_BYTES
                fps = fps[:room]  # a leaf of more than a frame of summaries: the first part now
                leaves.append(LeafSummary(child[1], fps))
                budget -= len(fps) + 2 * _NODE_BYTES
            else:
                nodes.append(child)
                budget -= _NODE_BYTES
        if nodes or wants or leaves:
            self._request(pull, SyncRequest(self.state.digest, tuple(nodes), tuple(wants), tuple(leaves)))
            return
        # a pass ended: go again while it still brings something and the budget lasts
        if (
            their_root != self.state.digest
            and pull.new_in_pass
            and pull.fetched < self.config.repair_budget_bytes
            and pull.passes < 2 * (TREE_DEPTH + 1)
        ):
            self._pull_from_root(pull)
        else:
            self._pulls.pop(pull.peer, None)

    def _differing_children(self, children: list[NodeHashes]) -> Iterator[NodeId]:
        """Children whose hash on the other side is neither empty nor ours."""
        for ch in children:
            for i in range(TREE_FANOUT):
                theirs = ch.hashes[i * DIGEST_BYTES : (i + 1) * DIGEST_BYTES]
                child: NodeId = (ch.depth + 1, ch.prefix * TREE_FANOUT + i)
                if theirs != EMPTY and theirs != self.state.node_hash(child):
                    yield child

    def _on_sync_reply(self, sender: AgentId, reply: SyncReply, applied: int, size: int) -> None:
        pull = self._pulls.get(sender)
        if pull is None or not pull.waiting:
            return
        self.repair["replies"] += 1
        self.repair["bytes_fetched"] += size
        self.repair["entries_fetched"] += applied
        pull.fetched += size
        pull.new_in_pass += applied
        pull.children.extend(reply.children)
        if not reply.last:
            return
        pull.waiting = False
        if pull.fetched >= self.config.repair_budget_bytes:
            self._pulls.pop(sender, None)  # bounded per round: the next round goes on
            return
        self._next_pull_step(pull, reply.root)

    # --- anti-entropy (serving side) -----------------------------------------------------------------

    def _serve(self, peer: AgentId, address: Address, req: SyncRequest) -> None:
        """Answer a pull step within the peer's repair budget for this round, over as many frames as it
        takes (children first, then entries in tree order, each owner's record the first time)."""
        cfg = self.config
        limit = cfg.max_message_bytes
        budget = cfg.repair_budget_bytes - self._served.get(peer, 0)
        root = self.state.digest
        children = tuple(NodeHashes(d, p, self.state.children((d, p))) for d, p in req.nodes)
        told = self._told.setdefault(peer, set())
        told.add(peer)
        frames: list[SyncReply] = []
        used = len(children) * _CHILDREN_BYTES
        batch: list[Entry] = []
        records: list[PeerRecord] = []
        spent = FRAME_OVERHEAD + used
        total = 0
        sources = [self.state.entries_under(n) for n in req.wants]
        sources += [
            iter(self.state.leaf_entries_except(leaf.prefix, leaf.fingerprints)) for leaf in req.leaves
        ]
        exhausted = True
        for source in sources:
            for e in source:
                size = entry_wire_size(e)
                record = None if e.agent in told else self._record_of(e.agent)
                if record is not None:
                    size += record_wire_size(record)
                if total + size > budget:
                    exhausted = False
                    break
                if spent + size > limit or len(batch) + len(records) >= MAX_ITEMS - 1:
                    frames.append(
                        SyncReply(root, children if not frames else (), tuple(batch), False, tuple(records))
                    )
                    batch, records, spent = [], [], FRAME_OVERHEAD
                if record is not None:
                    records.append(record)
                    told.add(e.agent)
                batch.append(e)
                spent += size
                total += size
            if not exhausted:
                break
        frames.append(SyncReply(root, children if not frames else (), tuple(batch), True, tuple(records)))
        self._served[peer] = self._served.get(peer, 0) + total + used
        self.repair["bytes_served"] += total + used
        for reply in frames:
            self._send(peer, address, reply)

    def _record_of(self, agent: AgentId) -> PeerRecord | None:
        if agent == self.agent_id:
            return self.record
        return self.registry.record(agent) or self._known_records.get(agent)

    def add_record(self, record: PeerRecord) -> None:
        """Know a member's keys (from a directory or configuration) without gossiping with it: its
        entries verify, but it is neither sampled nor relayed until it proves an address."""
        if not verify_record(record):
            raise ValueError(f"the record of {record.agent.hex()} does not verify")
        self._remember_keys(record)

    def _remember_keys(self, record: PeerRecord) -> None:
        known = self._known_records.get(record.agent)
        if known is not None and known.seq >= record.seq:
            return
        if len(self._known_records) >= self.config.max_known_records and known is None:
            self._known_records.pop(next(iter(self._known_records)))
        self._known_records[record.agent] = record
        self._adopt_orphans(record.agent)

    def _stale_before(self, now: float) -> float:
        """Peers last heard before this are stale: silent for `stale_timeout` and for as many rounds of
        this node's as fit in it, up to `_STALE_ROUNDS_CAP`. A node whose own rounds stopped (a
        suspended process, a starved host) heard nobody meanwhile: counted in wall time alone, it would
        prune every peer on waking. The cap keeps the round clock small for long timeouts (an infinite
        one never prunes)."""
        cfg = self.config
        fit = cfg.stale_timeout / cfg.round_interval
        rounds = _STALE_ROUNDS_CAP if fit >= _STALE_ROUNDS_CAP else math.ceil(fit - 1e-9)
        return min(now - cfg.stale_timeout, self._round_clock.since(rounds, now))

    def _left(self, agent: AgentId, reason: str) -> None:
        """What the engine keeps of a peer that is no longer a member goes with it."""
        self._roots.pop(agent, None)
        self._windows.pop(agent, None)
        self._emit(PeerLeft(agent, reason))

    def _adopt_orphans(self, agent: AgentId) -> None:
        """Entries that arrived before their owner's keys: verify and merge them now."""
        orphans = self._orphans.pop(agent, None)
        if not orphans:
            return
        self._orphan_count -= len(orphans)
        good = []
        for e in orphans:
            key = self._entry_key(e)
            if key is not None and verify_entry(key, e):
                good.append(e)
        self.ignored["unverifiable_entry"] -= len(good)
        self._merge(agent, good, self._now)

    def import_entries(self, entries: Sequence[Entry], now: float) -> int:
        """Apply entries from outside the gossip (a restore, a bulk load), each verified against its
        owner's known keys; they spread from here like any entry learnt. Returns how many were new."""
        good = []
        for e in entries:
            key = self._entry_key(e)
            if key is None or not verify_entry(key, e):
                raise ValueError(f"entry {e.key!r} of {e.agent.hex()} does not verify against a known key")
            good.append(e)
        return self._merge(self.agent_id, good, now, rumour=True)

    # --- membership ---------------------------------------------------------------------------------

    def _learn_record(self, record: PeerRecord, relayer: AgentId | None, *, join: bool) -> None:
        """A record heard of: verify its signatures, and challenge its address before trusting it."""
        agent = record.agent
        if agent == self.agent_id or agent in self.barred:
            return
        known = self.registry.record(agent)
        if known == record or agent in self._pending:
            if join and known is not None:
                address = self.registry.address_of(agent)
                if address is not None and address == record.address:
                    self._send(agent, address, self._membership_sample())
            return
        registered_key = self.registry.public_key(agent)
        if (
            registered_key is not None
            and known is None
            and registered_key == record.public_key
            and self.registry.address_of(agent) == record.address
        ):
            # statically configured peer describing itself as we know it: keep its record
            if verify_record(record):
                self.registry.set_record(record)
            return
        if known is not None and record.seq <= known.seq:
            return  # an older record of a known member
        if not verify_record(record):
            if relayer is not None:
                self._offence(
                    relayer, Offence.FORGED_RECORD, MessageType.MEMBERSHIP, self.registry.address_of(relayer)
                )
            return
        if registered_key is not None:
            keys = record.keys
            if registered_key not in keys:
                return  # a key chain that does not extend the one we know: not this member's
            if self.registry.address_of(agent) == record.address:
                # same address, newer record (e.g. after a key rotation): take it at once
                self._set_key(agent, record.public_key)
                self.registry.set_record(record)
                return
        if len(self._pending) >= self.config.max_pending:
            self.ignored["pending_full"] += 1
            return
        if relayer is not None:
            outstanding = sum(1 for p in self._pending.values() if p.relayer == relayer)
            if outstanding >= self.config.pending_per_relayer:
                self.ignored["pending_full"] += 1
                return
        token = self.rng.getrandbits(63)
        pending = self._pending[agent] = _Pending(
            agent, record.address, record, token, relayer, join, 0, self.round_no
        )
        self._tokens[token] = agent
        if self._challenges_left > 0:
            self._challenge(pending)

    def _challenge(self, pending: _Pending) -> None:
        self._challenges_left -= 1
        pending.tries += 1
        pending.next_round = self.round_no + self.config.challenge_retry_rounds
        self._send(pending.agent, pending.address, Challenge(pending.token, self.record))

    def _challenge_pending(self) -> None:
        for agent, pending in list(self._pending.items()):
            if pending.next_round > self.round_no:
                continue
            if pending.tries >= self.config.challenge_tries:
                del self._pending[agent]
                self._tokens.pop(pending.token, None)
                if pending.relayer is not None:
                    self._relayers.setdefault(pending.relayer, _RelayerScore()).failed += 1
            elif self._challenges_left > 0:
                self._challenge(pending)

    def _on_answer(self, sender: AgentId, answer: Answer, now: float) -> None:
        agent = self._tokens.get(answer.token)
        pending = self._pending.get(sender)
        if agent != sender or pending is None or pending.token != answer.token:
            return
        claimed = pending.record
        rec = answer.record if claimed is None or answer.record.seq >= claimed.seq else claimed
        address = pending.address  # the address the token went to is the one proven
        if claimed is None and (rec.agent != sender or rec.address != address or not verify_record(rec)):
            return  # a stranger answering with a record of another address: that address is unproven
        del self._pending[sender]
        del self._tokens[answer.token]
        if pending.relayer is not None:
            self._relayers.setdefault(pending.relayer, _RelayerScore()).proven += 1
        self._register(sender, rec.public_key, address, rec.region, now)
        self._set_key(sender, rec.public_key)
        if rec.address == address:
            self.registry.set_record(rec)
        if pending.join:
            self._send(sender, address, self._membership_sample())

    def _challenge_stranger(self, agent: AgentId, address: Address) -> None:
        """A frame from a member we do not know (we pruned it, or it restarted): challenge the address
        it came from, so a correct member is admitted again as a joiner would be; limited like joins,
        so strangers cannot make us send more than one challenge per address per join interval."""
        full = len(self._pending) >= self.config.max_pending
        if agent in self._pending or self._challenges_left <= 0 or full:
            return
        if self.registry.agent_at(address) is not None:
            return  # the address belongs to a member we know: not a stranger's to prove
        bucket = self._join_buckets.get(address)
        if bucket is None:
            rate = 1.0 / self.config.join_interval
            bucket = self._join_buckets[address] = TokenBucket(rate, 1.0, self._now)
        if not bucket.take(self._now):
            return
        token = self.rng.getrandbits(63)
        pending = self._pending[agent] = _Pending(agent, address, None, token, None, True, 0, self.round_no)
        self._tokens[token] = agent
        self._challenge(pending)

    def _on_challenge(self, sender: AgentId, challenge: Challenge, now: float) -> None:
        rec = challenge.record
        self._send(sender, rec.address, Answer(challenge.token, self.record))
        if sender not in self.registry and sender not in self._pending:
            # someone proving us wants to know us: prove it back (rate-limited like a join)
            self._learn_record(rec, None, join=False)

    def _on_join(self, sender: AgentId, address: Address, join: Join, now: float, scope: Scope) -> None:
        bucket = self._join_buckets.get(address)
        if bucket is None:
            bucket = self._join_buckets[address] = TokenBucket(1.0 / self.config.join_interval, 1.0, now)
        if not bucket.take(now) or self._challenges_left <= 0:
            self.ignored["join_limited"] += 1
            raise self._reject(scope, address, None, Rejection.RATE_LIMITED, "join")
        self._learn_record(join.record, None, join=True)

    def _on_membership(self, sender: AgentId, membership: Membership) -> None:
        relayer = sender if sender in self.registry else None
        unknown = 0
        for rec in membership.peers:
            if rec.agent == sender or (rec.agent in self.registry and self.registry.record(rec.agent) == rec):
                if rec.agent == sender and relayer is not None and self.registry.record(sender) is None:
                    self._learn_record(rec, None, join=False)
                continue
            unknown += 1
            if unknown > 2 * self.config.membership_sample:
                break  # more than any sample holds: the rest is ignored, not verified
            self._learn_record(rec, relayer, join=False)

    # --- sending ------------------------------------------------------------------------------------

    def _send(self, peer: AgentId | None, address: Address, body: Body) -> None:
        mtype = BODY_TYPES[type(body)]
        with self.instr.send(peer, address, mtype) as scope:
            # one nonce sequence per receiving address, so its replay window sees every frame we send it
            nonce = self._nonces.get(address, self.config.nonce_base) + 1
            self._nonces[address] = nonce
            signed = encode_signed_part(self.agent_id, peer or NO_RECIPIENT, nonce, body)
            data = frame(signed, self.identity.sign(envelope_message(signed)))
            scope.size(len(data))
        if mtype is MessageType.SYNC_REQUEST or mtype is MessageType.SYNC_REPLY:
            self.repair["bytes_sent"] += len(data)
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
        if peer is not None and peer in self.barred:
            raise self._reject(scope, address, peer, Rejection.BARRED)
        if peer is not None and self.registry.reputation(peer) < cfg.min_reputation:
            # ignored, but still watched for what a correct peer never sends (no signature checked):
            # so recovery forgives a peer whose faults stopped, not one that keeps them up
            try:
                decode(data)
            except ProtocolError:
                self._offence(peer, Offence.MALFORMED, None, address)
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
        if env.sender in self.registry:
            self.registry.touch(env.sender, now)
            self._heard = now
        self._emit(MessageReceived(env.sender, env.type, len(data)))
        self._dispatch(env, address, entries, now, scope, len(data))

    @staticmethod
    def _own_record_in(env: Envelope) -> PeerRecord | None:
        """The sender's own record, when its frame carries one."""
        body = env.body
        if isinstance(body, Join | Challenge | Answer):
            return body.record if body.record.agent == env.sender else None
        if isinstance(body, Membership):
            return next((r for r in body.peers if r.agent == env.sender), None)
        return None

    def _self_described_key(self, env: Envelope) -> bytes | None:
        """The key of an unregistered sender whose frame carries its own record (join, challenge,
        answer, membership), provided the record verifies."""
        record = self._own_record_in(env)
        return record.public_key if record is not None and verify_record(record) else None

    def _authenticate(self, env: Envelope, address: Address, peer: AgentId | None, scope: Scope) -> None:
        """Who sent this, and may we believe it: key, signature, address binding, nonce."""
        sender, mtype = env.sender, env.type
        if sender in self.barred:
            raise self._reject(scope, address, peer, Rejection.BARRED, sender.hex())
        rotated: PeerRecord | None = None
        key = self.registry.public_key(sender)
        if key is None:
            key = self._self_described_key(env)
        else:
            claimed = self._own_record_in(env)
            if claimed is not None and claimed.public_key != key:
                # a record of a registered agent under another key: a rotation, or an impostor
                if key not in claimed.keys or not verify_record(claimed):
                    if peer is not None and peer != sender:
                        self._offence(peer, Offence.IMPERSONATION, mtype, address)
                    raise self._reject(
                        scope, address, peer, Rejection.IMPERSONATION, f"record of {sender.hex()}"
                    )
                key = claimed.public_key
                rotated = claimed
        if key is None:
            # Neither registered nor describing itself; unverifiable, so nobody's reputation can pay for it.
            self.offences[Offence.UNKNOWN_SENDER] += 1
            self._emit(ByzantineDetected(sender, Offence.UNKNOWN_SENDER, mtype, address))
            self._challenge_stranger(sender, address)
            raise self._reject(scope, address, peer, Rejection.UNKNOWN_SENDER, sender.hex())
        if not verify(key, envelope_message(env.signed), env.signature):
            if peer is not None and peer != sender:
                self._offence(peer, Offence.IMPERSONATION, mtype, address)
                raise self._reject(scope, address, peer, Rejection.IMPERSONATION, f"claimed {sender.hex()}")
            if peer is not None:
                # From the sender's own address, under a key we do not know for it: a correct peer does
                # this when a frame overtakes the announcement of its key rotation. No penalty: held
                # until a rotation of this sender arrives (then verified again), dropped when pruned.
                self._hold(sender, address, frame(env.signed, env.signature))
            raise self._reject(scope, address, peer, Rejection.INVALID_SIGNATURE, "envelope")
        if rotated is not None and (peer is None or peer == sender):
            # the member moved to a key its previous one signed: take it (its address is unchanged)
            self._set_key(sender, rotated.public_key)
            if self.registry.address_of(sender) == rotated.address:
                self.registry.set_record(rotated)
            self._remember_keys(rotated)
        if peer is not None and peer != sender:
            # A genuine frame of another agent, re-sent from this address: a correct peer never does.
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
            # a frame seen before, or overtaken by more than the window: the network's doing, no offence
            self.ignored["duplicate_frame"] += 1
            raise self._reject(scope, address, peer, Rejection.DUPLICATE, f"nonce {env.nonce}")

    def _hold(self, sender: AgentId, address: Address, data: bytes) -> None:
        held = self._held.setdefault(sender, [])
        if len(held) >= _HELD_PER_SENDER or self._held_count >= _HELD_FRAMES:
            self.ignored["held_dropped"] += 1
            return
        held.append((address, data))
        self._held_count += 1
        self.ignored["held_frame"] += 1

    def _set_key(self, agent: AgentId, public_key: bytes) -> None:
        """Take a member's new key; frames held for it are tried again once this frame is done."""
        if self.registry.public_key(agent) != public_key:
            self.registry.set_public_key(agent, public_key)
            if agent in self._held:
                self._release.append(agent)

    def _entry_key(self, e: Entry) -> bytes | None:
        """The key that signed an entry: the owner's key of the entry's epoch."""
        if e.agent == self.agent_id:
            keys = self.identity.keys
            return keys[e.epoch] if e.epoch < len(keys) else None
        rec = self.registry.record(e.agent) or self._known_records.get(e.agent)
        if rec is not None:
            keys = rec.keys
            return keys[e.epoch] if e.epoch < len(keys) else None
        return self.registry.public_key(e.agent) if e.epoch == 0 else None

    def _validate_entries(self, env: Envelope, address: Address, scope: Scope) -> list[Entry]:
        """Entries worth merging, each verified against its owner's key; one forgery rejects the frame."""
        body = env.body
        if isinstance(body, SyncReply):
            for rec in body.records:
                if rec.agent not in self.registry and rec.agent not in self._known_records:
                    if verify_record(rec):
                        self._remember_keys(rec)
                    else:
                        self._offence(env.sender, Offence.FORGED_RECORD, env.type, address)
                        raise self._reject(
                            scope, address, env.sender, Rejection.FORGED_RECORD, rec.agent.hex()
                        )
        if isinstance(body, Push | SyncReply):
            candidates: Sequence[Entry] = body.entries
        elif isinstance(body, Evidence):
            candidates = (body.first, body.second)
        else:
            return []
        out: list[Entry] = []
        state = self.state
        evidence = isinstance(body, Evidence)
        signers: dict[tuple[AgentId, int], bytes | None] = {}  # a frame's entries share few owners
        for e in candidates:
            held = state.get(e.agent, e.key)
            if held is not None and not evidence:
                # equal entries have equal fingerprints: one int comparison settles the common unequal case
                if held is e or (held.fingerprint == e.fingerprint and held == e):
                    self.ignored["duplicate_entry"] += 1
                    continue
                if held.version > e.version:
                    self.ignored["stale_entry"] += 1
                    continue
            signer = (e.agent, e.epoch)
            if signer in signers:
                key = signers[signer]
            else:
                key = signers[signer] = self._entry_key(e)
            if key is None:
                self.ignored["unverifiable_entry"] += 1
                if not evidence and self._orphan_count < self.config.max_orphans:
                    # its owner's record may be on its way (frames of one stream overtake each other)
                    self._orphans.setdefault(e.agent, []).append(e)
                    self._orphan_count += 1
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
        self, env: Envelope, address: Address, entries: list[Entry], now: float, scope: Scope, size: int
    ) -> None:
        body, sender = env.body, env.sender
        if isinstance(body, Push):
            hot = self._hot[-1]
            before = len(hot)
            self._merge(sender, entries, now, rumour=True)
            self._observe(sender, body.root)
            if not body.reply and body.root != self.state.digest:
                self._push_back(sender, address, body)
            if len(hot) > before:
                self._forward(sender, hot[before:])
        elif isinstance(body, SyncRequest):
            self._observe(sender, body.root)
            self._serve(sender, address, body)
        elif isinstance(body, SyncReply):
            self.repair["bytes_received"] += size
            applied = self._merge(sender, entries, now)
            self._observe(sender, body.root)
            self._on_sync_reply(sender, body, applied, size)
        elif isinstance(body, Evidence):
            if entries:
                self._learn_equivocation(body.first, body.second)
                self._merge(sender, entries, now)
        elif isinstance(body, Join):
            self._on_join(sender, address, body, now, scope)
        elif isinstance(body, Challenge):
            self._on_challenge(sender, body, now)
        elif isinstance(body, Answer):
            self._on_answer(sender, body, now)
        elif isinstance(body, Membership):
            self._on_membership(sender, body)
        elif isinstance(body, Ping):
            self._send(sender, address, Pong(body.token))
        elif isinstance(body, Pong):
            sent = self._pings.pop(body.token, None)
            if sent is not None and sent[0] == sender:
                self.registry.set_rtt(sender, now - sent[1])
                info = self.registry.get(sender)
                self._emit(RttMeasured(sender, now - sent[1], info.region if info else ""))

    def _observe(self, peer: AgentId, root: bytes) -> None:
        self._roots[peer] = (root, self.round_no)
        self._root_votes[root != self.state.digest] += 1
        # one comparison per message; the convergence check proper is measured once per round
        self.convergence.heard(root == self.state.digest)

    def _merge(self, peer: AgentId, entries: list[Entry], now: float, *, rumour: bool = False) -> int:
        """Apply entries; with `rumour`, new ones ride the next pushes (entries learnt by repair do not:
        they are old news everywhere but here)."""
        if not entries:
            return 0
        applied = 0
        hot = self._hot[-1] if rumour else []
        with self.instr.merge(peer, len(entries), self.round_no):  # also measures Operation.MERGE
            for e in entries:
                result = self.state.apply(e)
                if result.conflict is not None:
                    self._learn_equivocation(e, result.conflict)
                if result.outcome is Applied.NEW:
                    applied += 1
                    hot.append(e)
        if applied:
            self.convergence.state_changed(self.round_no, now)
            self._emit(EntriesMerged(peer, applied, self.state.digest))
        return applied

    def _learn_equivocation(self, a: Entry, b: Entry) -> None:
        if self.evidence.add(a, b) and a.agent != self.agent_id:
            self.barred.add(a.agent)
            self._offence(
                a.agent, Offence.EQUIVOCATION, MessageType.EVIDENCE, self.registry.address_of(a.agent)
            )

    def _register(self, agent: AgentId, key: bytes, address: Address, region: str, now: float) -> None:
        known = agent in self.registry
        with self.instr.register(agent, address, region, len(self.registry) + (0 if known else 1)):
            added = self.registry.register(agent, address, key, region=region, now=now, introduced=True)
        if added and agent in self._orphans:
            self._adopt_orphans(agent)
        if added and agent in self.barred:
            self.registry.update_reputation(agent, -1.0)
        if added:
            self._emit(PeerJoined(agent, address, region))

    def _emit(self, event: MeshEvent) -> None:
        self.instr.event(event)
        if len(self._events) >= _MAX_EVENTS:
            self._events.popleft()
            log.warning("node %s: event queue full, dropping the oldest event", self.node_id)
        self._events.append(event)
