"""Builds an in-memory mesh of N agents (some optionally Byzantine) for the CLI, tests and benches."""

from __future__ import annotations

import random
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace

from knhk_mesh.core.config import MeshConfig
from knhk_mesh.core.engine import MeshEngine
from knhk_mesh.core.events import MeshEvent
from knhk_mesh.core.instrument import NOOP, Instrumentation
from knhk_mesh.core.messages import Address, Entry
from knhk_mesh.core.registry import PeerRegistry
from knhk_mesh.core.security import Identity
from knhk_mesh.transport.memory import Faults, LinkLatency, MemoryNetwork, Node

MEMORY_HOST = "127.0.0.1"
BASE_PORT = 20000
MAX_AGENTS = 65536 - BASE_PORT  # one port each, BASE_PORT..65535


@dataclass
class Cluster:
    network: MemoryNetwork
    honest: list[MeshEngine]
    byzantine: list[Node] = field(default_factory=list)

    @property
    def engines(self) -> list[MeshEngine]:
        return self.honest

    def all_have(self, agent: bytes, key: str, version: int) -> bool:
        for engine in self.honest:
            e = engine.state.get(agent, key)
            if e is None or e.version < version:
                return False
        return True

    def digests(self) -> set[bytes]:
        return {e.state.digest for e in self.honest}

    def run_rounds(self, rounds: int, interval: float) -> None:
        self.network.run_for(rounds * interval)

    def rounds_until_all_have(self, entry: Entry, interval: float, limit: int) -> int | None:
        """Run round by round until every honest agent holds `entry`: the rounds it took (None: > limit).

        With lock-step rounds (`jitter_start=False`) the first round is the write's own: its eager push.
        """
        for rounds in range(limit + 1):
            if self.all_have(entry.agent, entry.key, entry.version):
                return rounds
            if rounds < limit:
                self.network.run_for(interval)
        return None

    def add_agent(self, *, seed: int, config: MeshConfig | None = None) -> MeshEngine:
        """A new honest agent that joins through agent 0 (a late joiner), on the next free address."""
        rng = random.Random(seed)
        port = BASE_PORT + len(self.network.nodes)
        while (MEMORY_HOST, port) in self.network.nodes:
            port += 1
        engine = MeshEngine(
            Identity.generate(rng),
            (MEMORY_HOST, port),
            rng=random.Random(rng.getrandbits(64)),
            config=config or self.honest[0].config,
            seeds=(self.honest[0].address,),
        )
        self.honest.append(engine)
        self.network.join(engine)
        return engine


InstrumentationFactory = Callable[[Identity], Instrumentation]
ByzantineFactory = Callable[[MeshEngine, random.Random, Sequence[MeshEngine]], Node]


def build_cluster(
    n: int,
    *,
    seed: int,
    config: MeshConfig | None = None,
    faults: Faults | None = None,
    instrumentation: InstrumentationFactory | None = None,
    byzantine: Sequence[ByzantineFactory] = (),
    on_event: Callable[[Address, MeshEvent], None] | None = None,
    full_membership: bool = True,
    regions: Sequence[str] = (),
    link_latency: LinkLatency | None = None,
) -> Cluster:
    """N engines on one memory network; the last len(byzantine) agents are wrapped by the factories.

    With full_membership every agent starts knowing every other (static configuration); otherwise
    agent 0 is the only seed and the others discover the mesh by joining and membership gossip.
    `regions` (one per agent, or empty: all in `config.region`) sets each agent's region;
    `link_latency` gives per-link delays (e.g. `transport.memory.region_latency`).
    """
    if regions and len(regions) != n:
        raise ValueError(f"{len(regions)} regions given for {n} agents")
    if n < 1 or len(byzantine) > n:
        raise ValueError(f"cannot build {n} agents with {len(byzantine)} Byzantine ones")
    if n > MAX_AGENTS:
        raise ValueError(f"the memory transport addresses at most {MAX_AGENTS:,} agents, not {n:,}")
    master = random.Random(seed)
    cfg = config or MeshConfig()
    network = MemoryNetwork(random.Random(master.getrandbits(64)), faults, on_event, link_latency)
    identities = [Identity.generate(master) for _ in range(n)]
    addresses = [(MEMORY_HOST, BASE_PORT + i) for i in range(n)]
    configs = [replace(cfg, region=r) for r in regions] if regions else [cfg] * n
    template = PeerRegistry()
    if full_membership:
        for ident, addr, c in zip(identities, addresses, configs, strict=True):
            template.register(ident.agent_id, addr, ident.public_key, region=c.region, introduced=True)
            # the record each engine will sign for itself (same fields and seq: the same bytes)
            template.set_record(ident.record(addr[0], addr[1], c.region, c.nonce_base + 1))
    engines: list[MeshEngine] = []
    for i, (ident, addr, c) in enumerate(zip(identities, addresses, configs, strict=True)):
        engine = MeshEngine(
            ident,
            addr,
            rng=random.Random(master.getrandbits(64)),
            config=c,
            instrumentation=instrumentation(ident) if instrumentation else NOOP,
            seeds=() if full_membership or i == 0 else (addresses[0],),
            registry=template.copy() if full_membership else None,
        )
        engines.append(engine)
    honest_count = n - len(byzantine)
    honest = engines[:honest_count]
    bad: list[Node] = []
    for factory, engine in zip(byzantine, engines[honest_count:], strict=True):
        bad.append(factory(engine, random.Random(master.getrandbits(64)), honest))
    for node in [*honest, *bad]:
        network.add(node)
    network.start()
    return Cluster(network, honest, bad)
