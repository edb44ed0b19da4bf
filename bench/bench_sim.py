"""Simulator figures: rounds to full coverage from 1,000 to 1,000,000 agents (k=10, mean over 20 seeds),
cross-checked against real engines at 1,000 agents, and the time and peak memory of one 1M-agent run."""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import time
from typing import Any

from run import Figure, checked, figure, value_at_most, value_below

from knhk_mesh.cluster import build_cluster
from knhk_mesh.core.config import MeshConfig
from knhk_mesh.sim.params import SimParams, Topology
from knhk_mesh.sim.spread import simulate

SEEDS = range(20)
K = 10


def _engine_rounds(n: int, seed: int) -> int:
    """Rounds until every real engine holds one write (lock-step rounds, the simulator's model)."""
    config = MeshConfig(fanout=K, jitter_start=False)
    cluster = build_cluster(n, seed=seed, config=config)
    entry = cluster.honest[0].write("bench/sim", b"x", cluster.network.now)
    rounds = cluster.rounds_until_all_have(entry, config.round_interval, 30)
    assert rounds is not None, f"{n} real engines, seed {seed}: no full coverage in 30 rounds"
    return rounds


def _mean_rounds(n: int, topology: Topology = Topology.SINGLE) -> float:
    rounds = []
    for seed in SEEDS:
        result = simulate(SimParams(agents=n, topology=topology, fanout=K, seed=seed))
        assert result.rounds is not None, f"{n} agents, {topology.value}, seed {seed}: no full coverage"
        rounds.append(result.rounds)
    return statistics.mean(rounds)


_CHILD = """
import json, sys, time
from knhk_mesh.sim.params import SimParams, Topology
from knhk_mesh.sim.spread import simulate
started, cpu = time.perf_counter(), time.process_time()
r = simulate(SimParams(agents=int(sys.argv[1]), topology=Topology(sys.argv[2]), fanout=10, seed=1))
wall, cpu = time.perf_counter() - started, time.process_time() - cpu
# VmHWM: this process's own peak (ru_maxrss would start from the parent's peak, inherited at fork)
peak = next(int(line.split()[1]) for line in open("/proc/self/status") if line.startswith("VmHWM:"))
print(json.dumps({"wall": wall, "cpu": cpu, "rounds": r.rounds, "peak_kib": peak}))
"""


def _one_run(n: int, topology: Topology = Topology.SINGLE) -> dict[str, Any]:
    """One run in a fresh process (cold: imports, allocation), timed from outside, with its peak RSS."""
    started = time.perf_counter()
    proc = subprocess.run(
        [sys.executable, "-c", _CHILD, str(n), topology.value], capture_output=True, text=True, check=True
    )
    out: dict[str, Any] = json.loads(proc.stdout)
    out["process_s"] = time.perf_counter() - started
    return out


def run() -> dict[str, Figure]:
    engine_1k = statistics.mean(_engine_rounds(1000, s) for s in SEEDS)
    sim_1k = _mean_rounds(1000)
    sim_100k = _mean_rounds(100_000)
    flat_1m = _mean_rounds(1_000_000)
    hier_1m = _mean_rounds(1_000_000, Topology.HIERARCHICAL)
    load = os.getloadavg()[0]
    small, big = _one_run(100_000), _one_run(1_000_000)
    gib = 1024**2  # ru_maxrss is in KiB
    return {
        "rounds_1k_k10_sim": figure(
            sim_1k,
            "rounds",
            engine_1k,
            goal=checked(
                "<= 4 rounds, and within 0.5 of the engine", sim_1k <= 4 and abs(sim_1k - engine_1k) <= 0.5
            ),
            note="simulator, 1,000 agents, mean of 20 seeds; baseline: real engines (memory transport, "
            "lock-step rounds), same n, k and seed numbers",
        ),
        "rounds_100k_k10": figure(
            sim_100k,
            "rounds",
            sim_1k,
            goal=value_at_most(6, "rounds"),
            note="simulator, 100,000 agents, single mesh, 20 seeds; baseline: the simulator at 1,000 agents",
        ),
        "rounds_1m_flat_k10": figure(
            flat_1m,
            "rounds",
            sim_1k,
            goal=value_at_most(7, "rounds"),
            note="simulator, 1,000,000 agents, single mesh, 20 seeds; "
            "baseline: the simulator at 1,000 agents",
        ),
        "rounds_1m_hier_k10": figure(
            hier_1m,
            "rounds",
            flat_1m,
            goal=value_at_most(10, "rounds"),
            note="simulator, 1,000,000 agents, hierarchical (100 edge clusters of 10,000, 2 coordinators), "
            "20 seeds; baseline: the single mesh at 1M",
        ),
        "sim_1m_s": figure(
            big["process_s"],
            "s",
            small["process_s"],
            goal=value_below(120, "s"),
            note=f"one 1M-agent single-mesh run in a fresh process (wall; {big['cpu']:.1f} s CPU in the run, "
            f"load average {load:.1f} at the start); baseline: the same at 100,000 agents",
        ),
        "sim_1m_peak_gib": figure(
            big["peak_kib"] / gib,
            "GiB",
            small["peak_kib"] / gib,
            goal=value_below(8, "GiB"),
            note="peak RSS of that process (interpreter and numpy included); baseline: the 100,000-agent run",
        ),
    }
