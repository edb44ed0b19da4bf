"""Intermediate specs: what one definition file says, before refs and extends are resolved.

Both syntaxes (v1 `groups:` and v2 `file_format: definition/2`) are read into these few classes,
so the resolver knows one shape only. Field readers here turn raw YAML values into model values
and report a malformed value as an `invalid_definition` diagnostic instead of raising.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

from knhk_otel.schema.diagnostics import Diagnostic, Severity
from knhk_otel.schema.model import (
    PRIMITIVE_TYPES,
    Attribute,
    AttributeType,
    Deprecated,
    EntityAssociation,
    EnumMember,
    EnumType,
    GroupType,
    RequirementLevel,
    Source,
)
from knhk_otel.schema.yamlpos import PathKey, YamlDoc

ImportKind = Literal["metrics", "events", "entities", "spans", "attribute_groups"]
IMPORT_KINDS: tuple[ImportKind, ...] = ("metrics", "events", "entities", "spans", "attribute_groups")

REQUIREMENT_LEVELS: frozenset[str] = frozenset(
    {"required", "conditionally_required", "recommended", "opt_in"}
)
_DEPRECATION_REASONS = {"renamed", "obsoleted", "uncategorized"}


@dataclass(frozen=True, slots=True)
class AttrRef:
    """`ref: name` plus the fields the referencing group overrides (already model values)."""

    name: str
    overrides: dict[str, Any]
    source: Source
    #: Legacy `prefix: true` under a group with a `prefix`: the ref defines `<prefix>.<name>`,
    #: a new registry attribute built from the referenced one (Weaver still resolves it so).
    define_as: str | None = None


@dataclass(frozen=True, slots=True)
class GroupRef:
    """`ref_group: id` (v2): every attribute of that group, in its order."""

    group_id: str
    source: Source


Member = Attribute | AttrRef | GroupRef


@dataclass(slots=True)
class GroupSpec:
    """One group as written; `fields` holds the model `Group` fields the file set explicitly."""

    id: str
    type: GroupType
    source: Source
    fields: dict[str, Any] = field(default_factory=dict)
    members: list[Member] = field(default_factory=list)
    extends: str | None = None
    extends_source: Source | None = None
    refinement: bool = False  # v2 `*_refinements`: inherits the parent's signal fields too
    internal: bool = False  # v2 `visibility: internal`: usable by `ref_group`, not in the output
    #: v2 entities: the attributes listed under `identity` and under `description`.
    identity: tuple[str, ...] = ()
    descriptive: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class ImportSpec:
    kind: ImportKind
    pattern: str
    source: Source


@dataclass(slots=True)
class FileSpec:
    groups: list[GroupSpec] = field(default_factory=list)
    imports: list[ImportSpec] = field(default_factory=list)


class Reader:
    """Reads typed fields out of one document, collecting diagnostics with their positions."""

    def __init__(self, doc: YamlDoc) -> None:
        self.doc = doc
        self.diagnostics: list[Diagnostic] = []

    def at(self, path: PathKey, *, key: bool = False) -> Source:
        return self.doc.source(path, key=key)

    def report(
        self,
        diag_id: str,
        message: str,
        path: PathKey,
        *,
        key: bool = False,
        severity: Severity = "error",
        hint: str | None = None,
    ) -> None:
        self.diagnostics.append(Diagnostic(diag_id, message, self.at(path, key=key), severity, hint))

    def invalid(self, message: str, path: PathKey, *, key: bool = False) -> None:
        self.report("invalid_definition", message, path, key=key)

    # --- scalar fields -------------------------------------------------------------------------

    def text(self, obj: dict[str, Any], name: str, path: PathKey) -> str | None:
        """A string field; absent or null is None, anything else not a string is reported."""
        value = obj.get(name)
        if value is None:
            return None
        if isinstance(value, str):
            return value
        if isinstance(value, bool | int | float):
            return str(value)
        self.invalid(f"`{name}` must be a string, not {_kind(value)}", (*path, name))
        return None

    def mapping(self, obj: dict[str, Any], name: str, path: PathKey) -> dict[str, Any] | None:
        value = obj.get(name)
        if value is None:
            return None
        if isinstance(value, dict):
            return value
        self.invalid(f"`{name}` must be a mapping, not {_kind(value)}", (*path, name))
        return None

    def items(self, obj: dict[str, Any], name: str, path: PathKey) -> list[tuple[PathKey, dict[str, Any]]]:
        """The mapping entries of a list field with their paths; other entries are reported."""
        value = obj.get(name)
        if value is None:
            return []
        if not isinstance(value, list):
            self.invalid(f"`{name}` must be a list, not {_kind(value)}", (*path, name))
            return []
        out: list[tuple[PathKey, dict[str, Any]]] = []
        for i, item in enumerate(value):
            if isinstance(item, dict):
                out.append(((*path, name, i), item))
            else:
                self.invalid(f"each `{name}` entry must be a mapping, not {_kind(item)}", (*path, name, i))
        return out

    def strings(self, obj: dict[str, Any], name: str, path: PathKey) -> list[tuple[PathKey, str]]:
        value = obj.get(name)
        if value is None:
            return []
        if not isinstance(value, list):
            self.invalid(f"`{name}` must be a list of strings, not {_kind(value)}", (*path, name))
            return []
        out: list[tuple[PathKey, str]] = []
        for i, item in enumerate(value):
            if isinstance(item, str):
                out.append(((*path, name, i), item))
            else:
                self.invalid(f"each `{name}` entry must be a string, not {_kind(item)}", (*path, name, i))
        return out

    def deprecated(self, obj: dict[str, Any], path: PathKey) -> Deprecated | None:
        value = obj.get("deprecated")
        where = (*path, "deprecated")
        if value is None:
            return None
        if isinstance(value, str):  # legacy free-text deprecation
            return Deprecated("uncategorized", note=value)
        if not isinstance(value, dict):
            self.invalid(f"`deprecated` must be a string or a mapping, not {_kind(value)}", where)
            return None
        reason = value.get("reason")
        if reason == "unspecified":  # Weaver's name for the legacy free-text form
            reason = "uncategorized"
        if reason not in _DEPRECATION_REASONS:
            self.invalid(
                f"`deprecated.reason` must be one of renamed, obsoleted, uncategorized, not {reason!r}",
                (*where, "reason"),
            )
            return None
        renamed_to = value.get("renamed_to")
        note = value.get("note")
        if renamed_to is not None and not isinstance(renamed_to, str):
            self.invalid("`deprecated.renamed_to` must be a string", (*where, "renamed_to"))
            renamed_to = None
        if reason == "renamed" and renamed_to is None:
            self.invalid("`deprecated` with reason renamed needs `renamed_to`", where)
        if note is not None and not isinstance(note, str):
            self.invalid("`deprecated.note` must be a string", (*where, "note"))
            note = None
        return Deprecated(reason, renamed_to, note or "")

    def requirement(self, obj: dict[str, Any], path: PathKey) -> tuple[RequirementLevel, str | None] | None:
        value = obj.get("requirement_level")
        where = (*path, "requirement_level")
        if value is None:
            return None
        if isinstance(value, str):
            if value in REQUIREMENT_LEVELS:
                return value, None  # type: ignore[return-value]
            self.invalid(f"unknown requirement_level {value!r}", where, key=False)
            return None
        if isinstance(value, dict) and len(value) == 1:
            ((level, text),) = value.items()
            if level in REQUIREMENT_LEVELS and level != "required" and isinstance(text, str | None):
                return level, text
        self.invalid(
            "`requirement_level` must be required, recommended, opt_in or a one-key mapping "
            "{conditionally_required|recommended|opt_in: text}",
            where,
        )
        return None

    def attr_type(self, obj: dict[str, Any], path: PathKey) -> AttributeType | None:
        value = obj.get("type")
        where = (*path, "type")
        if isinstance(value, str):
            if value in PRIMITIVE_TYPES:
                return value
            self.invalid(f"unknown attribute type {value!r}", where)
            return None
        if isinstance(value, dict):
            return self._enum(value, where)
        self.invalid("attribute `type` is missing or not a type name / `{members: [...]}`", where)
        return None

    def _enum(self, spec: dict[str, Any], path: PathKey) -> EnumType | None:
        members: list[EnumMember] = []
        for mpath, raw in self.items(spec, "members", path):
            member_id = raw.get("id")
            value = raw.get("value")
            if not isinstance(member_id, str):
                self.invalid("enum member needs a string `id`", mpath)
                continue
            if isinstance(value, bool) or not isinstance(value, str | int | float):
                self.invalid(f"enum member `{member_id}` needs a string or number `value`", (*mpath, "value"))
                continue
            members.append(
                EnumMember(
                    id=member_id,
                    value=value,
                    brief=self.text(raw, "brief", mpath) or "",
                    note=self.text(raw, "note", mpath) or "",
                    stability=self.text(raw, "stability", mpath),
                    deprecated=self.deprecated(raw, mpath),
                )
            )
        if not members and "members" not in spec:
            self.invalid("enum type needs `members`", path)
            return None
        values = [m.value for m in members]
        value_type: Literal["string", "int", "double"] = "string"
        if values and all(isinstance(v, int) for v in values):
            value_type = "int"
        elif values and all(isinstance(v, int | float) for v in values):
            value_type = "double"
        return EnumType(tuple(members), value_type)

    def common_attr_fields(self, obj: dict[str, Any], path: PathKey) -> dict[str, Any]:
        """Fields shared by definitions and refs, only those present (a ref overrides just those)."""
        out: dict[str, Any] = {}
        for name in ("brief", "note", "stability", "tag"):
            if name in obj:
                value = self.text(obj, name, path)
                if value is not None or name in ("brief", "note"):
                    out[name] = value or ("" if name in ("brief", "note") else None)
        if "examples" in obj and obj["examples"] is not None:
            ex = obj["examples"]
            out["examples"] = tuple(ex) if isinstance(ex, list) else (ex,)
        req = self.requirement(obj, path)
        if req is not None:
            out["requirement_level"], out["requirement_text"] = req
        if "deprecated" in obj:
            out["deprecated"] = self.deprecated(obj, path)
        if "sampling_relevant" in obj and obj["sampling_relevant"] is not None:
            value = obj["sampling_relevant"]
            if isinstance(value, bool):
                out["sampling_relevant"] = value
            else:
                self.invalid("`sampling_relevant` must be true or false", (*path, "sampling_relevant"))
        annotations = self.mapping(obj, "annotations", path)
        if annotations is not None:
            out["annotations"] = annotations
        return out

    def definition(self, obj: dict[str, Any], path: PathKey, name: str, name_key: str) -> Attribute | None:
        attr_type = self.attr_type(obj, path)
        if attr_type is None:
            return None
        fields = self.common_attr_fields(obj, path)
        return Attribute(name=name, type=attr_type, source=self.at((*path, name_key)), **fields)

    def reference(self, obj: dict[str, Any], path: PathKey) -> AttrRef | None:
        name = obj.get("ref")
        if not isinstance(name, str):
            self.invalid("`ref` must be an attribute name", (*path, "ref"))
            return None
        return AttrRef(name, self.common_attr_fields(obj, path), self.at((*path, "ref")))

    def group_fields(self, obj: dict[str, Any], path: PathKey) -> dict[str, Any]:
        """Group-level fields both syntaxes share."""
        out: dict[str, Any] = {}
        for name in ("brief", "note", "stability", "display_name"):
            if name in obj:
                value = self.text(obj, name, path)
                if name in ("brief", "note"):
                    out[name] = value or ""
                elif value is not None:
                    out[name] = value
        if "deprecated" in obj:
            out["deprecated"] = self.deprecated(obj, path)
        annotations = self.mapping(obj, "annotations", path)
        if annotations is not None:
            out["annotations"] = annotations
        if obj.get("entity_associations") is not None:
            key = (*path, "entity_associations")
            associations = self._associations(obj["entity_associations"], key)
            if associations is not None:
                out["entity_associations"] = associations
        return out

    def _associations(self, value: Any, path: PathKey) -> tuple[EntityAssociation, ...] | None:
        """A list of association expressions (an entity name, `one_of: [...]`, `all_of: [...]`)."""
        if not isinstance(value, list):
            self.invalid(f"`{path[-1]}` must be a list, not {_kind(value)}", path)
            return None
        out: list[EntityAssociation] = []
        for i, item in enumerate(value):
            expression = self._association(item, (*path, i))
            if expression is not None:
                out.append(expression)
        return tuple(out) if len(out) == len(value) else None

    def _association(self, item: Any, path: PathKey) -> EntityAssociation | None:
        if isinstance(item, str) and item:
            return EntityAssociation("entity", entity=item, source=self.at(path))
        if (
            isinstance(item, dict)
            and isinstance(item.get("type"), str)
            and set(item) <= {"type", "provenance"}
        ):
            # a resolved registry's leaf (`resolved/2.0`): the entity type, and where it is defined
            return EntityAssociation("entity", entity=item["type"], source=self.at(path))
        if isinstance(item, dict) and len(item) == 1:
            ((kind, operands),) = item.items()
            if kind in ("one_of", "all_of"):
                if isinstance(operands, list) and not operands:
                    self.invalid(f"`{kind}` needs at least one entity", (*path, kind))
                    return None
                parsed = self._associations(operands, (*path, kind))
                if parsed is None:
                    return None
                return EntityAssociation(kind, operands=parsed, source=self.at(path))
        self.invalid(
            f"an entity association is an entity name, `one_of: [...]` or `all_of: [...]`, not {_kind(item)}",
            path,
        )
        return None

    def choice(self, obj: dict[str, Any], name: str, path: PathKey, allowed: frozenset[str]) -> str | None:
        value = self.text(obj, name, path)
        if value is None:
            return None
        if value not in allowed:
            self.invalid(
                f"`{name}` must be one of {', '.join(sorted(allowed))}, not {value!r}", (*path, name)
            )
            return None
        return value


def read_imports(reader: Reader, data: dict[str, Any], spec: FileSpec) -> None:
    """Top-level `imports:` (signals pulled from dependencies by name pattern); the same in v1 and v2."""
    imports = reader.mapping(data, "imports", ())
    if imports is not None:
        for kind in IMPORT_KINDS:
            for ipath, pattern in reader.strings(imports, kind, ("imports",)):
                spec.imports.append(ImportSpec(kind, pattern, reader.at(ipath)))


INSTRUMENTS = frozenset({"counter", "updowncounter", "gauge", "histogram"})
SPAN_KINDS = frozenset({"client", "server", "producer", "consumer", "internal"})


def _kind(value: Any) -> str:
    if isinstance(value, dict):
        return "a mapping"
    if isinstance(value, list):
        return "a list"
    if value is None:
        return "null"
    return f"{type(value).__name__} {value!r}"[:60]
