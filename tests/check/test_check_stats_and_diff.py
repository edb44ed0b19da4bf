"""`knhk-otel stats` and `knhk-otel diff` on small registries: exact JSON, deterministic text."""

from __future__ import annotations

import json
import textwrap
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

CliRunner = Callable[..., Any]

DEPENDENCY = {
    "manifest.yaml": "name: std\nsemconv_version: 1.0.0\n",
    "registry.yaml": """
        groups:
          - id: registry.network
            type: attribute_group
            brief: Network attributes.
            attributes:
              - id: network.peer.address
                type: string
                stability: stable
                brief: Peer address.
                examples: ["10.1.2.3"]
              - id: network.peer.port
                type: int
                stability: stable
                brief: Peer port.
                examples: [4433]
    """,
}

OWN_MANIFEST = """
    name: mesh
    semconv_version: 0.2.0
    namespace: knhk.mesh
    dependencies:
      - name: std
        registry_path: std
"""

OWN = """
    groups:
      - id: registry.knhk.mesh.peer
        type: attribute_group
        brief: Peer attributes.
        attributes:
          - id: knhk.mesh.peer.id
            type: string
            stability: stable
            brief: Identifier of a peer.
            examples: ["peer-1"]
          - id: knhk.mesh.peer.count
            type: int
            stability: development
            brief: Number of peers.
            examples: [3]
          - id: knhk.mesh.peer.old_id
            type: string
            stability: development
            brief: Former identifier.
            deprecated:
              reason: renamed
              renamed_to: knhk.mesh.peer.id
      - id: span.knhk.mesh.peer.ping
        type: span
        span_kind: client
        stability: development
        brief: A ping.
        attributes:
          - ref: knhk.mesh.peer.id
            requirement_level: required
          - ref: network.peer.address
      - id: metric.knhk.mesh.ping.duration
        type: metric
        metric_name: knhk.mesh.ping.duration
        instrument: histogram
        unit: s
        stability: stable
        brief: Ping round trips.
        annotations:
          knhk:
            explicit_bucket_boundaries: [0.001, 0.01, 0.1, 1]
        attributes:
          - ref: knhk.mesh.peer.id
            requirement_level: opt_in  # an id on a metric: only where the operator opts in
      - id: event.knhk.mesh.peer.joined
        type: event
        name: knhk.mesh.peer.joined
        stability: development
        brief: A peer joined.
        attributes:
          - ref: knhk.mesh.peer.id
"""


def write(root: Path, files: dict[str, str]) -> Path:
    for rel, text in files.items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(textwrap.dedent(text).lstrip("\n"), encoding="utf-8")
    return root


@pytest.fixture
def mesh_registry(tmp_path: Path) -> Path:
    root = write(tmp_path / "mesh", {"manifest.yaml": OWN_MANIFEST, "registry.yaml": OWN})
    write(root / "std", DEPENDENCY)
    return root


def test_the_small_registry_checks_clean(mesh_registry: Path, cli: CliRunner) -> None:
    result = cli("check", "-r", str(mesh_registry))
    assert result.code == 0, result.err
    assert result.err.splitlines()[-1].endswith(": 2 files, 5 groups, 0 errors, 0 warnings")


def test_stats_json_counts_own_and_dependencies(mesh_registry: Path, cli: CliRunner) -> None:
    result = cli("stats", "-r", str(mesh_registry), "--format", "json")
    assert result.code == 0, result.err

    def side(**over: Any) -> dict[str, Any]:
        base: dict[str, Any] = {
            "attribute_group": 0,
            "attributes": 0,
            "span": 0,
            "metric": 0,
            "event": 0,
            "entity": 0,
            "stability": {"attributes": {}, "signals": {}},
            "deprecated": {"attributes": 0, "signals": 0},
            "instruments": {},
            "span_kinds": {},
        }
        base.update(over)
        return base

    own = side(
        attribute_group=1,
        attributes=3,
        span=1,
        metric=1,
        event=1,
        stability={"attributes": {"development": 2, "stable": 1}, "signals": {"development": 2, "stable": 1}},
        deprecated={"attributes": 1, "signals": 0},
        instruments={"histogram": 1},
        span_kinds={"client": 1},
    )
    dependencies = side(
        attribute_group=1, attributes=2, stability={"attributes": {"stable": 2}, "signals": {}}
    )
    total = side(
        attribute_group=2,
        attributes=5,
        span=1,
        metric=1,
        event=1,
        stability={"attributes": {"development": 2, "stable": 3}, "signals": {"development": 2, "stable": 1}},
        deprecated={"attributes": 1, "signals": 0},
        instruments={"histogram": 1},
        span_kinds={"client": 1},
    )
    assert json.loads(result.out) == {
        "registry": "mesh",
        "groups": 5,
        "own": own,
        "dependencies": dependencies,
        "total": total,
    }


def test_stats_text_is_a_table(mesh_registry: Path, cli: CliRunner) -> None:
    result = cli("stats", "-r", str(mesh_registry))
    assert result.code == 0
    rows = {line.split()[0]: line.split()[1:] for line in result.out.splitlines()[3:9]}
    assert rows["attributes"] == ["3", "2", "5"]
    assert rows["span"] == ["1", "0", "1"]
    assert result.out.splitlines()[0] == "registry mesh: 5 groups"


def test_stats_of_a_broken_registry_is_one_line_per_error(tmp_path: Path, cli: CliRunner) -> None:
    root = write(
        tmp_path / "bad",
        {
            "manifest.yaml": "name: bad\n",
            "a.yaml": "groups:\n  - id: x\n    type: span\n    attributes:\n      - ref: nope\n",
        },
    )
    result = cli("stats", "-r", str(root))
    assert result.code == 1
    assert "error[unresolved_ref]" in result.err and "Traceback" not in result.err


def _evolved(text: str) -> str:
    """The next version of OWN: renames one attribute, obsoletes one, adds one, retypes a fourth,
    changes a metric's unit and a span's kind, and removes the event."""
    text = text.replace(
        """          - id: knhk.mesh.peer.count
            type: int
            stability: development
            brief: Number of peers.
            examples: [3]""",
        """          - id: knhk.mesh.peer.count
            type: double
            stability: development
            brief: Number of peers, averaged.
            examples: [3.5]
          - id: knhk.mesh.peer.name
            type: string
            stability: development
            brief: Name of a peer.
            examples: ["alpha"]
          - id: knhk.mesh.peer.label
            type: string
            stability: development
            brief: Label of a peer.
            examples: ["a"]
            deprecated:
              reason: renamed
              renamed_to: knhk.mesh.peer.name
          - id: knhk.mesh.peer.zone
            type: string
            stability: development
            brief: Zone, no longer reported.
            deprecated:
              reason: obsoleted""",
    )
    text = text.replace("span_kind: client", "span_kind: internal").replace("unit: s\n", "unit: ms\n")
    return text[: text.index("      - id: event.knhk.mesh.peer.joined")]


def _baseline(text: str) -> str:
    """The previous version: it had `label` and `zone` still in use."""
    return text.replace(
        """          - id: knhk.mesh.peer.old_id""",
        """          - id: knhk.mesh.peer.label
            type: string
            stability: development
            brief: Label of a peer.
            examples: ["a"]
          - id: knhk.mesh.peer.zone
            type: string
            stability: development
            brief: Zone of a peer.
            examples: ["eu-1"]
          - id: knhk.mesh.peer.old_id""",
    )


@pytest.fixture
def two_versions(tmp_path: Path) -> tuple[Path, Path]:
    before = write(tmp_path / "v1", {"manifest.yaml": OWN_MANIFEST, "registry.yaml": _baseline(OWN)})
    write(before / "std", DEPENDENCY)
    after = write(tmp_path / "v2", {"manifest.yaml": OWN_MANIFEST, "registry.yaml": _evolved(OWN)})
    write(after / "std", DEPENDENCY)
    return after, before


def _empty() -> dict[str, list[Any]]:
    return {c: [] for c in ("added", "removed", "renamed", "obsoleted", "uncategorized", "updated")}


def test_diff_json_is_exact(two_versions: tuple[Path, Path], cli: CliRunner) -> None:
    after, before = two_versions
    result = cli("diff", "-r", str(after), "--baseline-registry", str(before), "--format", "json")
    assert result.code == 0, result.err
    attributes = _empty()
    attributes["added"] = ["knhk.mesh.peer.name"]
    attributes["renamed"] = [{"name": "knhk.mesh.peer.label", "renamed_to": "knhk.mesh.peer.name"}]
    attributes["obsoleted"] = ["knhk.mesh.peer.zone"]
    attributes["updated"] = [
        {
            "name": "knhk.mesh.peer.count",
            "changes": {
                "type": {"from": "int", "to": "double"},
                "brief": {"from": "Number of peers.", "to": "Number of peers, averaged."},
            },
        }
    ]
    metrics = _empty()
    metrics["updated"] = [{"name": "knhk.mesh.ping.duration", "changes": {"unit": {"from": "s", "to": "ms"}}}]
    spans = _empty()
    spans["updated"] = [
        {"name": "knhk.mesh.peer.ping", "changes": {"span_kind": {"from": "client", "to": "internal"}}}
    ]
    events = _empty()
    events["removed"] = ["knhk.mesh.peer.joined"]
    assert json.loads(result.out) == {
        "attributes": attributes,
        "metrics": metrics,
        "spans": spans,
        "events": events,
    }


def test_diff_is_deterministic_and_renders_markdown_and_text(
    two_versions: tuple[Path, Path], cli: CliRunner
) -> None:
    after, before = two_versions
    args = ("diff", "-r", str(after), "--baseline-registry", str(before))
    markdown = cli(*args, "--format", "markdown").out
    assert markdown == cli(*args, "--format", "markdown").out
    assert "### Renamed (1)\n\n- `knhk.mesh.peer.label` → `knhk.mesh.peer.name`" in markdown
    assert "## Events\n\n### Removed (1)\n\n- `knhk.mesh.peer.joined`" in markdown
    text = cli(*args).out
    assert text.splitlines()[0] == "attributes: 1 added, 1 renamed, 1 obsoleted, 1 updated"
    assert "  ~ updated       knhk.mesh.ping.duration (unit: 's' → 'ms')" in text.splitlines()


def test_diff_against_itself_has_no_changes(mesh_registry: Path, cli: CliRunner) -> None:
    result = cli("diff", "-r", str(mesh_registry), "--baseline-registry", str(mesh_registry))
    assert result.out.splitlines() == [
        f"{k}: no changes" for k in ("attributes", "metrics", "spans", "events")
    ]


def test_check_against_the_baseline_flags_only_the_stable_break(
    two_versions: tuple[Path, Path], cli: CliRunner
) -> None:
    """Renaming, obsoleting and retyping development attributes is allowed; the stable metric's
    unit change from `s` to `ms` is the one compatibility error."""
    after, before = two_versions
    result = cli("check", "-r", str(after), "--baseline-registry", str(before))
    assert result.code == 1
    errors = [line for line in result.err.splitlines() if ": error[" in line]
    assert len(errors) == 1
    assert errors[0].endswith(
        "error[baseline_unit_changed]: stable metric `knhk.mesh.ping.duration` changed unit from 's' to 'ms'"
    )
    lines = (after / "registry.yaml").read_text(encoding="utf-8").splitlines()
    metric_line = lines.index("  - id: metric.knhk.mesh.ping.duration") + 1
    assert errors[0].startswith(f"{after / 'registry.yaml'}:{metric_line}:9: ")
