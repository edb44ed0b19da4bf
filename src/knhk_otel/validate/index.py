"""Compile a ResolvedRegistry once into the lookup tables the validator reads per sample."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from knhk_otel.schema.model import Attribute, Deprecated, EntityAssociation, EnumType, Group, ResolvedRegistry

TypeCheck = Callable[[object], bool]


def _is_str(v: object) -> bool:
    return type(v) is str


def _is_int(v: object) -> bool:
    return type(v) is int


def _is_bool(v: object) -> bool:
    return type(v) is bool


def _is_number(v: object) -> bool:
    """A double may arrive as an int (SDK `set_attribute(k, 1)`, JSON numbers); a bool never."""
    return type(v) is float or type(v) is int


def _array_of(item: TypeCheck) -> TypeCheck:
    def check(v: object) -> bool:
        return isinstance(v, (tuple, list)) and all(item(x) for x in v)

    return check


def _anything(v: object) -> bool:
    return True


_SCALAR: dict[str, TypeCheck] = {
    "string": _is_str,
    "int": _is_int,
    "double": _is_number,
    "boolean": _is_bool,
}
_CHECKS: dict[str, TypeCheck] = {
    **_SCALAR,
    **{f"{name}[]": _array_of(fn) for name, fn in _SCALAR.items()},
    "any": _anything,
}


def _is_enum_value(v: object) -> bool:
    """Weaver's rule: an enum value is a string or an int; membership is judged separately."""
    return type(v) is str or type(v) is int


_ENUM_VALUE_CHECKS: dict[str, TypeCheck] = {
    "string": _is_enum_value,
    "int": _is_enum_value,
    "double": _is_number,
}


@dataclass(frozen=True, slots=True)
class AttrRule:
    """One attribute as a signal (or the registry) declares it, ready to check values against."""

    name: str
    type_name: str  # `string`, `int[]`, `enum`, ... (templates: the inner type)
    check: TypeCheck
    members: frozenset[object] | None  # enum values; None when not an enum
    template: bool
    requirement_level: str
    deprecated: Deprecated | None
    stable: bool
    stability: str | None


def attr_rule(attr: Attribute) -> AttrRule:
    t = attr.type
    members: frozenset[object] | None = None
    if isinstance(t, EnumType):
        type_name = "string or int" if t.value_type != "double" else "double"
        check = _ENUM_VALUE_CHECKS.get(t.value_type, _anything)
        members = frozenset(t.member_values())
        template = False
    else:
        template = t.startswith("template[")
        type_name = t[len("template[") : -1] if template else t
        check = _CHECKS.get(type_name, _anything)
    return AttrRule(
        name=attr.name,
        type_name=type_name,
        check=check,
        members=members,
        template=template,
        requirement_level=attr.requirement_level,
        deprecated=attr.deprecated,
        stable=attr.stability == "stable",
        stability=attr.stability,
    )


@dataclass(frozen=True, slots=True)
class SignalRule:
    """A span, metric or event definition with its attributes compiled."""

    signal_type: str  # span | metric | event
    name: str
    group: Group
    attrs: Mapping[str, AttrRule]
    templates: tuple[AttrRule, ...]
    required: tuple[str, ...]
    recommended: tuple[str, ...]
    span_kind: str | None
    instrument: str | None
    unit: str | None
    bucket_boundaries: tuple[float, ...] | None
    deprecated: Deprecated | None
    associations: tuple[EntityAssociation, ...] = ()


def _bucket_boundaries(annotations: Mapping[str, Any]) -> tuple[float, ...] | None:
    knhk = annotations.get("knhk")
    if not isinstance(knhk, Mapping):
        return None
    bounds = knhk.get("explicit_bucket_boundaries")
    if not isinstance(bounds, (list, tuple)):
        return None
    return tuple(float(b) for b in bounds)


def signal_rule(signal_type: str, group: Group) -> SignalRule:
    rules = {a.name: attr_rule(a) for a in group.attributes}
    return SignalRule(
        signal_type=signal_type,
        name=group.signal_name,
        group=group,
        attrs={n: r for n, r in rules.items() if not r.template},
        templates=tuple(sorted((r for r in rules.values() if r.template), key=lambda r: -len(r.name))),
        required=tuple(n for n, r in rules.items() if r.requirement_level == "required" and not r.template),
        recommended=tuple(
            n for n, r in rules.items() if r.requirement_level == "recommended" and not r.template
        ),
        span_kind=group.span_kind,
        instrument=group.instrument,
        unit=group.unit,
        bucket_boundaries=_bucket_boundaries(group.annotations),
        deprecated=group.deprecated,
        associations=group.entity_associations,
    )


_TEMPLATE_CACHE_LIMIT = 4096


class RegistryIndex:
    """Per-signal dicts and attribute tables; built once, then only read (safe across threads)."""

    def __init__(self, registry: ResolvedRegistry) -> None:
        self.registry = registry
        self.attributes: dict[str, AttrRule] = {}
        templates: list[AttrRule] = []
        for name, attr in registry.registry_attributes().items():
            rule = attr_rule(attr)
            if rule.template:
                templates.append(rule)
            else:
                self.attributes[name] = rule
        # Attributes only defined inline on a signal still exist in the registry.
        template_names = {r.name for r in templates}
        for group in registry.groups:
            for attr in group.attributes:
                if attr.name not in self.attributes and attr.name not in template_names:
                    rule = attr_rule(attr)
                    if rule.template:
                        templates.append(rule)
                        template_names.add(rule.name)
                    else:
                        self.attributes[attr.name] = rule
        self.templates: tuple[AttrRule, ...] = tuple(sorted(templates, key=lambda r: -len(r.name)))
        #: For Weaver's built-in advice: names no key may extend (attributes that are not
        #: deprecated) and the namespaces registry attributes live in (every proper prefix).
        self.undeprecated: frozenset[str] = frozenset(
            n for n, r in self.attributes.items() if r.deprecated is None
        )
        self.namespaces: frozenset[str] = frozenset(ns for n in self.attributes for ns in namespaces_of(n))
        self.spans: dict[str, SignalRule] = {}
        self.metrics: dict[str, SignalRule] = {}
        self.events: dict[str, SignalRule] = {}
        for group in registry.groups:
            if group.type == "span":
                self.spans.setdefault(group.signal_name, signal_rule("span", group))
            elif group.type == "metric":
                self.metrics.setdefault(group.signal_name, signal_rule("metric", group))
            elif group.type == "event":
                self.events.setdefault(group.signal_name, signal_rule("event", group))
        self._template_hits: dict[str, AttrRule | None] = {}

    def attribute(self, key: str) -> AttrRule | None:
        """The registry's rule for `key`: exact name first, then the longest template prefix."""
        rule = self.attributes.get(key)
        if rule is not None or not self.templates:
            return rule
        try:
            return self._template_hits[key]
        except KeyError:
            pass
        found = match_template(self.templates, key)
        if len(self._template_hits) >= _TEMPLATE_CACHE_LIMIT:
            self._template_hits.clear()
        self._template_hits[key] = found
        return found


def namespaces_of(key: str) -> list[str]:
    """`a.b.c` → [`a`, `a.b`]: the namespaces a dotted key lives in, outermost first."""
    parts = key.split(".")
    return [".".join(parts[:i]) for i in range(1, len(parts))]


def match_template(templates: tuple[AttrRule, ...], key: str) -> AttrRule | None:
    for rule in templates:
        if key.startswith(rule.name) and key[len(rule.name) : len(rule.name) + 1] == ".":
            return rule
    return None
