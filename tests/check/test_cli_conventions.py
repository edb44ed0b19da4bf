"""The conventions a Weaver user expects, for every command (present and future ones alike).

`--version`; `-v` after the subcommand; `knhk-otel registry <command>`; a default shown for every
option that has one; `generate` saying what it wrote and how to refresh what `--check` found stale;
a stable span or event removed or renamed against `--baseline-registry`.
"""

from __future__ import annotations

import argparse
import shlex
import shutil
from collections.abc import Iterator
from importlib import metadata
from pathlib import Path

import pytest

from knhk_otel.cli import build_parser
from knhk_otel.codegen import discover

from .conftest import REPO_ROOT, CliRunner


def _parsers(parser: argparse.ArgumentParser) -> Iterator[argparse.ArgumentParser]:
    yield parser
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for child in action.choices.values():
                yield from _parsers(child)


def test_version_prints_the_installed_version(cli_process: CliRunner) -> None:
    result = cli_process("--version")
    assert result.code == 0
    assert result.out.strip() == f"knhk-otel {metadata.version('knhk-otel')}"


def test_verbose_after_the_subcommand_logs_progress(cli_process: CliRunner) -> None:
    quiet = cli_process("stats", cwd=REPO_ROOT)
    loud = cli_process("stats", "-v", cwd=REPO_ROOT)
    before = cli_process("-v", "stats", cwd=REPO_ROOT)
    assert quiet.code == loud.code == before.code == 0
    assert "INFO" not in quiet.err
    assert "knhk-otel: INFO: checked schema:" in loud.err
    assert "knhk-otel: INFO: checked schema:" in before.err
    assert quiet.out == loud.out


def test_every_command_that_reads_a_registry_is_also_a_registry_subcommand(cli: CliRunner) -> None:
    parser, modules = build_parser()
    reads_registry = set()
    for name in modules:
        (sub,) = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
        if "--registry" in sub.choices[name]._option_string_actions:
            reads_registry.add(name)
    assert {"check", "resolve", "stats", "diff", "generate", "live-check"} <= reads_registry
    (sub,) = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
    (registry_sub,) = [
        a for a in sub.choices["registry"]._actions if isinstance(a, argparse._SubParsersAction)
    ]
    assert set(registry_sub.choices) == reads_registry
    plain = cli("stats", "-r", str(REPO_ROOT / "schema"), "--format", "json")
    alias = cli("registry", "stats", "-r", str(REPO_ROOT / "schema"), "--format", "json")
    assert plain.code == alias.code == 0 and plain.out == alias.out


def test_registry_without_a_command_lists_them(cli: CliRunner) -> None:
    result = cli("registry")
    assert result.code == 2
    assert "knhk-otel registry check|resolve|stats|diff|generate|live-check" in " ".join(result.out.split())


def test_every_help_shows_the_default_of_every_option_that_has_one() -> None:
    parser, _ = build_parser()
    checked = 0
    for p in _parsers(parser):
        text = " ".join(p.format_help().split())
        for action in p._actions:
            default = action.default
            if (
                not action.option_strings
                or default in (None, False, [], argparse.SUPPRESS)
                or isinstance(default, bool)
            ):
                continue
            checked += 1
            help_line = p.formatter_class(prog="x")._get_help_string(action)  # type: ignore[attr-defined]
            assert help_line and "default" in help_line, (p.prog, action.option_strings)
            assert "default" in text
    assert checked >= 15


def test_generate_prints_what_it_wrote_and_check_prints_the_refresh_command(
    tmp_path: Path, cli: CliRunner, monkeypatch: pytest.MonkeyPatch
) -> None:
    shutil.copytree(REPO_ROOT / "schema", tmp_path / "reg")
    out = tmp_path / "out"
    first = cli("generate", "python", "-r", "reg", "-o", "out", cwd=tmp_path)
    assert first.code == 0, first.err
    wrote = [line for line in first.out.splitlines() if line.startswith("wrote ")]
    assert sorted(wrote) == sorted(f"wrote out/{p.name}" for p in out.glob("*.py"))
    assert first.out.splitlines()[-1] == f"knhk-otel generate: python -> out: {len(wrote)} written, 0 deleted"
    again = cli("generate", "python", "-r", "reg", "-o", "out", cwd=tmp_path)
    assert again.out == "knhk-otel generate: python -> out: up to date\n"

    (out / "spans.py").write_text("# hand edit\n", encoding="utf-8")
    stale = cli("generate", "python", "-r", "reg", "-o", "out", "--check", cwd=tmp_path)
    assert stale.code == 1
    assert stale.out.splitlines() == ["out/spans.py: stale (differs from what `knhk-otel generate` writes)"]
    prefix = "knhk-otel generate: 1 file(s) out of date; refresh them with: "
    (line,) = stale.err.splitlines()
    assert line.startswith(prefix)
    command = shlex.split(line[len(prefix) :])
    assert command[:2] == ["knhk-otel", "generate"]
    assert cli(*command[1:], cwd=tmp_path).code == 0  # the printed command is the one that fixes it
    assert cli("generate", "python", "-r", "reg", "-o", "out", "--check", cwd=tmp_path).code == 0


def test_an_output_folder_given_as_a_target_is_explained(cli: CliRunner, tmp_path: Path) -> None:
    result = cli("generate", "python", "out/", cwd=REPO_ROOT)
    assert result.code == 1
    assert result.err.splitlines() == [
        "knhk-otel generate: error[unknown_target]: out/ is not a target but a folder; targets are "
        f"names ({', '.join(sorted(discover()))}) and the output folder is given with -o: "
        "knhk-otel generate python -o out/"
    ]
    assert not (REPO_ROOT / "out").exists()


def _registry(root: Path, spans: str) -> Path:
    root.mkdir()
    (root / "manifest.yaml").write_text("name: r\nsemconv_version: 1.0.0\n", encoding="utf-8")
    (root / "signals.yaml").write_text(spans, encoding="utf-8")
    return root


SIGNALS = """
groups:
  - id: span.shop.checkout
    type: span
    span_kind: server
    stability: stable
    brief: A checkout.
    attributes: []
  - id: event.shop.refund
    type: event
    name: shop.refund
    stability: stable
    brief: A refund.
    attributes: []
"""


def test_baseline_flags_a_removed_or_renamed_stable_span_and_event(tmp_path: Path, cli: CliRunner) -> None:
    before = _registry(tmp_path / "before", SIGNALS)
    after = _registry(
        tmp_path / "after",
        SIGNALS.replace("span.shop.checkout", "span.shop.checkouts").replace(
            "  - id: event.shop.refund\n    type: event\n    name: shop.refund\n",
            "  - id: event.shop.gone\n    type: event\n    name: shop.gone.entirely\n",
        ),
    )
    result = cli("check", "-r", str(after), "--baseline-registry", str(before), "--skip-policies")
    assert result.code == 1
    errors = sorted(line.split(": ", 1)[1] for line in result.err.splitlines() if ": error[" in line)
    assert errors == [
        "error[baseline_removed]: stable event `shop.refund` was removed "
        "(deprecate it instead of removing it)",
        "error[baseline_renamed]: stable span `shop.checkout` was renamed to `shop.checkouts` "
        "without deprecating it (keep `shop.checkout` with "
        "`deprecated: {reason: renamed, renamed_to: shop.checkouts}`)",
    ]
