"""Our own `schema/` uses only syntax Weaver accepts, so users can point real Weaver at it."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml
from jsonschema import Draft202012Validator

from knhk_otel.check.syntax import check_document
from knhk_otel.schema.yamlpos import load_yaml

REPO_ROOT = Path(__file__).resolve().parents[2]
FILES = sorted(p for p in (REPO_ROOT / "schema").rglob("*.yaml") if p.name != "manifest.yaml")


def test_the_schema_has_a_file_per_component() -> None:
    names = {p.relative_to(REPO_ROOT / "schema").as_posix() for p in FILES}
    assert {
        "peers.yaml",
        "gossip.yaml",
        "topology.yaml",
        "partition.yaml",
        "security.yaml",
        "transport.yaml",
        "hierarchy.yaml",
        "ticks.yaml",
        "otel/registry.yaml",
    } <= names


@pytest.mark.parametrize("path", FILES, ids=lambda p: p.relative_to(REPO_ROOT).as_posix())
def test_file_validates_under_weavers_v1_schema(path: Path, weaver_schemas: Path) -> None:
    schema = weaver_schemas / "semconv.schema.json"
    validator = Draft202012Validator(json.loads(schema.read_text(encoding="utf-8")))
    errors = [
        f"{list(e.absolute_path)}: {e.message}"
        for e in validator.iter_errors(yaml.safe_load(path.read_text()))
    ]
    assert errors == []


@pytest.mark.parametrize("path", FILES, ids=lambda p: p.relative_to(REPO_ROOT).as_posix())
def test_file_validates_under_our_own_v1_schema(path: Path) -> None:
    doc, diagnostics = load_yaml(path)
    assert diagnostics == [] and doc is not None
    assert [d.render() for d in check_document(doc)] == []
