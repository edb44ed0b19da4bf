"""Diagnostic formats (json, gh_workflow_command), policy files, and checks that must stay quiet."""

from __future__ import annotations

import json
import textwrap
from collections.abc import Callable
from pathlib import Path
from typing import Any

from knhk_otel.check.policies import load_policy_file, run_policies
from knhk_otel.check.runner import run_checks
from knhk_otel.schema import load_and_resolve

CliRunner = Callable[..., Any]
BROKEN = Path(__file__).resolve().parent / "broken"
REPO_ROOT = Path(__file__).resolve().parents[2]


def write(root: Path, files: dict[str, str]) -> Path:
    for rel, text in files.items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(textwrap.dedent(text).lstrip("\n"), encoding="utf-8")
    return root


def test_json_format_is_one_object_per_line(cli: CliRunner) -> None:
    result = cli(
        "check", "-r", ".", "--diagnostic-format", "json", cwd=BROKEN / "unresolved_ref_did_you_mean"
    )
    assert result.code == 1
    (line,) = result.err.splitlines()  # diagnostics on stderr, as Weaver prints them
    assert json.loads(line) == {
        "id": "unresolved_ref",
        "severity": "error",
        "message": "group `span.knhk.mesh.peer.ping` refers to attribute `knhk.mesh.peer.idd`, "
        "which no registry defines",
        "hint": "did you mean `knhk.mesh.peer.id`?",
        "file": "spans.yaml",
        "line": 8,
        "col": 14,
    }
    assert result.out.startswith("✘ .: 2 files, 2 groups, 1 errors")  # summary kept off the JSON stream


def test_gh_workflow_command_format(cli: CliRunner) -> None:
    result = cli(
        "check", "-r", ".", "--diagnostic-format", "gh_workflow_command", cwd=BROKEN / "malformed_unit"
    )
    assert result.code == 1
    first, summary = result.err.splitlines()
    assert first.startswith("::error file=metrics.yaml,line=6,col=11,title=malformed_unit::metric ")
    assert "unit 'peers per node' is not a UCUM unit" in first
    assert summary.startswith("::notice title=knhk-otel check::✘ .: 2 files")


def test_gh_workflow_command_marks_warnings(tmp_path: Path, cli: CliRunner) -> None:
    root = write(
        tmp_path / "r",
        {
            "manifest.yaml": "name: r\nnamespace: knhk.mesh\n",
            "m.yaml": """
                groups:
                  - id: metric.knhk.mesh.op.duration
                    type: metric
                    metric_name: knhk.mesh.op.duration
                    instrument: histogram
                    unit: s
                    stability: development
                    brief: Duration of an operation.
                    attributes: []
            """,
        },
    )
    result = cli("check", "-r", str(root), "--diagnostic-format", "gh_workflow_command")
    assert result.code == 0  # warnings do not fail
    assert result.err.splitlines()[0].startswith(
        f"::warning file={root / 'm.yaml'},line=2,col=5,title=histogram_without_buckets::"
    )


def test_histogram_buckets_are_only_asked_of_our_namespace(tmp_path: Path) -> None:
    root = write(
        tmp_path / "r",
        {
            "manifest.yaml": "name: r\n",
            "m.yaml": """
                groups:
                  - id: metric.acme.op.duration
                    type: metric
                    metric_name: acme.op.duration
                    instrument: histogram
                    unit: s
                    stability: development
                    brief: Duration of an operation.
                    attributes: []
            """,
        },
    )
    assert run_checks(root).diagnostics == []


def test_deprecated_enum_alias_may_share_its_successors_value(tmp_path: Path) -> None:
    root = write(
        tmp_path / "r",
        {
            "manifest.yaml": "name: r\n",
            "a.yaml": """
                groups:
                  - id: registry.acme
                    type: attribute_group
                    brief: Acme.
                    attributes:
                      - id: acme.token.type
                        type:
                          members:
                            - id: output
                              value: output
                              stability: development
                            - id: completion
                              value: output
                              stability: development
                              deprecated: {reason: renamed, renamed_to: output}
                        stability: development
                        brief: Token type.
                        examples: ["output", "reasoning"]
            """,
        },
    )
    # `reasoning` is not a member, but semantic-convention enums are open: a string is fine
    assert run_checks(root).diagnostics == []


def test_a_policy_file_with_a_syntax_error_is_one_diagnostic(tmp_path: Path) -> None:
    policy = tmp_path / "bad_policy.py"
    policy.write_text("def policy_x(registry)\n    return []\n", encoding="utf-8")
    policies, diagnostics = load_policy_file(str(policy))
    assert policies == []
    (d,) = diagnostics
    assert (d.id, d.source.line if d.source else None) == ("policy_file_invalid", 1)
    assert d.message.startswith("policy file does not compile:")


def test_policy_functions_are_found_by_name_in_file_order(tmp_path: Path) -> None:
    policy = (
        write(
            tmp_path,
            {
                "p.py": """
                from knhk_otel.schema.diagnostics import Diagnostic

                def policy_second_in_name_first_in_file(registry):
                    yield Diagnostic("first", "one")

                def helper(registry):
                    raise AssertionError("not a policy")

                def policy_a(registry):
                    return [Diagnostic("second", "two", severity="warning")]
            """,
            },
        )
        / "p.py"
    )
    policies, diagnostics = load_policy_file(str(policy))
    assert diagnostics == []
    assert [p.name for p in policies] == ["policy_second_in_name_first_in_file", "policy_a"]
    registry, _ = load_and_resolve(BROKEN / "custom_policy_finding")
    assert registry is not None
    assert [d.id for d in run_policies(registry, policies)] == ["first", "second"]


def test_a_file_without_policies_and_a_missing_file_are_reported(tmp_path: Path) -> None:
    empty = write(tmp_path, {"empty.py": "X = 1\n"}) / "empty.py"
    assert [d.id for d in load_policy_file(str(empty))[1]] == ["policy_file_invalid"]
    assert [d.id for d in load_policy_file(str(tmp_path / "absent.py"))[1]] == ["policy_file_invalid"]
    not_a_list = write(tmp_path, {"nl.py": "POLICIES = 3\n"}) / "nl.py"
    assert "must be a list of functions" in load_policy_file(str(not_a_list))[1][0].message


def test_a_policy_returning_garbage_is_policy_failed(tmp_path: Path, cli: CliRunner) -> None:
    policy = write(tmp_path, {"g.py": "POLICIES = [lambda registry: ['not a diagnostic']]\n"}) / "g.py"
    result = cli("check", "-r", ".", "--policy", str(policy), cwd=BROKEN / "custom_policy_finding")
    assert result.code == 1
    assert "error[policy_failed]: policy `<lambda>` returned str, not a Diagnostic" in result.err


def test_a_missing_registry_folder_is_one_line(tmp_path: Path, cli: CliRunner) -> None:
    result = cli("check", "-r", str(tmp_path / "nowhere"))
    assert result.code == 1
    lines = result.err.splitlines()
    assert len(lines) == 2 and "error[file_unreadable]" in lines[0] and "does not exist" in lines[0]


def test_the_projects_own_schema_checks_clean(cli: CliRunner) -> None:
    """`knhk-otel check -r schema` from the repository root, as CI runs it."""
    result = cli("check", cwd=REPO_ROOT)
    assert result.code == 0, result.err
    assert result.err.splitlines()[-1].startswith("✔ schema: ")


def _only(tmp_path: Path, body: str) -> list[tuple[str, int, int]]:
    root = write(tmp_path / "r", {"manifest.yaml": "name: r\n", "a.yaml": body})
    return [(d.id, d.source.line, d.source.col) for d in run_checks(root).diagnostics if d.source]


def test_a_malformed_example_is_reported_once(tmp_path: Path) -> None:
    body = """
        groups:
          - id: registry.acme
            type: attribute_group
            brief: Acme.
            attributes:
              - id: acme.sizes
                type: int[]
                stability: development
                brief: Sizes.
                examples: [[1, [2]]]
    """
    assert _only(tmp_path, body) == [("syntax", 10, 24)]


def test_an_unknown_file_format_is_reported_once(tmp_path: Path) -> None:
    assert _only(tmp_path, "file_format: definition/3\n") == [("syntax", 1, 14)]


def test_an_event_name_of_the_wrong_type_is_a_syntax_error_not_a_missing_name(tmp_path: Path) -> None:
    body = """
        groups:
          - id: event.acme.started
            type: event
            name: [acme, started]
            stability: development
            brief: Started.
            attributes: []
    """
    assert [i for i, _, _ in _only(tmp_path, body)][:1] == ["syntax"]
    assert "missing_event_name" not in [i for i, _, _ in _only(tmp_path, body)]


def test_a_multi_line_exception_from_a_policy_still_prints_one_line(tmp_path: Path, cli: CliRunner) -> None:
    policy = (
        write(
            tmp_path,
            {"m.py": 'def policy_loud(registry):\n    raise ValueError("first line\\nsecond line")\n'},
        )
        / "m.py"
    )
    result = cli("check", "-r", ".", "--policy", str(policy), cwd=BROKEN / "custom_policy_finding")
    assert result.code == 1
    (line,) = [x for x in result.err.splitlines() if "policy_failed" in x]
    expected = "error[policy_failed]: policy `policy_loud` raised ValueError: first line second line"
    assert line == f"{policy}:2:1: {expected}"


def test_a_v2_event_without_a_name_is_missing_event_name(tmp_path: Path) -> None:
    body = """
        file_format: definition/2
        events:
          - stability: development
            brief: Something happened.
    """
    assert ("missing_event_name", 3, 5) in _only(tmp_path, body)


def test_a_stable_rename_that_keeps_the_old_name_deprecated_is_compatible(
    tmp_path: Path, cli: CliRunner
) -> None:
    baseline = BROKEN / "baseline_removed" / "baseline"
    text = (baseline / "registry.yaml").read_text(encoding="utf-8")
    renamed = text.replace(
        "      - id: knhk.mesh.peer.count\n        type: int\n        stability: stable\n",
        "      - id: knhk.mesh.peer.total\n        type: int\n        stability: stable\n"
        "        brief: Number of peers.\n"
        "      - id: knhk.mesh.peer.count\n        type: int\n        stability: stable\n"
        "        deprecated:\n          reason: renamed\n          renamed_to: knhk.mesh.peer.total\n",
    )
    assert renamed != text
    root = write(
        tmp_path / "r", {"manifest.yaml": (baseline / "manifest.yaml").read_text(), "registry.yaml": renamed}
    )
    result = cli("check", "-r", str(root), "--baseline-registry", str(baseline))
    assert result.code == 0, result.out
    diff = json.loads(
        cli("diff", "-r", str(root), "--baseline-registry", str(baseline), "--format", "json").out
    )
    assert diff["attributes"]["renamed"] == [
        {"name": "knhk.mesh.peer.count", "renamed_to": "knhk.mesh.peer.total"}
    ]
    assert diff["attributes"]["added"] == ["knhk.mesh.peer.total"]


def test_an_attribute_that_is_another_ones_namespace_is_an_error(tmp_path: Path) -> None:
    """`acme.topology` beside `acme.topology.clusters`: a deprecated one is exempt."""
    body = """
        groups:
          - id: registry.acme
            type: attribute_group
            brief: Acme.
            attributes:
              - id: acme.topology
                type: string
                stability: development
                brief: Topology.
                examples: ["flat"]
              - id: acme.topology.clusters
                type: int
                stability: development
                brief: Clusters.
                examples: [3]
              - id: acme.region
                type: string
                stability: development
                brief: Old region.
                examples: ["eu"]
                deprecated: {reason: obsoleted}
              - id: acme.region.name
                type: string
                stability: development
                brief: Region.
                examples: ["eu"]
    """
    root = write(tmp_path / "r", {"manifest.yaml": "name: r\n", "a.yaml": body})
    found = [(d.id, d.severity, d.source.line) for d in run_checks(root).diagnostics if d.source]
    assert found == [("attribute_namespace_collision", "warning", 6)]  # Weaver passes it: ours is stricter
    future = [(d.id, d.severity) for d in run_checks(root, future=True).diagnostics]
    assert future == [("attribute_namespace_collision", "error")]
