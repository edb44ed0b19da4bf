"""Fixtures of the mesh tests: small factories for engines, clusters and validated telemetry."""

from __future__ import annotations

import random
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import pytest

from knhk_mesh.core.config import MeshConfig
from knhk_mesh.core.engine import MeshEngine
from knhk_mesh.core.security import Identity
from knhk_mesh.telemetry import MeshTelemetry


@dataclass
class TelemetryRig:
    """Validated SDK providers (strict, in-memory exporters) and the mesh telemetry built on them."""

    providers: Any
    hub: MeshTelemetry

    def spans(self, name: str) -> list[Any]:
        return [s for s in self.providers.spans.get_finished_spans() if s.name == name]

    def events(self, name: str) -> list[Any]:
        out = []
        for item in self.providers.logs.get_finished_logs():
            record = getattr(item, "log_record", item)
            if getattr(record, "event_name", None) == name:
                out.append(record)
        return out

    def points(self, name: str) -> list[Any]:
        data = self.providers.collect_metrics()
        found: list[Any] = []
        for rm in data.resource_metrics:
            for sm in rm.scope_metrics:
                for metric in sm.metrics:
                    if metric.name == name:
                        found.extend(metric.data.data_points)
        return found


@pytest.fixture
def telemetry(schema_validation: Any) -> Iterator[TelemetryRig]:
    providers = schema_validation.providers()
    hub = MeshTelemetry(providers.tracer_provider, providers.meter_provider, providers.logger_provider)
    yield TelemetryRig(providers, hub)


EngineFactory = Callable[..., list[MeshEngine]]


@pytest.fixture
def make_engines() -> EngineFactory:
    """N engines that all know each other (no network: tests hand frames across themselves)."""

    def make(n: int, *, seed: int = 1, config: MeshConfig | None = None, **kwargs: Any) -> list[MeshEngine]:
        rng = random.Random(seed)
        ids = [Identity.generate(rng) for _ in range(n)]
        engines = [
            MeshEngine(
                ident,
                ("127.0.0.1", 30000 + i),
                rng=random.Random(rng.getrandbits(32)),
                config=config,
                **kwargs,
            )
            for i, ident in enumerate(ids)
        ]
        for e in engines:
            for other in engines:
                e.add_peer(other.agent_id, other.identity.public_key, other.address)
        return engines

    return make


def _deliver(engines: Sequence[MeshEngine], now: float, *, rounds: int = 20) -> int:
    """Hand every queued frame to its addressee until quiet; returns frames delivered."""
    by_addr = {e.address: e for e in engines}
    count = 0
    for _ in range(rounds):
        moved = False
        for e in engines:
            for addr, data in e.messages_to_send(now):
                target = by_addr.get(addr)
                if target is not None:
                    target.receive(e.address, data, now)
                    count += 1
                    moved = True
        if not moved:
            break
    return count


def _drain(engine: MeshEngine) -> list[Any]:
    out = []
    while (ev := engine.next_event()) is not None:
        out.append(ev)
    return out


@pytest.fixture
def deliver() -> Callable[..., int]:
    """Hand queued frames between engines until quiet (no network, no faults)."""
    return _deliver


@pytest.fixture
def drain() -> Callable[[MeshEngine], list[Any]]:
    """All events an engine has queued."""
    return _drain
