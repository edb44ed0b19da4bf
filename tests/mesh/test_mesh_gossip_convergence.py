"""Gossip at scale in memory: a write at one agent reaches all, and telemetry records the rounds."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from knhk_mesh.cluster import build_cluster
from knhk_mesh.core.config import MeshConfig
from knhk_mesh.core.engine import MeshEngine
from knhk_mesh.core.messages import Address, Entry, Push
from knhk_mesh.core.wire import decode, encode_signed_part, envelope_message, frame
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

    # driven by the network, the eager push lands before the first round: without forwarding on
    # receipt 1 + 10 agents hold it then; with it (the default) each of them passes it on at once
    quiet = build_cluster(50, seed=5, config=replace(config, forward_frames_per_round=0))
    entry = quiet.honest[0].write("a", b"1", quiet.network.now)
    quiet.network.run_for(INTERVAL / 2)
    assert sum(1 for e in quiet.honest if e.state.get(entry.agent, entry.key) == entry) == 11
    fresh = build_cluster(50, seed=5, config=config)
    entry = fresh.honest[0].write("a", b"1", fresh.network.now)
    fresh.network.run_for(INTERVAL / 2)
    assert fresh.all_have(entry.agent, entry.key, entry.version)


def _push(sender: MeshEngine, to: MeshEngine, entries: tuple[Entry, ...], nonce: int) -> bytes:
    """A push frame of `sender` to `to`, built by hand so the test decides who hears what."""
    signed = encode_signed_part(sender.agent_id, to.agent_id, nonce, Push(sender.state.digest, entries))
    return frame(signed, sender.identity.sign(envelope_message(signed)))


def _forwards(engine: MeshEngine) -> list[tuple[Address, Push]]:
    """The eager (non-reply) pushes an engine has queued since the last call."""
    out = []
    for address, data in engine.messages_to_send(0.0):
        body = decode(data).body
        if isinstance(body, Push) and not body.reply:
            out.append((address, body))
    return out


def test_an_entry_new_to_an_agent_is_forwarded_at_once_to_fanout_peers_and_only_once() -> None:
    cluster = build_cluster(20, seed=3, config=MeshConfig(fanout=4, jitter_start=False))
    writer, relay, other = cluster.honest[:3]
    now = cluster.network.now
    entry = writer.write("k", b"v", now)
    writer.messages_to_send(now)  # the writer's own eager push: not delivered, the test delivers by hand
    relay.receive(writer.address, _push(writer, relay, (entry,), 10**6), now)
    forwards = _forwards(relay)
    targets = {address for address, _ in forwards}
    assert len(forwards) == 4 and len(targets) == 4 and writer.address not in targets
    assert relay.address not in targets
    assert all(body.entries == (entry,) and body.root == relay.state.digest for _, body in forwards)
    assert relay.forwarded == {"frames": 4, "entries": 1, "over_budget": 0}
    # the same entry from another relayer is no news: nothing goes out again
    relay.receive(other.address, _push(other, relay, (entry,), 10**6), now)
    assert _forwards(relay) == []
    assert relay.forwarded["frames"] == 4
    # news in a push-back reply (the pull half of push-pull) goes on as well
    second = writer.write("k2", b"w", now)
    writer.messages_to_send(now)
    reply = encode_signed_part(
        writer.agent_id, relay.agent_id, 10**6 + 1, Push(writer.state.digest, (second,), reply=True)
    )
    relay.receive(writer.address, frame(reply, writer.identity.sign(envelope_message(reply))), now)
    assert [body.entries for _, body in _forwards(relay)] == [(second,)] * 4


def test_eager_forwarding_is_bounded_per_round_and_what_it_leaves_out_still_spreads() -> None:
    config = MeshConfig(fanout=4, forward_frames_per_round=6, jitter_start=False)
    cluster = build_cluster(20, seed=4, config=config)
    net = cluster.network
    relay, writers = cluster.honest[0], cluster.honest[1:6]
    now = net.now
    entries = []
    per_push = []
    for i, w in enumerate(writers[:4]):
        entries.append(w.write(f"burst/{i}", b"x", now))
        w.messages_to_send(now)  # only the relay hears of these writes, by hand
        relay.receive(w.address, _push(w, relay, (entries[-1],), 10**6), now)
        per_push.append(len(_forwards(relay)))
    assert per_push == [4, 2, 0, 0]  # 6 frames this round: the third and fourth wait for the rounds
    assert relay.forwarded == {"frames": 6, "entries": 2, "over_budget": 2}
    timer = relay.get_timer()
    assert timer is not None
    relay.handle_timer(timer)  # the next round: a fresh budget
    relay.messages_to_send(timer)
    last = writers[4].write("burst/4", b"x", timer)
    writers[4].messages_to_send(timer)
    relay.receive(writers[4].address, _push(writers[4], relay, (last,), 10**6), timer)
    assert len(_forwards(relay)) == 4
    # nothing is lost to the budget: the rounds' pushes and repair carry every entry everywhere
    net.run_for(20 * INTERVAL)
    for e in [*entries, last]:
        assert cluster.all_have(e.agent, e.key, e.version)
