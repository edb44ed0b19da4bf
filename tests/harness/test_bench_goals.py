"""`make bench` judges its own goals: each figure's goal applies to its ratio or its value as declared,
the table says met or MISSED, and the run exits 1 when a goal is missed."""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

RUN = Path(__file__).resolve().parents[2] / "bench" / "run.py"


def _run_module() -> ModuleType:
    spec = importlib.util.spec_from_file_location("bench_run_under_test", RUN)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses resolve annotations through sys.modules
    spec.loader.exec_module(module)
    return module


def test_goals_apply_to_the_ratio_or_the_value_as_declared() -> None:
    run = _run_module()
    ratio = run.figure(1.6, "µs", 1.0, goal=run.at_most(1.5))
    assert (ratio.goal, ratio.met) == ("<= 1.5", False)
    assert run.figure(150.0, "µs", 100.0, goal=run.at_most(1.5)).met is True  # 1.5 itself is met
    size = run.figure(300.0, "B", 1000.0, goal=run.value_at_most(256, "B"))  # ratio 0.3, value over
    assert (size.goal, size.met) == ("<= 256 B", False)
    assert run.figure(2.0, "s", 0.1, goal=run.value_below(2, "s")).met is False  # strict
    rate = run.figure(60_000.0, "spans/s", 80_000.0, goal=run.value_at_least(50_000, "spans/s"))
    assert (rate.goal, rate.met) == (">= 50000 spans/s", True)
    rounds = run.figure(3.0, "rounds", 2.5, goal=run.value_at_most(3.5, "rounds", "(random + 1)"))
    assert rounds.goal == "<= 3.5 rounds (random + 1)" and rounds.met is True
    both = run.figure(1.1, "rounds", 1.0, goal=run.checked("<= 4, within 0.5", False))
    assert (both.goal, both.met) == ("<= 4, within 0.5", False)
    assert run.figure(1.0, "s", 1.0).met is None  # no goal: nothing to judge


def test_a_missed_goal_is_named_on_the_last_line_and_fails_the_run() -> None:
    run = _run_module()
    figures = {
        "fast": run.figure(1.0, "µs", 1.0, goal=run.at_most(1.5)),
        "slow": run.figure(2.0, "µs", 1.0, goal=run.at_most(1.5)),
        "info": run.figure(5.0, "msg/s", 9.0),
    }
    assert run.verdict(figures) == ("goals: 1 of 2 met; MISSED: slow", 1)
    del figures["slow"]
    assert run.verdict(figures) == ("goals: 1 of 1 met", 0)


def test_the_runner_prints_the_table_and_its_verdict_line(
    tmp_path: Path, monkeypatch: Any, capsys: Any
) -> None:
    """End to end over one bench module of this test's own, whose only goal is missed."""
    run = _run_module()
    bench = tmp_path / "bench_tiny.py"
    bench.write_text(
        "from bench_run_under_test import at_most, figure\n"
        "def run():\n"
        "    return {'tiny_ratio': figure(3.0, 'µs', 2.0, goal=at_most(1.2), note='a made-up figure')}\n"
    )
    monkeypatch.setattr(run, "_modules", lambda only: [bench])
    out = tmp_path / "results.json"
    assert run.main(["-o", str(out)]) == 1
    lines = capsys.readouterr().out.splitlines()
    assert lines[1].split()[-4:] == ["1.500", "MISSED", "<=", "1.2"]
    assert lines[-1] == "goals: 0 of 1 met; MISSED: tiny_ratio"
    assert json.loads(out.read_text())["figures"]["tiny_ratio"]["met"] is False


def test_a_bench_name_that_matches_nothing_is_an_error_not_an_empty_run(tmp_path: Path) -> None:
    argv = [sys.executable, str(RUN), "no-such-bench", "-o", str(tmp_path / "results.json")]
    done = subprocess.run(argv, capture_output=True, text=True, timeout=60)
    assert done.returncode == 2 and done.stdout == ""
    assert done.stderr.startswith("bench: error: no bench module matches 'no-such-bench' (there are: ")
    assert "bench_mesh" in done.stderr and len(done.stderr.splitlines()) == 1
    assert not (tmp_path / "results.json").exists()
