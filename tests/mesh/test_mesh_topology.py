"""Topology manager: deterministic clustering, strategies that pick nearer peers, convergence intact."""

from __future__ import annotations

import random
from typing import Any

import pytest

from knhk_mesh.cluster import BASE_PORT, MEMORY_HOST, Cluster, build_cluster
from knhk_mesh.core.config import MeshConfig
from knhk_mesh.core.registry import PeerRegistry, RegistryPool
from knhk_mesh.core.topology import (
    PROVISIONAL_RANKING_SELECTIONS,
    Candidate,
    SelectionStats,
    Strategy,
    TopologyKind,
    cluster_peers,
    make_selector,
)
from knhk_mesh.transport.memory import region_latency
from knhk_otel.semconv import attributes as A

INTERVAL = 0.1


def _cand(i: int, rtt: float, region: str) -> Candidate:
    return Candidate(bytes([i]) * 8, rtt, region)


# three regions of four peers: near (10 ms RTT), and two far ones (160 ms, 300 ms)
PEERS = [
    *(_cand(i, 0.010 + i * 0.0005, "near") for i in range(4)),
    *(_cand(10 + i, 0.160 + i * 0.002, "mid") for i in range(4)),
    *(_cand(20 + i, 0.300 + i * 0.004, "far") for i in range(4)),
]


def test_clustering_groups_by_region_then_rtt_breaks_and_is_deterministic() -> None:
    shuffled = PEERS[:]
    random.Random(3).shuffle(shuffled)
    one, two = cluster_peers(PEERS), cluster_peers(shuffled)
    assert one == two
    assert [c.region for c in one.clusters] == ["near", "mid", "far"]  # ordered by median RTT
    assert [len(c.members) for c in one.clusters] == [4, 4, 4]
    # inside one region, a natural break in RTT splits the peers; unmeasured ones join the nearest band
    split = cluster_peers([_cand(1, 0.01, ""), _cand(2, 0.011, ""), _cand(3, 0.2, ""), _cand(4, 0.0, "")])
    assert [sorted(c.members) for c in split.clusters] == [
        sorted([bytes([1]) * 8, bytes([2]) * 8, bytes([4]) * 8]),
        [bytes([3]) * 8],
    ]


@pytest.mark.parametrize("strategy", [Strategy.LATENCY, Strategy.GEOGRAPHIC])
def test_latency_and_geographic_pick_near_peers_and_keep_one_bridge(strategy: Strategy) -> None:
    selector = make_selector(strategy, region="near")
    selector.rebalance(cluster_peers(PEERS))
    rng = random.Random(5)
    near = {c.agent_id for c in PEERS if c.region == "near"}
    seen: set[bytes] = set()
    for _ in range(200):
        picked = selector.select(PEERS, 4, rng)
        assert len(set(picked)) == 4
        assert len(near & set(picked)) == 3  # k - 1 near targets, one bridge out of the cluster
        seen |= set(picked) - near
    assert len(seen) == 8  # the bridge wanders over every far peer


def test_hybrid_takes_the_configured_share_from_the_nearest_peers() -> None:
    selector = make_selector(Strategy.HYBRID, nearest_fraction=0.25)
    rng = random.Random(9)
    near = {c.agent_id for c in PEERS if c.region == "near"}
    # before any rebalance the raw RTT ranks peers; after one, the clusters do: same answer here
    for rebalanced in (False, True):
        if rebalanced:
            selector.rebalance(cluster_peers(PEERS))
        hits = sum(len(near & set(selector.select(PEERS, 8, rng))) for _ in range(400))
        # 2 of 8 always near, plus the random 6 drawing from the 2 remaining near peers of 10
        assert 400 * (2 + 6 * 2 / 10) * 0.9 < hits < 400 * (2 + 6 * 2 / 10) * 1.1


class _CountingPool(RegistryPool):
    """The registry's pool, counting how often a strategy lists it whole (an O(n) pass)."""

    listings = 0

    def candidates(self) -> list[Candidate]:
        self.listings += 1
        return super().candidates()

    def everyone(self) -> list[Candidate]:
        self.listings += 1
        return super().everyone()


def _registry(n: int) -> PeerRegistry:
    reg = PeerRegistry()
    regions = ("near", "mid", "far")
    for i in range(1, n + 1):
        agent = i.to_bytes(8, "big")
        reg.register(agent, ("10.0.0.1", i), i.to_bytes(32, "big"), region=regions[i % 3], now=0.0)
        reg.set_rtt(agent, (0.010, 0.160, 0.300)[i % 3] + (i % 7) * 1e-4)
    return reg


@pytest.mark.parametrize("strategy", [Strategy.LATENCY, Strategy.HYBRID, Strategy.GEOGRAPHIC])
def test_a_round_samples_the_registry_instead_of_listing_it(strategy: Strategy) -> None:
    """Selection is the round's one-tick operation: ranking happens once per clustering (or every few
    rounds before the first), never per round, whatever the registry's size."""
    reg = _registry(3000)
    pool = _CountingPool(reg, exclude=None, min_reputation=0.5)
    selector = make_selector(strategy, region="near", nearest_fraction=0.25)
    rng = random.Random(4)
    rounds = 5 * PROVISIONAL_RANKING_SELECTIONS
    for _ in range(rounds):
        assert len(set(selector.select(pool, 4, rng))) == 4
    assert pool.listings == rounds // PROVISIONAL_RANKING_SELECTIONS  # provisional rankings only
    selector.rebalance(cluster_peers(reg.candidates()))
    pool.listings = 0
    for _ in range(rounds):
        picked = selector.select(pool, 4, rng)
        assert len(set(picked)) == 4
        if strategy is not Strategy.HYBRID:  # k - 1 near targets from the nearest cluster, one bridge
            assert sum(reg.get(a).region == "near" for a in picked) == 3  # type: ignore[union-attr]
    assert pool.listings == 1  # one ranking for the clustering, then samples only


def test_a_peer_that_falls_from_standing_is_not_picked_from_a_cached_ranking() -> None:
    reg = _registry(30)
    selector = make_selector(Strategy.LATENCY)
    selector.rebalance(cluster_peers(reg.candidates()))
    near = [a for a, region, _, _ in reg.standings() if region == "near"]
    fallen = set(near[:-2])
    for agent in fallen:  # all near peers but two lose their standing after the clustering
        reg.update_reputation(agent, -1.0)
    pool = RegistryPool(reg, exclude=None, min_reputation=0.5)
    rng = random.Random(8)
    for _ in range(200):
        picked = selector.select(pool, 4, rng)
        assert not fallen & set(picked)
        assert len(set(picked)) == 4 and set(near[-2:]) <= set(picked)  # the near ones left, + bridges


def test_random_selection_is_uniform_and_ignores_clusters() -> None:
    selector = make_selector(Strategy.RANDOM)
    selector.rebalance(cluster_peers(PEERS))
    rng = random.Random(2)
    near = {c.agent_id for c in PEERS if c.region == "near"}
    hits = sum(len(near & set(selector.select(PEERS, 3, rng))) for _ in range(600))
    assert 600 * 3 * 4 / 12 * 0.85 < hits < 600 * 3 * 4 / 12 * 1.15


def test_config_refuses_unknown_strategies_and_bad_fractions() -> None:
    assert MeshConfig(peer_selection="hybrid").peer_selection is Strategy.HYBRID  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="peer_selection must be one of random, latency"):
        MeshConfig(peer_selection="nearest")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="nearest_fraction"):
        MeshConfig(nearest_fraction=1.5)
    with pytest.raises(ValueError, match="rebalance_every_rounds"):
        MeshConfig(rebalance_every_rounds=0)


N, K = 18, 4
REGIONS = [f"r{i % 3}" for i in range(N)]


def _three_regions(strategy: Strategy, seed: int, **kwargs: Any) -> Cluster:
    addresses = [(MEMORY_HOST, BASE_PORT + i) for i in range(N)]
    cfg = MeshConfig(
        fanout=K,
        round_interval=INTERVAL,
        peer_selection=strategy,
        ping_every_rounds=1,
        rebalance_every_rounds=20,
        # one flat mesh over three regions' latencies: a multi_region mesh would confine targets to the
        # region (core.regions), leaving strategies nothing far to avoid
        topology=TopologyKind.SINGLE_REGION,
    )
    return build_cluster(
        N,
        seed=seed,
        config=cfg,
        regions=REGIONS,
        link_latency=region_latency(dict(zip(addresses, REGIONS, strict=True))),
        **kwargs,
    )


def _mean_target_rtt_and_rounds(strategy: Strategy) -> tuple[float, list[int | None]]:
    cluster = _three_regions(strategy, seed=7)
    cluster.run_rounds(41, INTERVAL)  # every peer pinged, and two rebalances done
    for e in cluster.honest:
        e.topology.stats = SelectionStats()
    rounds = []
    for w in range(3):
        entry = cluster.honest[w * 5].write(f"k{w}", b"v", cluster.network.now)
        rounds.append(cluster.rounds_until_all_have(entry, INTERVAL, 40))
    picks = [e.topology.stats for e in cluster.honest]
    assert all(e.topology.rebalances == 2 for e in cluster.honest)
    return sum(s.rtt_sum for s in picks) / sum(s.measured_picks for s in picks), rounds


def test_latency_aware_selection_halves_target_rtt_and_still_converges_in_three_regions() -> None:
    random_rtt, random_rounds = _mean_target_rtt_and_rounds(Strategy.RANDOM)
    latency_rtt, latency_rounds = _mean_target_rtt_and_rounds(Strategy.LATENCY)
    hybrid_rtt, hybrid_rounds = _mean_target_rtt_and_rounds(Strategy.HYBRID)
    assert None not in random_rounds + latency_rounds + hybrid_rounds  # every write reached every agent
    assert latency_rtt <= 0.5 * random_rtt
    assert latency_rtt < hybrid_rtt < random_rtt  # hybrid mixes: some near targets, mostly random
    assert max(latency_rounds) <= max(random_rounds) + 1


def test_rebalance_is_a_span_with_the_cluster_count_and_rounds_carry_the_real_strategy(
    schema_validation: Any,
) -> None:
    from knhk_mesh.telemetry import MeshTelemetry

    providers = schema_validation.providers()
    cfg = MeshConfig(
        peer_selection=Strategy.GEOGRAPHIC, rebalance_every_rounds=5, topology=TopologyKind.MULTI_REGION
    )
    hub = MeshTelemetry.for_config(
        cfg, providers.tracer_provider, providers.meter_provider, providers.logger_provider
    )
    cluster = build_cluster(
        6,
        seed=3,
        config=cfg,
        regions=["a", "b", "c"] * 2,
        instrumentation=lambda ident: hub.for_node(ident.hex_id),
    )
    cluster.run_rounds(6, cfg.round_interval)
    spans = providers.spans.get_finished_spans()
    rebalances = [s for s in spans if s.name == "knhk.mesh.topology.rebalance"]
    assert len(rebalances) == 6  # one per agent at round 5
    assert {s.attributes[A.KNHK_MESH_REBALANCE_CLUSTERS] for s in rebalances} == {3}  # regions a, b, c
    assert {s.attributes[A.KNHK_MESH_PEER_SELECTION_STRATEGY] for s in rebalances} == {"geographic"}
    rounds = [s for s in spans if s.name == "knhk.mesh.gossip.round"]
    assert {s.attributes[A.KNHK_MESH_TOPOLOGY] for s in rounds} == {"multi_region"}
    assert {s.attributes[A.KNHK_MESH_PEER_SELECTION_STRATEGY] for s in rounds} == {"geographic"}
    data = providers.collect_metrics()
    found = {
        m.name: [p.value for p in m.data.data_points]
        for rm in data.resource_metrics
        for sm in rm.scope_metrics
        for m in sm.metrics
        if m.name.startswith("knhk.mesh.topology.")
    }
    assert found["knhk.mesh.topology.rebalances"] == [6]
    assert found["knhk.mesh.topology.clusters"] == [3]
