"""`knhk-mesh simulate`: the array simulator follows the engine's round, and says what it measured.

The cross-check against real engines runs here at n=200 (real engines are ~1 s per run at that size);
`make bench` repeats it at 1,000 agents over 20 seeds (`rounds_1k_k10_sim` against `rounds_1k_k10`).
"""

from __future__ import annotations

import io
import json
import statistics
import subprocess
import sys
from collections import Counter
from pathlib import Path

import numpy as np
import pytest

from knhk_mesh import cli
from knhk_mesh.cluster import build_cluster
from knhk_mesh.core.config import MeshConfig
from knhk_mesh.sim.layout import build_layout
from knhk_mesh.sim.params import HOT_ROUNDS, SimParams, Topology
from knhk_mesh.sim.spread import Spread, sample_peers, simulate
from knhk_mesh.transport.memory import Faults


def _engine_rounds(n: int, seed: int, loss: float = 0.0) -> int:
    """Rounds until every real engine holds one write (lock-step rounds, as the simulator models)."""
    config = MeshConfig(fanout=10, jitter_start=False)
    cluster = build_cluster(n, seed=seed, config=config, faults=Faults(loss=loss))
    entry = cluster.honest[0].write("sim/cross-check", b"x", cluster.network.now)
    rounds = cluster.rounds_until_all_have(entry, config.round_interval, 40)
    return 99 if rounds is None else rounds


@pytest.mark.parametrize("loss", [0.0, 0.2])
def test_mean_rounds_agree_with_real_engines_within_half_a_round(loss: float) -> None:
    n = 200
    engine = statistics.mean(_engine_rounds(n, seed, loss) for seed in range(6))
    sim = statistics.mean(simulate(SimParams(agents=n, loss=loss, seed=s)).rounds or 99 for s in range(100))
    assert abs(sim - engine) <= 0.5, (sim, engine)


def test_the_model_rides_entries_on_pushes_for_as_long_as_the_engine_does() -> None:
    assert MeshConfig().hot_rounds == HOT_ROUNDS
    # one write: every agent forwards it once to k peers, which the engine's default budget allows
    assert MeshConfig().forward_frames_per_round >= MeshConfig().fanout


def test_a_hot_holder_informs_on_arrival_and_a_cold_one_only_by_next_round_pull() -> None:
    spread = Spread(SimParams(agents=2000, fanout=10, seed=3))
    spread.step()  # the write's own round
    # a quarter holds the write, all of them cold: nothing rides on the pushes and nobody forwards,
    # so no one new is informed this round, but the targets that saw a different root pull next round
    spread.informed[:] = False
    spread.informed[:500] = True
    spread.learnt[:500] = -10
    assert spread.step() == 500
    assert spread.pull_next.any()
    assert spread.step() > 500
    # what a pull brought is not pushed on: the newly informed are cold, and forwarded nothing
    assert (spread.learnt[500:][spread.informed[500:]] < 0).all()


def test_sampled_peers_are_distinct_others_of_the_own_group_and_uniform() -> None:
    rng = np.random.default_rng(5)
    n, k = 40, 10
    me = np.arange(n, dtype=np.int32)
    start = np.where(me < 25, 0, 25).astype(np.int32)
    size = np.where(me < 25, 25, 15).astype(np.int32)
    counts: Counter[int] = Counter()
    for _ in range(300):
        picks = sample_peers(rng, me, start, size, k)
        for i in range(n):
            row = picks[i]
            assert len(set(row.tolist())) == k
            assert i not in row
            assert np.all((row >= start[i]) & (row < start[i] + size[i]))
        counts.update(picks[0].tolist())
    # agent 0 picks 10 of its 24 group peers, 300 times: each about 125 times
    assert set(counts) == set(range(1, 25))
    assert min(counts.values()) > 80 and max(counts.values()) < 170


def test_a_group_smaller_than_the_fanout_gives_every_other_member() -> None:
    rng = np.random.default_rng(1)
    me = np.arange(4, dtype=np.int32)
    picks = sample_peers(rng, me, np.zeros(4, dtype=np.int32), np.full(4, 4, dtype=np.int32), 10)
    for i in range(4):
        assert sorted(int(p) for p in picks[i] if p >= 0) == [j for j in range(4) if j != i]


def test_the_write_round_is_the_eager_push_and_its_forwarding_and_coverage_only_grows() -> None:
    # the writer's eager push to k peers, each of which passes it on at once to k more, and so on:
    # the write's own round reaches almost everyone (an agent is missed when none of ~k forwards hit it)
    result = simulate(SimParams(agents=5000, fanout=10, seed=3))
    assert result.informed[0] >= 4990
    assert result.informed == sorted(result.informed)
    assert result.rounds == len(result.informed)
    assert result.coverage[-1] == 1.0


def test_runs_are_reproducible_from_the_seed() -> None:
    a = simulate(SimParams(agents=20_000, seed=7, loss=0.05))
    b = simulate(SimParams(agents=20_000, seed=7, loss=0.05))
    c = simulate(SimParams(agents=20_000, seed=8, loss=0.05))
    assert a.informed == b.informed
    assert a.informed != c.informed


def test_loss_slows_the_spread_and_byzantine_withholders_are_not_counted() -> None:
    clean = statistics.mean(simulate(SimParams(agents=3000, seed=s)).rounds or 99 for s in range(10))
    lossy = statistics.mean(
        simulate(SimParams(agents=3000, seed=s, loss=0.4)).rounds or 99 for s in range(10)
    )
    assert lossy > clean
    result = simulate(SimParams(agents=3000, byzantine=900, seed=2))
    assert result.honest == 2100
    assert result.informed[-1] == 2100 and result.rounds is not None


def test_a_write_that_cannot_spread_is_reported_as_not_covered() -> None:
    result = simulate(SimParams(agents=1000, loss=0.99, seed=1, max_rounds=3))
    assert result.rounds is None
    assert len(result.informed) == 3


def test_multi_region_crosses_regions_only_through_leaders() -> None:
    params = SimParams(agents=3000, topology=Topology.MULTI, regions=3, seed=4)
    layout = build_layout(params)
    assert layout.starts.tolist() == [0, 1000, 2000]
    spread = Spread(params, layout)
    spread.step()
    writer_region = int(layout.group_of(np.array([spread.writer], dtype=np.int32))[0])
    assert spread.informed[layout.starts[writer_region]]  # the leader hears of a write at once
    ordinary = np.array([5, 1500, 2999], dtype=np.int32)
    for src, dst in (spread._pushes(), spread._forward_targets(np.arange(3000, dtype=np.int32))):
        crossing = layout.group_of(src) != layout.group_of(dst)
        assert crossing.any()
        assert set(src[crossing].tolist()) <= set(layout.leaders.tolist())
        assert set(dst[crossing].tolist()) <= set(layout.leaders.tolist())
    src, dst = spread._forward_targets(ordinary)
    assert (layout.group_of(src) == layout.group_of(dst)).all() and len(dst) == 3 * 10
    assert simulate(params).rounds is not None


def test_hierarchical_aggregators_exchange_with_the_coordinators() -> None:
    params = SimParams(agents=25_000, topology=Topology.HIERARCHICAL, cluster_size=10_000, seed=2)
    layout = build_layout(params)
    assert len(layout.starts) == 3 and int(layout.sizes.max()) <= 10_000
    assert layout.coordinators.tolist() == layout.starts[:2].tolist()
    src, dst = Spread(params, layout)._pushes()
    crossing = layout.group_of(src) != layout.group_of(dst)
    pairs = set(zip(src[crossing].tolist(), dst[crossing].tolist(), strict=True))
    coords = layout.coordinators.tolist()
    assert pairs == {(int(a), c) for a in layout.starts.tolist() for c in coords if a != c}
    result = simulate(params)
    assert result.rounds is not None and result.coverage[-1] == 1.0


def _run(*argv: str) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    args = cli.build_parser().parse_args(["simulate", *argv])
    from knhk_mesh.sim import command

    code = command.run(args, out, err)
    return code, out.getvalue(), err.getvalue()


def test_json_is_one_object_with_rounds_coverage_and_parameters(tmp_path: Path) -> None:
    # its own process: matplotlib stays out of the test process, whose peak RSS children inherit
    plot = tmp_path / "coverage.png"
    argv = ["--agents", "2000", "--topology", "multi", "--seed", "3", "--json", "--plot", str(plot)]
    proc = subprocess.run(
        [sys.executable, "-m", "knhk_mesh.cli", "simulate", *argv],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr
    data = json.loads(proc.stdout)
    assert data["parameters"]["agents"] == 2000 and data["parameters"]["topology"] == "multi"
    assert data["parameters"]["fanout"] == 10 and data["parameters"]["regions"] == 3
    assert data["rounds"] == len(data["coverage"]) and data["coverage"][-1] == 1.0
    assert plot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and plot.stat().st_size > 10_000


def test_table_and_progress_bar() -> None:
    code, out, err = _run("--agents", "1000", "--progress")
    assert code == 0
    assert "full coverage of 1,000 honest agents after" in out
    assert "round   1" in err and "100.000%" in err


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--agents", "0"], "--agents must be between 2"),
        (["--agents", "100", "--loss", "-0.1"], "--loss must be a probability"),
        (["--agents", "10", "--fanout", "10"], "--fanout 10 exceeds the 9 peers"),
        (["--agents", "10", "--fanout", "0"], "--fanout must be at least 1"),
        (["--agents", "30", "--byzantine", "10"], "fewer than n/3"),
        (["--agents", "100", "--topology", "ring"], "invalid choice: 'ring'"),
        (["--agents", "100", "--plot", "/nonexistent-dir/x.png"], "folder /nonexistent-dir does not exist"),
        (["--agents", "100", "--plot", "x.jpg"], "name it *.png"),
        (["--agents", "ten"], "invalid int value: 'ten'"),
    ],
)
def test_bad_input_is_one_line_and_exit_2(argv: list[str], message: str) -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "knhk_mesh.cli", "simulate", *argv],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 2
    assert proc.stdout == ""
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and message in lines[0], proc.stderr
    assert "Traceback" not in proc.stderr


def test_not_reaching_full_coverage_exits_1() -> None:
    code, out, _ = _run("--agents", "500", "--loss", "0.95", "--max-rounds", "2")
    assert code == 1
    assert "did NOT reach all 500 honest agents in 2 rounds" in out
