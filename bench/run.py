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
class Goal:
    """What a figure must meet, so the table says met or MISSED rather than leaving the comparison to
    the reader: `op bound` on the ratio (`at_most`) or on the value (`value_*`), or a check the bench
    made itself (`checked`)."""

    op: str  # "<=", "<" or ">="
    bound: float
    on_value: bool = False
    unit: str = ""
    label: str = ""  # printed after the bound
    verdict: bool | None = None  # a `checked` goal's own verdict

    @property
    def text(self) -> str:
        if self.verdict is not None:
            return self.label
        bound = f"{self.bound:g} {self.unit}".strip() if self.on_value else f"{self.bound:g}"
        return f"{self.op} {bound}{' ' + self.label if self.label else ''}"

    def met(self, value: float, ratio: float) -> bool:
        if self.verdict is not None:
            return self.verdict
        x = value if self.on_value else ratio
        return {"<=": x <= self.bound, "<": x < self.bound, ">=": x >= self.bound}[self.op]


def at_most(bound: float, label: str = "") -> Goal:
    """The ratio is at most `bound`."""
    return Goal("<=", bound, label=label)


def value_at_most(bound: float, unit: str, label: str = "") -> Goal:
    return Goal("<=", bound, on_value=True, unit=unit, label=label)


def value_below(bound: float, unit: str) -> Goal:
    return Goal("<", bound, on_value=True, unit=unit)


def value_at_least(bound: float, unit: str) -> Goal:
    return Goal(">=", bound, on_value=True, unit=unit)


def checked(text: str, met: bool) -> Goal:
    """A goal the bench judged itself (several conditions, a bound computed from other figures)."""
    return Goal("", 0.0, label=text, verdict=met)


@dataclass(frozen=True)
class Figure:
    value: float
    unit: str
    baseline: float
    ratio: float
    goal: str = ""
    met: bool | None = None  # None: no goal
    note: str = ""


def figure(value: float, unit: str, baseline: float, *, goal: Goal | None = None, note: str = "") -> Figure:
    """A figure whose ratio is value / baseline (the baseline measured in the same run)."""
    ratio = value / baseline if baseline else float("inf")
    text, met = (goal.text, goal.met(value, ratio)) if goal is not None else ("", None)
    return Figure(value=value, unit=unit, baseline=baseline, ratio=ratio, goal=text, met=met, note=note)


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


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="knhk-otel benchmarks")
    parser.add_argument("only", nargs="*", help="substrings of bench module names to run")
    parser.add_argument("-o", "--output", default=str(HERE / "results.json"))
    args = parser.parse_args(argv)
    modules = _modules(args.only)
    if not modules:  # a mistyped name must not pass as a run that measured nothing
        known = ", ".join(p.stem for p in _modules([]))
        print(
            f"bench: error: no bench module matches {' '.join(args.only)!r} (there are: {known})",
            file=sys.stderr,
        )
        return 2
    sys.path.insert(0, str(HERE))
    figures: dict[str, Figure] = {}
    for path in modules:
        spec = importlib.util.spec_from_file_location(path.stem, path)
        assert spec is not None and spec.loader is not None
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        started = time.perf_counter()
        print(f"# {path.stem} ...", file=sys.stderr, flush=True)
        figures.update(module.run())
        print(f"# {path.stem} done in {time.perf_counter() - started:.1f} s", file=sys.stderr, flush=True)
    width = max((len(n) for n in figures), default=10)
    print(f"{'figure':<{width}}  {'value':>14} {'unit':<10} {'baseline':>14}  {'ratio':>8}  {'':<6}  goal")
    for name, f in figures.items():
        row = f"{name:<{width}}  {f.value:>14.4g} {f.unit:<10} {f.baseline:>14.4g}  {f.ratio:>8.3f}"
        mark = "" if f.met is None else "met" if f.met else "MISSED"
        print(f"{row}  {mark:<6}  {f.goal}")
        if f.note:
            print(f"{'':<{width}}    {f.note}")
    # bench modules import this file as `run`, a module apart from __main__: read their list there
    not_measured = sys.modules["run"].NOT_MEASURED if "run" in sys.modules else []
    for line in not_measured:
        print(f"NOT MEASURED: {line}")
    results = {"figures": {n: asdict(f) for n, f in figures.items()}, "not_measured": not_measured}
    Path(args.output).write_text(json.dumps(results, indent=2, sort_keys=True) + "\n")
    verdict_line, code = verdict(figures)
    if not_measured:  # said above, one line each; the verdict covers what was measured only
        verdict_line += f"; {len(not_measured)} not measured (reference data absent, listed above)"
    print(verdict_line)
    return code


def verdict(figures: dict[str, Figure]) -> tuple[str, int]:
    """The last line of the table and the exit code: 1 when any goal was missed."""
    judged = [n for n, f in figures.items() if f.met is not None]
    missed = [n for n in judged if not figures[n].met]
    line = f"goals: {len(judged) - len(missed)} of {len(judged)} met"
    return (line + f"; MISSED: {', '.join(missed)}", 1) if missed else (line, 0)


if __name__ == "__main__":
    sys.exit(main())
