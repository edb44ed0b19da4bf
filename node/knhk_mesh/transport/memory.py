"""A deterministic in-process network of engines with injectable latency, loss, duplication,
reordering and partitions, all drawn from one seeded `random.Random`.

It is a discrete-event loop: deliveries and engine timers sit in one heap ordered by (time, seq),
so a run is a pure function of the seed and the nodes' own seeds.
"""

from __future__ import annotations

import heapq
import random
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Protocol

from knhk_mesh.core.events import MeshEvent
from knhk_mesh.core.messages import Address


class Node(Protocol):
    """What the network drives: the engine's sans-I/O surface."""

    address: Address

    def receive(self, address: Address, data: bytes, now: float) -> None: ...

    def messages_to_send(self, now: float) -> list[tuple[Address, bytes]]: ...

    def next_event(self) -> MeshEvent | None: ...

    def get_timer(self) -> float | None: ...

    def handle_timer(self, now: float) -> None: ...


@dataclass(frozen=True)
class Faults:
    latency: tuple[float, float] = (0.001, 0.005)  # uniform one-way delay, seconds
    loss: float = 0.0  # probability a frame is dropped
    duplicate: float = 0.0  # probability a frame is delivered twice
    reorder: float = 0.0  # probability a frame is held back by up to `reorder_delay`
    reorder_delay: float = 0.02

    def __post_init__(self) -> None:
        for name in ("loss", "duplicate", "reorder"):
            p = getattr(self, name)
            if not 0.0 <= p <= 1.0:
                raise ValueError(f"{name} must be a probability, got {p}")
        if not 0.0 <= self.latency[0] <= self.latency[1]:
            raise ValueError(f"latency range {self.latency} is not ordered and non-negative")


@dataclass
class NetworkStats:
    sent: int = 0
    delivered: int = 0
    lost: int = 0
    duplicated: int = 0
    partitioned: int = 0
    unroutable: int = 0
    bytes: int = 0
    largest: int = 0  # the largest frame sent, in bytes
    bytes_by_node: dict[Address, int] = field(default_factory=dict)  # sent or addressed to it


LinkLatency = Callable[[Address, Address], tuple[float, float]]
"""Per-link one-way delay range (seconds) from src to dst; replaces `Faults.latency` when given."""


def region_latency(
    region_of: dict[Address, str],
    *,
    within: tuple[float, float] = (0.004, 0.006),
    across: dict[frozenset[str], tuple[float, float]] | None = None,
    default_across: tuple[float, float] = (0.080, 0.150),
) -> LinkLatency:
    """Delays of a multi-region deployment: `within` inside a region, `across[{a, b}]` (or
    `default_across`) between regions a and b. Addresses without a region count as region ""."""
    pairs = dict(across or {})

    def latency(src: Address, dst: Address) -> tuple[float, float]:
        a, b = region_of.get(src, ""), region_of.get(dst, "")
        if a == b:
            return within
        return pairs.get(frozenset((a, b)), default_across)

    return latency


_DELIVER = 0
_TIMER = 1


class MemoryNetwork:
    """Routes frames between nodes by address on a virtual clock."""

    def __init__(
        self,
        rng: random.Random,
        faults: Faults | None = None,
        on_event: Callable[[Address, MeshEvent], None] | None = None,
        link_latency: LinkLatency | None = None,
    ) -> None:
        self.rng = rng
        self.faults = faults or Faults()
        self.link_latency = link_latency
        self.on_event = on_event
        self.now = 0.0
        self.stats = NetworkStats()
        self.nodes: dict[Address, Node] = {}
        self._heap: list[tuple[float, int, int, Address, Address, bytes]] = []
        self._seq = 0
        self._timers: dict[Address, float | None] = {}
        self._group: dict[Address, int] = {}

    def add(self, node: Node) -> None:
        if node.address in self.nodes:
            raise ValueError(f"address {node.address} already taken")
        self.nodes[node.address] = node
        self._timers[node.address] = None
        self._after_activity(node)

    def remove(self, address: Address) -> Node:
        """Take a node off the network, as a crash would: frames to it are unroutable, its timers stop."""
        node = self.nodes.pop(address)
        self._timers.pop(address, None)
        return node

    # --- faults -------------------------------------------------------------------------------------

    def partition(self, groups: Iterable[Iterable[Address]]) -> None:
        """Split the network: frames only flow within a group (nodes in no group form their own)."""
        self._group = {}
        for index, group in enumerate(groups):
            for address in group:
                self._group[address] = index

    def heal(self) -> None:
        self._group = {}

    def _reachable(self, src: Address, dst: Address) -> bool:
        return self._group.get(src, -1) == self._group.get(dst, -1)

    # --- traffic ------------------------------------------------------------------------------------

    def inject(self, src: Address, dst: Address, data: bytes) -> None:
        """Send raw bytes as if from `src` (subject to the same faults)."""
        self._route(src, dst, data)

    def _push(self, at: float, kind: int, src: Address, dst: Address, data: bytes) -> None:
        self._seq += 1
        heapq.heappush(self._heap, (at, self._seq, kind, src, dst, data))

    def _route(self, src: Address, dst: Address, data: bytes) -> None:
        f = self.faults
        self.stats.sent += 1
        self.stats.bytes += len(data)
        if len(data) > self.stats.largest:
            self.stats.largest = len(data)
        per = self.stats.bytes_by_node
        per[src] = per.get(src, 0) + len(data)
        per[dst] = per.get(dst, 0) + len(data)
        if dst not in self.nodes:
            self.stats.unroutable += 1
            return
        if not self._reachable(src, dst):
            self.stats.partitioned += 1
            return
        if f.loss and self.rng.random() < f.loss:
            self.stats.lost += 1
            return
        copies = 2 if f.duplicate and self.rng.random() < f.duplicate else 1
        self.stats.duplicated += copies - 1
        span = f.latency if self.link_latency is None else self.link_latency(src, dst)
        for _ in range(copies):
            delay = self.rng.uniform(*span)
            if f.reorder and self.rng.random() < f.reorder:
                delay += self.rng.uniform(0.0, f.reorder_delay)
            self._push(self.now + delay, _DELIVER, src, dst, data)

    def _after_activity(self, node: Node) -> None:
        for dst, data in node.messages_to_send(self.now):
            self._route(node.address, dst, data)
        if self.on_event is not None:
            while (event := node.next_event()) is not None:
                self.on_event(node.address, event)
        else:
            while node.next_event() is not None:
                pass
        timer = node.get_timer()
        if timer != self._timers[node.address]:
            self._timers[node.address] = timer
            if timer is not None:
                self._push(timer, _TIMER, node.address, node.address, b"")

    def join(self, node: Node) -> None:
        """Add a node to a running network and give it its first timer call."""
        self.add(node)
        node.handle_timer(self.now)
        self._after_activity(node)

    def start(self) -> None:
        """Give every node its first timer call (engines arm their round timer and join seeds)."""
        for node in self.nodes.values():
            node.handle_timer(self.now)
            self._after_activity(node)

    def run_until(self, t: float, *, max_steps: int = 50_000_000) -> None:
        """Process every delivery and timer due up to virtual time t.

        First collects what nodes queued between runs (an application's `write` pushes at once): a
        sans-I/O driver reads frames and timers after every call into a node, including the caller's.
        """
        for queued in self.nodes.values():
            self._after_activity(queued)
        steps = 0
        while self._heap and self._heap[0][0] <= t and steps < max_steps:
            steps += 1
            at, _, kind, src, dst, data = heapq.heappop(self._heap)
            self.now = max(self.now, at)
            node = self.nodes.get(dst)
            if node is None:
                continue
            if kind == _TIMER:
                if self._timers.get(dst) != at:
                    continue  # superseded
                self._timers[dst] = None
                node.handle_timer(self.now)
            else:
                if not self._reachable(src, dst):
                    self.stats.partitioned += 1
                    continue
                self.stats.delivered += 1
                node.receive(src, data, self.now)
            self._after_activity(node)
        self.now = max(self.now, t)

    def run_for(self, dt: float) -> None:
        self.run_until(self.now + dt)
