"""The mesh's telemetry: engine scopes and events turned into spans, metrics, events and tick usage.

This is the only module of the mesh that imports `knhk_otel.semconv`: every span name, metric and
attribute key comes from the generated helpers, never from a literal here. One MeshTelemetry holds
the instruments (shared by every node of a process); `for_node` gives the engine its
Instrumentation.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from time import perf_counter_ns
from types import TracebackType
from typing import Any

from opentelemetry import _logs, context, metrics, trace
from opentelemetry.context import attach as _attach
from opentelemetry.context import detach as _detach
from opentelemetry.trace import Span, SpanKind, Status, StatusCode
from opentelemetry.trace import set_span_in_context as _set_span_in_context

from knhk_mesh import __version__
from knhk_mesh.core.config import MeshConfig
from knhk_mesh.core.events import (
    ByzantineDetected,
    Converged,
    EntriesMerged,
    HierarchyCounted,
    MeshEvent,
    MessageReceived,
    MessageRejected,
    MessageSent,
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
from knhk_mesh.core.instrument import Operation
from knhk_mesh.core.messages import Address, AgentId
from knhk_mesh.core.messages import MessageType as WireType
from knhk_mesh.core.partition import PartitionStatus
from knhk_otel.runtime.ticks import TickClock, schema_budgets
from knhk_otel.semconv import attributes as A
from knhk_otel.semconv import events as E
from knhk_otel.semconv import metrics as M
from knhk_otel.semconv import spans as S

SCOPE_NAME = "knhk_mesh"
#: Peers under this reputation are ignored by gossip: they count as distrusted.
DISTRUST_BELOW = MeshConfig().min_reputation

_TYPES = {t: A.MessageType(t.label) for t in WireType}
_OPS = {op: A.TickOperation(op.value) for op in Operation}
_OP_NAMES = {attr: op.value for op, attr in _OPS.items()}  # the tick clock's keys: plain strings
_REJECTIONS = {r: A.RejectionReason(r.value) for r in Rejection}
_STATUSES = {s: A.PartitionStatus(s.value) for s in PartitionStatus}


def node_resource(node_id: str) -> tuple[tuple[str, str], ...]:
    """Resource attributes of a node process: its id identifies the emitter (not every metric point)."""
    return ((A.KNHK_MESH_NODE_ID, node_id),)


class MeshTelemetry:
    """Instruments shared by all nodes of a process, plus tick accounting for reports."""

    @classmethod
    def for_config(
        cls,
        config: MeshConfig,
        tracer_provider: trace.TracerProvider,
        meter_provider: metrics.MeterProvider,
        logger_provider: _logs.LoggerProvider,
        *,
        tick_clock: TickClock | None = None,
    ) -> MeshTelemetry:
        """Instruments whose topology and strategy attributes are the mesh configuration's own."""
        return cls(
            tracer_provider,
            meter_provider,
            logger_provider,
            tick_clock=tick_clock,
            topology=A.Topology(config.topology.value),
            strategy=A.PeerSelectionStrategy(config.peer_selection.value),
        )

    def __init__(
        self,
        tracer_provider: trace.TracerProvider,
        meter_provider: metrics.MeterProvider,
        logger_provider: _logs.LoggerProvider,
        *,
        tick_clock: TickClock | None = None,
        topology: A.Topology = A.Topology.SINGLE_REGION,
        strategy: A.PeerSelectionStrategy = A.PeerSelectionStrategy.RANDOM,
    ) -> None:
        self.tracer = _ScopeTracer(tracer_provider.get_tracer(SCOPE_NAME, __version__))
        self.logger = logger_provider.get_logger(SCOPE_NAME, __version__)
        meter = meter_provider.get_meter(SCOPE_NAME, __version__)
        self.ticks = tick_clock or TickClock(budgets=schema_budgets())
        self.topology = topology
        self.strategy = strategy
        self.gossip_rounds = M.GossipRounds(meter)
        self.gossip_fanout = M.GossipFanout(meter)
        self.distrusted = M.PeerDistrusted(meter)
        self.peer_counts = _SmallestPeerCount(M.PeerCount(meter))
        self.export_failures = M.TelemetryExportFailures(meter)
        self.peer_latency = M.PeerLatency(meter)
        self.messages = M.Messages(meter)
        self.network_io = M.NetworkIo(meter)
        self.rejected = M.MessagesRejected(meter)
        self.byzantine = M.ByzantineEvents(meter)
        self.convergence_rounds = M.ConvergenceRounds(meter)
        self.convergence_duration = M.ConvergenceDuration(meter)
        self.tick_usage = M.TickUsage(meter)
        self.tick_overruns = M.TickOverruns(meter)
        self.queue_size = M.QueueSize(meter)
        self.rebalances = M.TopologyRebalances(meter)
        self.clusters = M.TopologyClusters(meter)
        self.hierarchy_agents = M.HierarchyAgents(meter)
        self.partition_status = _StatusCounts(M.PartitionStatus(meter))
        self.partitions_detected = M.PartitionsDetected(meter)
        self.partition_recovery = M.PartitionRecoveryDuration(meter)
        self.partitions_detected.add(0)  # a series from the start, so the first detection is an increase
        # Counters of enum-labelled families start at 0: a series Prometheus first sees at 498 has no
        # increase for rate(), so a burst between two scrapes would never fire an alert.
        for kind in A.ByzantineKind:
            self.byzantine.add(0, byzantine_kind=kind)
        for reason in A.RejectionReason:
            self.rejected.add(0, rejection_reason=reason)
        for op in A.TickOperation:
            self.tick_overruns.add(0, tick_operation=op)
        for signal in (A.SchemaSignalType.SPAN, A.SchemaSignalType.METRIC, A.SchemaSignalType.EVENT):
            self.export_failures.add(0, schema_signal_type=signal)
        self.detections: Counter[tuple[str, str]] = Counter()  # (kind, peer hex) for summaries
        # (node, peer) pairs counted in `knhk.mesh.peer.distrusted`: a peer pruned while distrusted
        # leaves the count with it (no reputation event tells of that)
        self.distrusted_pairs: set[tuple[str, AgentId]] = set()

    def distrust(self, node: str, peer: AgentId, distrusted: bool) -> None:
        """Keep `knhk.mesh.peer.distrusted` equal to the distrusted peers the nodes hold now."""
        pair = (node, peer)
        pairs = self.distrusted_pairs
        if distrusted and pair not in pairs:
            pairs.add(pair)
            self.distrusted.add(1)
        elif not distrusted and pair in pairs:
            pairs.remove(pair)
            self.distrusted.add(-1)

    def for_node(self, node_id: str) -> NodeTelemetry:
        self.partition_status.move(None, PartitionStatus.HEALTHY)  # every engine starts healthy
        return NodeTelemetry(self, node_id)

    def account(self, op: A.TickOperation, ns: int) -> None:
        """One measured duration of `op`: into the tick clock's totals, the usage histogram, and the
        overrun counter when over the op's budget."""
        ticks, overrun = self.ticks.account(_OP_NAMES[op], ns)
        self.tick_usage.record(ticks, tick_operation=op)
        if overrun:
            self.tick_overruns.add(1, tick_operation=op)

    def export_failed(self, signal: str) -> None:
        """Count a batch an exporter could not deliver (`signal`: span, metric or event)."""
        self.export_failures.add(1, schema_signal_type=A.SchemaSignalType(signal))


class _SmallestPeerCount:
    """`knhk.mesh.peer.count` of a process: the smallest registry among its agents (the one closest to
    losing quorum). Recomputes the minimum only when the agent holding it grows."""

    __slots__ = ("_counts", "_gauge", "_holder", "_min")

    def __init__(self, gauge: M.PeerCount) -> None:
        self._gauge = gauge
        self._counts: dict[str, int] = {}
        self._min: int | None = None
        self._holder = ""

    def update(self, node: str, count: int) -> None:
        self._counts[node] = count
        if self._min is None or count < self._min:
            self._min, self._holder = count, node
        elif node == self._holder and count > self._min:
            self._holder, self._min = min(self._counts.items(), key=lambda kv: kv[1])
        else:
            return
        self._gauge.set(self._min)


class _StatusCounts:
    """`knhk.mesh.partition.status` of a process: how many of its agents are in each status (1 and 0s
    for a process of one agent), every status always reported so a panel shows the zeros too."""

    __slots__ = ("_counts", "_gauge")

    def __init__(self, gauge: M.PartitionStatus) -> None:
        self._gauge = gauge
        self._counts = dict.fromkeys(PartitionStatus, 0)

    def move(self, previous: PartitionStatus | None, current: PartitionStatus) -> None:
        if previous is not None:
            self._counts[previous] -= 1
        self._counts[current] += 1
        for status, count in self._counts.items():
            self._gauge.set(count, partition_status=_STATUSES[status])


class _SpanScope:
    """An open span, current while the engine works inside it, that it can add what it learns to
    (peer, type, size, rejection). Does what the SDK's start_as_current_span + use_span do (attach,
    record an escaping exception, detach, end) without their two stacked generator context managers.
    A measuring scope also times the work inside in ticks itself (no second context manager)."""

    __slots__ = ("_hub", "_op", "_span", "_start", "_token")

    def __init__(self, span: Span) -> None:
        self._span = span
        self._token: object = None
        self._hub: MeshTelemetry | None = None
        self._op: A.TickOperation = A.TickOperation.MESSAGE
        self._start = 0

    def measuring(self, hub: MeshTelemetry, op: A.TickOperation) -> _SpanScope:
        """Also measure the work inside in ticks (one scope instead of a span and a measure)."""
        self._hub = hub
        self._op = op
        return self

    def __enter__(self) -> _SpanScope:
        self._token = _attach(_set_span_in_context(self._span))
        if self._hub is not None:
            self._start = perf_counter_ns()
        return self

    def __exit__(
        self, et: type[BaseException] | None, ev: BaseException | None, tb: TracebackType | None
    ) -> None:
        span = self._span
        hub = self._hub
        if hub is not None:
            hub.account(self._op, perf_counter_ns() - self._start)
        try:
            if ev is not None and isinstance(ev, Exception) and span.is_recording():
                span.record_exception(ev)
                span.set_status(Status(StatusCode.ERROR, f"{type(ev).__name__}: {ev}"))
        finally:
            _detach(self._token)  # type: ignore[arg-type]
            span.end()

    def peer(self, peer_id: AgentId) -> None:
        self._span.set_attribute(A.KNHK_MESH_PEER_ID, peer_id.hex())

    def message_type(self, mtype: WireType) -> None:
        self._span.set_attribute(A.KNHK_MESH_MESSAGE_TYPE, _TYPES[mtype].value)

    def size(self, size: int) -> None:
        self._span.set_attribute(A.KNHK_MESH_MESSAGE_SIZE, size)

    def reject(self, reason: Rejection) -> None:
        self._span.set_attribute(A.KNHK_MESH_REJECTION_REASON, _REJECTIONS[reason].value)
        self._span.set_status(StatusCode.ERROR, reason.value)


class _ScopeTracer(trace.Tracer):
    """The SDK tracer the generated span helpers are given: their `start_as_current_span` returns a
    `_SpanScope` (the helpers still name the span and build its attributes)."""

    __slots__ = ("_tracer",)

    def __init__(self, tracer: trace.Tracer) -> None:
        self._tracer = tracer

    def start_span(
        self,
        name: str,
        context: context.Context | None = None,
        kind: SpanKind = SpanKind.INTERNAL,
        attributes: Any = None,
        links: Sequence[trace.Link] | None = None,
        start_time: int | None = None,
        record_exception: bool = True,
        set_status_on_exception: bool = True,
    ) -> Span:
        return self._tracer.start_span(
            name, context, kind, attributes, links, start_time, record_exception, set_status_on_exception
        )

    def start_as_current_span(  # type: ignore[override]
        self,
        name: str,
        context: context.Context | None = None,
        kind: SpanKind = SpanKind.INTERNAL,
        attributes: Any = None,
        links: Sequence[trace.Link] | None = None,
        start_time: int | None = None,
        record_exception: bool = True,
        set_status_on_exception: bool = True,
        end_on_exit: bool = True,
    ) -> _SpanScope:
        return _SpanScope(
            self._tracer.start_span(
                name, context, kind, attributes, links, start_time, record_exception, set_status_on_exception
            )
        )


class _Measure:
    __slots__ = ("_attr", "_hub", "_start")

    def __init__(self, hub: MeshTelemetry, op: A.TickOperation) -> None:
        self._hub = hub
        self._attr = op
        self._start = 0

    def __enter__(self) -> _Measure:
        self._start = perf_counter_ns()
        return self

    def __exit__(
        self, et: type[BaseException] | None, ev: BaseException | None, tb: TracebackType | None
    ) -> None:
        self._hub.account(self._attr, perf_counter_ns() - self._start)


class NodeTelemetry:
    """The Instrumentation of one engine (see knhk_mesh.core.instrument)."""

    __slots__ = ("hub", "node_id")

    def __init__(self, hub: MeshTelemetry, node_id: str) -> None:
        self.hub = hub
        self.node_id = node_id

    def round(self, round_no: int, fanout: int, peer_count: int) -> _SpanScope:
        h = self.hub
        return S.start_gossip_round(  # type: ignore[return-value]
            h.tracer,
            node_id=self.node_id,
            gossip_round=round_no,
            gossip_phase=A.GossipPhase.PUSH,
            gossip_fanout=fanout,
            peer_count=peer_count,
            topology=h.topology,
            peer_selection_strategy=h.strategy,
        )

    def send(self, peer_id: AgentId | None, address: Address, mtype: WireType) -> _SpanScope:
        return S.start_message_send(  # type: ignore[return-value]
            self.hub.tracer,
            node_id=self.node_id,
            peer_id=peer_id.hex() if peer_id is not None else None,
            message_type=_TYPES[mtype],
            network_peer_address=address[0],
            network_peer_port=address[1],
        )

    def receive(self, address: Address, size: int, peer_id: AgentId | None) -> _SpanScope:
        self.hub.network_io.add(size, message_direction=A.MessageDirection.RECEIVED)
        scope: _SpanScope = S.start_message_receive(  # type: ignore[assignment]
            self.hub.tracer,
            node_id=self.node_id,
            peer_id=peer_id.hex() if peer_id is not None else None,
            message_size=size,
            network_peer_address=address[0],
        )
        return scope.measuring(self.hub, A.TickOperation.MESSAGE)

    def merge(self, peer_id: AgentId, entries: int, round_no: int) -> _SpanScope:
        scope: _SpanScope = S.start_state_merge(  # type: ignore[assignment]
            self.hub.tracer,
            node_id=self.node_id,
            peer_id=peer_id.hex(),
            state_entries=entries,
            gossip_round=round_no,
        )
        return scope.measuring(self.hub, A.TickOperation.MERGE)

    def register(self, peer_id: AgentId, address: Address, region: str, peer_count: int) -> _SpanScope:
        return S.start_peer_register(  # type: ignore[return-value]
            self.hub.tracer,
            node_id=self.node_id,
            peer_id=peer_id.hex(),
            region=region or None,
            network_peer_address=address[0],
            network_peer_port=address[1],
            peer_count=peer_count,
        )

    def measure(self, operation: Operation) -> _Measure:
        return _Measure(self.hub, _OPS[operation])

    def rebalance(self, clusters: int) -> _SpanScope:
        h = self.hub
        return S.start_topology_rebalance(  # type: ignore[return-value]
            h.tracer,
            node_id=self.node_id,
            topology=h.topology,
            rebalance_clusters=clusters,
            peer_selection_strategy=h.strategy,
        )

    def partition_detect(self, status: PartitionStatus, reachable: int, quorum: int) -> _SpanScope:
        return S.start_partition_detect(  # type: ignore[return-value]
            self.hub.tracer,
            node_id=self.node_id,
            partition_status=_STATUSES[status],
            partition_reachable=reachable,
            partition_quorum=quorum,
        )

    def partition_recover(self, status: PartitionStatus, reachable: int, entries: int) -> _SpanScope:
        return S.start_partition_recover(  # type: ignore[return-value]
            self.hub.tracer,
            node_id=self.node_id,
            partition_status=_STATUSES[status],
            partition_reachable=reachable,
            state_entries=entries,
        )

    # --- the QUIC shell's own signals (knhk_mesh.node.TransportObserver) --------------------------------

    def queue_changed(self, delta: int) -> None:
        self.hub.queue_size.add(delta)

    def handshake_refused(self, reason: str, peer: AgentId | None, address: Address) -> None:
        h = self.hub
        why = A.RejectionReason(reason)
        h.rejected.add(1, rejection_reason=why)
        E.emit_handshake_refused(
            h.logger,
            node_id=self.node_id,
            rejection_reason=why,
            peer_id=peer.hex() if peer is not None else None,
            network_peer_address=address[0] or None,
        )

    def event(self, event: MeshEvent) -> None:
        if type(event) is EntriesMerged:
            return  # the state.merge span already tells it; skip the type tests below (one per merge)
        h, node = self.hub, self.node_id
        if isinstance(event, MessageSent):
            h.messages.add(1, message_direction=A.MessageDirection.SENT, message_type=_TYPES[event.type])
            h.network_io.add(event.size, message_direction=A.MessageDirection.SENT)
        elif isinstance(event, MessageReceived):
            h.messages.add(1, message_direction=A.MessageDirection.RECEIVED, message_type=_TYPES[event.type])
        elif isinstance(event, MessageRejected):
            h.rejected.add(1, rejection_reason=_REJECTIONS[event.reason])
        elif isinstance(event, RoundStarted):
            h.gossip_rounds.add(1)
            h.gossip_fanout.record(event.fanout)
            h.peer_counts.update(node, event.peer_count)
        elif isinstance(event, ByzantineDetected):
            kind = A.ByzantineKind(event.kind.value)
            h.detections[(kind.value, event.peer_id.hex())] += 1
            h.byzantine.add(1, byzantine_kind=kind)
            E.emit_byzantine_detected(
                h.logger,
                node_id=node,
                peer_id=event.peer_id.hex(),
                byzantine_kind=kind,
                message_type=_TYPES[event.message_type] if event.message_type is not None else None,
                network_peer_address=event.address[0] if event.address is not None else None,
            )
        elif isinstance(event, ReputationChanged):
            h.distrust(node, event.peer_id, event.current < DISTRUST_BELOW)
            E.emit_reputation_changed(
                h.logger,
                node_id=node,
                peer_id=event.peer_id.hex(),
                reputation_previous=event.previous,
                reputation_current=event.current,
                reputation_reason=A.ReputationReason(event.reason),
            )
        elif isinstance(event, PeerJoined):
            E.emit_peer_joined(
                h.logger,
                node_id=node,
                peer_id=event.peer_id.hex(),
                region=event.region or None,
                network_peer_address=event.address[0],
            )
        elif isinstance(event, PeerLeft):
            h.distrust(node, event.peer_id, False)
            E.emit_peer_left(h.logger, node_id=node, peer_id=event.peer_id.hex(), error_type=event.reason)
        elif isinstance(event, Converged):
            h.convergence_rounds.record(event.rounds, topology=h.topology)
            h.convergence_duration.record(event.duration, topology=h.topology)
            E.emit_converged(
                h.logger,
                node_id=node,
                convergence_rounds=event.rounds,
                state_digest=event.digest.hex(),
                gossip_round=event.round,
            )
        elif isinstance(event, RttMeasured):
            h.peer_latency.record(event.rtt, region=event.region or None)
        elif isinstance(event, TopologyRebalanced):
            h.rebalances.add(1, topology=h.topology)
            h.clusters.set(len(event.snapshot.clusters), topology=h.topology)
        elif isinstance(event, HierarchyCounted):
            for level, region, agents in event.counts:
                h.hierarchy_agents.set(agents, hierarchy_level=A.HierarchyLevel(level), region=region or None)
        elif isinstance(event, PartitionChanged):
            self._partition_changed(event)
        elif isinstance(event, WriteRefused):
            h.rejected.add(1, rejection_reason=A.RejectionReason.READ_ONLY)

    def _partition_changed(self, event: PartitionChanged) -> None:
        h = self.hub
        h.partition_status.move(event.previous, event.current)
        if event.current is PartitionStatus.PARTITIONED:
            h.partitions_detected.add(1)
            E.emit_partition_detected(
                h.logger,
                node_id=self.node_id,
                partition_reachable=event.reachable,
                partition_quorum=event.quorum,
            )
        elif event.current is PartitionStatus.HEALTHY:
            h.partition_recovery.record(event.duration)
            E.emit_partition_healed(
                h.logger,
                node_id=self.node_id,
                partition_reachable=event.reachable,
                state_digest=event.digest.hex(),
            )
