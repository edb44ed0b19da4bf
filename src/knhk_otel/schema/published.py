"""Reads a registry published in resolved form (`file_format: resolved/2.0`) into model groups.

A published registry's manifest names its resolved file (`resolved_registry_uri`): one attribute
catalog, and signals whose attributes point into it (`base: <index>`, plus the signal's own
`requirement_level`). A registry depending on it refers to those attributes and imports those
signals the same way as from a registry of definition files. Group ids follow Weaver's reading of
such a file: attribute groups keep their `id`, signals are named by their `type` or `name`.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from knhk_otel.schema.diagnostics import Diagnostic
from knhk_otel.schema.model import Attribute, Group, GroupType
from knhk_otel.schema.specs import INSTRUMENTS, SPAN_KINDS, Reader
from knhk_otel.schema.yamlpos import PathKey, YamlDoc

FILE_FORMAT = "resolved/2.0"
_SIGNALS: dict[str, tuple[GroupType, str]] = {
    "spans": ("span", "type"),
    "metrics": ("metric", "name"),
    "events": ("event", "name"),
    "entities": ("entity", "type"),
}


def read_published(doc: YamlDoc) -> tuple[list[Group], dict[str, Attribute], list[Diagnostic]]:
    """(groups, attributes by name, diagnostics) of one resolved registry file."""
    reader = Reader(doc)
    data = doc.data
    if not isinstance(data, dict) or data.get("file_format") != FILE_FORMAT:
        reader.invalid(f"a published registry must be a mapping with `file_format: {FILE_FORMAT}`", ())
        return [], {}, reader.diagnostics
    catalog: list[Attribute | None] = []
    for path, raw in reader.items(data, "attribute_catalog", ()):
        key = raw.get("key")
        catalog.append(reader.definition(raw, path, key, "key") if isinstance(key, str) and key else None)
    registry = reader.mapping(data, "registry", ()) or {}
    attributes: dict[str, Attribute] = {a.name: a for a in catalog if a is not None}
    groups: list[Group] = []
    for path, raw in reader.items(registry, "attribute_groups", ("registry",)):
        group_id = raw.get("id")
        if isinstance(group_id, str) and group_id:
            groups.append(_group(reader, raw, path, group_id, "attribute_group", catalog))
    for section, (group_type, name_key) in _SIGNALS.items():
        for path, raw in reader.items(registry, section, ("registry",)):
            name = raw.get(name_key)
            if not isinstance(name, str) or not name:
                reader.invalid(f"published {group_type} needs a string `{name_key}`", path)
                continue
            groups.append(_group(reader, raw, path, name, group_type, catalog))
    return groups, attributes, reader.diagnostics


def _group(
    reader: Reader,
    raw: dict[str, Any],
    path: PathKey,
    name: str,
    group_type: GroupType,
    catalog: list[Attribute | None],
) -> Group:
    fields = reader.group_fields(raw, path)
    if group_type == "span":
        kind = reader.choice(raw, "kind", path, SPAN_KINDS)
        if kind is not None:
            fields["span_kind"] = kind
    elif group_type == "metric":
        fields["metric_name"] = name
        instrument = reader.choice(raw, "instrument", path, INSTRUMENTS)
        if instrument is not None:
            fields["instrument"] = instrument
        unit = reader.text(raw, "unit", path)
        if unit is not None:
            fields["unit"] = unit
    elif group_type in ("event", "entity"):
        fields["name"] = name
    keys = ("identity", "description", "attributes") if group_type == "entity" else ("attributes",)
    attrs: dict[str, Attribute] = {}
    for key in keys:
        for apath, ref in reader.items(raw, key, path):
            base = ref.get("base")
            attr = catalog[base] if isinstance(base, int) and 0 <= base < len(catalog) else None
            if attr is None:
                reader.invalid(f"`base` must index the attribute catalog, not {base!r}", (*apath, "base"))
                continue
            overrides = reader.common_attr_fields(ref, apath)
            attrs[attr.name] = replace(attr, **overrides, source=reader.at(apath))
    return Group(id=name, type=group_type, attributes=tuple(attrs.values()), source=reader.at(path), **fields)
