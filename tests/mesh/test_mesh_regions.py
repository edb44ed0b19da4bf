"""Multi-region and hierarchical meshes: the leader rule, failover, cross-region spread and summaries."""

from __future__ import annotations

import io
import random
from pathlib import Path
from typing import Any

import pytest

from knhk_mesh import cli
from knhk_mesh.cluster import Cluster, build_cluster
from knhk_mesh.core.config import MeshConfig
from knhk_mesh.core.engine import MeshEngine
from knhk_mesh.core.events import MeshEvent, MessageSent, TopologyRebalanced
from knhk_mesh.core.messages import Address, Entry
from knhk_mesh.core.regions import (
    GLOBAL_SUMMARY_KEY,
    REGION_SUMMARY_PREFIX,
    GlobalSummary,
    Level,
    RegionalRole,
    RegionSummary,
    global_summary,
    rank,
    regional_digest,
)
from knhk_mesh.core.registry import PeerRegistry
from knhk_mesh.core.security import Identity
from knhk_mesh.core.topology import TopologyKind, TopologySnapshot
from knhk_mesh.localcluster import ClusterSpec, LocalCluster, region_names, wait_until
from knhk_otel.semconv import attributes as A
from knhk_otel.semconv import metrics as M

from .test_mesh_partitions_starved import Starved

INTERVAL = 0.1


# --- the rule, without a network -------------------------------------------------------------------


def _registry(ids: list[Identity], regions: list[str], seen: list[float]) -> PeerRegistry:
    reg = PeerRegistry()
    for i, (ident, region, at) in enumerate(zip(ids, regions, seen, strict=True)):
        reg.register(ident.agent_id, ("127.0.0.1", 40000 + i), ident.public_key, region=region, now=at)
    return reg


def _role(layout: TopologyKind, region: str, fanout: int = 2) -> RegionalRole:
    return RegionalRole(layout, region, fanout=fanout, round_interval=INTERVAL, liveness_rounds=10)


def test_every_member_computes_the_same_leader_and_skips_the_silent_barred_and_distrusted() -> None:
    rng = random.Random(7)
    ids = [Identity.generate(rng) for _ in range(8)]
    regions = ["a"] * 8
    by_rank = sorted(ids, key=lambda i: rank("a", i.agent_id))
    now = 5.0
    leaders = set()
    for me in ids:
        reg = _registry(ids, regions, [now] * 8)
        reg.remove(me.agent_id)
        view = _role(TopologyKind.MULTI_REGION, "a").observe(
            me.agent_id, reg, frozenset(), round_no=1, now=now, min_reputation=0.5
        )
        leaders.add(view.leader)
        assert view.deputy == by_rank[1].agent_id
    assert leaders == {by_rank[0].agent_id}

    # seen from the last-ranked member: the first is silent beyond the window (10 rounds = 1 s), the
    # second barred, the third distrusted: the fourth leads and the fifth deputises
    me = by_rank[-1]
    seen = [now - 2.0 if i is by_rank[0] else now for i in ids]
    reg = _registry(ids, regions, seen)
    reg.remove(me.agent_id)
    reg.update_reputation(by_rank[2].agent_id, -0.6)
    view = _role(TopologyKind.MULTI_REGION, "a").observe(
        me.agent_id, reg, {by_rank[1].agent_id}, round_no=1, now=now, min_reputation=0.5
    )
    assert (view.leader, view.deputy) == (by_rank[3].agent_id, by_rank[4].agent_id)


def test_a_leader_reaches_every_member_round_robin_and_pushes_to_other_regions_leaders() -> None:
    rng = random.Random(3)
    ids = [Identity.generate(rng) for _ in range(12)]
    regions = ["a", "b", "c", "d"] * 3
    now = 1.0
    lead_a = min(
        (i for i, r in zip(ids, regions, strict=True) if r == "a"), key=lambda i: rank("a", i.agent_id)
    )
    reg = _registry(ids, regions, [now] * 12)
    reg.remove(lead_a.agent_id)
    role = _role(TopologyKind.MULTI_REGION, "a", fanout=1)
    reached: set[bytes] = set()
    for round_no in (1, 2):
        view = role.observe(lead_a.agent_id, reg, frozenset(), round_no=round_no, now=now, min_reputation=0.5)
        assert view.leader == lead_a.agent_id and set(view.leaders) == {"a", "b", "c", "d"}
        targets = role.targets(1, rng, lead_a.agent_id)
        assert len(targets) == 1 + 3  # one of the region, the three other leaders (cross-region fanout 3)
        assert set(targets[1:]) == {view.leaders[r] for r in "bcd"}
        reached.update(targets[:1])
    assert reached == {i.agent_id for i, r in zip(ids, regions, strict=True) if r == "a"} - {lead_a.agent_id}

    # a member that neither leads nor deputises picks among its region's members only, by its strategy
    in_a = [i for i, r in zip(ids, regions, strict=True) if r == "a"]
    member = max(in_a, key=lambda i: rank("a", i.agent_id))  # neither leader nor deputy
    reg = _registry(ids, regions, [now] * 12)
    reg.remove(member.agent_id)
    role = _role(TopologyKind.MULTI_REGION, "a", fanout=2)
    role.observe(member.agent_id, reg, frozenset(), round_no=1, now=now, min_reputation=0.5)
    offered: list[list[bytes]] = []

    def strategy(members: list[bytes], k: int) -> list[bytes]:
        offered.append(members)
        return members[-k:]

    picked = role.targets(2, rng, member.agent_id, strategy)
    assert set(offered[0]) == {i.agent_id for i in in_a} - {member.agent_id} and picked == offered[0][-2:]


def test_summaries_round_trip_and_refuse_what_is_not_one() -> None:
    s = RegionSummary("r", bytes(8), 5, 3, bytes(16))
    assert RegionSummary.decode(s.encode()) == s
    g = GlobalSummary(bytes(8), "r", (s,))
    assert GlobalSummary.decode(g.encode()) == g
    assert g.agents_per_level() == [(Level.COORDINATOR, "r", 1), (Level.EDGE, "r", 4)]
    for bad in (b"", b"[]", b"{}", b'{"region": 1}', b"\xff", b"x" * 20000):
        assert RegionSummary.decode(bad) is None and GlobalSummary.decode(bad) is None
    with pytest.raises(ValueError, match="liveness_rounds, cross_region_fanout and summary_every_rounds"):
        MeshConfig(topology=TopologyKind.MULTI_REGION, liveness_rounds=0)


# --- meshes in memory --------------------------------------------------------------------------------


def _mesh(layout: TopologyKind, n: int, regions: int, seed: int, **kwargs: Any) -> Cluster:
    cfg = MeshConfig(
        fanout=3, round_interval=INTERVAL, topology=layout, jitter_start=False, rebalance_every_rounds=5
    )
    return build_cluster(n, seed=seed, config=cfg, regions=region_names(n, regions), **kwargs)


def _by_region(cluster: Cluster) -> dict[str, list[MeshEngine]]:
    out: dict[str, list[MeshEngine]] = {}
    for e in cluster.honest:
        out.setdefault(e.config.region, []).append(e)
    for region, members in out.items():
        members.sort(key=lambda e: rank(region, e.agent_id))
    return out


def _leaders_seen(members: list[MeshEngine]) -> set[bytes | None]:
    return {e.regions.view.leader if e.regions and e.regions.view else None for e in members}


def _run_until_all_hold(cluster: Cluster, entries: list[Entry], limit: int) -> int | None:
    for rounds in range(limit + 1):
        if all(cluster.all_have(e.agent, e.key, e.version) for e in entries):
            return rounds
        cluster.network.run_for(INTERVAL)
    return None


def test_a_multi_region_mesh_converges_across_regions_through_its_leaders() -> None:
    sent: set[tuple[Address, Address]] = set()
    snapshots: list[TopologySnapshot] = []

    def on_event(src: Address, event: MeshEvent) -> None:
        if isinstance(event, MessageSent):
            sent.add((src, event.address))
        elif isinstance(event, TopologyRebalanced):
            snapshots.append(event.snapshot)

    cluster = _mesh(TopologyKind.MULTI_REGION, 18, 3, seed=3, on_event=on_event)
    net = cluster.network
    net.run_for(2 * INTERVAL)
    regions = _by_region(cluster)
    for members in regions.values():
        assert _leaders_seen(members) == {members[0].agent_id}  # the first-ranked, at every member
    # a write at a non-leader of each region reaches every agent of every region
    writes = [members[-1].write(f"from/{r}", r.encode(), net.now) for r, members in regions.items()]
    assert _run_until_all_hold(cluster, writes, 30) is not None
    net.run_for(5 * INTERVAL)
    assert len(cluster.digests()) == 1
    # frames crossed regions only from and to leaders
    region_at = {e.address: e.config.region for e in cluster.honest}
    leaders = {m[0].address for m in regions.values()}
    crossing = {(a, b) for a, b in sent if region_at[a] != region_at[b]}
    assert crossing and {a for a, _ in crossing} == leaders and {b for _, b in crossing} == leaders
    # every rebalance's topology snapshot (what the RDF store records) names each region's leader
    expected = {r: m[0].agent_id for r, m in regions.items()}
    assert len(snapshots) >= 18 and all(s.leaders == expected and not s.levels for s in snapshots)


def test_a_killed_leader_is_replaced_by_its_deputy_everywhere_and_writes_keep_crossing_regions() -> None:
    cluster = _mesh(TopologyKind.MULTI_REGION, 18, 3, seed=5)
    net = cluster.network
    net.run_for(3 * INTERVAL)
    regions = _by_region(cluster)
    victim_region = "region-1"
    members = regions[victim_region]
    leader, deputy, rest = members[0], members[1], members[1:]
    assert _leaders_seen(members) == {leader.agent_id}
    before = [m[-1].write("before", b"1", net.now) for m in regions.values()]
    net.run_for(INTERVAL)
    net.remove(leader.address)  # crashed: frames to it are lost, it runs no more rounds
    cluster.honest.remove(leader)
    during = [m[-1].write("during", b"2", net.now) for m in regions.values()]
    rounds = 0
    while _leaders_seen(rest) != {deputy.agent_id} and rounds < 80:
        net.run_for(INTERVAL)
        rounds += 1
    # every surviving member of the region, and no other choice, within the liveness window (+ a sweep)
    assert _leaders_seen(rest) == {deputy.agent_id}
    assert rounds <= 25
    after = [m[-2].write("after", b"3", net.now) for m in regions.values()]
    assert _run_until_all_hold(cluster, [*before, *during, *after], 40) is not None
    held = [
        sum(1 for e in a.state.entries() if e.key in ("before", "during", "after")) for a in cluster.honest
    ]
    assert held == [9] * 17  # 3 writes x 3 regions, at every surviving agent
    net.run_for(25 * INTERVAL)  # other regions' leaders (who alone cross regions) now know the deputy
    for region, others in regions.items():
        if region != victim_region:
            lead = others[0]
            assert lead.regions is not None and lead.regions.view is not None
            assert lead.regions.view.leader == lead.agent_id
            assert lead.regions.view.leaders[victim_region] == deputy.agent_id


def test_a_hierarchical_mesh_spreads_an_edge_write_and_summaries_go_up_and_down(telemetry: Any) -> None:
    hub = telemetry.hub
    snapshots: dict[Address, TopologySnapshot] = {}

    def on_event(src: Address, event: MeshEvent) -> None:
        if isinstance(event, TopologyRebalanced):
            snapshots[src] = event.snapshot

    cluster = _mesh(
        TopologyKind.HIERARCHICAL,
        24,
        4,
        seed=5,
        instrumentation=lambda ident: hub.for_node(ident.hex_id),
        on_event=on_event,
    )
    net = cluster.network
    net.run_for(2 * INTERVAL)
    regions = _by_region(cluster)
    levels: dict[Level, set[bytes]] = {}
    for e in cluster.honest:
        assert e.regions is not None and e.regions.view is not None and e.regions.view.level is not None
        levels.setdefault(e.regions.view.level, set()).add(e.agent_id)
    coordinator = regions["region-0"][0]
    assert levels[Level.COORDINATOR] == {coordinator.agent_id}
    assert levels[Level.AGGREGATOR] == {regions[r][0].agent_id for r in ("region-1", "region-2", "region-3")}
    assert len(levels[Level.EDGE]) == 20

    edge = regions["region-2"][-1]  # far from the coordinator: edge -> aggregator -> coordinator -> ...
    write = edge.write("edge/reading", b"17", net.now)
    assert _run_until_all_hold(cluster, [write], 30) is not None
    net.run_for(15 * INTERVAL)  # a few summary periods

    # up: the coordinator holds each region's summary, written by that region's aggregator, and its
    # root and count are those of the regional entries the coordinator itself holds
    region_of = {e.agent_id: e.config.region for e in cluster.honest}
    summaries = {
        e.key[len(REGION_SUMMARY_PREFIX) :]: (e.agent, RegionSummary.decode(e.value))
        for e in coordinator.state.entries()
        if e.key.startswith(REGION_SUMMARY_PREFIX)
    }
    assert set(summaries) == set(regions)
    for region, (owner, summary) in summaries.items():
        assert summary is not None and owner == regions[region][0].agent_id == summary.aggregator
        count, root = regional_digest(e for e in coordinator.state.entries() if region_of[e.agent] == region)
        assert (summary.entries, summary.root, summary.members) == (count, root, 6)
    assert summaries["region-2"][1] is not None and summaries["region-2"][1].entries == 1  # the edge's write

    # the topology snapshot (RDF) of the coordinator's last rebalance carries every agent's level
    snap = snapshots[coordinator.address]
    assert snap.levels[coordinator.agent_id] == "coordinator" and len(snap.levels) == 24
    assert {a for a, level in snap.levels.items() if level == "aggregator"} == levels[Level.AGGREGATOR]

    # down: every agent holds the coordinator's global summary, naming every region
    for e in cluster.honest:
        glob = global_summary(e.state)
        assert glob is not None and glob.coordinator == coordinator.agent_id
        assert {r.region for r in glob.regions} == set(regions)

    # the hierarchy metric, per level and region, as the schema says
    points = {
        (p.attributes[A.KNHK_MESH_HIERARCHY_LEVEL], p.attributes[A.KNHK_MESH_REGION]): p.value
        for p in telemetry.points(M.HierarchyAgents.NAME)
    }
    assert points[("coordinator", "region-0")] == 1
    assert points[("edge", "region-0")] == 5
    assert all(points[("aggregator", r)] == 1 and points[("edge", r)] == 5 for r in ("region-1", "region-2"))


# --- knhk-mesh up --------------------------------------------------------------------------------------


def test_up_runs_a_hierarchical_mesh_and_names_each_regions_leader(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("KNHK_TICK_NS", raising=False)
    argv = "up --transport memory --nodes 12 --rounds 10 --fanout 3 --topology hierarchical --regions 3"
    out = io.StringIO()
    assert cli.run_up(cli.build_parser().parse_args(argv.split()), out) == 0
    text = out.getvalue()
    assert "memory transport, hierarchical" in text and "reached all 12 honest agents" in text
    lines = [line for line in text.splitlines() if line.startswith("region ")]
    assert len(lines) == 3 and all("every member agrees" in line for line in lines)
    assert "(coordinator)" in lines[0] and all("(aggregator)" in line for line in lines[1:])
    assert "schema findings: 0 (violations 0, improvements 0)" in text


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        ("--topology ring", "invalid choice: 'ring'"),
        ("--topology multi_region --regions 1", "got 1"),
        ("--topology hierarchical", "needs --regions R with 2 <= R <= --nodes (5), got 1"),
        ("--topology multi_region --regions 6", "got 6"),
        ("--regions 0", "--regions: 0 must be at least 1"),
    ],
)
def test_bad_topologies_and_regions_are_one_line_and_exit_2(
    extra: str, message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert cli.main(["up", "--transport", "memory", "--nodes", "5", *extra.split()]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("knhk-mesh: error:") and message in err


@pytest.mark.slow
def test_a_hierarchical_mesh_of_node_processes_over_quic_summarises_every_region(tmp_path: Path) -> None:
    """The node's YAML topology reaches the engine: six processes in three regions, summaries over QUIC."""
    regions = list(region_names(6, 3))
    spec = ClusterSpec(
        nodes=6, fanout=2, round_interval=0.2, idle_timeout=3.0, regions=regions, topology="hierarchical"
    )
    cluster = LocalCluster(tmp_path / "mesh", spec)
    try:
        cluster.prepare()
        cluster.start()
        assert cluster.wait_for_membership(60)
        cluster.put(cluster.nodes[4], "edge/reading", "17")  # node 4: region-1
        wanted = {"edge/reading", GLOBAL_SUMMARY_KEY} | {REGION_SUMMARY_PREFIX + r for r in set(regions)}

        def summarised() -> bool:
            keys = [{row[1] for row in cluster.call(n, "GET", "/entries")["entries"]} for n in cluster.nodes]
            return all(wanted <= held for held in keys) and cluster.converged()

        assert wait_until(summarised, 60)
    finally:
        codes = cluster.stop()
    assert set(codes.values()) == {0}


def test_a_member_suspended_past_the_liveness_window_keeps_its_leader_on_waking() -> None:
    """Its liveness window counts rounds it ran: waking after 10 s (five windows) it has heard nobody
    because it ran nothing, and must not take itself for its region's leader (it would push across
    regions, and as the hierarchy's coordinator summarise it alone) until it hears from the others."""
    cluster = _mesh(TopologyKind.MULTI_REGION, 12, 2, seed=8)
    net = cluster.network
    regions = _by_region(cluster)
    members = regions["region-0"]
    leader, sleeper = members[0], members[-1]
    node = Starved(sleeper, lag=0.0)
    net.remove(sleeper.address)
    net.add(node)
    net.run_for(30 * INTERVAL)
    assert _leaders_seen(members) == {leader.agent_id}
    before = sleeper.round_no
    node.suspend(net.now, 10.0)
    net.run_for(10.0)
    assert sleeper.round_no == before + 1  # its first round back, on waking, before any frame
    seen: list[bytes | None] = []
    for _ in range(30):  # bounded: its first rounds back, more than a liveness window
        assert sleeper.regions is not None and sleeper.regions.view is not None
        seen.append(sleeper.regions.view.leader)
        net.run_for(INTERVAL)
    assert set(seen) == {leader.agent_id}, [s.hex() if s else None for s in seen]
    assert _leaders_seen(members) == {leader.agent_id}
