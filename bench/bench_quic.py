"""QUIC mesh benchmarks over real loopback sockets and real node processes.

- `quic_write_p50_s` / `quic_write_p99_s`: one write, from `put` returning at a random node until
  every node of a 32-process mesh (100 ms rounds) serves it, over 20 writes; the baseline is the
  same mesh (size, fanout, rounds) in one process over the in-memory transport, in engine time.
- `quic_msgs_vs_echo_ratio`: gossip frames per second one node process sustains (signed pushes of
  one new entry each, verified, merged, answered, instrumented) against what a bare aioquic echo
  server sustains for frames of the same size on the same machine in the same run.
"""

from __future__ import annotations

import asyncio
import random
import statistics
import tempfile
import time
import urllib.error
from pathlib import Path
from typing import Any

from aioquic.asyncio.protocol import QuicConnectionProtocol
from aioquic.asyncio.server import serve
from aioquic.quic.configuration import QuicConfiguration
from aioquic.quic.connection import QuicConnection
from aioquic.quic.events import QuicEvent, StreamDataReceived
from run import Figure, figure

from knhk_mesh import pki
from knhk_mesh.cluster import build_cluster
from knhk_mesh.core.config import MeshConfig
from knhk_mesh.core.messages import Join, Push
from knhk_mesh.core.wire import encode_signed_part, envelope_message, frame
from knhk_mesh.localcluster import ClusterSpec, LocalCluster
from knhk_mesh.transport.quic import ALPN, QuicTransport

NODES = 32
ROUND_S = 0.1
FANOUT = 4
WRITES = 20
LOAD_FRAMES = 800  # under the node's token bucket (burst 1000), so every frame is processed


def _memory_baseline(seed: int = 3) -> float:
    """Mean engine-clock time for a write to reach every agent of the same mesh in memory."""
    cluster = build_cluster(NODES, seed=seed, config=MeshConfig(fanout=FANOUT, round_interval=ROUND_S))
    net = cluster.network
    net.run_for(5 * ROUND_S)
    rng = random.Random(seed)
    times = []
    for w in range(WRITES):
        writer = cluster.honest[rng.randrange(NODES)]
        start = net.now
        entry = writer.write(f"bench/{w}", b"x" * 64, net.now)
        for _ in range(10_000):  # bounded: 10 s of engine time
            if cluster.all_have(entry.agent, entry.key, entry.version):
                break
            net.run_for(0.001)
        times.append(net.now - start)
        net.run_for(3 * ROUND_S)
    return statistics.fmean(times)


def _write_latency(work: Path) -> dict[str, Figure]:
    spec = ClusterSpec(nodes=NODES, fanout=FANOUT, round_interval=ROUND_S, validation="off", export=False)
    cluster = LocalCluster(work / "mesh", spec)
    rng = random.Random(7)
    latencies: list[float] = []
    try:
        cluster.prepare()
        cluster.start(timeout=300)
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:  # membership spreads before the clock starts
            st = cluster.statuses()
            if len(st) == NODES and all(s["peers"] >= NODES - 1 for s in st.values()):
                break
            time.sleep(1.0)
        for w in range(WRITES):
            writer = cluster.nodes[rng.randrange(NODES)]
            t0 = time.monotonic()  # CLOCK_MONOTONIC: one clock for every process of the machine
            doc = cluster.put(writer, f"bench/{w}", "x" * 64)
            path = f"/arrival?agent={doc['agent']}&version={doc['version']}"
            waiting = [n for n in cluster.nodes if n is not writer]
            arrived: list[float] = []
            for _ in range(300):  # bounded: about 60 s; each node is asked until it has the write
                time.sleep(0.2)
                still = []
                for node in waiting:
                    try:
                        arrived.append(cluster.call(node, "GET", path, timeout=5)["monotonic"] - t0)
                    except (urllib.error.URLError, OSError):
                        still.append(node)
                waiting = still
                if not waiting:
                    break
            latencies.append(max(arrived) if not waiting else float("inf"))
            time.sleep(3 * ROUND_S)
    finally:
        cluster.stop()
    latencies.sort()
    p50 = statistics.median(latencies)
    p99 = latencies[min(len(latencies) - 1, round(0.99 * (len(latencies) - 1)))]
    base = _memory_baseline()
    note = f"{NODES} processes, fanout {FANOUT}, {ROUND_S:g} s rounds, {WRITES} writes; baseline: in memory"
    return {
        "quic_write_p50_s": figure(p50, "s", base, goal="", note=note),
        "quic_write_p99_s": figure(p99, "s", base, goal="< 1 s"),
    }


class _Echo(QuicConnectionProtocol):
    def quic_event_received(self, event: QuicEvent) -> None:
        if isinstance(event, StreamDataReceived):
            self._quic.send_stream_data(event.stream_id, event.data)
            self.transmit()


class _Counter(QuicConnectionProtocol):
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.received = 0
        self.done: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self.expected = 0

    def quic_event_received(self, event: QuicEvent) -> None:
        if isinstance(event, StreamDataReceived):
            self.received += len(event.data)
            if self.received >= self.expected and not self.done.done():
                self.done.set_result(None)


async def _echo_rate(creds: pki.Credentials, frame_bytes: int) -> float:
    """Frames of `frame_bytes` per second through a bare aioquic echo server (same TLS, same loopback)."""
    server_cfg = QuicConfiguration(is_client=False, alpn_protocols=[ALPN])
    server_cfg.certificate, server_cfg.private_key = creds.node_cert, creds.node_key
    server = await serve("127.0.0.1", 0, configuration=server_cfg, create_protocol=_Echo)
    port = server._transport.get_extra_info("sockname")[1]  # type: ignore[union-attr]
    cfg = QuicConfiguration(is_client=True, alpn_protocols=[ALPN], server_name=pki.MESH_SERVER_NAME)
    cfg.cadata = creds.ca_pem
    loop = asyncio.get_running_loop()
    quic = QuicConnection(configuration=cfg)
    _, client = await loop.create_datagram_endpoint(lambda: _Counter(quic), local_addr=("127.0.0.1", 0))
    client.connect(("127.0.0.1", port))
    await client.wait_connected()
    payload = b"f" * frame_bytes
    client.expected = LOAD_FRAMES * frame_bytes
    stream = quic.get_next_available_stream_id()
    start = time.perf_counter()
    for _ in range(LOAD_FRAMES):
        quic.send_stream_data(stream, payload)
        client.transmit()
        await asyncio.sleep(0)
    await asyncio.wait_for(client.done, 60)
    elapsed = time.perf_counter() - start
    client.close()
    server.close()
    return LOAD_FRAMES / elapsed


async def _node_rate(cluster: LocalCluster, creds: pki.Credentials) -> tuple[float, int]:
    """Signed pushes per second the node process takes in (verified, merged, answered, instrumented)."""
    node = cluster.nodes[0]
    me = creds.identity
    sender = QuicTransport(creds, ("127.0.0.1", 0), on_frame=lambda a, d: None)
    address = await sender.start()
    target = ("127.0.0.1", node.quic_port)
    recipient = bytes.fromhex(node.node_id)
    nonce = time.time_ns() // 1000

    def framed(body: Any, to: bytes) -> bytes:
        nonlocal nonce
        nonce += 1
        signed = encode_signed_part(me.agent_id, to, nonce, body)
        return frame(signed, me.sign(envelope_message(signed)))

    sender.send(target, framed(Join(me.public_key, address[0], address[1], "local"), bytes(8)))
    for _ in range(200):
        await asyncio.sleep(0.05)
        if cluster.call(node, "GET", "/status")["peers"] >= 1:
            break
    frames = []
    for v in range(1, LOAD_FRAMES + 1):
        entry = me.sign_entry(v, f"load/{v}", b"x" * 64)
        frames.append(framed(Push(bytes(16), (), (entry,)), recipient))
    before = cluster.call(node, "GET", "/status")["messages_received"]
    start = time.perf_counter()
    for data in frames:
        sender.send(target, data)
        await asyncio.sleep(0)
    got = before
    for _ in range(6000):  # bounded: 60 s
        await asyncio.sleep(0.01)
        got = cluster.call(node, "GET", "/status")["messages_received"]
        if got - before >= LOAD_FRAMES:
            break
    elapsed = time.perf_counter() - start
    await sender.close()
    return (got - before) / elapsed, len(frames[0])


def _msgs_vs_echo(work: Path) -> dict[str, Figure]:
    spec = ClusterSpec(nodes=1, fanout=1, round_interval=ROUND_S, validation="off", export=False)
    cluster = LocalCluster(work / "one", spec)
    try:
        cluster.prepare()
        cluster.start(timeout=120)
        pki.issue_node(cluster.pki_dir, "loadgen", cluster.pki_dir)
        creds = pki.Credentials(
            pki.PkiPaths(
                cluster.pki_dir / pki.CA_CERT,
                cluster.pki_dir / "loadgen.pem",
                cluster.pki_dir / "loadgen.key",
                cluster.pki_dir / pki.CA_CRL,
            )
        )
        node_rate, size = asyncio.run(_node_rate(cluster, creds))
    finally:
        cluster.stop()
    echo = asyncio.run(_echo_rate(creds, size))
    return {
        "quic_msgs_vs_echo_ratio": figure(
            node_rate,
            "msg/s",
            echo,
            goal="",
            note=f"one node process vs bare aioquic echo of {size}-byte frames (msg/s, same run)",
        )
    }


def run() -> dict[str, Figure]:
    with tempfile.TemporaryDirectory(prefix="knhk-bench-quic.") as tmp:
        work = Path(tmp)
        out = _msgs_vs_echo(work)
        out.update(_write_latency(work))
    return out
