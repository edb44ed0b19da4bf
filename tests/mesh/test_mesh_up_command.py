"""`knhk-mesh up`: a small mesh runs to a clean summary; bad arguments are one line and exit 2."""

from __future__ import annotations

import io
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from knhk_mesh import cli


def test_up_runs_a_mesh_with_byzantine_agents_and_prints_the_summary(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("KNHK_TICK_NS", raising=False)
    args = cli.build_parser().parse_args(
        [
            "up",
            "--transport",
            "memory",
            "--nodes",
            "10",
            "--byzantine",
            "3",
            "--rounds",
            "8",
            "--seed",
            "3",
            "--fanout",
            "4",
        ]
    )
    out = io.StringIO()
    assert cli.run_up(args, out) == 0
    text = out.getvalue()
    assert "reached all 7 honest agents" in text
    for op in ("peer_selection", "validation", "merge", "convergence_check", "message"):
        assert op in text
    assert "µs" in text
    for kind in ("invalid_signature", "equivocation", "replay"):
        assert kind in text
    assert "schema findings: 0 (violations 0, improvements 0)" in text


def test_up_with_join_discovers_the_mesh_through_agent_0(monkeypatch: pytest.MonkeyPatch) -> None:
    """With --join only agent 0 is known at the start: every agent registers its peers by gossip."""
    monkeypatch.delenv("KNHK_TICK_NS", raising=False)
    argv = ["up", "--transport", "memory", "--nodes", "12", "--byzantine", "1", "--rounds", "10", "--join"]
    args = cli.build_parser().parse_args(argv)
    out = io.StringIO()
    assert cli.run_up(args, out) == 0
    text = out.getvalue()
    assert "reached all 11 honest agents" in text
    assert "schema findings: 0 (violations 0, improvements 0)" in text


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["up", "--transport", "memory", "--nodes", "9", "--byzantine", "3"], "fewer than n/3"),
        (["up", "--transport", "carrier-pigeon", "--nodes", "3"], "--transport"),
        (["up", "--transport", "memory", "--nodes", "zero"], "--nodes"),
        (["up", "--transport", "memory", "--nodes", "5", "--fanout", "0"], "--fanout"),
        (["up", "--nodes", "5"], "--transport"),
        (["up", "--transport", "memory", "--nodes", "45537"], "at most 45,536 agents"),
        (["up", "--transport", "memory", "--nodes", "10000000000"], "at most 45,536 agents"),
        ([], "command"),
    ],
)
def test_bad_arguments_are_one_line_and_exit_2(
    argv: list[str], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert cli.main(argv) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("knhk-mesh: error:") and message in err


def test_a_bad_tick_length_is_a_usage_error(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("KNHK_TICK_NS", "fast")
    assert cli.main(["up", "--transport", "memory", "--nodes", "3", "--rounds", "1"]) == 2
    assert "KNHK_TICK_NS" in capsys.readouterr().err


def test_the_console_script_is_installed() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "knhk_mesh.cli", "up", "--transport", "memory", "--nodes", "1"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 2 and "at least 2" in done.stderr


def test_export_to_an_absent_endpoint_is_one_line_at_once(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    with socket.socket() as probe:  # a free port on loopback that nothing listens at
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", f"http://127.0.0.1:{port}")
    started = time.monotonic()
    assert cli.main(["up", "--transport", "memory", "--nodes", "5", "--rounds", "1", "--export"]) == 2
    assert time.monotonic() - started < 10
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and f"127.0.0.1:{port}" in err and "drop --export" in err


def test_ctrl_c_is_one_line_and_exit_130(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """What the run started is stopped by its own `finally`; the user sees one line, not a traceback."""

    def interrupted(*_: object) -> int:
        raise KeyboardInterrupt

    monkeypatch.setattr(cli, "run_up", interrupted)
    assert cli.main(["up", "--transport", "memory", "--nodes", "4"]) == 130
    assert capsys.readouterr().err == "knhk-mesh: interrupted\n"


def test_up_validates_against_the_checkouts_schema_from_any_folder(tmp_path: Path) -> None:
    """Started outside the repository (no ./schema), the mesh still finds the schema it emits for."""
    env = {k: v for k, v in os.environ.items() if k != "KNHK_OTEL_REGISTRY"}
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "knhk_mesh.cli",
            "up",
            "--transport",
            "memory",
            "--nodes",
            "4",
            "--rounds",
            "3",
        ],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    assert "Traceback" not in done.stderr
