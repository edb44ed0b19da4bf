"""Gossip at scale in memory: a write at one agent reaches all, and telemetry records the rounds."""

from __future__ import annotations

from typing import Any

from knhk_mesh.cluster import build_cluster
from knhk_mesh.core.config import MeshConfig
from knhk_mesh.core.messages import Push
from knhk_mesh.core.wire import decode
from knhk_otel.semconv import attributes as A
from knhk_otel.semconv import metrics as M

INTERVAL = 0.1


def _sum(points: list[Any]) -> float:
    return float(sum(p.value for p in points))


def test_a_write_at_one_of_200_agents_reaches_all_and_rounds_are_recorded(telemetry: Any) -> None:
    hub = telemetry.hub
    cluster = build_cluster(
        200,
        seed=11,
        config=MeshConfig(fanout=10, round_interval=INTERVAL),
        instrumentation=lambda ident: hub.for_node(ident.hex_id),
    )
    net = cluster.network
    net.run_for(2 * INTERVAL)  # everyone has gossiped (empty state) at least once
    writer = cluster.honest[0]
    entry = writer.write("config/threshold", b"42", net.now)
    rounds = 0
    while not cluster.all_have(entry.agent, entry.key, entry.version) and rounds < 30:
        net.run_for(INTERVAL)
        rounds += 1
    assert cluster.all_have(entry.agent, entry.key, entry.version)
    assert rounds <= 6  # O(log n): push-pull with k=10 covers 200 agents in a handful of rounds
    net.run_for(6 * INTERVAL)  # let digests agree for converge_rounds
    assert len(cluster.digests()) == 1

    # rounds in the exported metrics: one process-level series (node ids live on spans and events,
    # never on metric points), counting every node's rounds; nodes report convergence
    gossip_rounds = telemetry.points(M.GossipRounds.NAME)
    assert len(gossip_rounds) == 1 and A.KNHK_MESH_NODE_ID not in gossip_rounds[0].attributes
    round_spans_by = {s.attributes[A.KNHK_MESH_NODE_ID] for s in telemetry.spans("knhk.mesh.gossip.round")}
    assert round_spans_by == {e.node_id for e in cluster.honest}
    assert _sum(gossip_rounds) >= 200 * 8
    conv = telemetry.points(M.ConvergenceRounds.NAME)
    assert sum(p.count for p in conv) >= 190
    assert all(p.min >= 1 for p in conv)
    assert max(p.max for p in conv) <= 10

    converged = telemetry.events("knhk.mesh.converged")
    assert len({r.attributes[A.KNHK_MESH_NODE_ID] for r in converged}) >= 190
    assert {r.attributes[A.KNHK_MESH_STATE_DIGEST] for r in converged} >= {writer.state.digest.hex()}

    # spans wrap the work: rounds, sends, receives and merges, with their attributes
    round_spans = telemetry.spans("knhk.mesh.gossip.round")
    assert len(round_spans) >= 200 * 8
    assert all(s.attributes[A.KNHK_MESH_GOSSIP_FANOUT] == 10 for s in round_spans)
    merges = telemetry.spans("knhk.mesh.state.merge")
    merged_into = {s.attributes[A.KNHK_MESH_NODE_ID] for s in merges}
    assert merged_into == {e.node_id for e in cluster.honest[1:]}
    receives = telemetry.spans("knhk.mesh.message.receive")
    assert receives and all(A.KNHK_MESH_REJECTION_REASON not in s.attributes for s in receives)
    assert telemetry.spans("knhk.mesh.message.send")

    # tick usage per operation, with budgets from the schema
    ops = {p.attributes[A.KNHK_MESH_TICK_OPERATION] for p in telemetry.points(M.TickUsage.NAME)}
    assert ops == {op.value for op in A.TickOperation}
    assert set(hub.ticks.budgets) == {op.value for op in A.TickOperation}
    sent = [
        p
        for p in telemetry.points(M.Messages.NAME)
        if p.attributes[A.KNHK_MESH_MESSAGE_DIRECTION] == A.MessageDirection.SENT.value
    ]
    assert _sum(sent) == net.stats.sent


def test_a_write_is_pushed_at_once_to_fanout_peers_and_a_second_write_of_the_round_waits() -> None:
    config = MeshConfig(fanout=10, round_interval=INTERVAL, jitter_start=False)
    cluster = build_cluster(50, seed=5, config=config)
    net = cluster.network
    writer = cluster.honest[0]
    first = writer.write("a", b"1", net.now)
    frames = writer.messages_to_send(net.now)
    assert len({addr for addr, _ in frames}) == 10 and writer.address not in {addr for addr, _ in frames}
    for _, data in frames:
        body = decode(data).body
        assert isinstance(body, Push) and body.entries == (first,)
    second = writer.write("b", b"2", net.now)
    assert writer.messages_to_send(net.now) == []  # one eager push per round; the rounds carry the rest
    net.run_for(10 * INTERVAL)  # (the eager frames above were taken out of the engine, never sent)
    assert cluster.all_have(first.agent, first.key, first.version)
    assert cluster.all_have(second.agent, second.key, second.version)

    # driven by the network, the eager push lands before the first round: 1 + 10 agents hold it
    fresh = build_cluster(50, seed=5, config=config)
    entry = fresh.honest[0].write("a", b"1", fresh.network.now)
    fresh.network.run_for(INTERVAL / 2)
    assert sum(1 for e in fresh.honest if e.state.get(entry.agent, entry.key) == entry) == 11
