"""N `knhk-mesh node` processes on 127.0.0.1: PKI, configs, start, admin calls, kill, restart, stop.

Used by `knhk-mesh up --transport quic`, the multi-process tests and the QUIC bench. Every wait is
bounded; every process started is stopped (SIGTERM, then SIGKILL) by `stop()`.
"""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from knhk_mesh import pki
from knhk_mesh.adversary import Attack
from knhk_mesh.node_config import WITHHOLDING_RELAY, dump_node_config

HOST = "127.0.0.1"
EXTRA_SEEDS = 2  # besides node 0, a node joins through up to this many random nodes started before it


def region_names(nodes: int, regions: int) -> tuple[str, ...]:
    """Node i's region when `nodes` are spread round-robin over `regions` ("" for all: one region)."""
    return tuple(f"region-{i % regions}" for i in range(nodes)) if regions > 1 else ()


def wait_until(check: Callable[[], bool], timeout: float, poll: float = 0.5) -> bool:
    """Poll `check` until it holds or `timeout` seconds pass (then one last look); never unbounded."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return True
        time.sleep(poll)
    return check()


class ClusterError(Exception):
    """A node did not start or answer in time; the message names it and points at its log."""


@dataclass
class NodeProcess:
    index: int
    name: str
    config: Path
    log: Path
    ports_file: Path
    attack: Attack | None
    withholding: bool = False  # a gap-making relay (Byzantine, but not an attacker of frames)
    process: subprocess.Popen[bytes] | None = None
    quic_port: int = 0
    admin_port: int = 0
    prometheus_port: int = 0  # its metrics endpoint for Prometheus (0: none)
    node_id: str = ""
    starts: int = 0

    @property
    def honest(self) -> bool:
        return self.attack is None and not self.withholding

    @property
    def address(self) -> str:
        return f"{HOST}:{self.quic_port}"

    @property
    def metrics_address(self) -> str | None:
        """`host:port` of the node's Prometheus endpoint, when it serves one."""
        return f"{HOST}:{self.prometheus_port}" if self.prometheus_port else None

    @property
    def alive(self) -> bool:
        return self.process is not None and self.process.poll() is None


@dataclass
class ClusterSpec:
    nodes: int
    attacks: Sequence[Attack | None] = ()  # one per node (None = honest); shorter = the rest honest
    withholding: Sequence[int] = ()  # indexes of nodes that relay with gaps (`byzantine: withholding_relay`)
    fanout: int = 4
    round_interval: float = 0.25
    stale_timeout: float = 30.0
    idle_timeout: float = 10.0
    validation: str = "off"  # the nodes' in-process validation (live-check validates what they export)
    export: bool = False
    region: str = "local"
    regions: Sequence[str] = ()  # one per node (overrides `region`), e.g. a three-region mesh
    peer_selection: str = "random"
    nearest_fraction: float = 0.2
    rebalance_every_rounds: int = 100
    topology: str = "single_region"
    env: Mapping[str, str] = field(default_factory=dict)
    prometheus: bool = False  # each node also serves its metrics for Prometheus on a free port


class LocalCluster:
    def __init__(self, workdir: Path, spec: ClusterSpec) -> None:
        self.workdir = workdir
        self.spec = spec
        self.pki_dir = workdir / "pki"
        self.nodes: list[NodeProcess] = []
        self.rng = random.Random()

    # --- set-up -----------------------------------------------------------------------------------

    def prepare(self) -> None:
        """The mesh CA and one certificate, data folder and log per node."""
        self.workdir.mkdir(parents=True, exist_ok=True)
        if not (self.pki_dir / pki.CA_KEY).exists():
            pki.init_ca(self.pki_dir)
        for _ in range(self.spec.nodes):
            self._new_node()

    def _new_node(self) -> NodeProcess:
        i = len(self.nodes)
        attacks = list(self.spec.attacks)
        name = f"node-{i:02d}"
        issued = pki.issue_node(self.pki_dir, name, self.pki_dir)
        node = NodeProcess(
            index=i,
            name=name,
            config=self.workdir / f"{name}.yaml",
            log=self.workdir / f"{name}.log",
            ports_file=self.workdir / f"{name}.ports.json",
            attack=attacks[i] if i < len(attacks) else None,
            withholding=i in self.spec.withholding,
            node_id=issued.agent_id,
        )
        self.nodes.append(node)
        return node

    def add_node(self, timeout: float = 60.0, *, among: Sequence[NodeProcess] | None = None) -> NodeProcess:
        """A late joiner: a new certified honest node that joins through node 0 and a few others (of
        `among`, by default every node started before it)."""
        node = self._new_node()
        self._spawn(node, self.seeds_for(node, self.nodes[:-1] if among is None else among))
        self._await_ports(node, time.monotonic() + timeout)
        return node

    def seeds_for(self, node: NodeProcess, started: Sequence[NodeProcess]) -> tuple[int, ...]:
        """Node 0 (when it is not `node`) and up to EXTRA_SEEDS random other live nodes of `started`
        (more when node 0 is the one joining), so no single node's absence keeps a node out."""
        first = self.nodes[0]
        others = [
            n.quic_port for n in started if n is not node and n is not first and n.alive and n.quic_port
        ]
        extra = EXTRA_SEEDS if node is not first else EXTRA_SEEDS + 1
        picked = self.rng.sample(others, min(extra, len(others)))
        return ((first.quic_port,) if node is not first else ()) + tuple(picked)

    def _write_config(self, node: NodeProcess, seeds: Sequence[int]) -> None:
        spec = self.spec
        doc: dict[str, Any] = {
            "identity": {
                "key": str(self.pki_dir / f"{node.name}.key"),
                "certificate": str(self.pki_dir / f"{node.name}.pem"),
                "ca": str(self.pki_dir / pki.CA_CERT),
                "crl": str(self.pki_dir / pki.CA_CRL),
            },
            "listen": f"{HOST}:{node.quic_port}",
            "admin": f"{HOST}:0",
            "seeds": [f"{HOST}:{p}" for p in seeds],
            "region": spec.regions[node.index] if spec.regions else spec.region,
            "peer_selection": spec.peer_selection,
            "nearest_fraction": spec.nearest_fraction,
            "rebalance_every_rounds": spec.rebalance_every_rounds,
            "topology": spec.topology,
            "fanout": spec.fanout,
            "round_interval": spec.round_interval,
            "stale_timeout": spec.stale_timeout,
            "idle_timeout": spec.idle_timeout,
            "data_dir": str(self.workdir / f"{node.name}.data"),
            "ports_file": str(node.ports_file),
            "telemetry": {"validation": spec.validation, "export": spec.export},
        }
        if node.attack is not None:
            doc["byzantine"] = node.attack.value
        elif node.withholding:
            doc["byzantine"] = WITHHOLDING_RELAY
        node.config.write_text(dump_node_config(doc))

    def _spawn(self, node: NodeProcess, seeds: Sequence[int]) -> None:
        self._write_config(node, seeds)
        node.ports_file.unlink(missing_ok=True)
        env = {**os.environ, **self.spec.env}
        env["OTEL_RESOURCE_ATTRIBUTES"] = f"service.instance.id={node.node_id}"
        if self.spec.prometheus:
            exporters = [e for e in env.get("OTEL_METRICS_EXPORTER", "").split(",") if e.strip()]
            env["OTEL_METRICS_EXPORTER"] = ",".join(dict.fromkeys([*(exporters or ["otlp"]), "prometheus"]))
            env["OTEL_EXPORTER_PROMETHEUS_HOST"] = HOST
            env["OTEL_EXPORTER_PROMETHEUS_PORT"] = "0"  # the bound port comes back in the ports file
        with node.log.open("ab") as log:
            node.process = subprocess.Popen(
                [sys.executable, "-m", "knhk_mesh.cli", "node", "--config", str(node.config)],
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                env=env,
            )
        node.starts += 1

    def _await_ports(self, node: NodeProcess, deadline: float) -> None:
        while time.monotonic() < deadline:
            if node.ports_file.exists():
                doc = json.loads(node.ports_file.read_text())
                node.quic_port, node.admin_port = int(doc["quic"]), int(doc["admin"])
                node.prometheus_port = int(doc.get("prometheus", 0))
                return
            if node.process is not None and node.process.poll() is not None:
                raise ClusterError(f"{node.name} exited with {node.process.returncode}: {self.tail(node)}")
            time.sleep(0.05)
        raise ClusterError(f"{node.name} did not start listening in time (log {node.log})")

    def start(self, timeout: float = 120.0, *, batch: int = 0) -> None:
        """Node 0 first, then the rest in waves, each node seeded by node 0 and up to EXTRA_SEEDS
        random nodes of the waves before it (so node 0 is not a single point of failure); then wait
        for all of them. A wave is as large as everything started before it (1, 1, 2, 4, ...) and
        waits only until the one before it listens.

        With `batch`, the rest start `batch` at a time, each node seeded by two nodes admitted before
        it (spread over all of them), and the next batch waits until this one is admitted (holds a
        peer): a large mesh on a busy machine then does not storm one seed with every join at once."""
        if not self.nodes:
            self.prepare()
        deadline = time.monotonic() + timeout
        first = self.nodes[0]
        self._spawn(first, ())
        self._await_ports(first, deadline)
        rest = self.nodes[1:]
        b = 0
        while b < len(rest):
            step = batch if batch > 0 else b + 1
            group = rest[b : b + step]
            admitted = self.nodes[: b + 1]
            for i, node in enumerate(group):
                if batch > 0 and len(admitted) > 1:
                    picks = sorted({(2 * i) % len(admitted), (2 * i + 1) % len(admitted)})
                    self._spawn(node, tuple(admitted[j].quic_port for j in picks))
                else:
                    self._spawn(node, self.seeds_for(node, admitted))
            for node in group:
                self._await_ports(node, deadline)
            if batch > 0:
                self._await_admitted(group, deadline)
            b += len(group)

    def _await_admitted(self, group: Sequence[NodeProcess], deadline: float) -> None:
        while time.monotonic() < deadline:
            st = self.statuses(group)
            if len(st) == len(group) and all(s["peers"] >= 1 for s in st.values()):
                return
            time.sleep(0.5)
        raise ClusterError(f"{', '.join(n.name for n in group)} not admitted to the mesh in time")

    def tail(self, node: NodeProcess, lines: int = 3) -> str:
        try:
            text = node.log.read_text(errors="replace").strip().splitlines()
        except OSError:
            return "(no log)"
        return " | ".join(text[-lines:]) or "(empty log)"

    # --- admin calls ------------------------------------------------------------------------------

    def call(self, node: NodeProcess, method: str, path: str, body: Any = None, timeout: float = 10.0) -> Any:
        data = json.dumps(body).encode() if body is not None else None
        req = urllib.request.Request(f"http://{HOST}:{node.admin_port}{path}", data=data, method=method)
        with urllib.request.urlopen(req, timeout=timeout) as resp:
            return json.loads(resp.read())

    def put(self, node: NodeProcess, key: str, value: str) -> dict[str, Any]:
        doc: dict[str, Any] = self.call(node, "POST", "/put", {"key": key, "value": value})
        return doc

    def statuses(self, nodes: Sequence[NodeProcess] | None = None) -> dict[str, dict[str, Any]]:
        """/status of every live node that answers (a node that does not is left out)."""
        live = [n for n in (nodes if nodes is not None else self.nodes) if n.alive]

        def one(node: NodeProcess) -> dict[str, Any] | None:
            try:
                doc: dict[str, Any] = self.call(node, "GET", "/status", timeout=5.0)
            except (urllib.error.URLError, OSError, ValueError):
                return None
            return doc

        with ThreadPoolExecutor(max_workers=min(16, max(1, len(live)))) as pool:
            answers = list(pool.map(one, live))  # one slow node does not hold up the others
        return {n.name: a for n, a in zip(live, answers, strict=True) if a is not None}

    def wait_for_membership(self, timeout: float) -> bool:
        """Until every live node knows every other one (bounded); False on time-out."""
        deadline = time.monotonic() + timeout
        want = len(self.nodes) - 1
        while time.monotonic() < deadline:
            st = self.statuses()
            if len(st) == len(self.nodes) and all(s["peers"] >= want for s in st.values()):
                return True
            time.sleep(0.5)
        return False

    def honest(self) -> list[NodeProcess]:
        return [n for n in self.nodes if n.honest]

    def converged(self, nodes: Sequence[NodeProcess] | None = None, *, min_entries: int = 0) -> bool:
        """Every given node answers with the same digest (and holds at least `min_entries` entries)."""
        group = list(nodes if nodes is not None else self.honest())
        st = self.statuses(group)
        if len(st) != len(group):
            return False
        digests = {s["digest"] for s in st.values()}
        return len(digests) == 1 and all(s["entries"] >= min_entries for s in st.values())

    # --- faults and shutdown ------------------------------------------------------------------------

    def partition(self, groups: Sequence[Sequence[NodeProcess]]) -> None:
        """Split the mesh: each node drops every frame to or from the nodes outside its group."""
        for group in groups:
            outside = [n.address for n in self.nodes if n not in group]
            for node in group:
                self.call(node, "POST", "/faults", {"drop": outside})

    def heal(self) -> None:
        for node in self.nodes:
            if node.alive:
                self.call(node, "POST", "/faults", {"drop": []})

    def kill(self, node: NodeProcess, sig: int = signal.SIGKILL) -> None:
        if node.process is not None and node.alive:
            node.process.send_signal(sig)
            node.process.wait(timeout=30)

    def restart(self, node: NodeProcess, timeout: float = 60.0) -> None:
        """Same identity, data folder and QUIC port as before."""
        if node.alive:
            raise ClusterError(f"{node.name} is still running")
        self._spawn(node, self.seeds_for(node, self.nodes))
        self._await_ports(node, time.monotonic() + timeout)

    def stop(self, timeout: float = 20.0) -> dict[str, int | None]:
        """SIGTERM every node (a graceful stop flushes telemetry), SIGKILL what is left; exit codes."""
        for node in self.nodes:
            if node.alive:
                assert node.process is not None
                node.process.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + timeout
        codes: dict[str, int | None] = {}
        for node in self.nodes:
            if node.process is None:
                continue
            try:
                node.process.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                node.process.kill()
                node.process.wait(timeout=10)
            codes[node.name] = node.process.returncode
        return codes
