"""Who gossips with whom: the agents' groups (regions, edge clusters) and the leaders above them.

Membership is implicit: agents are the integers 0..n-1 and each group is a contiguous range, so
"sample k peers of my group" is arithmetic on two numbers instead of a registry per agent (the
per-process engine keeps a full registry in every agent: 10,000 engines take 10.4 GB).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

from knhk_mesh.sim.params import SimParams, Topology

IntArray = NDArray[np.int32]


@dataclass(frozen=True)
class Layout:
    """Groups as contiguous ranges; group g's leader (aggregator) is its first agent."""

    agents: int
    starts: IntArray  # first agent of each group
    sizes: IntArray  # agents in each group
    coordinators: IntArray  # hierarchical only: the aggregators that also coordinate (else empty)

    @property
    def leaders(self) -> IntArray:
        """One per group, deterministic (lowest index), so every agent agrees on it without a vote."""
        return self.starts if len(self.starts) > 1 else np.empty(0, dtype=np.int32)

    def group_of(self, agents: IntArray) -> IntArray:
        return np.searchsorted(self.starts, agents, side="right").astype(np.int32) - 1


def _split(n: int, groups: int) -> tuple[IntArray, IntArray]:
    sizes = np.full(groups, n // groups, dtype=np.int32)
    sizes[: n % groups] += 1
    starts = np.zeros(groups, dtype=np.int32)
    np.cumsum(sizes[:-1], out=starts[1:])
    return starts, sizes


def build_layout(params: SimParams) -> Layout:
    n = params.agents
    if params.topology is Topology.SINGLE:
        starts, sizes = _split(n, 1)
        return Layout(n, starts, sizes, np.empty(0, dtype=np.int32))
    if params.topology is Topology.MULTI:
        starts, sizes = _split(n, params.regions)
        return Layout(n, starts, sizes, np.empty(0, dtype=np.int32))
    groups = -(-n // params.cluster_size)
    starts, sizes = _split(n, groups)
    coordinators = starts[: min(params.coordinators, groups)] if groups > 1 else np.empty(0, dtype=np.int32)
    return Layout(n, starts, sizes, coordinators.copy())
