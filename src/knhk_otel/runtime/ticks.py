"""Tick clock: operation durations in ticks (perf_counter_ns / tick length) against the schema's budgets.

A tick is the schema's unit of time budget. The tick length is configured at the edge (KNHK_TICK_NS,
default 50 000 ns: one PyNaCl verification, ~100 µs here, is the seed's 2 ticks) and passed in; the
budgets per operation come from the generated TickUsage metric's `knhk.tick_budgets` annotation, so
the schema is the one place they are written.
"""

from __future__ import annotations

import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field

DEFAULT_TICK_NS = 50_000
TICK_ENV = "KNHK_TICK_NS"


def tick_ns_from_env(env: Mapping[str, str]) -> int:
    """The tick length from KNHK_TICK_NS (edge code only); ValueError names the variable."""
    raw = env.get(TICK_ENV, "").strip()
    if not raw:
        return DEFAULT_TICK_NS
    try:
        value = int(raw)
    except ValueError:
        raise ValueError(f"{TICK_ENV}={raw!r} is not an integer number of nanoseconds") from None
    if value <= 0:
        raise ValueError(f"{TICK_ENV}={raw!r} must be a positive number of nanoseconds")
    return value


def schema_budgets() -> dict[str, int]:
    """Tick budgets per operation, from the generated TickUsage metric's annotations."""
    from knhk_otel.semconv.metrics import TickUsage

    knhk = TickUsage.ANNOTATIONS.get("knhk", {})
    budgets = knhk.get("tick_budgets", {}) if isinstance(knhk, Mapping) else {}
    return {str(k): int(v) for k, v in budgets.items()}


@dataclass
class OperationStats:
    count: int = 0
    total_ns: int = 0
    max_ns: int = 0
    overruns: int = 0

    def mean_ns(self) -> float:
        return self.total_ns / self.count if self.count else 0.0


@dataclass(frozen=True, slots=True)
class TickSample:
    operation: str
    ns: int
    ticks: float
    budget: int | None

    @property
    def micros(self) -> float:
        return self.ns / 1000.0

    @property
    def overrun(self) -> bool:
        return self.budget is not None and self.ticks > self.budget


@dataclass
class TickClock:
    """Measures operations in ticks and keeps per-operation totals for reports."""

    tick_ns: int = DEFAULT_TICK_NS
    budgets: Mapping[str, int] = field(default_factory=dict)
    stats: dict[str, OperationStats] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.tick_ns <= 0:
            raise ValueError(f"tick length must be positive, got {self.tick_ns} ns")

    def ticks(self, ns: int) -> float:
        return ns / self.tick_ns

    def sample(self, operation: str, ns: int) -> TickSample:
        """Account one measured duration of `operation`."""
        self.account(operation, ns)
        return TickSample(operation, ns, ns / self.tick_ns, self.budgets.get(operation))

    def account(self, operation: str, ns: int) -> tuple[float, bool]:
        """Account one measured duration of `operation`; (ticks, over budget). The hot path: no sample
        object is built."""
        ticks = ns / self.tick_ns
        st = self.stats.get(operation)
        if st is None:
            st = self.stats[operation] = OperationStats()
        st.count += 1
        st.total_ns += ns
        if ns > st.max_ns:
            st.max_ns = ns
        budget = self.budgets.get(operation)
        overrun = budget is not None and ticks > budget
        if overrun:
            st.overruns += 1
        return ticks, overrun

    @contextmanager
    def measure(self, operation: str) -> Iterator[None]:
        start = time.perf_counter_ns()
        try:
            yield
        finally:
            self.sample(operation, time.perf_counter_ns() - start)
