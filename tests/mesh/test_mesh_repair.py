"""Anti-entropy repairs any difference: gaps left by relays, late joiners and healed partitions, all
while writes go on, within a stated number of rounds; the bytes spent are reported beside what differed.

Bounds stated here (k = 10, 100 ms rounds, memory transport): once writes stop, every honest agent
holds every accepted write and all roots agree within REPAIR_ROUNDS rounds.
"""

from __future__ import annotations

import random

from knhk_mesh.adversary import WithholdingRelay, withholding_relay
from knhk_mesh.cluster import Cluster, build_cluster
from knhk_mesh.core.config import MeshConfig
from knhk_mesh.core.engine import MeshEngine
from knhk_mesh.core.messages import Entry, MessageType
from knhk_mesh.core.security import Identity
from knhk_mesh.core.wire import MAX_MESSAGE_BYTES, decode, encoded_entry_size

INTERVAL = 0.1
REPAIR_ROUNDS = 10


def _settle(cluster: Cluster, writes: list[Entry], limit: int = REPAIR_ROUNDS) -> int:
    """Rounds until every honest agent holds every write and one root (fails past `limit`)."""
    for rounds in range(1, limit + 1):
        cluster.network.run_for(INTERVAL)
        if len(cluster.digests()) == 1 and all(cluster.all_have(w.agent, w.key, w.version) for w in writes):
            return rounds
    missing = {e.node_id: sum(1 for w in writes if e.state.get(w.agent, w.key) != w) for e in cluster.honest}
    raise AssertionError(f"not repaired in {limit} rounds: {len(cluster.digests())} roots, missing {missing}")


def _write_round(engines: list[MeshEngine], tag: str, now: float) -> list[Entry]:
    return [e.write(f"{tag}/{e.node_id}", tag.encode() * 8, now) for e in engines]


def _report(what: str, fetched: int, lacked: int) -> None:
    print(f"{what}: repair fetched {fetched} B for {lacked} B lacked (ratio {fetched / max(1, lacked):.2f})")


def test_gap_making_relays_cannot_keep_honest_agents_apart() -> None:
    """10 of 31 agents (f < n/3) forward only the newest entry of each owner in every frame."""
    cluster = build_cluster(31, seed=21, config=MeshConfig(), byzantine=[withholding_relay] * 10)
    net, honest = cluster.network, cluster.honest
    writes: list[Entry] = []
    for r in range(6):  # every honest agent writes several entries per round: gaps are easy to make
        for tag in ("a", "b", "c"):
            writes += _write_round(honest, f"{tag}{r}", net.now)
        net.run_for(INTERVAL)
    rounds = _settle(cluster, writes)
    relays = [b for b in cluster.byzantine if isinstance(b, WithholdingRelay)]
    assert sum(r.withheld for r in relays) > 0  # the relays did make gaps
    fetched = sum(e.repair["bytes_fetched"] for e in honest)
    _report(f"gap-making relays, repaired {rounds} rounds after writes stopped", fetched, 0)
    # withholding is no offence a correct peer could be told from: nobody honest is penalised
    assert all(h.registry.reputation(o.agent_id) == 1.0 for h in honest for o in honest if o is not h)


def test_a_late_joiner_gets_every_write_while_writes_go_on() -> None:
    cluster = build_cluster(31, seed=22, config=MeshConfig())
    net, honest = cluster.network, list(cluster.honest)
    writes: list[Entry] = []
    for r in range(12):
        writes += _write_round(honest, f"before{r}", net.now)
        if r % 5 == 4:
            net.run_for(INTERVAL)
    net.run_for(5 * INTERVAL)
    lacked = sum(encoded_entry_size(e) for e in honest[0].state.entries())
    joiner = cluster.add_agent(seed=99)
    for r in range(6):  # a third of the mesh keeps writing while the joiner catches up
        writes += _write_round(honest[:10], f"during{r}", net.now)
        net.run_for(INTERVAL)
    rounds = _settle(cluster, writes)
    assert len(joiner.state) == len(honest[0].state) == 31 * 12 + 10 * 6
    assert len(joiner.registry) >= 20  # it met the mesh through challenges, not just the seed
    _report(f"late joiner, done {rounds} rounds after writes stopped", joiner.repair["bytes_fetched"], lacked)
    # catching up on 372 entries plus the concurrent ones costs about what it lacked, not multiples
    assert joiner.repair["bytes_fetched"] <= 2 * lacked


def test_a_healed_partition_with_writes_on_both_sides_converges() -> None:
    cluster = build_cluster(40, seed=23, config=MeshConfig())
    net, honest = cluster.network, cluster.honest
    left, right = honest[:20], honest[20:]
    net.partition([[e.address for e in left], [e.address for e in right]])
    writes: list[Entry] = []
    for r in range(10):
        writes += _write_round(left[:8], f"left{r}", net.now)
        writes += _write_round(right[:8], f"right{r}", net.now)
        net.run_for(INTERVAL)
    assert len(cluster.digests()) >= 2
    net.heal()
    for r in range(5):  # writes go on across the heal
        writes += _write_round(honest[::4], f"healed{r}", net.now)
        net.run_for(INTERVAL)
    rounds = _settle(cluster, writes)
    fetched = sum(e.repair["bytes_fetched"] for e in honest)
    differed = sum(encoded_entry_size(w) for w in writes if w.key.startswith(("left", "right")))
    _report(f"healed partition, one root {rounds} rounds after writes stopped", fetched // 20, differed // 2)


def test_ten_thousand_writers_converge_and_no_frame_exceeds_the_limit() -> None:
    """A mesh of 31 agents whose state holds 10,000 writers (members that wrote and left): 9,000
    writers' entries restored in every replica, 1,000 new writers' entries arriving at random agents.
    It converges and every frame stays under the limit; a push between agreeing agents stays small
    (version 1 sent 22 bytes per writer in every frame and rejected every frame as oversized at 3,000)."""
    rng = random.Random(24)
    writers = [Identity.generate(rng) for _ in range(10_000)]
    records = [w.record("10.1.0.1", 1, "", 1) for w in writers]
    entries = [w.sign_entry(1, "status", b"up") for w in writers]
    cluster = build_cluster(31, seed=24, config=MeshConfig())
    net, honest = cluster.network, cluster.honest
    for engine in honest:
        for rec in records:
            engine.add_record(rec)
        engine.state.apply_all(entries[:9_000])  # a restored snapshot, as durability would give it
    for i, engine in enumerate(honest):
        engine.import_entries(entries[9_000 + i :: 31], net.now)
    rounds = 0
    while len(cluster.digests()) > 1 and rounds < 30:
        net.run_for(INTERVAL)
        rounds += 1
    assert len(cluster.digests()) == 1, f"{len(cluster.digests())} roots after {rounds} rounds"
    assert all(len(e.state) == 10_000 for e in honest)
    assert net.stats.largest <= MAX_MESSAGE_BYTES
    net.run_for(3 * INTERVAL)  # the rumours die down: pushes carry the root alone
    honest[0].handle_timer(net.now + INTERVAL)
    pushes = [
        data for _, data in honest[0].messages_to_send(net.now) if decode(data).type is MessageType.PUSH
    ]
    assert pushes and max(len(p) for p in pushes) <= 1024
    print(
        f"10,000 writers: one root {rounds} rounds after 1,000 new writes, largest frame "
        f"{net.stats.largest} B, a push between agreeing agents {len(pushes[0])} B"
    )
