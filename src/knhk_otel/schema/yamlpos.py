"""YAML with source positions: plain Python data plus a map from each node's path to its line/col.

Diagnostics must name `file:line:col`; PyYAML's composed nodes know the marks, the constructed
values do not. `load_yaml` keeps both, so later stages work on plain dicts and still point home.
The libyaml parser (`CSafeLoader`) composes the nodes and keeps their marks; values are built by a
small walk of our own, which is several times faster than PyYAML's generic constructor.
"""

from __future__ import annotations

import stat
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from knhk_otel.schema.diagnostics import Diagnostic
from knhk_otel.schema.model import Source

PathKey = tuple[str | int, ...]

#: Limits that keep one hostile file from hanging or exhausting every command. The largest file of
#: the OTel semantic-conventions model (v1.44) is 85 KB with 3,400 nodes.
MAX_FILE_BYTES = 8 * 1024 * 1024
#: Nodes of one document once aliases are expanded: a 300-byte "billion laughs" file expands to
#: billions; this stops it within a fraction of a second (15 times the largest semconv file).
MAX_NODES = 50_000

_STR_TAG = "tag:yaml.org,2002:str"
_MERGE_TAG = "tag:yaml.org,2002:merge"
_TIMESTAMP_TAG = "tag:yaml.org,2002:timestamp"


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


_BaseLoader: type[yaml.SafeLoader] = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


class _Loader(_BaseLoader):  # type: ignore[valid-type,misc]
    """Safe loader that keeps timestamps as strings: semconv examples are data, not dates."""

    # A copy, so PyYAML's own SafeLoader (used by everyone else) keeps parsing timestamps.
    yaml_implicit_resolvers = {
        first: [(tag, rx) for tag, rx in resolvers if tag != _TIMESTAMP_TAG]
        for first, resolvers in _BaseLoader.yaml_implicit_resolvers.items()
    }


class _TooManyNodes(Exception):
    pass


class _Walker:
    """Builds plain values from composed nodes, recording each node's position under its path."""

    __slots__ = ("budget", "constructors", "key_positions", "loader", "positions")

    def __init__(self, loader: _Loader, doc: YamlDoc) -> None:
        self.loader = loader
        self.positions = doc.positions
        self.key_positions = doc.key_positions
        self.constructors: dict[Any, Any] = loader.yaml_constructors
        self.budget = MAX_NODES  # aliases share composed nodes; walking expands them, so count here

    def scalar(self, node: yaml.Node) -> Any:
        if node.tag == _STR_TAG:
            return node.value
        ctor = self.constructors.get(node.tag)
        if ctor is None:
            return self.loader.construct_object(node, deep=True)  # raises a ConstructorError
        return ctor(self.loader, node)

    def walk(self, node: yaml.Node, at: PathKey) -> Any:
        self.budget -= 1
        if self.budget < 0:
            raise _TooManyNodes
        mark = node.start_mark
        self.positions[at] = (mark.line + 1, mark.column + 1)
        if isinstance(node, yaml.MappingNode):
            if any(k.tag == _MERGE_TAG for k, _ in node.value):
                self.loader.flatten_mapping(node)
            out: dict[Any, Any] = {}
            for key_node, value_node in node.value:
                if isinstance(key_node, yaml.ScalarNode):
                    key = self.scalar(key_node)
                else:
                    key = self.loader.construct_object(key_node, deep=True)
                try:
                    hash(key)
                except TypeError:
                    raise yaml.constructor.ConstructorError(
                        "while constructing a mapping",
                        node.start_mark,
                        "found unhashable key",
                        key_node.start_mark,
                    ) from None
                skey = key if isinstance(key, str) else str(key)
                kmark = key_node.start_mark
                self.key_positions[(*at, skey)] = (kmark.line + 1, kmark.column + 1)
                out[key] = self.walk(value_node, (*at, skey))
            return out
        if isinstance(node, yaml.SequenceNode):
            return [self.walk(child, (*at, i)) for i, child in enumerate(node.value)]
        return self.scalar(node)


def parse_yaml(text: str, path: str) -> tuple[YamlDoc | None, list[Diagnostic]]:
    """Parse one YAML document; a syntax error becomes a `yaml_syntax` diagnostic at its mark."""
    doc = YamlDoc(path=path, data=None)
    try:
        loader = _Loader(text)
        try:
            node = loader.get_single_node()
            doc.data = None if node is None else _Walker(loader, doc).walk(node, ())
        finally:
            loader.dispose()
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        src = Source(path, mark.line + 1, mark.column + 1) if mark else Source(path, 1, 1)
        problem = exc.problem or exc.context or "invalid YAML"
        return None, [Diagnostic("yaml_syntax", f"invalid YAML: {problem}", src)]
    except yaml.YAMLError as exc:
        return None, [Diagnostic("yaml_syntax", f"invalid YAML: {exc}", Source(path, 1, 1))]
    except RecursionError:
        return None, [
            Diagnostic(
                "yaml_syntax",
                "invalid YAML: nested too deeply (or an alias that contains itself)",
                Source(path, 1, 1),
            )
        ]
    except _TooManyNodes:
        return None, [
            Diagnostic(
                "yaml_too_large",
                f"YAML expands to more than {MAX_NODES:,} nodes (aliases expanded: an alias bomb?); "
                "a registry file may hold at most that many",
                Source(path, 1, 1),
            )
        ]
    return doc, []


def load_yaml(path: Path, display: str | None = None) -> tuple[YamlDoc | None, list[Diagnostic]]:
    """Read and parse a YAML file; unreadable files and bad encodings are diagnostics, not exceptions."""
    shown = display if display is not None else str(path)
    try:
        if not stat.S_ISREG(path.stat().st_mode):  # a FIFO would block the read forever
            return None, [
                Diagnostic("file_unreadable", "not a regular file (a pipe or a device?)", Source(shown, 0, 0))
            ]
        with path.open("rb") as fh:
            data = fh.read(MAX_FILE_BYTES + 1)  # never more than the limit, whatever the file's size
    except OSError as exc:
        reason = exc.strerror or str(exc)
        return None, [Diagnostic("file_unreadable", f"cannot read file: {reason}", Source(shown, 0, 0))]
    if len(data) > MAX_FILE_BYTES:
        return None, [
            Diagnostic(
                "yaml_too_large",
                f"file is larger than {MAX_FILE_BYTES // (1024 * 1024)} MiB, the limit for a registry file; "
                "split it into several files",
                Source(shown, 0, 0),
            )
        ]
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = data.count(b"\n", 0, exc.start) + 1
        col = exc.start - (data.rfind(b"\n", 0, exc.start) + 1) + 1
        return None, [
            Diagnostic(
                "file_encoding",
                f"not UTF-8: byte 0x{data[exc.start]:02x} at offset {exc.start} ({exc.reason}); "
                "save the file as UTF-8",
                Source(shown, line, col),
            )
        ]
    return parse_yaml(text, shown)
