"""Tick clock: budgets come from the schema, the tick length from KNHK_TICK_NS at the edge."""

from __future__ import annotations

import pytest

from knhk_otel.runtime.ticks import DEFAULT_TICK_NS, TickClock, schema_budgets, tick_ns_from_env


def test_budgets_are_the_schemas() -> None:
    assert schema_budgets() == {
        "peer_selection": 1,
        "validation": 2,
        "merge": 3,
        "convergence_check": 2,
        "message": 8,
    }


def test_tick_length_from_the_environment() -> None:
    assert tick_ns_from_env({}) == DEFAULT_TICK_NS == 50_000
    assert tick_ns_from_env({"KNHK_TICK_NS": "1000"}) == 1000
    for bad in ("0", "-5", "soon"):
        with pytest.raises(ValueError, match="KNHK_TICK_NS"):
            tick_ns_from_env({"KNHK_TICK_NS": bad})


def test_samples_are_counted_against_their_budget() -> None:
    clock = TickClock(tick_ns=1000, budgets={"merge": 3})
    assert not clock.sample("merge", 3000).overrun
    s = clock.sample("merge", 3500)
    assert s.overrun and s.ticks == 3.5 and s.micros == 3.5
    assert clock.sample("other", 10**9).budget is None
    st = clock.stats["merge"]
    assert (st.count, st.overruns, st.max_ns, st.mean_ns()) == (2, 1, 3500, 3250.0)


def test_measure_records_one_sample() -> None:
    clock = TickClock()
    with clock.measure("validation"):
        sum(range(100))
    assert clock.stats["validation"].count == 1
