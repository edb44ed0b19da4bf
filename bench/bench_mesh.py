"""Mesh benchmarks: message cost vs bare signature checks, registry size and sampling at 1M peers,
rounds to full coverage at 1,000 agents vs an idealised push-pull model measured in the same run."""

from __future__ import annotations

import random
import statistics
import time
import tracemalloc
from typing import Any

import msgpack
from nacl.signing import VerifyKey
from run import Figure, at_most, figure, value_at_most

from knhk_mesh.cluster import build_cluster
from knhk_mesh.core.config import MeshConfig
from knhk_mesh.core.engine import MeshEngine
from knhk_mesh.core.messages import MessageType, SyncReply
from knhk_mesh.core.registry import PeerRegistry
from knhk_mesh.core.security import Identity
from knhk_mesh.core.wire import decode, encode_signed_part, encoded_entry_size, envelope_message, frame
from knhk_mesh.telemetry import MeshTelemetry
from knhk_otel.runtime.config import TelemetryConfig
from knhk_otel.runtime.providers import build_providers

ENTRIES_PER_MESSAGE = 8  # a delta usually carries several entries; 2 is also reported, for the worst case
MESSAGES = 400


def _message_vs_verify(entries_per_message: int = ENTRIES_PER_MESSAGE) -> Figure:
    rng = random.Random(1)
    sender, receiver_id = Identity.generate(rng), Identity.generate(rng)
    telemetry = build_providers(TelemetryConfig(validation="off", export=False))
    hub = MeshTelemetry(telemetry.tracer_provider, telemetry.meter_provider, telemetry.logger_provider)
    best_engine, best_bare = float("inf"), float("inf")
    for attempt in range(5):
        receiver = MeshEngine(
            receiver_id,
            ("127.0.0.1", 2),
            rng=random.Random(2),
            instrumentation=hub.for_node(receiver_id.hex_id),
        )
        receiver.add_peer(sender.agent_id, sender.public_key, ("127.0.0.1", 1))
        frames = []
        version = 0
        for n in range(MESSAGES):
            entries = []
            for _ in range(entries_per_message):
                version += 1
                entries.append(sender.sign_entry(version, f"key/{version % 50}", b"v" * 32))
            signed = encode_signed_part(
                sender.agent_id, receiver_id.agent_id, n + 1, SyncReply(bytes(16), (), tuple(entries))
            )
            frames.append(frame(signed, sender.sign(envelope_message(signed))))
        # the bare baseline: PyNaCl verification of the same signatures over the same bytes
        checks: list[tuple[bytes, bytes]] = []
        for data in frames:
            env = decode(data)
            checks.append((envelope_message(env.signed), env.signature))
            assert isinstance(env.body, SyncReply)
            checks.extend((e.signed, e.signature) for e in env.body.entries)
        key = VerifyKey(sender.public_key)
        start = time.perf_counter()
        for message, signature in checks:
            key.verify(message, signature)
        best_bare = min(best_bare, time.perf_counter() - start)
        start = time.perf_counter()
        for i, data in enumerate(frames):
            receiver.receive(("127.0.0.1", 1), data, 1.0 + i * 0.01)
        best_engine = min(best_engine, time.perf_counter() - start)
        assert receiver.state.version_of(sender.agent_id) == version, attempt
        while receiver.next_event() is not None:
            pass
    telemetry.shutdown()
    per_message = best_engine / MESSAGES * 1e6
    return figure(
        per_message,
        "µs",
        best_bare / MESSAGES * 1e6,
        goal=at_most(1.5),
        note=f"one signed sync reply of {entries_per_message} entries end to end (decode, "
        f"{entries_per_message + 1} verifications, merge, spans/metrics on SDK providers without "
        "exporters) vs bare PyNaCl verify of the same signatures; best of 5",
    )


class _SlotsPeer:
    __slots__ = ("address", "agent_id", "last_seen", "public_key", "region", "reputation", "rtt")

    def __init__(self, i: int) -> None:
        self.agent_id = i.to_bytes(8, "big")
        self.address = (f"10.{i >> 16 & 255}.{i >> 8 & 255}.{i & 255}", 4000 + i % 1000)
        self.public_key = i.to_bytes(32, "big")
        self.last_seen = float(i)
        self.reputation = 1.0
        self.region = "eu"
        self.rtt = 0.0


def _peer(i: int) -> tuple[bytes, tuple[str, int], bytes]:
    return (
        i.to_bytes(8, "big"),
        (f"10.{i >> 16 & 255}.{i >> 8 & 255}.{i & 255}", 4000 + i % 1000),
        i.to_bytes(32, "big"),
    )


def _registry_figures() -> dict[str, Figure]:
    n = 1_000_000
    tracemalloc.start()
    base = tracemalloc.get_traced_memory()[0]
    reg = PeerRegistry()
    for i in range(n):
        agent, addr, key = _peer(i)
        reg.register(agent, addr, key, region="eu", now=float(i))
    columnar = (tracemalloc.get_traced_memory()[0] - base) / n
    sample = 100_000  # the per-object baseline, measured on a tenth of the peers
    base = tracemalloc.get_traced_memory()[0]
    objects = {p.agent_id: p for p in (_SlotsPeer(i) for i in range(sample))}
    slots = (tracemalloc.get_traced_memory()[0] - base) / sample
    tracemalloc.stop()
    del objects
    small = PeerRegistry()
    for i in range(1000):
        small.register(*_peer(i)[:2], _peer(i)[2])
    rng = random.Random(3)

    def timed(r: PeerRegistry) -> float:
        best = float("inf")
        for _ in range(5):
            start = time.perf_counter()
            for _ in range(20_000):
                r.random_peers(10, rng, min_reputation=0.5)
            best = min(best, time.perf_counter() - start)
        return best / 20_000 * 1e6

    t_small, t_big = timed(small), timed(reg)
    return {
        "registry_bytes_per_peer_1m": figure(
            columnar,
            "B",
            slots,
            goal=value_at_most(256, "B"),
            note="tracemalloc over 1,000,000 registered peers; baseline: one __slots__ object per peer "
            "(+ its dict entry), the seed's ~1 KB design",
        ),
        "random_peers_1m_vs_1k_ratio": figure(
            t_big, "µs", t_small, goal=at_most(1.2), note="random_peers(10) at 1M peers vs at 1k peers"
        ),
    }


def _ideal_push_pull_rounds(n: int, k: int, seed: int) -> int:
    """Synchronous push-pull: each round every agent exchanges state with k random others."""
    rng = random.Random(seed)
    informed = bytearray(n)
    informed[0] = 1
    rounds = 0
    while not all(informed) and rounds < 100:
        rounds += 1
        nxt = bytearray(informed)
        for a in range(n):
            for b in rng.sample(range(n), k):
                if informed[a] or informed[b]:
                    nxt[a] = nxt[b] = 1
        informed = nxt
    return rounds


def _engine_rounds(n: int, k: int, seed: int) -> int:
    interval = 0.1
    cluster = build_cluster(
        n, seed=seed, config=MeshConfig(fanout=k, round_interval=interval, jitter_start=False)
    )
    net = cluster.network
    entry = cluster.honest[0].write("bench", b"x", net.now)
    rounds = 0
    while not cluster.all_have(entry.agent, entry.key, entry.version) and rounds < 30:
        net.run_for(interval)
        rounds += 1
    return rounds


def _repair_bytes_ratio() -> Figure:
    """A late joiner catching up on a quiet mesh: every byte to and from it until its root agrees."""
    interval = 0.1
    cluster = build_cluster(31, seed=41, config=MeshConfig(round_interval=interval))
    net = cluster.network
    for r in range(60):  # 1,860 entries of about 150 bytes, written over 12 rounds
        for engine in cluster.honest:
            engine.write(f"bench/{r}", bytes(48), net.now)
        if r % 5 == 4:
            net.run_for(interval)
    net.run_for(10 * interval)
    assert len(cluster.digests()) == 1
    lacked = sum(encoded_entry_size(e) for e in cluster.honest[0].state.entries())
    joiner = cluster.add_agent(seed=4242)
    rounds = 0
    while joiner.state.digest != cluster.honest[0].state.digest and rounds < 100:
        net.run_for(interval)
        rounds += 1
    assert joiner.state.digest == cluster.honest[0].state.digest, "the late joiner never caught up"
    sent = net.stats.bytes_by_node[joiner.address]
    return figure(
        sent,
        "B",
        lacked,
        goal=at_most(1.5),
        note=f"late joiner in a 31-agent mesh holding {len(joiner.state)} entries: all bytes to and from "
        f"it until its root agrees ({rounds} rounds: join, challenges, pushes, pulls) vs the encoded "
        "size of the entries it lacked",
    )


def _frame_bytes_10k_writers() -> Figure:
    """One push between two agents whose states agree on 10,000 writers' entries, against what a
    version-1 frame spent on its version vector (22 B per writer) in the same state."""
    rng = random.Random(43)
    writers = [Identity.generate(rng) for _ in range(10_000)]
    entries = [w.sign_entry(1, "status", b"up") for w in writers]
    a_id, b_id = Identity.generate(rng), Identity.generate(rng)
    a = MeshEngine(a_id, ("127.0.0.1", 1), rng=random.Random(1), config=MeshConfig(jitter_start=False))
    a.add_peer(b_id.agent_id, b_id.public_key, ("127.0.0.1", 2))
    a.state.apply_all(entries)
    a.handle_timer(0.0)
    a.handle_timer(1.0)
    pushes = [d for _, d in a.messages_to_send(1.0) if decode(d).type is MessageType.PUSH]
    v1_vector = len(msgpack.packb([[w.agent_id, 1, bytes(8)] for w in writers], use_bin_type=True))
    return figure(
        len(pushes[0]),
        "B",
        v1_vector,
        goal=value_at_most(1024, "B"),
        note="a round's push between agents agreeing on 10,000 writers' entries; baseline: the version "
        "vector alone that a version-1 push carried in the same state",
    )


def run() -> dict[str, Any]:
    figures: dict[str, Figure] = {
        "message_vs_verify_ratio": _message_vs_verify(),
        "message_vs_verify_ratio_2_entries": _message_vs_verify(2),
    }
    figures.update(_registry_figures())
    figures["repair_bytes_ratio"] = _repair_bytes_ratio()
    figures["frame_bytes_10k_writers"] = _frame_bytes_10k_writers()
    seeds = range(20)
    real = statistics.mean(_engine_rounds(1000, 10, s) for s in seeds)
    ideal = statistics.mean(_ideal_push_pull_rounds(1000, 10, s) for s in seeds)
    figures["rounds_1k_k10"] = figure(
        real,
        "rounds",
        ideal,
        goal=value_at_most(4.0, "rounds"),
        note="mean rounds until all 1,000 agents hold a write (real engines, lock-step rounds, 20 seeds); "
        "baseline: idealised synchronous push-pull, same n, k and seeds",
    )
    return figures
