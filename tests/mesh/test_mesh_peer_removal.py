"""Peers leave membership for two reasons, both reported as `PeerLeft` (`knhk.mesh.peer.left`):
silence, counted in rounds this node ran as well as in seconds (a node that was itself suspended
must not prune every peer on waking), and a reason only the shell knows (a revoked certificate),
through `MeshEngine.remove_peer`."""

from __future__ import annotations

import dataclasses
import math
from typing import Any

import pytest

from knhk_mesh.cluster import build_cluster
from knhk_mesh.core.config import MeshConfig, PartitionConfig
from knhk_mesh.core.events import PeerLeft, ReputationChanged
from knhk_mesh.core.messages import Address

from .test_mesh_partitions_starved import Starved

N = 8
INTERVAL = 0.1
# stale after 3 s (30 rounds), pruned every 10 rounds; the partition detector is off: this is about
# pruning (test_mesh_partitions_starved.py covers what a suspended node's detector does)
CFG = MeshConfig(fanout=3, stale_timeout=3.0, prune_every_rounds=10, partition=PartitionConfig(enabled=False))


def _left(events: list[Any]) -> list[PeerLeft]:
    return [e for e in events if isinstance(e, PeerLeft)]


def test_a_node_suspended_past_the_stale_timeout_keeps_its_peers_and_still_prunes_the_dead() -> None:
    cluster = build_cluster(N, seed=71, config=CFG)
    net = cluster.network
    left: list[tuple[Address, PeerLeft]] = []
    net.on_event = lambda at, event: left.append((at, event)) if isinstance(event, PeerLeft) else None
    sleeper = cluster.honest[0]
    node = Starved(sleeper, lag=0.0)
    net.remove(sleeper.address)
    net.add(node)
    net.run_for(40 * INTERVAL)
    assert len(sleeper.registry) == N - 1 and left == []
    # suspended (SIGSTOP, a paused VM) for 10 s, more than three stale timeouts, and woken on the eve
    # of a prune round: counted in seconds alone, every peer has been silent for 10 s when it prunes
    while sleeper.round_no % CFG.prune_every_rounds != CFG.prune_every_rounds - 1:
        net.run_for(INTERVAL)
    before = sleeper.round_no
    node.suspend(net.now, 10.0)
    net.run_for(10.0)
    assert sleeper.round_no == before + 1  # its first round back has run: a prune round
    assert sleeper.round_no % CFG.prune_every_rounds == 0
    net.run_for(60 * INTERVAL)  # two stale windows of its own rounds after waking
    by_sleeper = [e.peer_id.hex() for at, e in left if at == sleeper.address]
    assert by_sleeper == [] and len(sleeper.registry) == N - 1
    # for the others it was gone for 10 s of their rounds: they pruned it, and took it back
    assert {at for at, e in left if e.peer_id == sleeper.agent_id} == {
        e.address for e in cluster.honest if e is not sleeper
    }
    assert all(sleeper.agent_id in e.registry for e in cluster.honest if e is not sleeper)
    # a peer that really stops is still pruned after the stale timeout, within one prune interval,
    # by the sleeper as by everyone
    dead, dead_id = net.remove(cluster.honest[3].address), cluster.honest[3].agent_id
    stopped_at = net.now
    pruned_after: dict[Address, float] = {}
    for _ in range(50):  # bounded: 5 s
        net.run_for(INTERVAL)
        for at, event in left:
            if event.peer_id == dead_id:
                pruned_after.setdefault(at, net.now - stopped_at)
    others = [e for e in cluster.honest if e.address != dead.address]
    assert set(pruned_after) == {e.address for e in others}
    assert all(dead_id not in e.registry for e in others)
    slowest = CFG.stale_timeout + (CFG.prune_every_rounds + 2) * INTERVAL
    assert CFG.stale_timeout <= min(pruned_after.values()) <= max(pruned_after.values()) <= slowest


def test_remove_peer_reports_the_reason_and_keeps_no_address_to_knock_at(
    make_engines: Any, drain: Any, telemetry: Any
) -> None:
    a, b, c = make_engines(3, instrumentation=telemetry.hub.for_node("aa" * 8))
    drain(a)
    a.registry.update_reputation(b.agent_id, -0.8)
    telemetry.hub.for_node("aa" * 8).event(ReputationChanged(b.agent_id, 1.0, 0.2, "invalid_signature"))
    assert telemetry.hub.distrusted_pairs == {("aa" * 8, b.agent_id)}
    assert a.remove_peer(b.agent_id, "revoked_certificate")
    assert b.agent_id not in a.registry and c.agent_id in a.registry
    assert [(e.peer_id, e.reason) for e in _left(drain(a))] == [(b.agent_id, "revoked_certificate")]
    assert b.address not in a._fallback  # a revoked peer's address is not one to rejoin through
    assert not a.remove_peer(b.agent_id, "revoked_certificate")  # not a member: nothing to report
    assert _left(drain(a)) == []
    # the event reached telemetry: the peer left the distrusted count, and the log event was emitted
    # (strictly validated against the schema, error.type carrying the reason)
    assert telemetry.hub.distrusted_pairs == set()
    events = telemetry.events("knhk.mesh.peer.left")
    assert [(r.attributes["knhk.mesh.peer.id"], r.attributes["error.type"]) for r in events] == [
        (b.agent_id.hex(), "revoked_certificate")
    ]


def test_the_stale_cutoff_is_the_configured_timeout_when_rounds_are_on_time() -> None:
    cluster = build_cluster(3, seed=72, config=CFG)
    cluster.network.run_for(60 * INTERVAL)
    e = cluster.honest[0]
    now = cluster.network.now
    assert abs(e._stale_before(now) - (now - CFG.stale_timeout)) < INTERVAL


def test_an_infinite_stale_timeout_never_prunes_and_a_long_one_keeps_the_round_clock_small() -> None:
    for timeout in (math.inf, 86_400.0):  # "never", and a day: 864,000 rounds of 0.1 s
        cfg = dataclasses.replace(CFG, stale_timeout=timeout, prune_every_rounds=1)
        cluster = build_cluster(4, seed=73, config=cfg)
        net = cluster.network
        dead = net.remove(cluster.honest[3].address)
        net.run_for(200 * INTERVAL)  # 200 prune rounds with one peer silent all along
        assert all(dead.address in {p.address for p in e.registry.peers()} for e in cluster.honest[:3])
        clock = cluster.honest[0]._round_clock
        assert len(clock._starts) <= 2 * (1024 + 1)  # asked for at most 1,024 rounds back


@pytest.mark.parametrize("field", ["stale_timeout", "round_interval", "rejoin_after"])
def test_nan_and_non_positive_durations_are_refused(field: str) -> None:
    for bad in (math.nan, 0.0, -1.0):
        with pytest.raises(ValueError, match=field):
            MeshConfig(**{field: bad})
    with pytest.raises(ValueError, match="round_interval"):
        MeshConfig(round_interval=math.inf)
