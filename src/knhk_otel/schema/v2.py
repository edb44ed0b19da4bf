"""Reads the v2 syntax (`file_format: definition/2`) into the same intermediate specs as v1.

Resolved groups are named the way Weaver names them when it translates v2 into v1: attributes of a
file go into one `registry.<file>` attribute group, a span of type `t` becomes `span.t`, metric `m`
becomes `metric.m`, event `e` becomes `event.e`, entity `x` becomes `entity.x`; a refinement keeps
its own id and extends `<kind>.<ref>`.
"""

from __future__ import annotations

from typing import Any

from knhk_otel.schema.model import GroupType
from knhk_otel.schema.specs import (
    INSTRUMENTS,
    SPAN_KINDS,
    FileSpec,
    GroupRef,
    GroupSpec,
    Member,
    Reader,
    read_imports,
)
from knhk_otel.schema.yamlpos import PathKey

#: list key → (group type, id prefix, field naming the signal).
#: In the order Weaver emits them: entities, events, metrics, spans, then attribute groups.
_SIGNALS: dict[str, tuple[GroupType, str, str]] = {
    "entities": ("entity", "entity.", "type"),
    "events": ("event", "event.", "name"),
    "metrics": ("metric", "metric.", "name"),
    "spans": ("span", "span.", "type"),
}
_REFINEMENTS: dict[str, tuple[GroupType, str]] = {
    "entity_refinements": ("entity", "entity."),
    "event_refinements": ("event", "event."),
    "metric_refinements": ("metric", "metric."),
    "span_refinements": ("span", "span."),
}


def read_v2(reader: Reader, rel_path: str) -> FileSpec:
    """`rel_path` (the file's path in its registry) names the group of the file's `attributes`."""
    data = reader.doc.data
    spec = FileSpec()
    if not isinstance(data, dict):
        reader.invalid("a definition file must be a mapping", ())
        return spec
    definitions: list[Member] = []
    for path, raw in reader.items(data, "attributes", ()):
        key = raw.get("key")
        if not isinstance(key, str) or not key:
            reader.invalid("attribute needs a string `key`", path)
            continue
        attr = reader.definition(raw, path, key, "key")
        if attr is not None:
            definitions.append(attr)
    if definitions:
        spec.groups.append(
            GroupSpec(
                id="registry." + ".".join(rel_path.rsplit(".", 1)[0].split("/")),
                type="attribute_group",
                source=reader.at(("attributes",), key=True),
                fields={"brief": f"Attributes defined in `{rel_path}`."},
                members=definitions,
            )
        )
    for list_key, (group_type, prefix, name_key) in _SIGNALS.items():
        for path, raw in reader.items(data, list_key, ()):
            group = _signal(reader, raw, path, group_type, prefix, name_key)
            if group is not None:
                spec.groups.append(group)
    for path, raw in reader.items(data, "attribute_groups", ()):
        group = _attribute_group(reader, raw, path)
        if group is not None:
            spec.groups.append(group)
    for list_key, (group_type, prefix) in _REFINEMENTS.items():
        for path, raw in reader.items(data, list_key, ()):
            group = _refinement(reader, raw, path, group_type, prefix)
            if group is not None:
                spec.groups.append(group)
    read_imports(reader, data, spec)
    return spec


def _signal_fields(
    reader: Reader, raw: dict[str, Any], path: PathKey, group_type: GroupType
) -> dict[str, Any]:
    fields = reader.group_fields(raw, path)
    if group_type == "span":
        kind = reader.choice(raw, "kind", path, SPAN_KINDS)
        if kind is not None:
            fields["span_kind"] = kind
    elif group_type == "metric":
        unit = reader.text(raw, "unit", path)
        if unit is not None:
            fields["unit"] = unit
        instrument = reader.choice(raw, "instrument", path, INSTRUMENTS)
        if instrument is not None:
            fields["instrument"] = instrument
    return fields


def _signal(
    reader: Reader, raw: dict[str, Any], path: PathKey, group_type: GroupType, prefix: str, name_key: str
) -> GroupSpec | None:
    name = raw.get(name_key)
    if not isinstance(name, str) or not name:
        reader.invalid(f"{group_type} needs a string `{name_key}`", path)
        return None
    fields = _signal_fields(reader, raw, path, group_type)
    if group_type == "metric":
        fields["metric_name"] = name
    elif group_type in ("event", "entity"):
        fields["name"] = name
    return GroupSpec(
        id=prefix + name,
        type=group_type,
        source=reader.at((*path, name_key)),
        fields=fields,
        members=_members(reader, raw, path, group_type),
        identity=_roles(raw, group_type, "identity"),
        descriptive=_roles(raw, group_type, "description"),
    )


def _refinement(
    reader: Reader, raw: dict[str, Any], path: PathKey, group_type: GroupType, prefix: str
) -> GroupSpec | None:
    group_id = raw.get("id")
    parent = raw.get("ref")
    if not isinstance(group_id, str) or not group_id:
        reader.invalid(f"{group_type} refinement needs a string `id`", path)
        return None
    if not isinstance(parent, str) or not parent:
        reader.invalid(f"{group_type} refinement `{group_id}` needs a string `ref`", (*path, "ref"))
        return None
    return GroupSpec(
        id=group_id,
        type=group_type,
        source=reader.at((*path, "id")),
        fields=_signal_fields(reader, raw, path, group_type),
        members=_members(reader, raw, path, group_type),
        extends=prefix + parent,
        extends_source=reader.at((*path, "ref")),
        refinement=True,
        identity=_roles(raw, group_type, "identity"),
        descriptive=_roles(raw, group_type, "description"),
    )


def _roles(raw: dict[str, Any], group_type: GroupType, key: str) -> tuple[str, ...]:
    """An entity's identifying or descriptive attribute names (Weaver checks refinements keep them)."""
    items = raw.get(key) if group_type == "entity" else None
    if not isinstance(items, list):
        return ()
    return tuple(i["ref"] for i in items if isinstance(i, dict) and isinstance(i.get("ref"), str))


def _attribute_group(reader: Reader, raw: dict[str, Any], path: PathKey) -> GroupSpec | None:
    group_id = raw.get("id")
    if not isinstance(group_id, str) or not group_id:
        reader.invalid("attribute group needs a string `id`", path)
        return None
    fields = reader.group_fields(raw, path)
    # An internal group serves `ref_group`s only: Weaver leaves it out of the resolved registry.
    visibility = reader.choice(raw, "visibility", path, frozenset({"public", "internal"}))
    return GroupSpec(
        id=group_id,
        type="attribute_group",
        source=reader.at((*path, "id")),
        fields=fields,
        members=_members(reader, raw, path, "attribute_group"),
        internal=visibility == "internal",
    )


def _members(reader: Reader, raw: dict[str, Any], path: PathKey, group_type: GroupType) -> list[Member]:
    """`attributes` as refs and group refs; an entity's `identity` and `description` too."""
    members: list[Member] = []
    keys = ("identity", "description", "attributes") if group_type == "entity" else ("attributes",)
    for key in keys:
        for apath, attr in reader.items(raw, key, path):
            if "ref_group" in attr:
                target = attr.get("ref_group")
                if isinstance(target, str) and target:
                    members.append(GroupRef(target, reader.at((*apath, "ref_group"))))
                else:
                    reader.invalid("`ref_group` must be a group id", (*apath, "ref_group"))
            elif "ref" in attr:
                ref = reader.reference(attr, apath)
                if ref is not None:
                    members.append(ref)
            else:
                reader.invalid("v2 signals and groups take `ref` or `ref_group` entries only", apath)
    return members
