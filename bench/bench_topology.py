"""Topology figures: with three regions' latencies injected into the memory transport, the mean RTT
of the peers latency-aware (and hybrid) selection gossips with, against random selection, and the
rounds a write takes to reach every agent under each (the cost of preferring near peers).

60 real engines in one flat mesh (single_region topology: no regional leaders) spread over three
regions (20 each: 5 ms one way inside a region, 80-150 ms between regions), fanout 6,
a ping every round (unmeasured peers first) and a rebalance every 50 rounds; after 100 warm-up rounds,
10 writes from agents of every region, each followed round by round until every agent holds it.
Mean over 3 seeds; the RTT is the one the engines measured (EWMA of ping/pong) for the targets they chose.
"""

from __future__ import annotations

import statistics
import time

from run import Figure, at_most, checked, figure, value_at_most

from knhk_mesh.cluster import BASE_PORT, MEMORY_HOST, build_cluster
from knhk_mesh.core.config import MeshConfig
from knhk_mesh.core.topology import SelectionStats, Strategy, TopologyKind
from knhk_mesh.transport.memory import region_latency

N, K, REGIONS = 60, 6, 3
SEEDS = (1, 2, 3)
WRITES = 10
WARMUP_ROUNDS = 100


def _measure(strategy: Strategy, seed: int) -> tuple[float, float, float]:
    """(mean RTT of chosen targets in s, mean rounds to full coverage, µs per peer selection)."""
    regions = [f"region-{i % REGIONS}" for i in range(N)]
    addresses = [(MEMORY_HOST, BASE_PORT + i) for i in range(N)]
    cfg = MeshConfig(
        fanout=K,
        peer_selection=strategy,
        ping_every_rounds=1,
        rebalance_every_rounds=50,
        topology=TopologyKind.SINGLE_REGION,  # one flat mesh over the regions: the strategy alone picks
    )
    cluster = build_cluster(
        N,
        seed=seed,
        config=cfg,
        regions=regions,
        link_latency=region_latency(dict(zip(addresses, regions, strict=True))),
    )
    cluster.run_rounds(WARMUP_ROUNDS, cfg.round_interval)
    for engine in cluster.honest:
        engine.topology.stats = SelectionStats()
    rounds = []
    for w in range(WRITES):
        writer = cluster.honest[(w * 7) % N]
        entry = writer.write(f"bench/topology-{w}", b"x", cluster.network.now)
        took = cluster.rounds_until_all_have(entry, cfg.round_interval, 60)
        assert took is not None, f"{strategy.value}, seed {seed}: write {w} did not reach every agent"
        rounds.append(took)
    stats = [e.topology.stats for e in cluster.honest]
    mean_rtt = sum(s.rtt_sum for s in stats) / sum(s.measured_picks for s in stats)
    engine = cluster.honest[0]
    started = time.perf_counter_ns()
    for _ in range(2000):
        engine._select(K)
    per_select_us = (time.perf_counter_ns() - started) / 2000 / 1000
    return mean_rtt, statistics.mean(rounds), per_select_us


def run() -> dict[str, Figure]:
    results = {}
    for strategy in (Strategy.RANDOM, Strategy.LATENCY, Strategy.HYBRID):
        runs = [_measure(strategy, seed) for seed in SEEDS]
        results[strategy] = tuple(statistics.mean(r[i] for r in runs) for i in range(3))
    rnd, lat, hyb = results[Strategy.RANDOM], results[Strategy.LATENCY], results[Strategy.HYBRID]
    setup = f"{N} agents in {REGIONS} regions, k={K}, {len(SEEDS)} seeds"
    near = MeshConfig().nearest_fraction
    mix = ((1 - near) * rnd[0] + near * lat[0]) * 1000
    return {
        "latency_aware_rtt_ratio": figure(
            lat[0] * 1000,
            "ms",
            rnd[0] * 1000,
            goal=at_most(0.5),
            note=f"mean RTT of gossip targets, latency / random; {setup}",
        ),
        "hybrid_rtt_ratio": figure(
            hyb[0] * 1000,
            "ms",
            rnd[0] * 1000,
            # a fifth of its targets are the nearest, the rest random: it owes that share of the
            # latency-aware gain (0.5 of random is out of its reach by design)
            goal=checked(
                f"<= {1 - near:g} random + {near:g} latency-aware ({mix:.1f} ms)", hyb[0] * 1000 <= mix
            ),
            note=f"hybrid {1 - near:.0%} random / {near:.0%} nearest vs random; {setup}",
        ),
        "latency_aware_convergence_rounds": figure(
            lat[1],
            "rounds",
            rnd[1],
            goal=value_at_most(rnd[1] + 1, "rounds", "(random + 1)"),
            note=f"mean rounds until every agent holds a write ({WRITES} writes per seed)",
        ),
        "hybrid_convergence_rounds": figure(
            hyb[1],
            "rounds",
            rnd[1],
            goal=value_at_most(rnd[1] + 1, "rounds", "(random + 1)"),
            note="as above, hybrid",
        ),
        "latency_aware_select_us": figure(
            lat[2], "µs", rnd[2], note=f"one round's target selection at {N - 1} peers, latency / random"
        ),
    }
