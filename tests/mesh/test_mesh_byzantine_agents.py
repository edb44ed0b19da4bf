"""Byzantine agents of every kind (f < n/3): honest agents converge, detect, and stop trusting them."""

from __future__ import annotations

from collections import defaultdict
from typing import Any

from knhk_mesh.adversary import Adversary, Attack, adversary
from knhk_mesh.cluster import build_cluster
from knhk_mesh.core.config import MeshConfig
from knhk_mesh.core.events import Offence
from knhk_otel.semconv import attributes as A
from knhk_otel.semconv import metrics as M

INTERVAL = 0.1
EXPECTED = {
    Attack.FORGED_SIGNATURE: Offence.INVALID_SIGNATURE,
    Attack.EQUIVOCATION: Offence.EQUIVOCATION,
    Attack.REPLAY: Offence.REPLAY,
    Attack.FLOODING: Offence.RATE_LIMITED,
    Attack.MALFORMED: Offence.MALFORMED,
    Attack.IMPERSONATION: Offence.IMPERSONATION,
}


def test_honest_agents_converge_detect_every_attack_and_distrust_every_attacker(telemetry: Any) -> None:
    hub = telemetry.hub
    attacks = [a for a in Attack for _ in range(2)]  # 12 Byzantine agents
    n = 40  # 12 < 40 / 3
    cluster = build_cluster(
        n,
        seed=5,
        # a small burst keeps the flood cheap to simulate; the rate is the default 1000 msg/s
        config=MeshConfig(fanout=10, round_interval=INTERVAL, burst=50),
        instrumentation=lambda ident: hub.for_node(ident.hex_id),
        byzantine=[adversary(a) for a in attacks],
    )
    net = cluster.network
    honest = cluster.honest
    net.run_for(2 * INTERVAL)
    writes = [honest[i].write(f"key/{i}", f"value {i}".encode(), net.now) for i in (0, 7, 13)]
    net.run_for(12 * INTERVAL)

    # honest agents end with identical state holding every honest write
    assert len(cluster.digests()) == 1
    for w in writes:
        assert cluster.all_have(w.agent, w.key, w.version)

    bad: list[Adversary] = [b for b in cluster.byzantine if isinstance(b, Adversary)]
    assert len(bad) == len(attacks)
    for b in bad:
        for h in honest:
            assert h.registry.reputation(b.agent_id) < 0.5, (b.attack, h.node_id)
    honest_ids = [h.agent_id for h in honest]
    for h in honest:
        for other in honest_ids:
            if other != h.agent_id:
                assert h.registry.reputation(other) >= 0.5

    # each attack detected with its kind, against the right agent, in the emitted events and metrics
    detected: dict[str, set[str]] = defaultdict(set)
    for record in telemetry.events("knhk.mesh.byzantine.detected"):
        detected[record.attributes[A.KNHK_MESH_PEER_ID]].add(record.attributes[A.KNHK_MESH_BYZANTINE_KIND])
    for b in bad:
        assert EXPECTED[b.attack].value in detected[b.agent_id.hex()], b.attack
    for hid in honest_ids:
        assert hid.hex() not in detected
    byzantine_points = telemetry.points(M.ByzantineEvents.NAME)
    kinds = {p.attributes[A.KNHK_MESH_BYZANTINE_KIND] for p in byzantine_points if p.value}
    assert kinds >= {k.value for k in EXPECTED.values()}
    reasons = defaultdict(set)
    for r in telemetry.events("knhk.mesh.reputation.changed"):
        reasons[r.attributes[A.KNHK_MESH_PEER_ID]].add(r.attributes[A.KNHK_MESH_REPUTATION_REASON])
    for b in bad:
        assert EXPECTED[b.attack].value in reasons[b.agent_id.hex()]
    rejected_points = telemetry.points(M.MessagesRejected.NAME)
    rejected = {p.attributes[A.KNHK_MESH_REJECTION_REASON] for p in rejected_points if p.value}
    assert A.RejectionReason.LOW_REPUTATION.value in rejected
