"""`knhk-otel resolve`: output shape, determinism, exit codes, diagnostics on stderr."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pytest
import yaml

from knhk_otel.cli import main


def test_resolve_prints_weaver_shaped_json(
    write_registry: Callable[..., Path], base_attributes: str, capsys: pytest.CaptureFixture[str]
) -> None:
    root = write_registry("reg", {"a.yaml": base_attributes})
    assert main(["resolve", "-r", str(root), "-f", "json"]) == 0
    out = capsys.readouterr()
    data = json.loads(out.out)
    assert out.err == ""
    (group,) = data["groups"]
    assert group["id"] == "registry.knhk.mesh.peer" and group["type"] == "attribute_group"
    assert group["lineage"]["source_file"].endswith("a.yaml")
    names = [a["name"] for a in group["attributes"]]
    assert names == ["knhk.mesh.peer.id", "knhk.mesh.peer.role", "knhk.mesh.peer.count"]
    assert group["attributes"][1]["type"]["members"][0] == {
        "id": "seed",
        "value": "seed",
        "brief": "A seed node.",
        "stability": "development",
    }


def test_resolve_yaml_to_file_is_deterministic(
    write_registry: Callable[..., Path], base_attributes: str, tmp_path: Path
) -> None:
    root = write_registry(
        "reg", {"b.yaml": base_attributes, "a.yaml": base_attributes.replace("peer", "node")}
    )
    first, second = tmp_path / "one.yaml", tmp_path / "two.yaml"
    assert main(["resolve", "-r", str(root), "-o", str(first)]) == 0
    assert main(["resolve", "-r", str(root), "-o", str(second)]) == 0
    assert first.read_bytes() == second.read_bytes()
    data = yaml.safe_load(first.read_text())
    assert [g["id"] for g in data["groups"]] == ["registry.knhk.mesh.node", "registry.knhk.mesh.peer"]


def test_resolve_errors_go_to_stderr_with_exit_1(
    write_registry: Callable[..., Path], capsys: pytest.CaptureFixture[str]
) -> None:
    root = write_registry(
        "reg",
        {
            "bad.yaml": "groups:\n  - id: s\n    type: span\n    brief: s\n"
            "    attributes:\n      - ref: no.such\n"
        },
    )
    assert main(["resolve", "-r", str(root)]) == 1
    out = capsys.readouterr()
    assert out.out == ""
    lines = out.err.strip().splitlines()
    # the same checks as `knhk-otel check`: the unresolved ref, the span's missing kind, the refusal
    assert any(
        line.endswith(
            "bad.yaml:6:14: error[unresolved_ref]: "
            "group `s` refers to attribute `no.such`, which no registry defines"
        )
        for line in lines
    )
    assert "error[missing_span_kind]" in out.err
    assert lines[-1] == (
        f"knhk-otel resolve: registry {root} has {len(lines) - 1} error(s); "
        f"nothing done (see `knhk-otel check -r {root}`)"
    )


def test_resolve_missing_folder_exits_1(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["resolve", "-r", str(tmp_path / "absent")]) == 1
    assert "error[file_unreadable]" in capsys.readouterr().err


def test_display_paths_are_relative_to_the_current_directory(
    write_registry: Callable[..., Path], monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    root = write_registry("reg", {"schema/gossip.yaml": "groups:\n  - id: x\n    type: nope\n"})
    monkeypatch.chdir(root)
    assert main(["resolve", "-r", "schema"]) == 1
    assert capsys.readouterr().err.startswith("schema/gossip.yaml:3:11: error[syntax]:")
