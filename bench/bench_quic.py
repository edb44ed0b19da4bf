"""QUIC mesh benchmarks over real loopback sockets and real node processes.

- `quic_write_p50_s` / `quic_write_p99_s`: one write, from the `put` call at a random node (admin
  request and durable commit included) until every node of a 32-process mesh (100 ms rounds) holds
  it, over 20 writes; the baseline is the same mesh (size, fanout, rounds) in one process over the
  in-memory transport, in engine time. The note gives the median time of the `put` call alone.
- `quic_msgs_vs_echo_ratio`: gossip frames per second one node process sustains (signed pushes of
  one new entry each, verified, merged, answered, instrumented) against what a bare aioquic echo
  server sustains for frames of the same size on the same machine in the same run.

A loaded machine must not hang `make bench`: every wait has a deadline, every node process is stopped
in a `finally`, and a part that cannot finish in its budget prints one NOT MEASURED line saying why
instead of a figure.
"""

from __future__ import annotations

import asyncio
import math
import random
import statistics
import tempfile
import time
import urllib.error
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from aioquic.asyncio.protocol import QuicConnectionProtocol
from aioquic.asyncio.server import serve
from aioquic.quic.configuration import QuicConfiguration
from aioquic.quic.connection import QuicConnection
from aioquic.quic.events import QuicEvent, StreamDataReceived
from run import NOT_MEASURED, Figure, figure, value_below

from knhk_mesh import pki
from knhk_mesh.cluster import build_cluster
from knhk_mesh.core.config import MeshConfig
from knhk_mesh.core.engine import MeshEngine
from knhk_mesh.core.messages import Push
from knhk_mesh.core.wire import encode_signed_part, envelope_message, frame
from knhk_mesh.localcluster import ClusterError, ClusterSpec, LocalCluster, NodeProcess
from knhk_mesh.transport.quic import ALPN, QuicTransport

NODES = 32
ROUND_S = 0.1
FANOUT = 4
WRITES = 20
LOAD_FRAMES = 800  # under the node's token bucket (burst 1000), so every frame is processed
START_BUDGET_S = 600.0  # 32 Python processes starting (a batch at a time) on a loaded 2-core machine
MEMBERSHIP_BUDGET_S = 120.0
PUT_TRIES = 5  # nodes asked in turn when a put is refused as read-only
WRITE_BUDGET_S = 30.0  # one write that has not reached every node by then counts as never (inf)
LATENCY_BUDGET_S = 1200.0  # the whole write-latency part, start-up included
RATE_BUDGET_S = 60.0  # each of the two rate measurements


class NotMeasured(Exception):
    """A part could not be measured in its budget; the message says why."""


def _not_measured(names: str, reason: str) -> None:
    line = f"{names}: {reason}"
    NOT_MEASURED.append(line)
    print(f"# NOT MEASURED: {line}", flush=True)


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


def _arrivals(cluster: LocalCluster, nodes: list[NodeProcess], path: str) -> dict[str, float]:
    """The arrival time (monotonic) each node reports for a write, for the nodes that have it."""

    def one(node: NodeProcess) -> tuple[str, float | None]:
        try:
            return node.name, float(cluster.call(node, "GET", path, timeout=5)["monotonic"])
        except (urllib.error.URLError, OSError, ValueError, KeyError):
            return node.name, None

    with ThreadPoolExecutor(max_workers=8) as pool:
        return {name: t for name, t in pool.map(one, nodes) if t is not None}


def _put(
    cluster: LocalCluster, rng: random.Random, key: str, refusals: list[str]
) -> tuple[NodeProcess, float, dict[str, Any]]:
    """One put at a random node, timed from the call: (writer, start, reply). A node that believes
    itself cut off from the quorum refuses writes (503, read-only); on a starved machine its partition
    detector can think so, and the write is then made at another node (refusals are counted)."""
    for _ in range(PUT_TRIES):  # bounded
        writer = cluster.nodes[rng.randrange(NODES)]
        t0 = time.monotonic()  # CLOCK_MONOTONIC: one clock for every process of the machine
        try:
            return writer, t0, cluster.put(writer, key, "x" * 64)
        except urllib.error.HTTPError as exc:
            if exc.code != 503:
                raise
            refusals.append(f"{writer.name}: {exc.read().decode(errors='replace')[:200]}")
    raise NotMeasured(f"{PUT_TRIES} nodes in a row refused a put as read-only: {refusals[-PUT_TRIES:]}")


def _write_latency(work: Path) -> dict[str, Figure]:
    spec = ClusterSpec(nodes=NODES, fanout=FANOUT, round_interval=ROUND_S, validation="off", export=False)
    cluster = LocalCluster(work / "mesh", spec)
    rng = random.Random(7)
    latencies: list[float] = []
    puts: list[float] = []
    refusals: list[str] = []
    started = time.monotonic()
    try:
        cluster.prepare()
        try:
            cluster.start(timeout=START_BUDGET_S, batch=8)
        except ClusterError as exc:
            raise NotMeasured(f"the {NODES}-process mesh did not start: {exc}") from None
        if not cluster.wait_for_membership(MEMBERSHIP_BUDGET_S):  # membership spreads before the clock
            raise NotMeasured(f"membership did not spread to all {NODES} nodes in {MEMBERSHIP_BUDGET_S:g} s")
        for w in range(WRITES):
            if time.monotonic() - started > LATENCY_BUDGET_S:
                raise NotMeasured(f"only {w} of {WRITES} writes timed within {LATENCY_BUDGET_S:g} s")
            writer, t0, doc = _put(cluster, rng, f"bench/{w}", refusals)
            puts.append(time.monotonic() - t0)
            path = f"/arrival?agent={doc['agent']}&version={doc['version']}"
            waiting = [n for n in cluster.nodes if n is not writer]
            arrived: dict[str, float] = {}
            deadline = t0 + WRITE_BUDGET_S
            while waiting and time.monotonic() < deadline:  # bounded by the write's budget
                time.sleep(0.25)  # the nodes stamp the arrival themselves: polling adds no delay
                arrived.update(_arrivals(cluster, waiting, path))
                waiting = [n for n in waiting if n.name not in arrived]
            latencies.append(max(arrived.values()) - t0 if not waiting else math.inf)
            time.sleep(3 * ROUND_S)
    finally:
        cluster.stop()
    latencies.sort()
    p50 = statistics.median(latencies)
    p99 = latencies[min(len(latencies) - 1, round(0.99 * (len(latencies) - 1)))]
    base = _memory_baseline()
    lost = sum(1 for t in latencies if math.isinf(t))
    note = (
        f"{NODES} processes, fanout {FANOUT}, {ROUND_S:g} s rounds, {WRITES} writes"
        f"{f' ({lost} not everywhere within {WRITE_BUDGET_S:g} s)' if lost else ''}; put alone: median "
        f"{statistics.median(puts):.3f} s"
        f"{f'; {len(refusals)} puts refused (read-only), retried at another node' if refusals else ''}"
        "; baseline: in memory"
    )
    return {
        "quic_write_p50_s": figure(p50, "s", base, note=note),
        "quic_write_p99_s": figure(p99, "s", base, goal=value_below(1, "s")),
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
    await asyncio.wait_for(client.wait_connected(), 10)
    payload = b"f" * frame_bytes
    client.expected = LOAD_FRAMES * frame_bytes
    stream = quic.get_next_available_stream_id()
    start = time.perf_counter()
    for _ in range(LOAD_FRAMES):
        quic.send_stream_data(stream, payload)
        client.transmit()
        await asyncio.sleep(0)
    try:
        await asyncio.wait_for(client.done, RATE_BUDGET_S)
    except TimeoutError:
        raise NotMeasured(
            f"the bare aioquic echo returned {client.received} of {client.expected} bytes "
            f"in {RATE_BUDGET_S:g} s"
        ) from None
    finally:
        client.close()
        server.close()
    return LOAD_FRAMES / (time.perf_counter() - start)


async def _node_rate(cluster: LocalCluster, creds: pki.Credentials) -> tuple[float, int]:
    """Signed pushes per second the node process takes in (verified, merged, answered, instrumented).

    The load generator is a real engine over the real transport, so it joins and answers the node's
    address challenge like any member; then it sends hand-made pushes of one new entry each."""
    node = cluster.nodes[0]
    me = creds.identity
    target = ("127.0.0.1", node.quic_port)
    engine: MeshEngine | None = None

    def heard(address: tuple[str, int], data: bytes) -> None:
        if engine is not None:
            engine.receive(address, data, time.monotonic())
            flush()

    sender = QuicTransport(creds, ("127.0.0.1", 0), on_frame=heard)

    def flush() -> None:
        assert engine is not None
        for address, data in engine.messages_to_send(time.monotonic()):
            sender.send(address, data)

    def status() -> dict[str, Any]:
        doc: dict[str, Any] = cluster.call(node, "GET", "/status", timeout=5)
        return doc

    try:
        address = await sender.start()
        base = time.time_ns() // 1000
        engine = MeshEngine(
            me, address, rng=random.Random(5), config=MeshConfig(nonce_base=base), seeds=(target,)
        )
        engine.start(time.monotonic())
        flush()
        for _ in range(200):  # bounded: about 10 s (the admin call runs off the loop the sender needs)
            await asyncio.sleep(0.05)
            if (await asyncio.to_thread(status))["peers"] >= 1:
                break
        else:
            raise NotMeasured("the load generator was not admitted by the node in 10 s")
        recipient = bytes.fromhex(node.node_id)
        frames = []
        for v in range(1, LOAD_FRAMES + 1):  # nonces above any the engine will use in this run
            entry = me.sign_entry(v, f"load/{v}", b"x" * 64)
            signed = encode_signed_part(
                me.agent_id, recipient, base + 10**9 + v, Push(engine.state.digest, (entry,))
            )
            frames.append(frame(signed, me.sign(envelope_message(signed))))
        before = (await asyncio.to_thread(status))["messages_received"]
        start = time.perf_counter()
        for data in frames:
            sender.send(target, data)
            await asyncio.sleep(0)
        got = before
        deadline = time.monotonic() + RATE_BUDGET_S
        while got - before < LOAD_FRAMES and time.monotonic() < deadline:  # bounded by the budget
            await asyncio.sleep(0.02)
            got = (await asyncio.to_thread(status))["messages_received"]
        elapsed = time.perf_counter() - start
    finally:
        await sender.close()
    if got - before < LOAD_FRAMES:
        raise NotMeasured(f"the node took in {got - before} of {LOAD_FRAMES} frames in {RATE_BUDGET_S:g} s")
    return (got - before) / elapsed, len(frames[0])


def _msgs_vs_echo(work: Path) -> dict[str, Figure]:
    spec = ClusterSpec(nodes=1, fanout=1, round_interval=ROUND_S, validation="off", export=False)
    cluster = LocalCluster(work / "one", spec)
    try:
        cluster.prepare()
        try:
            cluster.start(timeout=START_BUDGET_S)
        except ClusterError as exc:
            raise NotMeasured(f"the node did not start: {exc}") from None
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
            note=f"one node process vs bare aioquic echo of {size}-byte frames (msg/s, same run)",
        )
    }


def _part(names: str, measure: Callable[[Path], dict[str, Figure]], work: Path) -> dict[str, Figure]:
    """One part's figures, or one NOT MEASURED line (its node processes are stopped either way)."""
    try:
        return measure(work)
    except NotMeasured as exc:
        _not_measured(names, f"{exc} (machine shared and loaded)")
    except (ClusterError, OSError, urllib.error.URLError, TimeoutError) as exc:
        _not_measured(names, f"{type(exc).__name__}: {exc}")
    return {}


def run() -> dict[str, Figure]:
    with tempfile.TemporaryDirectory(prefix="knhk-bench-quic.") as tmp:
        work = Path(tmp)
        out = _part("quic_msgs_vs_echo_ratio", _msgs_vs_echo, work)
        out.update(_part("quic_write_p50_s, quic_write_p99_s", _write_latency, work))
    return out
