"""One mesh node as a process: the engine driven by asyncio, QUIC to its peers, SQLite under its writes.

The engine does the protocol (sans-I/O); this shell feeds it the clock and the frames QUIC hears,
sends what it returns, reloads credentials when their files change, and answers the loopback
admin endpoint (`knhk_mesh.admin`). A `put` returns once the entry is committed to the store and
before any frame carrying it leaves the node.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import math
import random
import time
from collections import Counter
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Protocol

from knhk_mesh.admin import AdminServer
from knhk_mesh.adversary import Adversary, WithholdingRelay
from knhk_mesh.core.config import MeshConfig
from knhk_mesh.core.engine import MeshEngine
from knhk_mesh.core.events import (
    ByzantineDetected,
    Converged,
    EntriesMerged,
    MessageReceived,
    MessageRejected,
    MessageSent,
    PeerJoined,
    PeerLeft,
    RoundStarted,
    TopologyRebalanced,
)
from knhk_mesh.core.instrument import NOOP, Instrumentation
from knhk_mesh.core.messages import Address, AgentId, Entry, agent_id_of
from knhk_mesh.core.security import verify_entry
from knhk_mesh.node_config import WITHHOLDING_RELAY, NodeConfig
from knhk_mesh.pki import Credentials, PkiError, Refusal
from knhk_mesh.store import EntryStore, StoreError, read_key_chain
from knhk_mesh.topology_rdf import TopologyQueryError, TopologyStore
from knhk_mesh.transport.quic import QuicTransport, Refused, TransportLimits

log = logging.getLogger(__name__)

RELOAD_EVERY_S = 1.0
ARRIVALS_KEPT = 256  # per agent: enough for the writes a bench or test waits on
CERTIFICATE_REFUSALS = frozenset({Refusal.REVOKED.value, Refusal.EXPIRED.value})
ADVERSARY_START_S = 8.0
RECONNECT_AFTER_ROTATION_S = 1.0
CHALLENGE_RETRY_S = 2.0  # between address challenges of one newcomer (three tries)


def resume_identity(config: NodeConfig, credentials: Credentials) -> None:
    """A node that rotated its key before this start is the same agent under its newest key."""
    chain = read_key_chain(config.data_dir)
    if chain is not None:
        credentials.adopt_chain(*chain)


class TransportObserver(Protocol):
    """Telemetry of the shell itself (the engine reports through its Instrumentation)."""

    def queue_changed(self, delta: int) -> None: ...

    def handshake_refused(self, reason: str, peer: AgentId | None, address: Address) -> None: ...


class _NoObserver:
    def queue_changed(self, delta: int) -> None:
        return None

    def handshake_refused(self, reason: str, peer: AgentId | None, address: Address) -> None:
        return None


@dataclass
class Counts:
    """What the node saw, for /status and `knhk-mesh up`'s table."""

    rounds: int = 0
    sent: int = 0
    received: int = 0
    converged: int = 0
    last_converged_digest: str = ""
    joined: int = 0
    left: int = 0
    banned_removals: int = 0


class MeshNode:
    def __init__(
        self,
        config: NodeConfig,
        credentials: Credentials,
        *,
        instrumentation: Callable[[str], Instrumentation] = lambda node_id: NOOP,
        observer: TransportObserver | None = None,
        tick_report: Callable[[], dict[str, object]] = dict,
        endpoints: Mapping[str, int] | None = None,
    ) -> None:
        self.config = config
        self.credentials = credentials
        credentials.check_own()
        resume_identity(config, credentials)
        self.identity = credentials.identity
        self.observer = observer or _NoObserver()
        self.tick_report = tick_report
        self.endpoints = dict(endpoints or {})  # other ports of the process, e.g. "prometheus"
        self.store = EntryStore(config.data_dir, self.identity.agent_id)
        try:
            self.topology_store: TopologyStore | None = TopologyStore(config.data_dir)
        except TopologyQueryError as exc:
            self.store.close()
            raise StoreError(str(exc)) from None
        self.counts = Counts()
        self.detections: Counter[str] = Counter()
        self.rejections: Counter[str] = Counter()
        self.refusals: Counter[str] = Counter()
        self.arrivals: dict[AgentId, list[tuple[int, float]]] = {}
        # agents whose certificate was refused as revoked or expired, with the key it certified: the
        # agent stays out while that key is its newest, and is back once it has rotated past it
        self.banned: dict[AgentId, bytes] = {}
        self._ban_reasons: dict[AgentId, str] = {}  # the refusal that banned it: why it left membership
        self._reload_error = ""  # the last reason credentials were not reloaded (logged once)
        self._instrumentation = instrumentation
        self._stopping = asyncio.Event()
        self._wake = asyncio.Event()
        self._tasks: list[asyncio.Task[None]] = []
        self.engine: MeshEngine | None = None
        self.node: MeshEngine | Adversary | WithholdingRelay | None = None
        self.transport: QuicTransport | None = None
        self.admin_address: Address | None = None
        self.started = time.monotonic()

    @property
    def node_id(self) -> str:
        return self.identity.hex_id

    # --- lifecycle --------------------------------------------------------------------------------

    async def start(self) -> None:
        cfg = self.config
        self.transport = QuicTransport(
            self.credentials,
            cfg.listen,
            on_frame=self._on_frame,
            on_refused=self._on_refused,
            on_queue=self.observer.queue_changed,
            successor=self._successor,
            retired=self._retired,
            limits=TransportLimits(queue_limit=cfg.queue_limit, idle_timeout=cfg.idle_timeout),
        )
        address = await self.transport.start()
        self.transport.drop_traffic(cfg.drop)
        mesh_config = MeshConfig(
            fanout=cfg.fanout,
            round_interval=cfg.round_interval,
            stale_timeout=cfg.stale_timeout,
            prune_every_rounds=max(1, round(cfg.stale_timeout / cfg.round_interval / 4)),
            # an address challenge may first have to open a QUIC connection (seconds on a busy
            # machine): retries are spaced in time, not rounds, so short rounds do not give up early
            challenge_retry_rounds=max(3, math.ceil(CHALLENGE_RETRY_S / cfg.round_interval)),
            region=cfg.region,
            peer_selection=cfg.peer_selection,
            nearest_fraction=cfg.nearest_fraction,
            rebalance_every_rounds=cfg.rebalance_every_rounds,
            topology=cfg.topology,
            # strictly above anything sent before a restart (receivers keep a replay window per sender)
            nonce_base=time.time_ns() // 1000,
        )
        engine = MeshEngine(
            self.identity,
            address,
            rng=random.Random(),
            config=mesh_config,
            instrumentation=self._instrumentation(self.node_id),
            seeds=tuple(s for s in cfg.seeds if s != address),
        )
        self._reload_own(engine)
        self.engine = engine
        self.node = engine
        if cfg.byzantine is not None:
            # attack once membership has spread (a few seconds in), for three rounds
            start = max(2, round(ADVERSARY_START_S / cfg.round_interval))
            self.node = Adversary(engine, random.Random(), [], cfg.byzantine, start_round=start)
        elif cfg.withholding_relay:
            self.node = WithholdingRelay(engine)
        admin = AdminServer(self)
        self.admin_address = await admin.start(cfg.admin)
        self._tasks.append(asyncio.get_running_loop().create_task(self._drive()))
        self._tasks.append(asyncio.get_running_loop().create_task(self._reload_loop()))
        self._admin = admin
        if cfg.ports_file is not None:
            doc = {
                **self.endpoints,
                "quic": address[1],
                "admin": self.admin_address[1],
                "node_id": self.node_id,
            }
            tmp = cfg.ports_file.with_suffix(".tmp")
            tmp.write_text(json.dumps(doc))
            tmp.replace(cfg.ports_file)
        log.info(
            "node %s listening on %s:%d (QUIC), admin on %s:%d", self.node_id, *address, *self.admin_address
        )

    def _reload_own(self, engine: MeshEngine) -> None:
        """Own entries back into the state: the next write takes a version above every one of them."""
        keys = self.identity.keys  # entries written before a key rotation verify against older keys
        for entry in self.store.load(keys):
            if entry.epoch >= len(keys) or not verify_entry(keys[entry.epoch], entry):
                raise PkiError(
                    f"{self.store.path}: entry version {entry.version} (key epoch {entry.epoch}) "
                    "is not signed by this node's keys"
                )
            engine.state.apply(entry)
        last = self.store.last_version()
        if engine.state.version_of(self.identity.agent_id) < last:
            raise PkiError(f"{self.store.path}: version counter {last} is above every stored entry")

    def request_stop(self) -> None:
        self._stopping.set()
        self._wake.set()

    async def wait_stopped(self) -> None:
        await self._stopping.wait()

    async def stop(self) -> None:
        """Graceful: stop the rounds, close connections and the admin endpoint, close the store."""
        self._stopping.set()
        self._wake.set()
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        if hasattr(self, "_admin"):
            await self._admin.close()
        if self.transport is not None:
            await self.transport.close()
        self.store.close()
        self.topology_store = None  # releases the store's lock on its folder

    # --- the engine's clock and frames -------------------------------------------------------------

    async def _drive(self) -> None:
        assert self.node is not None and self.engine is not None
        node, engine = self.node, self.engine
        engine.start(time.monotonic())
        self._pump()
        while not self._stopping.is_set():
            timer = node.get_timer()
            delay = 1.0 if timer is None else max(0.0, timer - time.monotonic())
            self._wake.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), timeout=delay)
            if isinstance(node, Adversary):
                node.targets = [(p.agent_id, p.address) for p in engine.registry.peers()]
            node.handle_timer(time.monotonic())
            self._pump()

    async def _reload_loop(self) -> None:
        while not self._stopping.is_set():
            await asyncio.sleep(RELOAD_EVERY_S)
            self.reload_credentials()

    def reload_credentials(self) -> bool:
        """Take changed credential files (certificate, key, CA, CRL): a new key is a rotation; a CRL
        that now refuses a connected peer closes its connection. True when anything changed."""
        try:
            if not self.credentials.reload_if_changed():
                return False
            self._reload_error = ""
            log.info("node %s: credentials reloaded", self.node_id)
            assert self.transport is not None
            self.transport.credentials_reloaded()
            engine = self.engine
            if engine is not None and self.credentials.identity.epoch > engine.identity.epoch:
                self._rotate()
            return True
        except (PkiError, OSError) as exc:
            # tried again every second (a file may have been read half-written); said once per reason
            if str(exc) != self._reload_error:
                self._reload_error = str(exc)
                log.error("node %s: credentials not reloaded, keeping the old ones: %s", self.node_id, exc)
            return False

    def _rotate(self) -> None:
        """Move to the key the new certificate covers: the chain is made durable first, then peers
        hear the rotation (signed by the previous key) and every connection is re-made under the new
        certificate, so the old one may be revoked without cutting this node off."""
        assert self.engine is not None and self.transport is not None
        identity = self.credentials.identity
        self.store.save_key_chain(identity.genesis_key, identity.rotations)
        self.identity = identity
        self.engine.rotate_key(identity)
        self._pump()  # the rotation goes out over the connections made under the old certificate
        # then new connections under the new one: by then the peers know the new key as ours
        transport = self.transport
        asyncio.get_running_loop().call_later(
            RECONNECT_AFTER_ROTATION_S, transport.reconnect_all, "key rotated"
        )
        log.info("node %s: identity key rotated (epoch %d)", self.node_id, identity.epoch)

    def _successor(self, old_key: bytes, new_key: bytes) -> bool:
        """`new_key` is the current key of the member whose key chain holds `old_key` (a rotation)."""
        engine = self.engine
        if engine is None:
            return False
        for info in engine.registry.peers():
            if info.public_key == new_key:
                record = engine.registry.record(info.agent_id)
                return record is not None and old_key in record.keys
        return False

    def _agent_of_key(self, key: bytes) -> AgentId:
        """The agent a certificate's key belongs to, current or retired: after a rotation it is not
        the key's own id."""
        if self.engine is not None:
            registry = self.engine.registry
            own = agent_id_of(key)  # a genesis key names its agent: no scan for a peer that never rotated
            record = registry.record(own)
            if registry.public_key(own) == key or (record is not None and record.genesis_key == key):
                return own
            for info in registry.peers():
                record = registry.record(info.agent_id)
                if info.public_key == key or (record is not None and key in record.keys):
                    return info.agent_id
        return agent_id_of(key)

    def _retired(self, key: bytes) -> bool:
        """`key` is an earlier key of a member whose rotation past it we accepted."""
        engine = self.engine
        return engine is not None and self._rotated_past(engine, self._agent_of_key(key), key)

    @staticmethod
    def _rotated_past(engine: MeshEngine, agent: AgentId, key: bytes) -> bool:
        registry = engine.registry
        record = registry.record(agent)
        current = registry.public_key(agent)
        return record is not None and current == record.public_key != key and key in record.keys

    def _on_frame(self, address: Address, data: bytes) -> None:
        if self.node is None:
            return
        self.node.receive(address, data, time.monotonic())
        self._pump()

    def _on_refused(self, refused: Refused) -> None:
        self.refusals[refused.reason] += 1
        # the agent the key belongs to, not the key's own id (after a rotation they differ); asked
        # before a ban forgets the member
        peer = self._agent_of_key(refused.peer_key) if refused.peer_key is not None else None
        if refused.reason in CERTIFICATE_REFUSALS and refused.peer_key is not None:
            if self._retired(refused.peer_key):
                # a key its member rotated away from while it was still certified: revoking it ends
                # the rotation; the member stays, under the key its new certificate covers
                log.info("node %s: the certificate of a retired key was refused", self.node_id)
            else:
                # a node the CA no longer vouches for leaves membership: not sampled, not gossiped
                assert peer is not None
                self.banned[peer] = refused.peer_key
                self._ban_reasons[peer] = refused.reason
                self._forget_banned()
        log.warning(
            "node %s: refused %s:%d at the handshake: %s (%s)",
            self.node_id,
            *refused.address,
            refused.reason,
            refused.detail,
        )
        self.observer.handshake_refused(refused.reason, peer, refused.address)

    def _forget_banned(self) -> None:
        engine = self.engine
        if engine is None:
            return
        transport = self.transport
        for agent, key in list(self.banned.items()):
            address = engine.registry.address_of(agent)
            if (
                self._rotated_past(engine, agent, key)
                and transport is not None
                and address is not None
                and transport.holder_of(address) == engine.registry.public_key(agent)
            ):
                # a rotation heard of after the refusal (a refused key can still sign one): believed
                # once the new key has itself passed a handshake, certificate and CRL checked
                del self.banned[agent]
                self._ban_reasons.pop(agent, None)
                log.info(
                    "node %s: %s rotated past its refused key: no longer banned", self.node_id, agent.hex()
                )
            elif engine.remove_peer(agent, self._ban_reasons.get(agent, "banned")):
                self.counts.banned_removals += 1

    def _pump(self) -> None:
        """Send what the engine has to send and tally what it reports."""
        node, transport = self.node, self.transport
        assert node is not None and transport is not None
        if self.banned:
            self._forget_banned()  # membership gossip from peers that have not heard yet may bring it back
        for address, data in node.messages_to_send(time.monotonic()):
            transport.send(address, data)
        c = self.counts
        merged = False
        while (event := node.next_event()) is not None:
            if isinstance(event, MessageSent):
                c.sent += 1
            elif isinstance(event, MessageReceived):
                c.received += 1
            elif isinstance(event, RoundStarted):
                c.rounds += 1
            elif isinstance(event, Converged):
                c.converged += 1
                c.last_converged_digest = event.digest.hex()
            elif isinstance(event, ByzantineDetected):
                self.detections[event.kind.value] += 1
            elif isinstance(event, MessageRejected):
                self.rejections[event.reason.value] += 1
            elif isinstance(event, EntriesMerged):
                merged = True
            elif isinstance(event, PeerJoined):
                c.joined += 1
            elif isinstance(event, PeerLeft):
                c.left += 1
            elif isinstance(event, TopologyRebalanced):
                self._write_topology(event)
        if merged:
            self._note_versions()

    def _write_topology(self, event: TopologyRebalanced) -> None:
        """The rebalanced topology into the RDF store (a failure is logged: gossip goes on without it)."""
        if self.topology_store is None:
            return
        try:
            self.topology_store.write(event.snapshot)
        except OSError as exc:
            log.error("node %s: topology not written to %s: %s", self.node_id, self.topology_store.path, exc)

    def _note_versions(self) -> None:
        """When each agent's newest version first arrived here (for write-propagation figures)."""
        assert self.engine is not None
        now = time.monotonic()
        for agent, version in self.engine.state.top_versions().items():
            seen = self.arrivals.setdefault(agent, [])
            if not seen or seen[-1][0] < version:
                seen.append((version, now))
                if len(seen) > ARRIVALS_KEPT:
                    del seen[: len(seen) - ARRIVALS_KEPT]

    def arrival(self, agent: AgentId, version: int) -> float | None:
        """The monotonic time (system-wide clock) this node first held `version` of `agent`, if it did."""
        for v, t in self.arrivals.get(agent, ()):
            if v >= version:
                return t
        return None

    # --- what the admin endpoint asks ---------------------------------------------------------------

    def put(self, key: str, value: bytes) -> Entry:
        """Sign, commit to the store, then let the engine's frames out: durable before anyone hears of it."""
        assert self.engine is not None
        engine = self.engine
        entry = engine.write(key, value, time.monotonic())
        try:
            self.store.append(entry)
        except Exception:
            # not durable: the entry must not leave the node (its frames are still in the outbox)
            engine.messages_to_send(time.monotonic())
            raise
        self._pump()
        return entry

    def set_faults(self, drop: frozenset[Address]) -> None:
        """Fault injection at run time: drop every frame to or from `drop` (empty: heal)."""
        assert self.transport is not None
        self.transport.drop_traffic(drop)
        log.warning("node %s: dropping frames to and from %d peer address(es)", self.node_id, len(drop))

    def peers(self) -> list[dict[str, object]]:
        """Membership as this node sees it: whom it gossips with, under which key, how trusted."""
        assert self.engine is not None
        return [
            {
                "agent": p.agent_id.hex(),
                "address": f"{p.address[0]}:{p.address[1]}",
                "public_key": p.public_key.hex(),
                "reputation": p.reputation,
            }
            for p in sorted(self.engine.registry.peers(), key=lambda p: p.agent_id)
        ]

    def _byzantine(self) -> str | None:
        if self.config.byzantine is not None:
            return self.config.byzantine.value
        return WITHHOLDING_RELAY if self.config.withholding_relay else None

    def status(self) -> dict[str, object]:
        assert self.engine is not None and self.transport is not None
        engine, transport = self.engine, self.transport
        digest = engine.state.digest.hex()
        c = self.counts
        return {
            "node_id": self.node_id,
            "address": f"{engine.address[0]}:{engine.address[1]}",
            "byzantine": self._byzantine(),
            "withheld": self.node.withheld if isinstance(self.node, WithholdingRelay) else 0,
            "faults": {"drop": sorted(f"{h}:{p}" for h, p in transport.dropped)},
            "uptime_s": round(time.monotonic() - self.started, 3),
            "round": engine.round_no,
            "digest": digest,
            "entries": len(engine.state),
            "own_version": engine.state.version_of(engine.agent_id),
            "key_epoch": self.identity.epoch,
            "public_key": self.identity.public_key.hex(),
            "stored_entries": self.store.count(),
            "peers": len(engine.registry),
            "partition": engine.partition.status.value,
            "connected": transport.connected_peers(),
            "queued": transport.queued(),
            "messages_sent": c.sent,
            "messages_received": c.received,
            "converged_events": c.converged,
            "converged_now": c.last_converged_digest == digest,
            "peers_joined": c.joined,
            "peers_left": c.left,
            "detections": dict(self.detections),
            "rejections": dict(self.rejections),
            "handshake_refusals": dict(self.refusals),
            "banned": sorted(a.hex() for a in self.banned),
            "crl_revoked": self.credentials.revoked_count,
            "transport": vars(transport.stats).copy(),
            "ticks": self.tick_report(),
        }
