"""A node short of CPU is not a partitioned node: the partition detector's window is counted in rounds
the node ran, so a whole mesh running its rounds late (a loaded host) or one node suspended for
seconds keeps every agent healthy and writable, while real splits are still caught (see
test_mesh_partitions.py, unchanged).

The mesh is the QUIC bench's: 32 agents, fanout 4, 0.1 s rounds, so the auto window is
ceil(3 * 31 / 4) = 24 rounds. A starved agent's round timer fires late, one round every `slowness`
intervals, and the frames reaching it wait until it next has the CPU (its next round), as datagrams
wait in a busy process's socket buffer. Measured in configured intervals of wall time, a window then
holds only 24 / slowness of the senders' rounds, about 3 / slowness frames from a given peer: at a
fifth of the rate agents lose their quorum of 22 (the bug, seen with QUIC nodes at load 30-42).
"""

from __future__ import annotations

import pytest

from knhk_mesh.cluster import Cluster, build_cluster
from knhk_mesh.core.config import MeshConfig
from knhk_mesh.core.engine import MeshEngine
from knhk_mesh.core.events import MeshEvent
from knhk_mesh.core.messages import Address, Entry
from knhk_mesh.core.partition import MAX_ROUND_STARTS, PartitionStatus, RoundClock, quorum
from knhk_mesh.transport.memory import Faults

N = 32
CFG = MeshConfig(fanout=4)  # 0.1 s rounds
INTERVAL = CFG.round_interval
WINDOW = CFG.partition.window_for(N, CFG.fanout)  # 24 rounds
SPREAD_BOUND = 30  # rounds (of a starved agent) for a write to reach all 32


class Starved:
    """An engine in a process short of CPU (a sans-I/O node for the memory network).

    Its round timer fires `lag` seconds late, so it runs a round every `interval + lag`; frames
    reaching it are handed over at its next round, as a busy process reads its socket. `suspend`
    stops it outright (SIGSTOP, a paused VM): no rounds, and the frames sent to it meanwhile lost.
    """

    def __init__(self, engine: MeshEngine, lag: float) -> None:
        self.engine = engine
        self.address: Address = engine.address
        self.lag = lag
        self.resume_at = 0.0
        self.lost = 0
        self._inbox: list[tuple[Address, bytes]] = []

    def suspend(self, now: float, seconds: float) -> None:
        self.resume_at = now + seconds

    def receive(self, address: Address, data: bytes, now: float) -> None:
        if now < self.resume_at:
            self.lost += 1
        elif self.lag:
            self._inbox.append((address, data))
        else:
            self.engine.receive(address, data, now)

    def handle_timer(self, now: float) -> None:
        inbox, self._inbox = self._inbox, []
        for address, data in inbox:
            self.engine.receive(address, data, now)
        self.engine.handle_timer(now)

    def get_timer(self) -> float | None:
        timer = self.engine.get_timer()
        return None if timer is None else max(timer + self.lag, self.resume_at)

    def messages_to_send(self, now: float) -> list[tuple[Address, bytes]]:
        return self.engine.messages_to_send(now)

    def next_event(self) -> MeshEvent | None:
        return self.engine.next_event()


def _mesh(seed: int, slowness: int) -> tuple[Cluster, list[Starved]]:
    """32 agents, each wrapped to run at 1/`slowness` of the configured rate; frames take 1-50 ms."""
    cluster = build_cluster(N, seed=seed, config=CFG, faults=Faults(latency=(0.001, 0.05)))
    net = cluster.network
    wrapped = []
    for engine in cluster.honest:
        net.remove(engine.address)
        wrapped.append(Starved(engine, (slowness - 1) * INTERVAL))
        net.add(wrapped[-1])
    return cluster, wrapped


def _write_and_spread(cluster: Cluster, tag: str, period: float) -> int:
    """A write at every agent (none may be refused as read-only), then rounds of `period` seconds
    until every agent holds all of them: the rounds it took."""
    net = cluster.network
    writes: list[Entry] = [e.write(f"{tag}/{i}", b"v", net.now) for i, e in enumerate(cluster.honest)]
    for rounds in range(SPREAD_BOUND + 1):
        if all(cluster.all_have(w.agent, w.key, w.version) for w in writes):
            return rounds
        net.run_for(period)
    pytest.fail(f"{tag}: the writes did not reach every agent within {SPREAD_BOUND} rounds")


@pytest.mark.parametrize("slowness", [3, 5])
def test_a_mesh_running_its_rounds_late_stays_healthy_and_writable(slowness: int) -> None:
    cluster, _ = _mesh(seed=41, slowness=slowness)
    net, period = cluster.network, slowness * INTERVAL
    rounds = 3 * WINDOW  # each agent's own rounds: 72, i.e. 21.6 s (a third) or 36 s (a fifth)
    least = N - 1  # the fewest peers any agent counted reachable at a check, once verdicts are given
    unhealthy: dict[str, set[PartitionStatus]] = {}
    for _ in range(rounds):
        net.run_for(period)
        for e in cluster.honest:
            if e.round_no > WINDOW:
                least = min(least, e.partition.reachable)
            if e.partition.status is not PartitionStatus.HEALTHY:
                unhealthy.setdefault(e.node_id[:12], set()).add(e.partition.status)
    ran = sorted(e.round_no for e in cluster.honest)
    assert ran[0] >= rounds - 1 and ran[-1] <= rounds + 1, ran  # the starving is real: 1 / slowness
    assert not unhealthy, f"{len(unhealthy)} of {N} starved agents left healthy: {unhealthy}"
    assert all(e.partition.detections == 0 for e in cluster.honest)
    # not a near miss: a starved agent hears (nearly) every peer within its window, as a fed one does
    assert least >= N - 1 - 3, f"an agent counted only {least} of {N - 1} peers reachable"
    assert least + 1 >= quorum(N)
    spread = _write_and_spread(cluster, "starved", period)
    print(
        f"\n{N} agents at 1/{slowness} of the round rate for {rounds} rounds: all healthy, "
        f"at least {least}/{N - 1} peers reachable, {N} writes everywhere in {spread} rounds"
    )


def test_a_node_suspended_for_several_windows_resumes_healthy_and_writable() -> None:
    """Suspended for 10 s (about four windows) with every frame sent to it lost, an agent's first
    rounds back must not find all its peers silent: its window reaches back over the rounds it ran
    before the stall, and fresh frames refill it long before that window has passed."""
    cluster, wrapped = _mesh(seed=42, slowness=1)
    net = cluster.network
    net.run_for(2 * WINDOW * INTERVAL)  # past the first window: verdicts are given
    assert {e.partition.status for e in cluster.honest} == {PartitionStatus.HEALTHY}
    sleeper, node = cluster.honest[0], wrapped[0]
    stall = 10.0
    before = sleeper.round_no
    node.suspend(net.now, stall)
    net.run_for(stall - INTERVAL)
    assert sleeper.round_no == before  # no round while suspended
    assert node.lost > 0  # and the frames sent to it meanwhile are gone
    statuses: list[PartitionStatus] = []
    for _ in range(2 * WINDOW):  # bounded: its rounds after the stall (it resumes in the first)
        net.run_for(INTERVAL)
        statuses.append(sleeper.partition.status)
        if len(statuses) == 1:
            sleeper.write("back/first-round", b"v", net.now)  # read-only would raise PartitionedError
    assert sleeper.round_no >= before + 2 * WINDOW - 1
    assert set(statuses) == {PartitionStatus.HEALTHY}, statuses
    assert sleeper.partition.detections == 0
    assert sleeper.partition.reachable >= N - 1 - 3  # it hears its peers again, as fed agents do
    assert all(e.partition.status is PartitionStatus.HEALTHY for e in cluster.honest)
    spread = _write_and_spread(cluster, "resumed", INTERVAL)
    print(
        f"\nsuspended {stall:g} s ({node.lost} frames lost): healthy on every one of its next "
        f"{len(statuses)} rounds, {N} writes everywhere in {spread} rounds"
    )


def test_the_round_clock_gives_the_configured_window_on_time_and_stretches_it_when_rounds_are_late() -> None:
    clock = RoundClock(0.1, capacity=4)
    assert clock.since(20, 5.0) == 5.0 - 20 * 0.1  # no round yet: the configured window of wall time
    for r in range(30):  # on time: exactly the old window, whatever the capacity
        clock.started(r * 0.1)
    now = 29 * 0.1
    assert clock.since(20, now) == pytest.approx(now - 2.0)
    assert clock.since(10, now) == pytest.approx(now - 1.0)  # (it grew to hold 20 rounds)
    for r in range(30):  # late: a round every 0.3 s, the window is 20 of them
        clock.started(3.0 + r * 0.3)
    now = 3.0 + 29 * 0.3
    assert clock.since(20, now) == pytest.approx(now - 20 * 0.3)
    clock.started(now + 60.0)  # back from a one-minute stall: the window reaches over it
    assert clock.since(20, now + 60.0) == pytest.approx(now - 19 * 0.3)
    # 40 rounds back: the stall, 30 late rounds, then on-time ones (it holds 42 starts since `since(20)`)
    assert clock.since(40, now + 60.0) == pytest.approx(2.0)
    assert clock.since(100, now + 60.0) == pytest.approx(1.9)  # older than remembered: the oldest held


def test_the_round_clock_holds_at_most_max_round_starts_however_far_back_it_is_asked() -> None:
    clock = RoundClock(0.1)
    for r in range(10_000):
        clock.started(r * 0.1)
        clock.since(10**9, r * 0.1)  # a window of a billion rounds, asked every round
    assert len(clock._starts) == MAX_ROUND_STARTS
    now = 9_999 * 0.1
    assert clock.since(100, now) == pytest.approx(now - 10.0)  # recent windows are exact
    assert clock.since(10**9, now) == now - 10**9 * 0.1  # on time: the configured window of wall time
    assert clock.since(5_000, now) == pytest.approx(now - 500.0)  # beyond what it holds, on time: the same
    clock.started(now + 10_000.0)  # back from a long stall: the oldest start held stands in
    assert clock.since(5_000, now + 10_000.0) == pytest.approx((9_999 - MAX_ROUND_STARTS + 2) * 0.1)
