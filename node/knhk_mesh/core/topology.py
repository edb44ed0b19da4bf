"""The topology manager, sans I/O: which peers a node gossips with, and how it groups them.

The engine asks its `TopologyManager` for each round's targets. A strategy (`PeerSelector`) picks
`k` targets out of a candidate list (peer id, EWMA round-trip time, declared region); strategies are
plain objects so other code (multi-region, hierarchical) can hand them a narrower candidate set.

Every `rebalance_every_rounds` rounds the manager clusters its peers (`cluster_peers`, below) and
gives the clusters to the strategy; the engine reports the result as a `TopologyRebalanced` event
carrying a `TopologySnapshot` (what the node shell persists as RDF).

Clustering is deterministic and one-dimensional on purpose (no k-means, no seeds): peers are grouped
by declared region; within a region, measured RTTs are sorted and a new cluster starts wherever an
RTT exceeds `GAP_FACTOR` x the previous one plus `GAP_FLOOR_S` (a "natural break"); unmeasured peers
join their region's nearest cluster. Clusters are ordered by median RTT (unmeasured last), then id.

Every strategy except `random` keeps at least one cross-cluster ("bridge") target per round when k >= 2,
so a rumour still leaves the nearest cluster each round: convergence must not depend on luck.
"""

from __future__ import annotations

import math
import random
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from typing import NamedTuple, Protocol

from knhk_mesh.core.messages import AgentId

GAP_FACTOR = 2.0
GAP_FLOOR_S = 0.002


class Strategy(StrEnum):
    """Peer-selection strategies; values are the schema's `knhk.mesh.peer.selection_strategy` members."""

    RANDOM = "random"
    LATENCY = "latency"
    HYBRID = "hybrid"
    GEOGRAPHIC = "geographic"


class TopologyKind(StrEnum):
    """Deployment topologies; values are the schema's `knhk.mesh.topology` members."""

    SINGLE_REGION = "single_region"
    MULTI_REGION = "multi_region"
    HIERARCHICAL = "hierarchical"


class Candidate(NamedTuple):
    """One peer a strategy may pick: what it needs to know, nothing more (a tuple: cheap to build)."""

    agent_id: AgentId
    rtt: float  # seconds, EWMA of ping/pong; 0.0 = not measured yet
    region: str


@dataclass(frozen=True, slots=True)
class Cluster:
    """A group of peers close to each other as seen from this node."""

    id: str  # "<region>/<band>", "-" for peers without a region
    region: str
    members: tuple[AgentId, ...]
    rtt: float  # median measured RTT of the members, seconds; inf when none is measured


@dataclass(frozen=True)
class Clustering:
    clusters: tuple[Cluster, ...] = ()
    rank: dict[AgentId, int] = field(default_factory=dict)  # member -> index of its cluster

    def __len__(self) -> int:
        return len(self.clusters)


def cluster_peers(candidates: Iterable[Candidate]) -> Clustering:
    """Deterministic clustering by region, then by natural breaks in RTT (see the module docstring)."""
    by_region: dict[str, list[Candidate]] = {}
    for c in candidates:
        by_region.setdefault(c.region, []).append(c)
    found: list[Cluster] = []
    for region in sorted(by_region):
        peers = by_region[region]
        measured = sorted((c for c in peers if c.rtt > 0.0), key=lambda c: (c.rtt, c.agent_id))
        unmeasured = sorted(c.agent_id for c in peers if c.rtt <= 0.0)
        bands: list[list[Candidate]] = []
        for c in measured:
            if bands and c.rtt <= bands[-1][-1].rtt * GAP_FACTOR + GAP_FLOOR_S:
                bands[-1].append(c)
            else:
                bands.append([c])
        label = region or "-"
        if not bands:
            found.append(Cluster(f"{label}/0", region, tuple(unmeasured), math.inf))
            continue
        for i, band in enumerate(bands):
            members = tuple(sorted(c.agent_id for c in band)) + (tuple(unmeasured) if i == 0 else ())
            rtts = [c.rtt for c in band]
            found.append(Cluster(f"{label}/{i}", region, members, rtts[len(rtts) // 2]))
    found.sort(key=lambda cl: (cl.rtt, cl.id))
    rank = {agent: i for i, cl in enumerate(found) for agent in cl.members}
    return Clustering(tuple(found), rank)


class CandidatePool(Protocol):
    """The peers a strategy may pick, asked about a few at a time: a registry holds up to a million,
    and a round's selection must cost O(k), not O(n) (its tick budget is one tick)."""

    def eligible(self, agent: AgentId) -> bool:
        """May `agent` be a target now (known, in good standing, not this node, inside the pool)?"""
        ...

    def sample(self, k: int, rng: random.Random) -> list[AgentId]:
        """Up to k distinct eligible peers, uniformly."""
        ...

    def candidates(self) -> list[Candidate]:
        """Every eligible peer: O(n), only for fallbacks when sampling cannot find enough."""
        ...

    def everyone(self) -> list[Candidate]:
        """Every known peer whatever its standing (the whole registry): what rankings are built from."""
        ...


class ListPool:
    """A pool over an explicit candidate list (tests, a region's members); `everyone` may be wider."""

    def __init__(
        self, candidates: Sequence[Candidate], everyone: Callable[[], list[Candidate]] | None = None
    ) -> None:
        self._list = list(candidates)
        self._ids = {c.agent_id for c in self._list}
        self._everyone = everyone

    def eligible(self, agent: AgentId) -> bool:
        return agent in self._ids

    def sample(self, k: int, rng: random.Random) -> list[AgentId]:
        return [c.agent_id for c in rng.sample(self._list, min(k, len(self._list)))]

    def candidates(self) -> list[Candidate]:
        return list(self._list)

    def everyone(self) -> list[Candidate]:
        return self._everyone() if self._everyone is not None else list(self._list)


def _pool(candidates: CandidatePool | Sequence[Candidate]) -> CandidatePool:
    return ListPool(candidates) if isinstance(candidates, Sequence) else candidates


class PeerSelector(Protocol):
    """A peer-selection strategy: `select` is called every round, `rebalance` after each clustering."""

    name: Strategy

    def select(
        self, candidates: CandidatePool | Sequence[Candidate], k: int, rng: random.Random
    ) -> list[AgentId]: ...

    def rebalance(self, clustering: Clustering) -> None: ...


class RandomSelector:
    """Uniform sampling: the Byzantine-robust default (an attacker cannot place itself 'near')."""

    name = Strategy.RANDOM

    def select(
        self, candidates: CandidatePool | Sequence[Candidate], k: int, rng: random.Random
    ) -> list[AgentId]:
        return _pool(candidates).sample(k, rng)

    def rebalance(self, clustering: Clustering) -> None:
        return None


#: Peers sampled when choosing whom to ping (an unmeasured one among them is preferred).
PING_SAMPLE = 16

#: Before the first clustering, peers are ranked by raw RTT, which moves: the ranking is rebuilt
#: every this many selections (after a clustering it holds until the next one).
PROVISIONAL_RANKING_SELECTIONS = 10


class _Ranking(NamedTuple):
    groups: tuple[tuple[float, tuple[AgentId, ...]], ...]  # finite ranks, nearest first
    rank: dict[AgentId, float]  # every ranked peer (inf = not known to be near)


class _NearFirst:
    """Shared machinery: `near` targets from the nearest candidates, the rest uniformly from the others.

    Peers are ranked once per clustering (not once per round): a round then samples inside the
    nearest groups and draws the rest from the pool's uniform sampler, checking eligibility per
    pick, so it costs O(k) and not O(n); only when sampling cannot find enough does it list the pool.
    """

    def __init__(self) -> None:
        self.clustering = Clustering()
        self._ranking: _Ranking | None = None
        self._ranking_uses = 0

    def rebalance(self, clustering: Clustering) -> None:
        self.clustering = clustering
        self._ranking = None

    def _rank(self, c: Candidate) -> float:
        """Lower is nearer: the cluster's rank after a rebalance, the raw RTT before (or for newcomers)."""
        rank = self.clustering.rank.get(c.agent_id)
        if rank is not None:
            return float(rank)
        if self.clustering.clusters:
            return math.inf  # met since the last rebalance: not known to be near
        return c.rtt if c.rtt > 0.0 else math.inf

    def _ranked(self, pool: CandidatePool) -> _Ranking:
        provisional = not self.clustering.clusters
        stale = provisional and self._ranking_uses >= PROVISIONAL_RANKING_SELECTIONS
        if self._ranking is None or stale:
            rank = {c.agent_id: self._rank(c) for c in pool.everyone()}
            by_rank: dict[float, list[AgentId]] = {}
            for agent, r in rank.items():
                if r != math.inf:
                    by_rank.setdefault(r, []).append(agent)
            groups = tuple((r, tuple(sorted(by_rank[r]))) for r in sorted(by_rank))
            self._ranking = _Ranking(groups, rank)
            self._ranking_uses = 0
        self._ranking_uses += 1
        return self._ranking

    def _pick(
        self,
        candidates: CandidatePool | Sequence[Candidate],
        near: int,
        k: int,
        rng: random.Random,
        *,
        bridge: bool,
    ) -> list[AgentId]:
        """`near` nearest targets, the rest at random; a `bridge` rest lies beyond the nearest picked."""
        pool = _pool(candidates)
        ranking = self._ranked(pool)
        chosen: list[AgentId] = []
        taken: set[AgentId] = set()
        farthest = -math.inf
        for rank, group in ranking.groups:  # nearest first; inside one rank (a cluster) at random
            if len(chosen) >= near:
                break
            picks = _sample_from(group, near - len(chosen), rng, pool.eligible, taken)
            if picks:
                chosen += picks
                taken.update(picks)
                farthest = rank
        want = k - len(chosen)
        if want <= 0:
            return chosen[:k]
        rank_of = ranking.rank.get

        def keep(agent: AgentId) -> bool:  # a bridge lies beyond the nearest picked
            return agent not in taken and (not (bridge and chosen) or rank_of(agent, math.inf) > farthest)

        picks = _draw(pool, want, rng, keep)
        if len(picks) == want:
            return chosen + picks
        # too few found by sampling: list them exactly; too few bridges, then any peer not taken
        listed = [c.agent_id for c in pool.candidates() if c.agent_id not in taken]
        kept = [a for a in listed if keep(a)]
        return chosen + rng.sample(kept if len(kept) >= want else listed, min(want, len(listed)))


def _sample_from(
    group: Sequence[AgentId],
    want: int,
    rng: random.Random,
    eligible: Callable[[AgentId], bool],
    taken: set[AgentId],
) -> list[AgentId]:
    """Up to `want` distinct eligible members of `group`, uniformly: a few random probes, then the
    eligible members listed when probing misses (a small or mostly ineligible group)."""
    picks: list[AgentId] = []
    tried: set[int] = set()
    n = len(group)
    for _ in range(4 * want + 4):
        if len(picks) >= want or len(tried) >= n:
            break
        i = rng.randrange(n)
        if i in tried:
            continue
        tried.add(i)
        agent = group[i]
        if agent not in taken and eligible(agent):
            picks.append(agent)
    if len(picks) < want and len(tried) < n:
        rest = [a for i, a in enumerate(group) if i not in tried and a not in taken and eligible(a)]
        picks += rng.sample(rest, min(len(rest), want - len(picks)))
    return picks


def _draw(
    pool: CandidatePool, want: int, rng: random.Random, keep: Callable[[AgentId], bool]
) -> list[AgentId]:
    """Up to `want` distinct uniform picks of the pool that `keep` accepts, from a few bounded samples
    (uniform among the kept ones: a uniform sample filtered by a predicate stays uniform)."""
    out: list[AgentId] = []
    seen: set[AgentId] = set()
    for _ in range(4):
        for agent in pool.sample(2 * want + 4, rng):
            if agent not in seen:
                seen.add(agent)
                if keep(agent):
                    out.append(agent)
                    if len(out) == want:
                        return out
    return out


class LatencySelector(_NearFirst):
    """Lowest-RTT peers first (the nearest cluster, sampled at random), plus one bridge per round."""

    name = Strategy.LATENCY

    def select(
        self, candidates: CandidatePool | Sequence[Candidate], k: int, rng: random.Random
    ) -> list[AgentId]:
        return self._pick(candidates, _near_share(k, rng), k, rng, bridge=True)


class HybridSelector(_NearFirst):
    """Mostly random with a share (`nearest_fraction`) of the nearest peers: robust and somewhat fast."""

    name = Strategy.HYBRID

    def __init__(self, nearest_fraction: float) -> None:
        super().__init__()
        self.nearest_fraction = nearest_fraction

    def select(
        self, candidates: CandidatePool | Sequence[Candidate], k: int, rng: random.Random
    ) -> list[AgentId]:
        exact = k * self.nearest_fraction
        near = int(exact) + (1 if rng.random() < exact - int(exact) else 0)  # the fraction, on average
        return self._pick(candidates, near, k, rng, bridge=False)


class GeographicSelector(_NearFirst):
    """Peers of this node's own region first, plus one bridge to another region per round."""

    name = Strategy.GEOGRAPHIC

    def __init__(self, region: str) -> None:
        super().__init__()
        self.region = region

    def _rank(self, c: Candidate) -> float:
        return 0.0 if c.region == self.region else 1.0 + super()._rank(c) / 1e6

    def select(
        self, candidates: CandidatePool | Sequence[Candidate], k: int, rng: random.Random
    ) -> list[AgentId]:
        return self._pick(candidates, _near_share(k, rng), k, rng, bridge=True)


def _near_share(k: int, rng: random.Random) -> int:
    """k - 1 near targets and one bridge; with k = 1 the single target is a bridge one round in four."""
    if k >= 2:
        return k - 1
    return 0 if rng.random() < 0.25 else 1


def make_selector(
    strategy: Strategy | str, *, region: str = "", nearest_fraction: float = 0.2
) -> PeerSelector:
    s = Strategy(strategy)
    if s is Strategy.RANDOM:
        return RandomSelector()
    if s is Strategy.LATENCY:
        return LatencySelector()
    if s is Strategy.HYBRID:
        return HybridSelector(nearest_fraction)
    return GeographicSelector(region)


@dataclass(frozen=True)
class Link:
    """A measured link from the snapshot's node to a peer."""

    peer: AgentId
    rtt: float  # seconds (EWMA); 0.0 = not measured


@dataclass(frozen=True)
class TopologySnapshot:
    """The topology one node sees after a rebalance: what the RDF store records.

    `levels` and `leaders` are filled by multi-region / hierarchical code when it runs (agent ->
    hierarchy level name; region -> leader agent); they stay empty in a flat mesh.
    """

    node: AgentId
    region: str
    round: int
    time: float  # the engine clock at the rebalance (monotonic seconds)
    topology: TopologyKind
    strategy: Strategy
    regions: dict[AgentId, str]  # every agent of the snapshot (the node included) -> its region
    clusters: tuple[Cluster, ...]
    links: tuple[Link, ...]
    levels: dict[AgentId, str] = field(default_factory=dict)
    leaders: dict[str, AgentId] = field(default_factory=dict)


@dataclass
class SelectionStats:
    """Targets picked so far and their measured RTT (for benches and /status)."""

    picks: int = 0
    measured_picks: int = 0
    rtt_sum: float = 0.0

    @property
    def mean_rtt(self) -> float:
        return self.rtt_sum / self.measured_picks if self.measured_picks else 0.0


class TopologyManager:
    """Owns a node's strategy and its clustering; the engine calls `select` each round."""

    def __init__(
        self,
        strategy: Strategy | str = Strategy.RANDOM,
        *,
        topology: TopologyKind | str = TopologyKind.SINGLE_REGION,
        region: str = "",
        nearest_fraction: float = 0.2,
        rebalance_every_rounds: int = 100,
    ) -> None:
        self.strategy = Strategy(strategy)
        self.topology = TopologyKind(topology)
        self.region = region
        self.rebalance_every_rounds = rebalance_every_rounds
        self.selector: PeerSelector = make_selector(
            self.strategy, region=region, nearest_fraction=nearest_fraction
        )
        self.clustering = Clustering()
        self.rebalances = 0
        self.stats = SelectionStats()

    def due(self, round_no: int) -> bool:
        return round_no > 0 and round_no % self.rebalance_every_rounds == 0

    def select(
        self,
        candidates: CandidatePool | Sequence[Candidate],
        k: int,
        rng: random.Random,
        rtt_of: Callable[[AgentId], float],
    ) -> list[AgentId]:
        """The strategy's targets among `candidates`, counted in `stats` (RTT looked up by `rtt_of`)."""
        targets = self.selector.select(candidates, k, rng)
        self.count(targets, rtt_of)
        return targets

    def count(self, targets: Sequence[AgentId], rtt_of: Callable[[AgentId], float]) -> None:
        st = self.stats
        st.picks += len(targets)
        for t in targets:
            rtt = rtt_of(t)
            if rtt > 0.0:
                st.measured_picks += 1
                st.rtt_sum += rtt

    def rebalance(self, clustering: Clustering) -> None:
        """Adopt a clustering (from `cluster_peers`) and hand it to the strategy."""
        self.clustering = clustering
        self.selector.rebalance(clustering)
        self.rebalances += 1

    def snapshot(
        self, node: AgentId, candidates: Sequence[Candidate], round_no: int, now: float
    ) -> TopologySnapshot:
        regions = {c.agent_id: c.region for c in candidates}
        regions[node] = self.region
        return TopologySnapshot(
            node=node,
            region=self.region,
            round=round_no,
            time=now,
            topology=self.topology,
            strategy=self.strategy,
            regions=regions,
            clusters=self.clustering.clusters,
            links=tuple(Link(c.agent_id, c.rtt) for c in sorted(candidates, key=lambda c: c.agent_id)),
        )

    def ping_target(
        self, pool: CandidatePool, rng: random.Random, rtt_of: Callable[[AgentId], float]
    ) -> AgentId | None:
        """Whom to ping: an unmeasured peer among a few sampled ones (latency needs every RTT), else one
        of them (refreshing its RTT). Sampled, not listed: a round costs O(k) however large the mesh."""
        sample = pool.sample(PING_SAMPLE, rng)
        if not sample:
            return None
        unmeasured = [a for a in sample if rtt_of(a) <= 0.0]
        return rng.choice(unmeasured or sample)
