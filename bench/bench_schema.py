"""Schema stage speed: full check + resolve of the OpenTelemetry semconv v1.44 model.

Baseline: parsing the same files with bare `yaml.load(..., CSafeLoader)` in the same run, so the
ratio says how much the whole pipeline costs over just reading the YAML. Falls back to
load + resolve when `knhk_otel.check.run_checks` is not importable.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable
from pathlib import Path

import yaml
from run import Figure, figure, reference, value_below  # type: ignore[import-not-found]

from knhk_otel.harness.reference import SEMCONV_MODEL
from knhk_otel.schema import load_and_resolve

ROUNDS = 3


def _median_seconds(work: Callable[[], object]) -> float:
    times = []
    for _ in range(ROUNDS):
        started = time.perf_counter()
        work()
        times.append(time.perf_counter() - started)
    return statistics.median(times)


def _bare_yaml(model: Path) -> None:
    for path in sorted(model.rglob("*.yaml")):
        yaml.load(path.read_text(encoding="utf-8"), Loader=yaml.CSafeLoader)


def run() -> dict[str, Figure]:
    model = reference(SEMCONV_MODEL, "check_semconv_s and resolve_semconv_s")
    if model is None:
        return {}
    check: Callable[[Path], object] | None
    try:
        from knhk_otel.check.runner import run_checks as check
    except ImportError:
        check = None
    baseline = _median_seconds(lambda: _bare_yaml(model))
    resolve_only = _median_seconds(lambda: load_and_resolve(model))
    if check is not None:
        run_check = check
        full = _median_seconds(lambda: run_check(model))
        note = "knhk_otel.check.run_checks (load, JSON Schema syntax, resolve, semantics, policies)"
    else:
        full = resolve_only
        note = "knhk_otel.check not importable: load + resolve only"
    return {
        "check_semconv_s": figure(
            full, "s", baseline, goal=value_below(2, "s"), note=f"{note}; median of {ROUNDS}"
        ),
        "resolve_semconv_s": figure(
            resolve_only,
            "s",
            baseline,
            goal=value_below(1, "s"),
            note=f"load_and_resolve only; median of {ROUNDS}",
        ),
    }
