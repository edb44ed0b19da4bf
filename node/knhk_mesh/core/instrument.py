"""The seam between the engine and telemetry: scopes the engine opens around its work.

The engine stays telemetry-agnostic: it calls these hooks (spans must wrap the work, so they are
context managers) and reports what happened as MeshEvents; `knhk_mesh.telemetry` implements them
with the generated semconv helpers. The default does nothing and reads no clock.
"""

from __future__ import annotations

from contextlib import AbstractContextManager
from enum import StrEnum
from types import TracebackType
from typing import Protocol

from knhk_mesh.core.events import MeshEvent, Rejection
from knhk_mesh.core.messages import Address, AgentId, MessageType
from knhk_mesh.core.partition import PartitionStatus


class Operation(StrEnum):
    """Operations measured in ticks; values are the schema's `knhk.mesh.tick.operation` members."""

    PEER_SELECTION = "peer_selection"
    VALIDATION = "validation"
    MERGE = "merge"
    CONVERGENCE_CHECK = "convergence_check"
    MESSAGE = "message"


class Scope(Protocol):
    """What the engine learns while inside a span; implementations attach it to the span."""

    def __enter__(self) -> Scope: ...

    def __exit__(
        self, et: type[BaseException] | None, ev: BaseException | None, tb: TracebackType | None
    ) -> None: ...

    def peer(self, peer_id: AgentId) -> None: ...

    def message_type(self, mtype: MessageType) -> None: ...

    def size(self, size: int) -> None: ...

    def reject(self, reason: Rejection) -> None: ...


class Instrumentation(Protocol):
    def round(self, round_no: int, fanout: int, peer_count: int) -> Scope: ...

    def send(self, peer_id: AgentId | None, address: Address, mtype: MessageType) -> Scope: ...

    def receive(self, address: Address, size: int, peer_id: AgentId | None) -> Scope:
        """The scope of one received frame (`peer_id`: the agent registered at `address`, if any);
        it also measures the whole message in ticks (`Operation.MESSAGE`)."""
        ...

    def merge(self, peer_id: AgentId, entries: int, round_no: int) -> Scope:
        """The scope of merging `entries` entries; it also measures them in ticks (`Operation.MERGE`)."""
        ...

    def register(self, peer_id: AgentId, address: Address, region: str, peer_count: int) -> Scope: ...

    def measure(self, operation: Operation) -> AbstractContextManager[object]: ...

    def rebalance(self, clusters: int) -> Scope:
        """The scope of a topology rebalance that found `clusters` clusters (opened once they are known)."""
        ...

    def partition_detect(self, status: PartitionStatus, reachable: int, quorum: int) -> Scope:
        """The scope of a partition health check that is not a quiet healthy one."""
        ...

    def partition_recover(self, status: PartitionStatus, reachable: int, entries: int) -> Scope:
        """The scope of a recovering round's anti-entropy pulls (and of the one that ends recovery)."""
        ...

    def event(self, event: MeshEvent) -> None: ...


class _NoopScope:
    __slots__ = ()

    def __enter__(self) -> _NoopScope:
        return self

    def __exit__(
        self, et: type[BaseException] | None, ev: BaseException | None, tb: TracebackType | None
    ) -> None:
        return None

    def peer(self, peer_id: AgentId) -> None:
        return None

    def message_type(self, mtype: MessageType) -> None:
        return None

    def size(self, size: int) -> None:
        return None

    def reject(self, reason: Rejection) -> None:
        return None


_NOOP_SCOPE = _NoopScope()


class NoopInstrumentation:
    """Does nothing: the engine's default, and the baseline for measuring telemetry's cost."""

    def round(self, round_no: int, fanout: int, peer_count: int) -> Scope:
        return _NOOP_SCOPE

    def send(self, peer_id: AgentId | None, address: Address, mtype: MessageType) -> Scope:
        return _NOOP_SCOPE

    def receive(self, address: Address, size: int, peer_id: AgentId | None) -> Scope:
        return _NOOP_SCOPE

    def merge(self, peer_id: AgentId, entries: int, round_no: int) -> Scope:
        return _NOOP_SCOPE

    def register(self, peer_id: AgentId, address: Address, region: str, peer_count: int) -> Scope:
        return _NOOP_SCOPE

    def measure(self, operation: Operation) -> AbstractContextManager[object]:
        return _NOOP_SCOPE

    def rebalance(self, clusters: int) -> Scope:
        return _NOOP_SCOPE

    def partition_detect(self, status: PartitionStatus, reachable: int, quorum: int) -> Scope:
        return _NOOP_SCOPE

    def partition_recover(self, status: PartitionStatus, reachable: int, entries: int) -> Scope:
        return _NOOP_SCOPE

    def event(self, event: MeshEvent) -> None:
        return None


NOOP = NoopInstrumentation()
