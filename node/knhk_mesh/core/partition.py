"""The partition detector, sans I/O: one health check per gossip round in, status transitions out.

A node is in a quorum when it reaches `n - f` members counting itself, with n the members it knows in
good standing (itself included) and f = floor((n - 1) / 3) the faults a Byzantine mesh tolerates. A
peer is *reachable* when one of its authenticated frames (gossip, repair, a pong to our probe) reached
us within the last `window` rounds. The engine feeds the counts; this module only decides, in the
style of h11: three states, explicit inputs, transitions returned (never I/O, never a clock of its own).

The window is counted in rounds this node actually ran (`RoundClock`), not in configured intervals of
wall time: how often gossip brings a frame from a given peer is a rate per round, so a process starved
of CPU (fewer rounds a second than configured) or suspended for a while must wait for as many rounds
as a healthy one before calling a peer silent. It never shrinks below `window` intervals of wall time.

    healthy --(below quorum on `confirm_rounds` checks in a row)--> partitioned     (read-only)
    partitioned --(quorum on `confirm_rounds` checks in a row)--> recovering        (writes again)
    recovering --(roots agree on `clean_rounds` rounds in a row)--> healthy          (healed)
    recovering --(below quorum on `confirm_rounds` checks in a row)--> partitioned   (a new detection)

Hysteresis is twofold, so one lost frame never flips anything: a peer leaves the reachable set only
after a whole window of silence, and a verdict needs `confirm_rounds` consecutive checks.
"""

from __future__ import annotations

import math
from collections import deque
from dataclasses import dataclass
from enum import StrEnum


class PartitionStatus(StrEnum):
    """Values are the schema's `knhk.mesh.partition.status` members."""

    HEALTHY = "healthy"
    PARTITIONED = "partitioned"
    RECOVERING = "recovering"


def quorum(members: int) -> int:
    """Members (self included) a node must reach: n - f with f = floor((n - 1) / 3), so f < n/3."""
    return members - (members - 1) // 3


@dataclass(frozen=True)
class PartitionConfig:
    """Knobs of the detector (rounds are the engine's gossip rounds)."""

    enabled: bool = True
    window_rounds: int = 0  # 0: auto, see `window_for`
    min_window_rounds: int = 20  # the auto window is never shorter (2 s at the default 0.1 s rounds)
    confirm_rounds: int = 3  # consecutive checks a verdict needs
    clean_rounds: int = 3  # consecutive rounds of root agreement that end a recovery

    def __post_init__(self) -> None:
        if self.window_rounds < 0 or self.min_window_rounds < 1:
            raise ValueError("partition window_rounds must be >= 0 and min_window_rounds >= 1")
        if self.confirm_rounds < 1 or self.clean_rounds < 1:
            raise ValueError("partition confirm_rounds and clean_rounds must be >= 1")

    def window_for(self, members: int, fanout: int) -> int:
        """Rounds of silence after which a peer counts as unreachable.

        Gossip alone brings a node a frame from a given peer with probability about k/(n-1) per round,
        so hearing from everyone takes rounds in proportion to n/k: the auto window is 3(n-1)/k rounds
        (at least `min_window_rounds`), and the engine probes peers silent for half of it.
        """
        if self.window_rounds:
            return self.window_rounds
        return max(self.min_window_rounds, math.ceil(3 * max(members - 1, 0) / max(fanout, 1)))


MAX_ROUND_STARTS = 4096  # the most round starts a RoundClock holds (32 KB of floats and pointers)


class RoundClock:
    """When this node's last rounds started, so "the last W rounds" means rounds it ran: a node whose
    rounds come late (a loaded host, a suspended process) stretches its windows with its own slowness
    instead of finding every peer silent."""

    def __init__(self, interval: float, capacity: int = 64) -> None:
        self.interval = interval
        self._starts: deque[float] = deque(maxlen=max(capacity, 2))

    def started(self, now: float) -> None:
        """A round starts at `now` (called once per round, first thing)."""
        self._starts.append(now)

    def since(self, rounds: int, now: float) -> float:
        """The start of the round `rounds` before the current one, or `rounds` intervals before `now`
        if that is earlier (rounds on time give exactly the configured window). Before that many
        rounds were run (or remembered) the oldest start known stands in, bounded the same way."""
        starts = self._starts
        if starts.maxlen is not None and rounds >= starts.maxlen and starts.maxlen < MAX_ROUND_STARTS:
            # a window grew with the mesh; a huge one (a configured liveness or partition window of
            # millions of rounds) keeps the last MAX_ROUND_STARTS, the oldest of them standing in
            grown = min(2 * (rounds + 1), MAX_ROUND_STARTS)
            self._starts = starts = deque(starts, maxlen=grown)
        wall = now - rounds * self.interval
        if not starts:
            return wall
        return min(wall, starts[-1 - rounds] if rounds < len(starts) else starts[0])


@dataclass(frozen=True, slots=True)
class Transition:
    """A change of status, with the figures of the check that caused it."""

    previous: PartitionStatus
    current: PartitionStatus
    reachable: int
    quorum: int
    detected_at: float  # when the partition this transition belongs to was detected
    now: float

    @property
    def detected(self) -> bool:
        return self.current is PartitionStatus.PARTITIONED

    @property
    def healed(self) -> bool:
        return self.previous is PartitionStatus.RECOVERING and self.current is PartitionStatus.HEALTHY


@dataclass(frozen=True, slots=True)
class Check:
    """One health check's input: what the node knew at the start of a round."""

    members: int  # n: known members in good standing, self included
    reachable: int  # peers (self excluded) heard within the window
    agreeing: int  # roots heard during the last round equal to ours
    differing: int  # roots heard during the last round that differ from ours


class PartitionDetector:
    """The state machine; `check` is called once per round after `warmup` rounds."""

    def __init__(self, config: PartitionConfig) -> None:
        self.config = config
        self.status = PartitionStatus.HEALTHY
        self.members = 1
        self.reachable = 0
        self.quorum = 1
        self.detected_at = 0.0
        self.detections = 0
        self._streak = 0  # consecutive checks pointing away from the current status
        self._clean = 0  # consecutive clean rounds while recovering

    @property
    def read_only(self) -> bool:
        """Writes are refused only while partitioned: a recovering node has its quorum back."""
        return self.status is PartitionStatus.PARTITIONED

    def quiet(self, check: Check) -> bool:
        """A healthy node in quorum with no doubt pending: nothing to report (not traced)."""
        return (
            self.status is PartitionStatus.HEALTHY
            and self._streak == 0
            and check.reachable + 1 >= quorum(check.members)
        )

    def check(self, check: Check, now: float) -> Transition | None:
        """Feed one round's figures; returns the transition they cause, if any."""
        self.members, self.reachable = check.members, check.reachable
        self.quorum = quorum(check.members)
        below = check.reachable + 1 < self.quorum
        status = self.status
        if status is PartitionStatus.HEALTHY:
            return self._count(below, PartitionStatus.PARTITIONED, now)
        if status is PartitionStatus.PARTITIONED:
            return self._count(not below, PartitionStatus.RECOVERING, now)
        if below:
            self._clean = 0
            return self._count(True, PartitionStatus.PARTITIONED, now)
        self._streak = 0
        heard = check.agreeing + check.differing
        # clean: roots were heard and at least two thirds of them are ours (writes may still be spreading)
        clean = heard > 0 and 3 * check.agreeing >= 2 * heard
        self._clean = self._clean + 1 if clean else 0
        if self._clean >= self.config.clean_rounds:
            return self._move(PartitionStatus.HEALTHY, now)
        return None

    def _count(self, toward: bool, target: PartitionStatus, now: float) -> Transition | None:
        self._streak = self._streak + 1 if toward else 0
        if self._streak < self.config.confirm_rounds:
            return None
        return self._move(target, now)

    def _move(self, target: PartitionStatus, now: float) -> Transition:
        previous, self.status = self.status, target
        self._streak = 0
        self._clean = 0
        if target is PartitionStatus.PARTITIONED:
            self.detections += 1
            if previous is PartitionStatus.HEALTHY:
                self.detected_at = now  # a relapse while recovering keeps the first detection's time
        return Transition(previous, target, self.reachable, self.quorum, self.detected_at, now)
