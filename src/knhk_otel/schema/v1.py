"""Reads the v1 syntax (top-level `groups:` and `imports:`) into intermediate specs."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from knhk_otel.schema.model import Attribute, GroupType
from knhk_otel.schema.specs import (
    INSTRUMENTS,
    SPAN_KINDS,
    FileSpec,
    GroupSpec,
    Member,
    Reader,
    read_imports,
)
from knhk_otel.schema.yamlpos import PathKey

#: Group types as written → model type (`resource` is Weaver's legacy name for `entity`).
_GROUP_TYPES: dict[str, GroupType] = {
    "attribute_group": "attribute_group",
    "span": "span",
    "event": "event",
    "metric": "metric",
    "entity": "entity",
    "resource": "entity",
    "scope": "scope",
    "metric_group": "attribute_group",
}


def read_v1(reader: Reader) -> FileSpec:
    data = reader.doc.data
    spec = FileSpec()
    if not isinstance(data, dict):
        reader.invalid("a definition file must be a mapping with `groups:`", ())
        return spec
    for path, raw in reader.items(data, "groups", ()):
        group = _group(reader, raw, path)
        if group is not None:
            spec.groups.append(group)
    read_imports(reader, data, spec)
    return spec


def _group(reader: Reader, raw: dict[str, Any], path: PathKey) -> GroupSpec | None:
    group_id = raw.get("id")
    if not isinstance(group_id, str) or not group_id:
        reader.invalid("group needs a string `id`", path)
        return None
    raw_type = raw.get("type")
    group_type = _GROUP_TYPES.get(raw_type) if isinstance(raw_type, str) else None
    if group_type is None:
        reader.invalid(f"group `{group_id}` has unknown type {raw_type!r}", (*path, "type"))
        return None
    fields = reader.group_fields(raw, path)
    if group_type == "span":
        kind = reader.choice(raw, "span_kind", path, SPAN_KINDS)
        if kind is not None:
            fields["span_kind"] = kind
    if group_type == "metric":
        for key in ("metric_name", "unit"):
            value = reader.text(raw, key, path)
            if value is not None:
                fields[key] = value
        instrument = reader.choice(raw, "instrument", path, INSTRUMENTS)
        if instrument is not None:
            fields["instrument"] = instrument
    name = reader.text(raw, "name", path)
    if name is not None:
        fields["name"] = name
    extends = reader.text(raw, "extends", path)
    prefix = reader.text(raw, "prefix", path)
    return GroupSpec(
        id=group_id,
        type=group_type,
        source=reader.at((*path, "id")),
        fields=fields,
        members=_members(reader, raw, path, prefix),
        extends=extends,
        extends_source=reader.at((*path, "extends")) if extends is not None else None,
    )


def _members(reader: Reader, raw: dict[str, Any], path: PathKey, prefix: str | None) -> list[Member]:
    members: list[Member] = []
    for apath, attr in reader.items(raw, "attributes", path):
        if "ref" in attr:
            ref = reader.reference(attr, apath)
            if ref is not None:
                if attr.get("prefix") is True and prefix:
                    ref = replace(ref, define_as=f"{prefix}.{ref.name}")
                members.append(ref)
            continue
        attr_id = attr.get("id")
        if not isinstance(attr_id, str) or not attr_id:
            reader.invalid("attribute needs an `id` (a definition) or a `ref`", apath)
            continue
        name = f"{prefix}.{attr_id}" if prefix and not attr_id.startswith(prefix + ".") else attr_id
        definition: Attribute | None = reader.definition(attr, apath, name, "id")
        if definition is not None:
            members.append(definition)
    return members
