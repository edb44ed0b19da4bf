"""YAML with source positions: plain Python data plus a map from each node's path to its line/col.

Diagnostics must name `file:line:col`; PyYAML's composed nodes know the marks, the constructed
values do not. `load_yaml` keeps both, so later stages work on plain dicts and still point home.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from knhk_otel.schema.diagnostics import Diagnostic
from knhk_otel.schema.model import Source

PathKey = tuple[str | int, ...]


@dataclass(slots=True)
class YamlDoc:
    """A parsed YAML file; `positions[path]` is the (line, col) of the node at that path (1-based).

    For a mapping key path `(..., "key")` the position is the value's; `key_positions` holds the key's.
    """

    path: str
    data: Any
    positions: dict[PathKey, tuple[int, int]] = field(default_factory=dict)
    key_positions: dict[PathKey, tuple[int, int]] = field(default_factory=dict)

    def source(self, at: PathKey = (), *, key: bool = False) -> Source:
        """The closest known position of `at` (walking up to a parent when the node itself is absent)."""
        table = self.key_positions if key else self.positions
        probe = at
        while True:
            if probe in table:
                line, col = table[probe]
                return Source(self.path, line, col)
            if probe in self.positions:
                line, col = self.positions[probe]
                return Source(self.path, line, col)
            if not probe:
                return Source(self.path, 1, 1)
            probe = probe[:-1]


class _Loader(yaml.SafeLoader):
    """SafeLoader that keeps timestamps as strings: semconv examples are data, not dates."""


for _first, _resolvers in list(_Loader.yaml_implicit_resolvers.items()):
    _Loader.yaml_implicit_resolvers[_first] = [
        (tag, rx) for tag, rx in _resolvers if tag != "tag:yaml.org,2002:timestamp"
    ]


def _walk(node: yaml.Node, loader: _Loader, at: PathKey, doc: YamlDoc) -> Any:
    doc.positions[at] = (node.start_mark.line + 1, node.start_mark.column + 1)
    if isinstance(node, yaml.MappingNode):
        out: dict[Any, Any] = {}
        for key_node, value_node in node.value:
            key = loader.construct_object(key_node, deep=True)  # type: ignore[no-untyped-call]
            skey = str(key) if not isinstance(key, str) else key
            doc.key_positions[at + (skey,)] = (key_node.start_mark.line + 1, key_node.start_mark.column + 1)
            out[key] = _walk(value_node, loader, at + (skey,), doc)
        return out
    if isinstance(node, yaml.SequenceNode):
        return [_walk(child, loader, at + (i,), doc) for i, child in enumerate(node.value)]
    return loader.construct_object(node, deep=True)  # type: ignore[no-untyped-call]


def parse_yaml(text: str, path: str) -> tuple[YamlDoc | None, list[Diagnostic]]:
    """Parse one YAML document; a syntax error becomes a `yaml_syntax` diagnostic at its mark."""
    doc = YamlDoc(path=path, data=None)
    try:
        loader = _Loader(text)
        try:
            node = loader.get_single_node()
            doc.data = None if node is None else _walk(node, loader, (), doc)
        finally:
            loader.dispose()  # type: ignore[no-untyped-call]
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        src = Source(path, mark.line + 1, mark.column + 1) if mark else Source(path, 1, 1)
        problem = exc.problem or exc.context or "invalid YAML"
        return None, [Diagnostic("yaml_syntax", f"invalid YAML: {problem}", src)]
    except yaml.YAMLError as exc:
        return None, [Diagnostic("yaml_syntax", f"invalid YAML: {exc}", Source(path, 1, 1))]
    return doc, []


def load_yaml(path: Path, display: str | None = None) -> tuple[YamlDoc | None, list[Diagnostic]]:
    """Read and parse a YAML file; unreadable files and bad encodings are diagnostics, not exceptions."""
    shown = display if display is not None else str(path)
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        return None, [Diagnostic("file_encoding", f"not UTF-8: {exc.reason}", Source(shown, 1, 1))]
    except OSError as exc:
        return None, [Diagnostic("file_unreadable", f"cannot read file: {exc.strerror}", Source(shown, 0, 0))]
    return parse_yaml(text, shown)
