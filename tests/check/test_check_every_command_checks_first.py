"""Every command that reads a registry runs `check`'s checks first and refuses a registry with errors.

A registry that resolves but breaks a semantic rule (a span without a kind or brief) or a policy (a
name outside the namespace) must never reach generated code, a resolved dump, stats, a diff or a
live-check verdict; `--skip-policies` skips the policies only.
"""

from __future__ import annotations

from pathlib import Path

import pytest

import knhk_otel.check.runner as runner
from knhk_otel.cli import main

from .conftest import BROKEN, REPO_ROOT, CliRunner

SEMANTIC = BROKEN / "missing_span_kind"  # resolves, fails a semantic rule
POLICY = BROKEN / "namespace"  # resolves, passes semantics, fails the namespace policy


def _commands(tmp_path: Path, registry: Path) -> dict[str, list[str]]:
    return {
        "resolve": ["resolve", "-r", str(registry), "-o", str(tmp_path / "resolved.yaml")],
        "stats": ["stats", "-r", str(registry)],
        "diff": ["diff", "-r", str(registry), "--baseline-registry", str(REPO_ROOT / "schema")],
        "generate": ["generate", "python", "-r", str(registry), "-o", str(tmp_path / "gen")],
        "live-check": [
            "live-check",
            "-r",
            str(registry),
            "--input-source",
            str(REPO_ROOT / "tests" / "validate" / "shop" / "nonexistent.json"),
        ],
    }


@pytest.mark.parametrize("command", ["resolve", "stats", "diff", "generate", "live-check"])
def test_a_semantic_error_is_refused_with_its_diagnostic(
    command: str, tmp_path: Path, cli: CliRunner
) -> None:
    result = cli(*_commands(tmp_path, SEMANTIC)[command])
    assert result.code != 0
    assert result.out == ""
    assert "spans.yaml:" in result.err and "error[missing_span_kind]" in result.err
    assert f"knhk-otel {command}: registry {SEMANTIC} has 1 error(s); nothing done" in result.err
    assert not (tmp_path / "resolved.yaml").exists() and not (tmp_path / "gen").exists()


@pytest.mark.parametrize("command", ["resolve", "stats", "diff", "generate"])
def test_a_policy_error_is_refused_unless_policies_are_skipped(
    command: str, tmp_path: Path, cli: CliRunner
) -> None:
    args = _commands(tmp_path, POLICY)[command]
    refused = cli(*args)
    assert refused.code == 1
    assert "error[namespace]" in refused.err
    accepted = cli(*args, "--skip-policies")
    assert accepted.code == 0, accepted.err
    assert "error[" not in accepted.err


def test_policies_of_a_policy_file_run_before_generate(tmp_path: Path, cli: CliRunner) -> None:
    policy = tmp_path / "no_spans.py"
    policy.write_text(
        "from knhk_otel.schema.diagnostics import Diagnostic\n"
        "def policy_no_spans(registry):\n"
        "    return [Diagnostic('no_spans', 'spans are banned here') for _ in registry.spans()][:1]\n",
        encoding="utf-8",
    )
    result = cli(
        "generate", "python", "-r", str(REPO_ROOT / "schema"), "-o", str(tmp_path / "g"), "-p", str(policy)
    )
    assert result.code == 1
    assert "<registry>: error[no_spans]: spans are banned here" in result.err
    assert not (tmp_path / "g").exists()


def test_warnings_are_printed_but_do_not_refuse(tmp_path: Path, cli: CliRunner) -> None:
    root = tmp_path / "r"
    root.mkdir()
    (root / "manifest.yaml").write_text("name: r\nnamespace: op\n", encoding="utf-8")
    (root / "m.yaml").write_text(
        "groups:\n  - id: metric.op.duration\n    type: metric\n    metric_name: op.duration\n"
        "    instrument: histogram\n    unit: s\n    stability: development\n    brief: Duration.\n"
        "    attributes: []\n",
        encoding="utf-8",
    )
    result = cli("stats", "-r", str(root))
    assert result.code == 0
    assert "warning[histogram_without_buckets]" in result.err
    assert result.out.startswith("registry r:")


def test_one_load_and_one_resolve_per_registry(
    tmp_path: Path, cli: CliRunner, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Checking first must not double the work: the checked registry is the one the command uses."""
    calls = {"load": 0, "resolve": 0}
    real_load, real_resolve = runner.load_documents, runner.resolve

    def load(root: object) -> object:
        calls["load"] += 1
        return real_load(root)  # type: ignore[arg-type]

    def resolve(loaded: object) -> object:
        calls["resolve"] += 1
        return real_resolve(loaded)  # type: ignore[arg-type]

    monkeypatch.setattr(runner, "load_documents", load)
    monkeypatch.setattr(runner, "resolve", resolve)
    assert main(["generate", "python", "-r", str(REPO_ROOT / "schema"), "-o", str(tmp_path / "g")]) == 0
    assert calls == {"load": 1, "resolve": 1}


def test_diagnostic_stdout_moves_diagnostics_to_stdout(cli: CliRunner) -> None:
    result = cli("stats", "-r", str(POLICY), "--diagnostic-stdout")
    assert result.code == 1
    assert "error[namespace]" in result.out and "error[namespace]" not in result.err
