"""Rego policies run unchanged, as Weaver runs them: `check --policy DIR|FILE.rego`.

Our own policies under `rego/` run everywhere; Weaver's checker data and the semconv repository's
`policies/` (with its `policies_test/` cases) run when the reference data is present.
"""

from __future__ import annotations

import textwrap
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml

from knhk_otel.check import rego
from knhk_otel.check.runner import run_checks
from knhk_otel.harness.reference import SEMCONV_POLICIES, WEAVER_TESTS, ReferenceData

HERE = Path(__file__).resolve().parent
REGO = HERE / "rego"
CHECKER_DATA = f"{WEAVER_TESTS}/crates/weaver_checker/data"
CliRunner = Callable[..., Any]


@pytest.fixture
def write_registry(tmp_path: Path) -> Callable[..., Path]:
    def write(name: str, files: dict[str, str]) -> Path:
        root = tmp_path / name
        root.mkdir(parents=True, exist_ok=True)
        for rel, text in files.items():
            (root / rel).write_text(textwrap.dedent(text).lstrip("\n"), encoding="utf-8")
        return root

    return write


def _registry(tmp_path: Path, metrics: str) -> Path:
    root = tmp_path / "reg"
    root.mkdir(parents=True)
    (root / "registry.yaml").write_text(
        textwrap.dedent(
            """
            groups:
              - id: registry.test
                type: attribute_group
                brief: Test attributes.
                attributes:
                  - id: test.kind
                    type: string
                    stability: development
                    brief: A kind.
              - id: test.common
                type: attribute_group
                attributes:
                  - ref: test.kind
            """
        ),
        encoding="utf-8",
    )
    (root / "metrics.yaml").write_text(textwrap.dedent(metrics), encoding="utf-8")
    return root


_METRICS = """
groups:
  - id: metric.test.requests.count
    type: metric
    metric_name: test.requests.count
    instrument: counter
    unit: "{request}"
    brief: Requests.
    stability: development
    attributes:
      - ref: test.kind
"""


def test_after_resolution_findings_become_diagnostics_at_the_definition(
    tmp_path: Path, cli: CliRunner
) -> None:
    root = _registry(tmp_path, _METRICS)
    result = cli("check", "-r", str(root), "--policy", str(REGO / "naming.rego"))
    assert result.code == 1, result.err
    lines = result.err.splitlines()
    count = [line for line in lines if "[metric_count_suffix]" in line]
    assert len(count) == 1 and count[0].startswith(f"{root}/metrics.yaml:3:")
    assert "error[metric_count_suffix]: Metric 'test.requests.count' must not end in '.count'." in count[0]
    brief = [line for line in lines if "[group_brief]" in line]
    assert len(brief) == 1 and "warning[group_brief]" in brief[0] and "registry.yaml:11:" in brief[0]


def test_a_policy_folder_runs_every_stage_and_skips_rego_tests(tmp_path: Path) -> None:
    root = _registry(tmp_path, _METRICS)
    baseline = _registry(tmp_path / "old", _METRICS.replace("requests.count", "requests.total"))
    report = run_checks(root, [str(REGO)], baseline)
    ids = sorted(d.id for d in report.diagnostics if d.id not in ("baseline_removed", "baseline_added"))
    # before_resolution sees the files as written (registry.test holds no ref: nothing),
    # after_resolution the resolved registry, comparison the baseline as `data`.
    assert "metric_count_suffix" in ids and "group_brief" in ids and "metric_removed" in ids
    assert "registry_with_ref" not in ids
    removed = next(d for d in report.diagnostics if d.id == "metric_removed")
    assert removed.message == "Metric 'test.requests.total' was removed."


def test_before_resolution_sees_each_file_as_written(tmp_path: Path) -> None:
    root = _registry(tmp_path, _METRICS)
    text = (root / "registry.yaml").read_text(encoding="utf-8")
    (root / "registry.yaml").write_text(
        text.replace("id: test.common", "id: registry.common"), encoding="utf-8"
    )
    report = run_checks(root, [str(REGO / "raw.rego")])
    found = [d for d in report.diagnostics if d.id == "registry_with_ref"]
    assert len(found) == 1 and found[0].is_error
    assert found[0].source is not None and found[0].source.line == 11
    assert "group `registry.common`, attr `test.kind`" in found[0].message


@pytest.mark.parametrize(
    ("policy", "diag_id", "line"),
    [("syntax.rego", "policy_file_invalid", 6), ("not_object.rego", "policy_failed", 5)],
)
def test_broken_policies_are_one_line_diagnostics_with_file_and_line(
    tmp_path: Path, cli: CliRunner, policy: str, diag_id: str, line: int
) -> None:
    root = _registry(tmp_path, _METRICS)
    path = REGO / "broken" / policy
    result = cli("check", "-r", str(root), "--policy", str(path))
    assert result.code == 1 and "Traceback" not in result.err + result.err
    found = [x for x in result.err.splitlines() if f"error[{diag_id}]" in x]
    assert found and found[0].startswith(f"{path}:{line}:"), result.err


def test_rego_test_rules_run() -> None:
    assert rego.run_tests([REGO / "naming.rego", REGO / "naming_test.rego"]) == {
        "test_count_suffix_is_denied": True,
        "test_other_metric_names_pass": True,
    }


# --- the reference data: the semconv repository's policies, Weaver's checker data ---------------


@pytest.fixture(scope="module")
def semconv_policies(reference: ReferenceData) -> Path:
    """The semconv checkout (its `policies/` and `policies_test/`)."""
    return reference.require(SEMCONV_POLICIES, "the semconv repository's Rego policies").parent


def test_semconv_model_passes_its_own_policies(semconv_policies: Path, cli: CliRunner) -> None:
    result = cli(
        "check", "-r", str(semconv_policies / "model"), "--policy", str(semconv_policies / "policies")
    )
    assert result.code == 0, result.err
    assert "brief_required" not in result.err and "policy_" not in result.err


def test_semconv_policies_test_cases_pass_on_the_engine(semconv_policies: Path) -> None:
    results = rego.run_tests(
        [semconv_policies / "policies" / "brief.rego", semconv_policies / "policies_test" / "brief_test.rego"]
    )
    assert len(results) == 4 and all(results.values()), results


@pytest.mark.parametrize("brief", [None, "", "absent"])
def test_semconv_brief_policy_on_a_registry_attribute_without_brief(
    semconv_policies: Path, write_registry: Any, brief: str | None
) -> None:
    # policies_test `test_fails_on_attribute_without_brief` / `test_passes_...`, on a real registry
    line = "" if brief == "absent" else f"brief: {'null' if brief is None else repr(brief)}"
    root = write_registry(
        "reg",
        {
            "r.yaml": f"""
            file_format: definition/2
            attributes:
              - key: foo.bar
                type: string
                stability: release_candidate
                {line}
              - key: foo.ok
                type: string
                stability: release_candidate
                brief: brief.
            """
        },
    )
    report = run_checks(root, [str(semconv_policies / "policies")])
    found = [d for d in report.diagnostics if d.id == "brief_required"]
    assert [d.message for d in found] == ["Attribute 'foo.bar' is invalid. Attributes must have a brief."]
    assert found[0].source is not None and found[0].source.path.endswith("r.yaml")


@pytest.mark.parametrize(
    ("section", "name_key", "kind"),
    [
        ("metrics", "name", "metric"),
        ("spans", "type", "span"),
        ("events", "name", "event"),
        ("entities", "type", "entity"),
    ],
)
def test_semconv_brief_policy_on_signals(
    semconv_policies: Path, write_registry: Any, section: str, name_key: str, kind: str
) -> None:
    # policies_test `test_fails_on_signal_without_brief` / `test_passes_on_signal_with_brief`
    extra = {
        "metrics": "instrument: counter\n                unit: '1'",
        "spans": "kind: client\n                name: {note: x}",
        "events": "",
        "entities": "identity:\n                  - ref: foo.id",
    }[section]
    files = {}
    for with_brief in (False, True):
        brief = "brief: brief." if with_brief else ""
        files[f"{with_brief}.yaml"] = f"""
            file_format: definition/2
            {section}:
              - {name_key}: foo.{"ok" if with_brief else "bar"}
                stability: release_candidate
                {brief}
                {extra}
            """
    files["attrs.yaml"] = """
            file_format: definition/2
            attributes:
              - {key: foo.id, type: string, stability: release_candidate, brief: Id.}
            """
    report = run_checks(write_registry("reg", files), [str(semconv_policies / "policies")])
    found = [d.message for d in report.diagnostics if d.id == "brief_required"]
    title = {"metric": "metric", "span": "span", "event": "event", "entity": "entity"}[kind]
    assert found == [f"{title} 'foo.bar' is invalid. Signals must have a brief."]


@pytest.fixture(scope="module")
def checker_data(reference: ReferenceData) -> Path:
    return reference.require(CHECKER_DATA, "Weaver's checker data (Rego policies and their registries)")


def _before_resolution(files: list[Path], data_dir: Path) -> list[tuple[str, str]]:
    policies, errors = rego.load(files)
    assert policies is not None and not errors
    old = yaml.safe_load((data_dir / "registries" / "registry.network.old.yaml").read_text(encoding="utf-8"))
    new = yaml.safe_load((data_dir / "registries" / "registry.network.new.yaml").read_text(encoding="utf-8"))
    values, problems = rego.evaluate(policies, "before_resolution", new, old)
    assert not problems
    return sorted((v["id"], v.get("attr") or v["context"]["attr"]) for v in values)


def test_weaver_checker_policies(checker_data: Path) -> None:
    # Weaver's checker tests: the new network registry as input, the old one as data
    expected = [
        ("attr_removed", "protocol.name.3"),
        ("attr_stability_deprecated", "protocol.name"),
        ("registry_with_ref_attr", "protocol.port"),
    ]
    assert _before_resolution([checker_data / "policies" / "otel_policies.rego"], checker_data) == expected
    multi = sorted((checker_data / "multi-policies").glob("*.rego"))
    assert _before_resolution(multi, checker_data) == expected


@pytest.mark.parametrize("name", ["invalid_rego_file_1.rego", "invalid_rego_file_2.rego"])
def test_weaver_invalid_rego_files(checker_data: Path, name: str) -> None:
    _, errors = rego.load([checker_data / "policies" / name])
    assert [d.id for d in errors] == ["policy_file_invalid"]
    assert (
        errors[0].source is not None and errors[0].source.path.endswith(name) and errors[0].source.line >= 1
    )


def test_weaver_invalid_policies_and_violation_objects(checker_data: Path, tmp_path: Path) -> None:
    root = _registry(tmp_path, _METRICS)
    text = (root / "registry.yaml").read_text(encoding="utf-8")
    (root / "registry.yaml").write_text(
        text.replace("id: test.common", "id: registry.common"), encoding="utf-8"
    )
    # a policy calling an undefined function: one diagnostic at the call, then checking goes on
    report = run_checks(root, [str(checker_data / "policies" / "invalid_policies.rego")])
    policy = [d for d in report.diagnostics if d.id.startswith("policy_")]
    assert [d.id for d in policy] == ["policy_failed"]
    assert policy[0].source is not None and policy[0].source.line == 15
    assert "attr_registry_violation" in policy[0].message
    # a violation object without Weaver's `type` (nor `level` + `message`) is refused
    report = run_checks(root, [str(checker_data / "policies" / "invalid_violation_object.rego")])
    policy = [d for d in report.diagnostics if d.id.startswith("policy_")]
    assert [d.id for d in policy] == ["policy_failed"]
    assert "registry_with_ref_attr" in policy[0].message and policy[0].source is not None


def test_a_policy_folder_without_rego_files_is_named(tmp_path: Path) -> None:
    root = _registry(tmp_path, _METRICS)
    empty = tmp_path / "policies"
    empty.mkdir()
    report = run_checks(root, [str(empty)])
    found = [d for d in report.diagnostics if d.id == "policy_file_invalid"]
    assert [d.message for d in found] == ["policy folder holds no .rego file"]
    assert found[0].source is not None and found[0].source.path == str(empty)
