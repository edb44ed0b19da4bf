"""Regions, leaders and hierarchy levels, sans I/O: whom an agent gossips with, and what it summarises.

Every agent computes the same leader for its region from what it already knows, without exchanging a
message about it (the rule is documented in docs/topology.md):

- rank(region, agent) = BLAKE2b-64(b"knhk-mesh/leader/1\\0" + region + b"\\0" + agent id); the region's
  eligible members (registered, reputation >= min_reputation, not barred) are ordered by rank;
- the leader is the first of them that is live: heard from directly within the liveness window, in
  rounds the agent ran (an agent always counts itself live); the deputy is the next live one;
- the leader and the deputy pick their intra-region targets round-robin over the region (not at random),
  so every member hears from both within ceil((m-1)/k) rounds; the liveness window is at least three
  times that. When the leader fails (stops, is removed, is pruned, falls under min_reputation or is
  barred), every member stops hearing from it and, one window later, takes the deputy as leader: the
  member every one of them has heard from recently.

Multi-region: members gossip within their region (fanout k); leaders also push to up to
`cross_region_fanout` leaders of other regions each round. Hierarchical: the leader of a region is its
aggregator and the aggregator of the first region (by name) is the coordinator; aggregators push up to
the coordinator, the coordinator pushes down to aggregators. Summaries are ordinary signed entries
(`knhk/hierarchy/region/<region>` by aggregators, `knhk/hierarchy/global` by the coordinator), so they
travel, verify and repair like any state.
"""

from __future__ import annotations

import hashlib
import json
import math
import random
from collections.abc import Callable, Iterable, Mapping, Set
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from knhk_mesh.core.messages import AgentId, Entry
from knhk_mesh.core.partition import RoundClock
from knhk_mesh.core.registry import PeerRegistry
from knhk_mesh.core.state import State
from knhk_mesh.core.topology import TopologyKind

RANK_DOMAIN = b"knhk-mesh/leader/1\x00"
HIERARCHY_PREFIX = "knhk/hierarchy/"
REGION_SUMMARY_PREFIX = HIERARCHY_PREFIX + "region/"
GLOBAL_SUMMARY_KEY = HIERARCHY_PREFIX + "global"
MAX_SUMMARY_BYTES = 16 * 1024  # larger summary values are ignored (they are not ours)
_RANK_CACHE = 1 << 20


class Level(StrEnum):
    """Levels of a hierarchical mesh; values are the schema's `knhk.mesh.hierarchy.level` members."""

    EDGE = "edge"
    AGGREGATOR = "aggregator"
    COORDINATOR = "coordinator"


def rank(region: str, agent: AgentId) -> bytes:
    """The leader-election key: hashing spreads leadership over agents instead of favouring low ids."""
    return hashlib.blake2b(RANK_DOMAIN + region.encode() + b"\x00" + agent, digest_size=8).digest()


def liveness_rounds(configured: int, members: int, fanout: int) -> int:
    """The liveness window in rounds: never shorter than three round-robin sweeps of the region, so a live
    leader is never suspected by a member it simply had not reached yet."""
    sweep = math.ceil(max(0, members - 1) / max(1, fanout))
    return max(configured, 3 * sweep)


@dataclass(frozen=True)
class RegionSummary:
    """What an aggregator tells the level above about its region: its live members and a digest of the
    entries its members own (summaries themselves excluded), so the coordinator can check it holds the
    same regional state."""

    region: str
    aggregator: AgentId
    members: int
    entries: int
    root: bytes

    def encode(self) -> bytes:
        return _dumps(
            {
                "region": self.region,
                "aggregator": self.aggregator.hex(),
                "members": self.members,
                "entries": self.entries,
                "root": self.root.hex(),
            }
        )

    @staticmethod
    def decode(value: bytes) -> RegionSummary | None:
        """The summary in an entry's value, or None for anything malformed (never trusted blindly)."""
        obj = _loads(value)
        try:
            assert obj is not None
            out = RegionSummary(
                str(obj["region"]),
                bytes.fromhex(obj["aggregator"]),
                int(obj["members"]),
                int(obj["entries"]),
                bytes.fromhex(obj["root"]),
            )
        except (AssertionError, KeyError, TypeError, ValueError):
            return None
        return out if out.members >= 1 and out.entries >= 0 else None


@dataclass(frozen=True)
class GlobalSummary:
    """What the coordinator spreads down: every region's latest summary, as the coordinator holds it."""

    coordinator: AgentId
    coordinator_region: str
    regions: tuple[RegionSummary, ...]

    def encode(self) -> bytes:
        return _dumps(
            {
                "coordinator": self.coordinator.hex(),
                "coordinator_region": self.coordinator_region,
                "regions": [json.loads(r.encode()) for r in self.regions],
            }
        )

    @staticmethod
    def decode(value: bytes) -> GlobalSummary | None:
        obj = _loads(value)
        try:
            assert obj is not None and isinstance(obj["regions"], list)
            regions = [RegionSummary.decode(_dumps(r)) for r in obj["regions"][:4096]]
            if any(r is None for r in regions):
                return None
            return GlobalSummary(
                bytes.fromhex(obj["coordinator"]),
                str(obj["coordinator_region"]),
                tuple(r for r in regions if r is not None),
            )
        except (AssertionError, KeyError, TypeError, ValueError):
            return None

    def agents_per_level(self) -> list[tuple[Level, str, int]]:
        """(level, region, agents): the coordinator in its region, one aggregator in every other region,
        the rest of each region's live members at the edge."""
        out: list[tuple[Level, str, int]] = []
        for r in sorted(self.regions, key=lambda s: s.region):
            top = Level.COORDINATOR if r.region == self.coordinator_region else Level.AGGREGATOR
            out.append((top, r.region, 1))
            out.append((Level.EDGE, r.region, r.members - 1))
        return out


def _dumps(obj: object) -> bytes:
    return json.dumps(obj, sort_keys=True, separators=(",", ":")).encode()


def _loads(value: bytes) -> dict[str, Any] | None:
    if len(value) > MAX_SUMMARY_BYTES:
        return None
    try:
        obj = json.loads(value)
    except (UnicodeDecodeError, ValueError):
        return None
    return obj if isinstance(obj, dict) else None


def regional_digest(entries: Iterable[Entry]) -> tuple[int, bytes]:
    """(count, digest) of a set of entries, independent of the order they are held in."""
    fps = sorted(e.fingerprint for e in entries if not e.key.startswith(HIERARCHY_PREFIX))
    h = hashlib.blake2b(digest_size=16)
    for fp in fps:
        h.update(fp.to_bytes(16, "big"))
    return len(fps), h.digest()


@dataclass(frozen=True)
class RegionView:
    """One agent's view of the regions in one round (for its peer selection, telemetry and the RDF store)."""

    layout: TopologyKind
    region: str
    leader: AgentId | None  # of our region
    deputy: AgentId | None
    leaders: dict[str, AgentId]  # every known region's (presumed) leader, ours included
    members: dict[str, int]  # eligible members per region, as known here
    coordinator: AgentId | None  # hierarchical only
    level: Level | None  # hierarchical only


@dataclass
class _Round:
    round_no: int
    view: RegionView
    intra: list[AgentId]  # our region's eligible members but us, by rank
    cross: list[AgentId]  # agents in other regions we push to, when we lead (before sampling)
    region_of: dict[AgentId, str] = field(default_factory=dict)


class RegionalRole:
    """An agent's part in a multi-region or hierarchical mesh: targets each round, summaries to write."""

    def __init__(
        self,
        layout: TopologyKind,
        region: str,
        *,
        fanout: int,
        round_interval: float,
        liveness_rounds: int = 20,
        cross_region_fanout: int = 3,
        summary_every_rounds: int = 5,
        clock: RoundClock | None = None,
    ) -> None:
        """`clock`: the agent's own round starts, so the liveness window counts rounds it ran (a member
        is not dead to an agent that was itself suspended); without one, configured intervals."""
        if layout is TopologyKind.SINGLE_REGION:
            raise ValueError("a single-region mesh has no regional role")
        if liveness_rounds < 1 or cross_region_fanout < 1 or summary_every_rounds < 1:
            raise ValueError("liveness_rounds, cross_region_fanout and summary_every_rounds must be >= 1")
        self.layout = layout
        self.region = region
        self.fanout = fanout
        self.liveness_rounds = liveness_rounds
        self.cross_region_fanout = cross_region_fanout
        self.summary_every_rounds = summary_every_rounds
        self._clock = clock or RoundClock(round_interval)
        self._cursor = 0  # round-robin position over our region, when we lead or deputise
        self._round: _Round | None = None
        self._written: dict[str, bytes] = {}  # summary key -> the value we last wrote
        self._ranks: dict[tuple[str, AgentId], bytes] = {}  # ranks never change: hash each agent once

    def _rank(self, region: str, agent: AgentId) -> bytes:
        key = (region, agent)
        found = self._ranks.get(key)
        if found is None:
            if len(self._ranks) >= _RANK_CACHE:
                self._ranks.clear()
            found = self._ranks[key] = rank(region, agent)
        return found

    @property
    def view(self) -> RegionView | None:
        """The view of the last round computed (None before the first)."""
        return self._round.view if self._round is not None else None

    def observe(
        self,
        me: AgentId,
        registry: PeerRegistry,
        barred: Set[AgentId],
        *,
        round_no: int,
        now: float,
        min_reputation: float,
    ) -> RegionView:
        """Recompute leaders and levels once per round from the registry (O(peers))."""
        cached = self._round
        if cached is not None and cached.round_no == round_no:
            return cached.view
        groups: dict[str, list[tuple[bytes, AgentId, float]]] = {
            self.region: [(self._rank(self.region, me), me, now)]
        }
        region_of: dict[AgentId, str] = {me: self.region}
        for agent, region, last_seen, reputation in registry.standings():
            region_of[agent] = region
            if agent in barred or reputation < min_reputation - 1e-9:
                continue
            groups.setdefault(region, []).append((self._rank(region, agent), agent, last_seen))
        leaders: dict[str, AgentId] = {}
        live_ranked: dict[str, list[AgentId]] = {}
        for region, group in groups.items():
            group.sort()
            since = self._clock.since(liveness_rounds(self.liveness_rounds, len(group), self.fanout), now)
            live = [agent for _, agent, seen in group if agent == me or seen >= since]
            live_ranked[region] = live
            # a region we hear nothing from: its first-ranked member is still the best guess
            leaders[region] = live[0] if live else group[0][1]
        own = live_ranked[self.region]
        leader = own[0]
        deputy = own[1] if len(own) > 1 else None
        coordinator: AgentId | None = None
        level: Level | None = None
        if self.layout is TopologyKind.HIERARCHICAL:
            coordinator = leaders[min(leaders)]
            level = Level.EDGE if me != leader else Level.AGGREGATOR
            if me == coordinator:
                level = Level.COORDINATOR
        intra = [agent for _, agent, _ in groups[self.region] if agent != me]
        cross: list[AgentId] = []
        if me == leader:
            if self.layout is TopologyKind.MULTI_REGION or me == coordinator:
                cross = [a for r, a in sorted(leaders.items()) if r != self.region]
            elif coordinator is not None:
                cross = [coordinator]
        view = RegionView(
            self.layout,
            self.region,
            leader,
            deputy,
            leaders,
            {r: len(g) for r, g in groups.items()},
            coordinator,
            level,
        )
        self._round = _Round(round_no, view, intra, cross, region_of)
        return view

    def targets(
        self,
        k: int,
        rng: random.Random,
        me: AgentId,
        choose: Callable[[list[AgentId], int], list[AgentId]] | None = None,
    ) -> list[AgentId]:
        """This round's peers: k of our region (round-robin when we lead or deputise, else at random or
        by `choose`, a peer-selection strategy), plus, when we lead, up to `cross_region_fanout` agents
        of other regions."""
        rnd = self._round
        if rnd is None:
            return []
        view, intra = rnd.view, rnd.intra
        if me in (view.leader, view.deputy) and intra:
            take = min(k, len(intra))
            start = self._cursor % len(intra)
            out = [intra[(start + i) % len(intra)] for i in range(take)]
            self._cursor = start + take
        elif choose is not None:
            out = choose(intra, k)
        else:
            out = rng.sample(intra, min(k, len(intra)))
        cross = rnd.cross
        if cross:
            out.extend(rng.sample(cross, min(self.cross_region_fanout, len(cross))))
        return out

    def summaries(self, me: AgentId, state: State, round_no: int) -> list[tuple[str, bytes]]:
        """Summary entries to write this round (hierarchical aggregators and coordinator, when changed)."""
        rnd = self._round
        if (
            rnd is None
            or self.layout is not TopologyKind.HIERARCHICAL
            or rnd.view.level in (None, Level.EDGE)
            or round_no % self.summary_every_rounds
        ):
            return []
        out: list[tuple[str, bytes]] = []
        region_of = rnd.region_of
        mine = (e for e in state.entries() if region_of.get(e.agent) == self.region)
        count, root = regional_digest(mine)
        summary = RegionSummary(self.region, me, rnd.view.members.get(self.region, 1), count, root)
        out.append((REGION_SUMMARY_PREFIX + self.region, summary.encode()))
        if rnd.view.level is Level.COORDINATOR:
            glob = GlobalSummary(me, self.region, self._latest_regions(state, summary))
            out.append((GLOBAL_SUMMARY_KEY, glob.encode()))
        return [(k, v) for k, v in out if self._written.get(k) != v]

    def written(self, key: str, value: bytes) -> None:
        """The engine applied this summary: it is not written again until it changes (a write that
        failed is tried again next period)."""
        self._written[key] = value

    def roles(self, agents: Mapping[AgentId, str]) -> tuple[dict[str, AgentId], dict[AgentId, str]]:
        """(region -> leader, agent -> hierarchy level) for the topology snapshot (the RDF store);
        levels only in a hierarchical mesh."""
        view = self.view
        if view is None:
            return {}, {}
        levels: dict[AgentId, str] = {}
        if view.layout is TopologyKind.HIERARCHICAL:
            tops = set(view.leaders.values())
            for agent in agents:
                level = Level.EDGE
                if agent == view.coordinator:
                    level = Level.COORDINATOR
                elif agent in tops:
                    level = Level.AGGREGATOR
                levels[agent] = level.value
        return dict(view.leaders), levels

    def _latest_regions(self, state: State, own: RegionSummary) -> tuple[RegionSummary, ...]:
        """Each region's summary as held here: the one its current leader wrote, else any readable one."""
        rnd = self._round
        assert rnd is not None
        best: dict[str, tuple[int, RegionSummary]] = {own.region: (0, own)}
        for e in state.entries():
            if not e.key.startswith(REGION_SUMMARY_PREFIX):
                continue
            region = e.key[len(REGION_SUMMARY_PREFIX) :]
            s = RegionSummary.decode(e.value)
            if s is None or s.region != region or s.aggregator != e.agent or region == own.region:
                continue
            score = 1 if rnd.view.leaders.get(region) == e.agent else 2
            held = best.get(region)
            if held is None or (score, s.aggregator) < (held[0], held[1].aggregator):
                best[region] = (score, s)
        return tuple(s for _, (_, s) in sorted(best.items()))


def global_summary(state: State, coordinator: AgentId | None = None) -> GlobalSummary | None:
    """The global summary held in `state`: the one `coordinator` wrote when given and held, else the one
    of the writer with the most regions (after a failover both the old and new coordinator's are held)."""
    found: dict[AgentId, GlobalSummary] = {}
    for e in state.entries():
        if e.key == GLOBAL_SUMMARY_KEY:
            s = GlobalSummary.decode(e.value)
            if s is not None and s.coordinator == e.agent:
                found[e.agent] = s
    if coordinator is not None and coordinator in found:
        return found[coordinator]
    return max(found.values(), key=lambda s: (len(s.regions), s.coordinator), default=None)
