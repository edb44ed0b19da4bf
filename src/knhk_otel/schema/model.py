"""The resolved registry: the one data structure every stage after `resolve` shares.

Its shape follows Weaver's resolved v1 registry (top-level `groups`, each with its `type` and fully
resolved `attributes`, each attribute named by `name`), so `to_dict()` is what `knhk-otel resolve`
prints. Everything here is immutable: later stages read it, none of them patch it.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

GroupType = Literal["attribute_group", "span", "event", "metric", "entity", "scope", "undefined"]
RequirementLevel = Literal["required", "conditionally_required", "recommended", "opt_in"]
Instrument = Literal["counter", "updowncounter", "gauge", "histogram"]
SpanKind = Literal["client", "server", "producer", "consumer", "internal"]

#: Primitive, array, template and `any` type names an attribute may carry (enums are `EnumType`).
PRIMITIVE_TYPES: frozenset[str] = frozenset(
    {
        "string",
        "int",
        "double",
        "boolean",
        "string[]",
        "int[]",
        "double[]",
        "boolean[]",
        "template[string]",
        "template[int]",
        "template[double]",
        "template[boolean]",
        "template[string[]]",
        "template[int[]]",
        "template[double[]]",
        "template[boolean[]]",
        "template[any]",
        "any",
    }
)


@dataclass(frozen=True, slots=True)
class Source:
    """Where a definition was written: diagnostics and `lineage.source_file` point here."""

    path: str
    line: int = 0  # 1-based; 0 when unknown
    col: int = 0  # 1-based; 0 when unknown

    def __str__(self) -> str:
        """`path:line:col`, dropping what is unknown: `file:0:0` reads as a place that is not."""
        if not self.line:
            return self.path
        return f"{self.path}:{self.line}:{self.col}" if self.col else f"{self.path}:{self.line}"


@dataclass(frozen=True, slots=True)
class Deprecated:
    """Weaver's structured `deprecated` (reason renamed/obsoleted/uncategorized)."""

    reason: Literal["renamed", "obsoleted", "uncategorized"]
    renamed_to: str | None = None
    note: str = ""

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"reason": self.reason}
        if self.renamed_to is not None:
            out["renamed_to"] = self.renamed_to
        if self.note:
            out["note"] = self.note
        return out


@dataclass(frozen=True, slots=True)
class EnumMember:
    id: str
    value: str | int | float
    brief: str = ""
    note: str = ""
    stability: str | None = None
    deprecated: Deprecated | None = None

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"id": self.id, "value": self.value}
        if self.brief:
            out["brief"] = self.brief
        if self.note:
            out["note"] = self.note
        if self.stability is not None:
            out["stability"] = self.stability
        if self.deprecated is not None:
            out["deprecated"] = self.deprecated.to_dict()
        return out


@dataclass(frozen=True, slots=True)
class EnumType:
    """An enum attribute type; `value_type` is what its members' values are."""

    members: tuple[EnumMember, ...]
    value_type: Literal["string", "int", "double"] = "string"

    def member_values(self) -> frozenset[str | int | float]:
        return frozenset(m.value for m in self.members)

    def to_dict(self) -> dict[str, Any]:
        return {"members": [m.to_dict() for m in self.members]}


AttributeType = str | EnumType


@dataclass(frozen=True, slots=True)
class Attribute:
    """A fully resolved attribute as one signal (or the registry) uses it."""

    name: str
    type: AttributeType
    brief: str = ""
    note: str = ""
    examples: tuple[Any, ...] | None = None
    requirement_level: RequirementLevel = "recommended"
    requirement_text: str | None = None  # the condition of conditionally_required, or a note
    stability: str | None = None
    deprecated: Deprecated | None = None
    sampling_relevant: bool | None = None
    tag: str | None = None
    annotations: Mapping[str, Any] = field(default_factory=dict)
    source: Source | None = None

    @property
    def is_enum(self) -> bool:
        return isinstance(self.type, EnumType)

    @property
    def is_template(self) -> bool:
        return isinstance(self.type, str) and self.type.startswith("template[")

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"name": self.name}
        out["type"] = self.type.to_dict() if isinstance(self.type, EnumType) else self.type
        if self.brief:
            out["brief"] = self.brief
        if self.examples is not None:
            out["examples"] = list(self.examples) if len(self.examples) != 1 else self.examples[0]
        if self.requirement_text is not None and self.requirement_level in (
            "conditionally_required",
            "recommended",
            "opt_in",
        ):
            out["requirement_level"] = {self.requirement_level: self.requirement_text}
        else:
            out["requirement_level"] = self.requirement_level
        if self.sampling_relevant is not None:
            out["sampling_relevant"] = self.sampling_relevant
        if self.tag is not None:
            out["tag"] = self.tag
        if self.note:
            out["note"] = self.note
        if self.stability is not None:
            out["stability"] = self.stability
        if self.deprecated is not None:
            out["deprecated"] = self.deprecated.to_dict()
        if self.annotations:
            out["annotations"] = dict(self.annotations)
        return out


@dataclass(frozen=True, slots=True)
class EntityAssociation:
    """Which entity a signal's resource must identify (Weaver's `entity_associations`).

    A leaf (`kind == "entity"`) names an entity type or an entity refinement's id; `one_of` needs
    one operand satisfied, `all_of` every one. Resolution binds each leaf to the entity it reaches
    (`target`, a group id) and copies what telemetry is judged by (`requirements`: each attribute
    with its level, identifying ones `required`), so a signal imported elsewhere keeps its answer.
    """

    kind: Literal["entity", "one_of", "all_of"]
    entity: str = ""
    operands: tuple[EntityAssociation, ...] = ()
    source: Source | None = None
    target: str | None = None
    requirements: tuple[tuple[str, RequirementLevel], ...] = ()

    def leaves(self) -> Iterator[EntityAssociation]:
        if self.kind == "entity":
            yield self
        for operand in self.operands:
            yield from operand.leaves()

    def to_dict(self) -> Any:
        """Weaver's form: a bare entity name, or `{one_of|all_of: [...]}`."""
        if self.kind == "entity":
            return self.entity
        return {self.kind: [o.to_dict() for o in self.operands]}


@dataclass(frozen=True, slots=True)
class Group:
    """A resolved group: attributes carry every `ref` and `extends` already applied."""

    id: str
    type: GroupType
    brief: str = ""
    note: str = ""
    stability: str | None = None
    deprecated: Deprecated | None = None
    attributes: tuple[Attribute, ...] = ()
    # span
    span_kind: SpanKind | None = None
    # metric
    metric_name: str | None = None
    instrument: Instrument | None = None
    unit: str | None = None
    # event and entity (`name`); for spans of the v2 syntax, the span name if given
    name: str | None = None
    display_name: str | None = None
    extends: str | None = None
    annotations: Mapping[str, Any] = field(default_factory=dict)
    source: Source | None = None
    #: signals: the entities their resource must identify (a list: any one of them will do)
    entity_associations: tuple[EntityAssociation, ...] = ()
    #: entities: the attributes that identify one (v2 `identity`; Weaver's role `identifying`)
    identity: tuple[str, ...] = ()

    def attribute(self, name: str) -> Attribute | None:
        for a in self.attributes:
            if a.name == name:
                return a
        return None

    @property
    def signal_name(self) -> str:
        """The name telemetry carries: metric name, event name, span name (the id minus `span.`)."""
        if self.type == "metric" and self.metric_name:
            return self.metric_name
        if self.type in ("event", "entity") and self.name:
            return self.name
        if self.type == "span":
            if self.name:
                return self.name
            return self.id.removeprefix("span.")
        return self.id

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"id": self.id, "type": self.type}
        if self.brief:
            out["brief"] = self.brief
        if self.note:
            out["note"] = self.note
        if self.stability is not None:
            out["stability"] = self.stability
        if self.deprecated is not None:
            out["deprecated"] = self.deprecated.to_dict()
        out["attributes"] = [a.to_dict() for a in self.attributes]
        if self.span_kind is not None:
            out["span_kind"] = self.span_kind
        if self.metric_name is not None:
            out["metric_name"] = self.metric_name
        if self.instrument is not None:
            out["instrument"] = self.instrument
        if self.unit is not None:
            out["unit"] = self.unit
        if self.name is not None:
            out["name"] = self.name
        if self.display_name is not None:
            out["display_name"] = self.display_name
        if self.extends is not None:
            out["extends"] = self.extends
        if self.annotations:
            out["annotations"] = dict(self.annotations)
        if self.entity_associations:
            out["entity_associations"] = [a.to_dict() for a in self.entity_associations]
        if self.source is not None:
            out["lineage"] = {"source_file": self.source.path}
        return out


@dataclass(frozen=True, slots=True)
class Manifest:
    """`manifest.yaml` (or legacy `registry_manifest.yaml`) of a registry."""

    name: str
    semconv_version: str | None = None
    schema_base_url: str | None = None
    description: str = ""
    namespace: str | None = None  # own definitions must live under it (policy); None = no rule
    dependencies: tuple[tuple[str, str], ...] = ()  # (name, resolved local path)
    source: Source | None = None


@dataclass(frozen=True)
class ResolvedRegistry:
    """All groups of a registry and of its dependencies, resolved.

    `groups` keeps file order (dependencies first). `own` tells which group ids the registry itself
    defines, so namespace policies and codegen can skip what a dependency brought in.
    """

    groups: tuple[Group, ...]
    manifest: Manifest | None = None
    own: frozenset[str] = frozenset()

    def __iter__(self) -> Iterator[Group]:
        return iter(self.groups)

    def of_type(self, kind: GroupType) -> Iterator[Group]:
        return (g for g in self.groups if g.type == kind)

    def group(self, group_id: str) -> Group | None:
        for g in self.groups:
            if g.id == group_id:
                return g
        return None

    def registry_attributes(self) -> dict[str, Attribute]:
        """Every attribute the registry defines (from `attribute_group`s; first definition wins)."""
        out: dict[str, Attribute] = {}
        for g in self.groups:
            if g.type == "attribute_group":
                for a in g.attributes:
                    out.setdefault(a.name, a)
        return out

    def spans(self) -> list[Group]:
        return list(self.of_type("span"))

    def metrics(self) -> list[Group]:
        return list(self.of_type("metric"))

    def events(self) -> list[Group]:
        return list(self.of_type("event"))

    def to_dict(self) -> dict[str, Any]:
        return {"groups": [g.to_dict() for g in self.groups]}
