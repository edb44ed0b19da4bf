"""Benchmark runner: runs every bench/bench_*.py, prints one table, writes bench/results.json.

Each module exposes `run() -> dict[str, Figure]`. A figure is a measured value beside a baseline
measured in the same run, so the ratio means something on any machine; absolute values are printed
for reference only.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path

from knhk_otel.harness.reference import ReferenceData

HERE = Path(__file__).resolve().parent
REFERENCE = ReferenceData.from_env(HERE.parent)
#: One line per figure a bench could not measure (absent reference data), for the table and results.json.
NOT_MEASURED: list[str] = []


@dataclass(frozen=True)
class Figure:
    value: float
    unit: str
    baseline: float
    ratio: float
    goal: str = ""
    note: str = ""


def figure(value: float, unit: str, baseline: float, *, goal: str = "", note: str = "") -> Figure:
    """A figure whose ratio is value / baseline (the baseline measured in the same run)."""
    ratio = value / baseline if baseline else float("inf")
    return Figure(value=value, unit=unit, baseline=baseline, ratio=ratio, goal=goal, note=note)


def reference(piece: str, what: str) -> Path | None:
    """The reference piece a bench reads, or None after one line on stderr saying what is not measured."""
    found = REFERENCE.find(piece)
    if found is None:
        line = REFERENCE.absent(piece, what, "not measured")
        NOT_MEASURED.append(line)
        print(f"# {line}", file=sys.stderr, flush=True)
    return found


def _modules(only: list[str]) -> list[Path]:
    found = sorted(HERE.glob("bench_*.py"))
    if only:
        found = [p for p in found if any(o in p.stem for o in only)]
    return found


def main() -> int:
    parser = argparse.ArgumentParser(description="knhk-otel benchmarks")
    parser.add_argument("only", nargs="*", help="substrings of bench module names to run")
    parser.add_argument("-o", "--output", default=str(HERE / "results.json"))
    args = parser.parse_args()
    sys.path.insert(0, str(HERE))
    figures: dict[str, Figure] = {}
    for path in _modules(args.only):
        spec = importlib.util.spec_from_file_location(path.stem, path)
        assert spec is not None and spec.loader is not None
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        started = time.perf_counter()
        print(f"# {path.stem} ...", file=sys.stderr, flush=True)
        figures.update(module.run())
        print(f"# {path.stem} done in {time.perf_counter() - started:.1f} s", file=sys.stderr, flush=True)
    width = max((len(n) for n in figures), default=10)
    print(f"{'figure':<{width}}  {'value':>14} {'unit':<10} {'baseline':>14}  {'ratio':>8}  goal")
    for name, f in figures.items():
        row = f"{name:<{width}}  {f.value:>14.4g} {f.unit:<10} {f.baseline:>14.4g}  {f.ratio:>8.3f}"
        print(f"{row}  {f.goal}")
        if f.note:
            print(f"{'':<{width}}    {f.note}")
    # bench modules import this file as `run`, a module apart from __main__: read their list there
    not_measured = sys.modules["run"].NOT_MEASURED if "run" in sys.modules else []
    for line in not_measured:
        print(f"NOT MEASURED: {line}")
    results = {"figures": {n: asdict(f) for n, f in figures.items()}, "not_measured": not_measured}
    Path(args.output).write_text(json.dumps(results, indent=2, sort_keys=True) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
