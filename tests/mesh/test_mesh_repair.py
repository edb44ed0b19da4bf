"""Anti-entropy repairs any difference: gaps left by relays, late joiners and healed partitions, all
while writes go on, within a stated number of rounds; the bytes spent are reported beside what differed.

Bounds stated here (k = 10, 100 ms rounds, memory transport): once writes stop, every honest agent
holds every accepted write and all roots agree within REPAIR_ROUNDS rounds. Repair bytes are every
sync request and reply frame sent (whole frames, as `repair["bytes_sent"]` counts them); each scenario
prints one line (`pytest -s`) and records them as properties (`--junitxml`), beside what differed.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Iterable

from knhk_mesh.adversary import WithholdingRelay, withholding_relay
from knhk_mesh.cluster import Cluster, build_cluster
from knhk_mesh.core.config import MeshConfig
from knhk_mesh.core.engine import MeshEngine
from knhk_mesh.core.messages import Entry, MessageType
from knhk_mesh.core.security import Identity
from knhk_mesh.core.wire import MAX_MESSAGE_BYTES, decode, encoded_entry_size

INTERVAL = 0.1
REPAIR_ROUNDS = 10

Recorder = Callable[[str, object], None]


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


def _repair_bytes(engines: Iterable[MeshEngine]) -> int:
    return sum(e.repair["bytes_sent"] for e in engines)


def _lacked_bytes(engines: list[MeshEngine]) -> int:
    """Bytes of what differed: for each agent, the encoded size of entries some other agent holds."""
    union = {(e.agent, e.key): e for engine in engines for e in engine.state.entries()}
    return sum(
        encoded_entry_size(e)
        for engine in engines
        for (agent, key), e in union.items()
        if engine.state.get(agent, key) != e
    )


def _report(record: Recorder, scenario: str, rounds: int, repair: int, differed: int) -> float:
    """One line per scenario, and the same figures as test properties; returns repair / differed."""
    ratio = repair / max(1, differed)
    print(
        f"\n{scenario}: one root and every write {rounds} rounds after writes stopped (bound "
        f"{REPAIR_ROUNDS}); repair sent {repair} B for {differed} B that differed (ratio {ratio:.2f})"
    )
    record("rounds_after_writes_stopped", rounds)
    record("round_bound", REPAIR_ROUNDS)
    record("repair_bytes", repair)
    record("differed_bytes", differed)
    record("repair_ratio", round(ratio, 3))
    return ratio


def test_gap_making_relays_cannot_keep_honest_agents_apart(record_property: Recorder) -> None:
    """10 of 31 agents (f < n/3) forward only the newest entry of each owner in every frame; what
    differed is what they withheld (each entry counted once per agent it was kept from)."""
    cluster = build_cluster(31, seed=21, config=MeshConfig(), byzantine=[withholding_relay] * 10)
    net, honest = cluster.network, cluster.honest
    relays = [b for b in cluster.byzantine if isinstance(b, WithholdingRelay)]
    writes: list[Entry] = []
    for r in range(6):  # every honest agent writes several entries per round: gaps are easy to make
        for tag in ("a", "b", "c"):
            writes += _write_round(honest, f"{tag}{r}", net.now)
        net.run_for(INTERVAL)
    rounds = _settle(cluster, writes)
    withheld = sum(r.withheld_bytes for r in relays)
    assert withheld > 0  # the relays did make gaps
    repair = _repair_bytes([*honest, *(r.engine for r in relays)])
    ratio = _report(record_property, "gap-making relays (10 of 31)", rounds, repair, withheld)
    # most withheld entries also came by honest rumour: repair costs a fraction of what was withheld
    assert 0 < ratio <= 1.0
    # withholding is no offence a correct peer could be told from: nobody honest is penalised
    assert all(h.registry.reputation(o.agent_id) == 1.0 for h in honest for o in honest if o is not h)


def test_a_late_joiner_gets_every_write_while_writes_go_on(record_property: Recorder) -> None:
    cluster = build_cluster(31, seed=22, config=MeshConfig())
    net, honest = cluster.network, list(cluster.honest)
    writes: list[Entry] = []
    for r in range(12):
        writes += _write_round(honest, f"before{r}", net.now)
        if r % 5 == 4:
            net.run_for(INTERVAL)
    net.run_for(5 * INTERVAL)
    assert len(cluster.digests()) == 1
    lacked = sum(encoded_entry_size(e) for e in honest[0].state.entries())
    spent_before = _repair_bytes(honest)
    joiner = cluster.add_agent(seed=99)
    for r in range(6):  # a third of the mesh keeps writing while the joiner catches up
        writes += _write_round(honest[:10], f"during{r}", net.now)
        net.run_for(INTERVAL)
    rounds = _settle(cluster, writes)
    assert len(joiner.state) == len(honest[0].state) == 31 * 12 + 10 * 6
    assert len(joiner.registry) >= 20  # it met the mesh through challenges, not just the seed
    own = joiner.repair["bytes_sent"] + joiner.repair["bytes_received"]  # its pulls and their answers
    ratio = _report(record_property, "late joiner (31 agents, 10 writing)", rounds, own, lacked)
    # catching up on 372 entries plus the concurrent ones costs about what it lacked, not multiples
    assert 0 < ratio <= 2.0
    # the whole mesh's repair over the same time, the agents that pull concurrent writes included
    everyone = _repair_bytes(cluster.honest) - spent_before
    record_property("mesh_repair_bytes", everyone)
    print(f"late joiner: the whole mesh sent {everyone} B of repair meanwhile ({everyone / lacked:.2f}x)")
    assert everyone <= 8 * lacked


def test_a_healed_partition_with_writes_on_both_sides_converges(record_property: Recorder) -> None:
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
    differed = _lacked_bytes(honest)  # each side lacks the other side's writes
    spent_before = _repair_bytes(honest)
    net.heal()
    for r in range(5):  # writes go on across the heal
        writes += _write_round(honest[::4], f"healed{r}", net.now)
        net.run_for(INTERVAL)
    rounds = _settle(cluster, writes)
    repair = _repair_bytes(honest) - spent_before
    ratio = _report(record_property, "healed partition (20 | 20, 8 writing)", rounds, repair, differed)
    # every agent pulls while roots differ, so writes across the heal are fetched by rumour and repair
    # alike: a small multiple of what differed, not the whole state again per agent
    assert 0 < ratio <= 4.0


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
