"""`knhk.mesh.peer.distrusted` counts the distrusted peers the nodes hold now: a peer pruned while
distrusted leaves the count (no reputation event says so), and the count never goes negative."""

from __future__ import annotations

from typing import Any

from knhk_mesh.core.events import PeerLeft, ReputationChanged

NAME = "knhk.mesh.peer.distrusted"


def _count(telemetry: Any) -> float:
    return sum(p.value for p in telemetry.points(NAME))


def test_a_peer_pruned_while_distrusted_leaves_the_count(telemetry: Any) -> None:
    node = telemetry.hub.for_node("aa" * 8)
    other = telemetry.hub.for_node("bb" * 8)
    liar, sybil = b"\x01" * 8, b"\x02" * 8
    node.event(ReputationChanged(liar, 1.0, 0.4, "invalid_signature"))
    node.event(ReputationChanged(liar, 0.4, 0.2, "invalid_signature"))  # still under: counted once
    other.event(ReputationChanged(liar, 1.0, 0.4, "invalid_signature"))  # another node's view
    node.event(ReputationChanged(sybil, 1.0, 0.3, "impersonation"))
    assert _count(telemetry) == 3
    node.event(PeerLeft(sybil, "stale"))  # pruned while distrusted
    assert _count(telemetry) == 2
    node.event(PeerLeft(sybil, "stale"))  # gone already: nothing more to take away
    node.event(ReputationChanged(liar, 0.2, 0.5, "recovery"))
    assert _count(telemetry) == 1
    other.event(PeerLeft(liar, "stale"))
    assert _count(telemetry) == 0
