"""YAML with positions: values as PyYAML's safe loader builds them, plus 1-based marks."""

from __future__ import annotations

import datetime

import yaml

from knhk_otel.schema.yamlpos import parse_yaml


def test_positions_of_values_and_keys() -> None:
    doc, diagnostics = parse_yaml("groups:\n  - id: a\n    attributes:\n      - ref: x.y\n", "f.yaml")
    assert diagnostics == [] and doc is not None
    assert doc.positions[("groups", 0, "attributes", 0, "ref")] == (4, 14)
    assert doc.key_positions[("groups", 0, "attributes", 0, "ref")] == (4, 9)
    assert str(doc.source(("groups", 0, "missing", 3))) == "f.yaml:2:5"  # nearest known parent


def test_values_match_safe_load_except_timestamps_stay_text() -> None:
    text = "a: [1, 2.5, true, null, '7']\nb: {c: 0x1f, d: .inf}\nwhen: 2024-01-02\n"
    text += "m: &m {k: 1}\nn:\n  <<: *m\n  z: 2\n"
    doc, _ = parse_yaml(text, "f.yaml")
    assert doc is not None
    expected = yaml.safe_load(text)
    expected["when"] = "2024-01-02"
    assert doc.data == expected
    assert yaml.safe_load("when: 2024-01-02")["when"] == datetime.date(2024, 1, 2)  # PyYAML itself untouched


def test_syntax_error_has_a_position() -> None:
    doc, diagnostics = parse_yaml("a:\n  - [1, 2\n", "f.yaml")
    assert doc is None
    assert [d.id for d in diagnostics] == ["yaml_syntax"]
    assert diagnostics[0].source is not None and diagnostics[0].source.line == 3
