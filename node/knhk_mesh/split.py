"""Partition rehearsals on the memory transport: `--partition 50/50@10s+5s` cuts the mesh into sides
at 10 s (engine time) for 5 s, so an operator sees the detector, the write refusals and the heal with
the real emitters. The memory network's link control does the cutting; the engines know nothing of it.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TypeVar

from knhk_mesh.cluster import Cluster
from knhk_mesh.core.engine import MeshEngine
from knhk_mesh.core.errors import PartitionedError
from knhk_mesh.core.partition import PartitionStatus

T = TypeVar("T")

_SPEC = re.compile(r"^(\d+(?:/\d+)+)@(\d+(?:\.\d+)?)s\+(\d+(?:\.\d+)?)s$")


@dataclass(frozen=True)
class SplitSpec:
    """Sides as percentages of the agents (summing to 100), when the cut starts and how long it lasts."""

    shares: tuple[int, ...]
    start: float
    duration: float

    @classmethod
    def parse(cls, text: str) -> SplitSpec:
        """`SIDES@STARTs+DURATIONs`, e.g. `50/50@10s+5s`; a ValueError says what is wrong."""
        found = _SPEC.match(text.strip())
        if found is None:
            raise ValueError(f"{text!r}: expected SIDES@STARTs+DURATIONs, e.g. 50/50@10s+5s")
        shares = tuple(int(p) for p in found.group(1).split("/"))
        if sum(shares) != 100 or min(shares) < 1:
            raise ValueError(f"{text!r}: the sides are percentages of the agents, each >= 1, summing to 100")
        duration = float(found.group(3))
        if duration <= 0:
            raise ValueError(f"{text!r}: the split must last more than 0 s")
        return cls(shares, float(found.group(2)), duration)

    def sides(self, agents: Sequence[T]) -> list[list[T]]:
        """The agents cut into consecutive sides of (at least one agent) per share, in order."""
        if len(agents) < len(self.shares):
            raise ValueError(f"{len(self.shares)} sides need at least as many agents, not {len(agents)}")
        out: list[list[T]] = []
        start, total = 0, 0
        for i, share in enumerate(self.shares):
            total += share
            end = len(agents) if i == len(self.shares) - 1 else round(len(agents) * total / 100)
            end = min(max(end, start + 1), len(agents) - (len(self.shares) - 1 - i))
            out.append(list(agents[start:end]))
            start = end
        return out


@dataclass
class SplitRehearsal:
    """Drives one split on a memory cluster, round by round, and records what the detector made of it."""

    spec: SplitSpec
    cluster: Cluster
    interval: float
    start_round: int = 0
    end_round: int = 0
    until_round: int | None = None  # the next split's first round: this one stops watching there
    detected_round: int | None = None  # the first round an agent was partitioned
    partitioned_max: int = 0  # the most agents partitioned at once
    healthy_round: int | None = None  # the first round after the heal with every agent healthy
    writes: dict[str, int] = field(default_factory=lambda: {"accepted": 0, "refused": 0})
    writes_after: int = 0  # writes accepted on each side once every agent was healthy again
    sides: list[list[MeshEngine]] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.start_round = max(1, round(self.spec.start / self.interval))
        self.end_round = self.start_round + max(1, round(self.spec.duration / self.interval))
        self.sides = self.spec.sides(self.cluster.honest)

    def before_round(self, r: int) -> None:
        net = self.cluster.network
        if r == self.start_round:
            net.partition([[e.address for e in side] for side in self.sides])
        elif r == self.end_round:
            self._write_on_each_side("during")  # the last moment of the split: the detector had its time
            net.heal()

    def after_round(self, r: int) -> None:
        if r < self.start_round or (self.until_round is not None and r >= self.until_round):
            return
        statuses = [e.partition.status for e in self.cluster.honest]
        cut = statuses.count(PartitionStatus.PARTITIONED)
        self.partitioned_max = max(self.partitioned_max, cut)
        if cut and self.detected_round is None:
            self.detected_round = r
        if r >= self.end_round and self.healthy_round is None and self.all_healthy():
            self.healthy_round = r
            self.writes_after = self._write_on_each_side("after")  # accepted again, and merged

    def all_healthy(self) -> bool:
        return all(e.partition.status is PartitionStatus.HEALTHY for e in self.cluster.honest)

    def _write_on_each_side(self, when: str) -> int:
        """One write on each side's first agent; returns how many were accepted."""
        now = self.cluster.network.now
        accepted = 0
        for i, side in enumerate(self.sides):
            key = f"mesh/split-{self.start_round}/side-{i}/{when}"
            try:
                side[0].write(key, b"written " + when.encode(), now)
                accepted += 1
            except PartitionedError:
                if when == "during":
                    self.writes["refused"] += 1
        if when == "during":
            self.writes["accepted"] += accepted
        return accepted

    def summary(self) -> list[str]:
        spec = self.spec
        shares = "/".join(str(s) for s in spec.shares)
        sizes = "/".join(str(len(s)) for s in self.sides)
        lines = [
            f"partition {shares} ({sizes} agents) at round {self.start_round} for "
            f"{self.end_round - self.start_round} rounds ({spec.start:g} s + {spec.duration:g} s):"
        ]
        if self.detected_round is None:
            lines.append("  not detected: a split must outlast the detector's window (docs/partitions.md)")
        else:
            lines.append(
                f"  detected {self.detected_round - self.start_round} rounds after the cut; at most "
                f"{self.partitioned_max} agents partitioned (read-only) at once"
            )
        lines.append(
            f"  writes tried on each side before the heal: {self.writes['accepted']} accepted, "
            f"{self.writes['refused']} refused (read-only)"
        )
        if self.healthy_round is None:
            lines.append("  NOT every agent healthy again by the end of the run")
        else:
            lines.append(
                f"  every agent healthy again {self.healthy_round - self.end_round} rounds after the heal; "
                f"writes after it: {self.writes_after} of {len(self.sides)} accepted"
            )
        return lines
