"""No input makes the loader or the resolver raise: odd shapes become diagnostics."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from knhk_otel.schema import LoadedRegistry, load_and_resolve, resolve
from knhk_otel.schema.yamlpos import parse_yaml

#: Keys the readers look at, so random documents reach deep into them.
_KEYS = [
    "groups", "id", "type", "brief", "note", "attributes", "ref", "ref_group", "extends", "members",
    "value", "requirement_level", "conditionally_required", "examples", "deprecated", "reason",
    "renamed_to", "stability", "span_kind", "metric_name", "instrument", "unit", "name", "prefix",
    "file_format", "key", "spans", "metrics", "events", "entities", "attribute_groups", "kind",
    "span_refinements", "metric_refinements", "imports", "identity", "annotations", "sampling_relevant",
]  # fmt: skip
_VALUES = ["attribute_group", "span", "metric", "string", "int", "definition/2", "renamed", "a.b", "required"]

_scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),
    st.floats(allow_nan=False),
    st.sampled_from(_VALUES),
    st.text(max_size=8),
)
_data = st.recursive(
    _scalars,
    lambda inner: st.one_of(
        st.lists(inner, max_size=4),
        st.dictionaries(
            st.one_of(st.sampled_from(_KEYS), st.text(max_size=4), st.integers(), st.booleans(), st.none()),
            inner,
            max_size=5,
        ),
    ),
    max_leaves=30,
)


def _registry(files: list[Any]) -> LoadedRegistry:
    docs = []
    for i, data in enumerate(files):
        doc, _ = parse_yaml(yaml.safe_dump(data), f"f{i}.yaml")
        assert doc is not None
        docs.append(doc)
    return LoadedRegistry(
        root=Path("garbage"), manifest=None, documents=docs, dependencies=[], diagnostics=[]
    )


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(_data, min_size=1, max_size=3))
def test_resolve_never_raises_on_random_documents(files: list[Any]) -> None:
    registry, diagnostics = resolve(_registry(files))
    assert all(d.source is not None for d in diagnostics)
    registry.to_dict()


@settings(max_examples=200, deadline=None)
@given(st.dictionaries(st.sampled_from(_KEYS[1:20]), _data, max_size=8))
def test_resolve_never_raises_on_random_groups(group: dict[str, Any]) -> None:
    for data in (
        {"groups": [group]},
        {"file_format": "definition/2", "spans": [group], "attributes": [group]},
    ):
        registry, _ = resolve(_registry([data]))
        registry.to_dict()


@settings(max_examples=300, deadline=None)
@given(st.text(alphabet=st.sampled_from(list("ab:-[]{}&*!|>'\"#\n ?,.0")), max_size=60))
def test_yaml_parse_never_raises_on_random_text(text: str) -> None:
    doc, diagnostics = parse_yaml(text, "random.yaml")
    assert (doc is None) == bool(diagnostics)
    if diagnostics:
        assert diagnostics[0].id == "yaml_syntax"


def test_random_registry_folder_loads(tmp_path: Path) -> None:
    (tmp_path / "manifest.yaml").write_text("- just\n- a list\n")
    (tmp_path / "empty.yaml").write_text("")
    (tmp_path / "scalar.yaml").write_text("42\n")
    (tmp_path / "latin1.yaml").write_bytes(b"groups: []\nbrief: caf\xe9\n")
    (tmp_path / "recursive.yaml").write_text("a: &x [*x]\n")
    registry, diagnostics = load_and_resolve(tmp_path)
    assert registry is not None
    ids = sorted(d.id for d in diagnostics)
    assert "manifest_invalid" in ids and "file_encoding" in ids and "invalid_definition" in ids
