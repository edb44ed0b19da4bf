"""The topology in RDF: a running three-region mesh of node processes answers SPARQL about its regions'
clusters and leaders, and the Turtle export parses back to the same graph."""

from __future__ import annotations

import time
from collections import defaultdict
from collections.abc import Callable, Iterator
from pathlib import Path

import pyoxigraph as ox
import pytest

from knhk_mesh.cli import main
from knhk_mesh.core.topology import Candidate, TopologyManager, cluster_peers
from knhk_mesh.localcluster import ClusterSpec, LocalCluster
from knhk_mesh.topology_rdf import TopologyStore, parse_turtle, snapshot_quads

REGIONS = ("eu", "us", "ap")
PER_REGION = 2
SIZES = """SELECT ?region (SUM(?size) AS ?peers) (COUNT(?c) AS ?clusters) WHERE {
  ?c a kt:Cluster ; kt:size ?size ; kt:inRegion/kt:name ?region .
} GROUP BY ?region ORDER BY ?region"""
LEADERS = "SELECT ?region ?leader WHERE { ?r kt:name ?region ; kt:leader/kt:agentId ?leader }"


def _run(argv: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    code = main(argv)
    out, err = capsys.readouterr()
    return code, out, err


def _rows(text: str) -> list[list[str]]:
    return [line.split("\t") for line in text.strip().splitlines()[1:]]


def _wait(check: Callable[[], bool], timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return True
        time.sleep(0.5)
    return check()


@pytest.fixture
def three_regions(tmp_path: Path) -> Iterator[LocalCluster]:
    spec = ClusterSpec(
        nodes=len(REGIONS) * PER_REGION,
        regions=[REGIONS[i % len(REGIONS)] for i in range(len(REGIONS) * PER_REGION)],
        fanout=3,
        round_interval=0.1,
        idle_timeout=5.0,
        peer_selection="geographic",
        rebalance_every_rounds=10,
        topology="multi_region",
    )
    cluster = LocalCluster(tmp_path / "mesh", spec)
    try:
        cluster.prepare()
        cluster.start()
        yield cluster
    finally:
        cluster.stop()


@pytest.mark.slow
def test_sparql_over_a_running_three_region_mesh_gives_each_regions_cluster_sizes(
    three_regions: LocalCluster, capsys: pytest.CaptureFixture[str]
) -> None:
    cluster = three_regions
    node = cluster.nodes[0]  # in region "eu"
    admin = ["topology", "--admin", f"127.0.0.1:{node.admin_port}"]
    want = {r: PER_REGION - (r == REGIONS[0]) for r in REGIONS}  # its peers: every other node

    def complete() -> bool:
        code, out, _ = _run([*admin, "--sparql", SIZES], capsys)
        return code == 0 and {row[0]: int(row[1]) for row in _rows(out)} == want

    assert _wait(complete, 60.0), "the node's topology never held all five peers in three regions"
    code, out, err = _run([*admin, "--sparql", SIZES], capsys)
    assert code == 0, err
    assert out.splitlines()[0] == "region\tpeers\tclusters"
    assert all(int(row[2]) >= 1 for row in _rows(out))
    # a multi-region mesh has one leader per region (core/regions.py), an agent of that region

    def leaders() -> dict[str, list[str]]:
        code, out, err = _run([*admin, "--sparql", LEADERS], capsys)
        assert code == 0, err
        found = defaultdict(list)
        for region, leader in _rows(out):
            found[region].append(leader)
        return found

    assert _wait(lambda: set(leaders()) == set(REGIONS), 30.0), leaders()
    ids = {n.node_id: REGIONS[n.index % len(REGIONS)] for n in cluster.nodes}
    for region, chosen in leaders().items():
        assert len(chosen) == 1 and ids[chosen[0]] == region
    # a query that does not parse: one line, exit status 2
    code, out, err = _run([*admin, "--sparql", "SELEC ?x WHERE {"], capsys)
    assert code == 2 and out == ""
    assert err.startswith("knhk-mesh: error: ") and "SPARQL" in err and len(err.strip().splitlines()) == 1

    # the Turtle export parses back to the graph the store holds (read once the node is stopped)
    cluster.kill(node, 15)
    data = ["topology", "--data-dir", str(cluster.workdir / f"{node.name}.data")]
    code, turtle, err = _run([*data, "--format", "turtle"], capsys)
    assert code == 0, err
    code, nt, err = _run([*data, "--format", "ntriples"], capsys)
    assert code == 0, err
    exported = parse_turtle(turtle)
    stored = ox.Dataset(ox.parse(nt, ox.RdfFormat.N_TRIPLES))
    assert len(exported) == len(stored) > 30
    exported.canonicalize(ox.CanonicalizationAlgorithm.UNSTABLE)
    stored.canonicalize(ox.CanonicalizationAlgorithm.UNSTABLE)
    assert exported == stored


def test_a_snapshot_round_trips_through_turtle_and_answers_cluster_queries(tmp_path: Path) -> None:
    peers = [Candidate(bytes([i]) * 8, 0.01 + 0.1 * (i % 3), REGIONS[i % 3]) for i in range(1, 10)]
    manager = TopologyManager("latency", region="us")
    manager.rebalance(cluster_peers(peers))
    snap = manager.snapshot(b"\0" * 8, peers, 100, 10.0)
    store = TopologyStore(tmp_path)
    store.write(snap)
    store.write(snap)  # a rebalance replaces the stored topology; it does not add to it
    assert parse_turtle(store.turtle()) == ox.Dataset(snapshot_quads(snap))
    answer = store.query(SIZES)
    assert {r[0]: (r[1], r[2]) for r in answer.rows} == {"ap": ("3", "1"), "eu": ("3", "1"), "us": ("3", "1")}
    assert not store.query(LEADERS).rows  # a flat mesh has no leaders
    del store
    again = TopologyStore(tmp_path, read_only=True)  # persisted under the data folder
    assert parse_turtle(again.turtle()) == ox.Dataset(snapshot_quads(snap))


def test_topology_command_refuses_what_it_cannot_answer(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, _, err = _run(["topology", "--data-dir", str(tmp_path), "--format", "turtle"], capsys)
    assert code == 1 and "no topology store" in err and len(err.strip().splitlines()) == 1
    code, _, err = _run(["topology", "--admin", "127.0.0.1:1", "--format", "turtle"], capsys)
    assert code == 1 and "no node answers" in err
    code, _, err = _run(["topology", "--format", "turtle"], capsys)
    assert code == 2 and "--admin or --data-dir" in err
