"""Hook of the `python` target: decides every generated Python name and rejects collisions.

Templates only lay out code; which identifier an attribute, enum, span, metric or event gets (and
whether two definitions fight over one) is decided here, once, with the definitions' places at hand.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, replace
from typing import Any

from knhk_otel.codegen import naming
from knhk_otel.codegen.engine import GenerationInput
from knhk_otel.codegen.errors import CodegenError
from knhk_otel.codegen.filters import py_str, python_type
from knhk_otel.schema.diagnostics import Diagnostic
from knhk_otel.schema.model import Attribute, EnumMember, EnumType, Group, Source

ABC = "_abc."
TYPES = "_types."
ENUMS = "attributes."

#: Names a generated module itself binds; an enum or metric class must not take them.
_MODULE_NAMES = frozenset({"Final", "StrEnum", "IntEnum", "Enum", "Any"})
#: Positional parameters of the helpers; an attribute kwarg with this name gets a trailing `_`.
_RESERVED_KWARGS = frozenset({"tracer", "meter", "logger", "value", "self"})


@dataclass(frozen=True, slots=True)
class PyMember:
    name: str
    member: EnumMember
    literal: str  # the member value as a Python literal


@dataclass(frozen=True, slots=True)
class PyEnum:
    class_name: str
    base: str  # StrEnum | IntEnum | Enum
    members: tuple[PyMember, ...]

    @property
    def value_alias(self) -> str | None:
        """`<Class>Value`, a `Literal` of the member values, so a helper takes `"push"` as well as
        `GossipPhase.PUSH` and mypy rejects `"pushh"`; None when the values are not all str or int
        (a `Literal` cannot hold a float)."""
        values = [m.member.value for m in self.members]
        if not values or not all(isinstance(v, str | int) and not isinstance(v, bool) for v in values):
            return None
        return f"{self.class_name}Value"


@dataclass(frozen=True, slots=True)
class PyAttribute:
    const: str
    attribute: Attribute
    enum: PyEnum | None


@dataclass(frozen=True, slots=True)
class PyParam:
    kwarg: str
    attribute: Attribute
    annotation: str  # without `| None`
    required: bool
    is_enum: bool
    is_template: bool
    spec_type: str  # Python expression for the strict-mode spec: a type string or an enum class


@dataclass(frozen=True, slots=True)
class PySignal:
    name: str  # function or class name
    group: Group
    params: tuple[PyParam, ...]
    spec_name: str
    buckets: list[float] | None = None  # histogram bucket advice from `annotations.knhk`

    @property
    def required(self) -> tuple[PyParam, ...]:
        return tuple(p for p in self.params if p.required and not p.is_template)

    @property
    def optional(self) -> tuple[PyParam, ...]:
        return tuple(p for p in self.params if not (p.required and not p.is_template))


def _where(source: Source | None) -> str:
    return str(source) if source else "<registry>"


class _Names:
    """Hands out identifiers; a second definition wanting a taken one is a collision.

    A deprecated definition yields to a current one: it gets `suffix` appended (e.g.
    `messaging.client_id` → `MESSAGING_CLIENT_ID_DEPRECATED` beside `messaging.client.id`), because
    the real semantic conventions keep such pairs. Anything else is an error naming both.
    """

    def __init__(self, what: str, suffix: str) -> None:
        self.what = what
        self.suffix = suffix
        self.seen: dict[str, tuple[str, Source | None]] = {}
        self.errors: list[Diagnostic] = []

    def claim(
        self, name: str, definition: str, source: Source | None, *, deprecated: bool = False
    ) -> str | None:
        """The identifier `definition` gets, or None after recording a collision."""
        candidates = [name, name + self.suffix] if deprecated else [name]
        for candidate in candidates:
            first = self.seen.get(candidate)
            if first is None:
                self.seen[candidate] = (definition, source)
                return candidate
            if first[0] == definition:
                return candidate
        first = self.seen[name]
        self.errors.append(
            Diagnostic(
                "codegen_name_collision",
                f"{self.what} `{name}` would be generated for both `{first[0]}` ({_where(first[1])}) "
                f"and `{definition}` ({_where(source)}); rename one of them",
                source,
            )
        )
        return None


def _members(enum: EnumType) -> tuple[PyMember, ...]:
    out: list[PyMember] = []
    used: set[str] = set()
    for member in enum.members:
        name = naming.enum_member_name(member.id)
        while name in used:  # `a.b` and `a_b`: keep both, deterministically
            name += "_"
        used.add(name)
        value = member.value
        if enum.value_type == "string":
            literal = py_str(str(value))
        elif enum.value_type == "int":
            literal = repr(int(value))
        else:
            literal = repr(float(value))
        out.append(PyMember(name, member, literal))
    return tuple(out)


def _enum_base(enum: EnumType) -> str:
    return {"string": "StrEnum", "int": "IntEnum"}.get(enum.value_type, "Enum")


def _collect_attributes(inp: GenerationInput) -> list[Attribute]:
    """Every registry attribute plus any attribute an own signal defines inline (first definition wins).

    Dependencies' attributes are included: instrumented code sets them too (resource attributes, ...).
    """
    seen: dict[str, Attribute] = dict(inp.registry.registry_attributes())
    for group in inp.own_groups():
        if group.type in ("span", "metric", "event"):
            for attr in group.attributes:
                seen.setdefault(attr.name, attr)
    return sorted(seen.values(), key=lambda a: a.name)


def _attributes(inp: GenerationInput, errors: list[Diagnostic]) -> dict[str, PyAttribute]:
    consts = _Names("attribute constant", "_DEPRECATED")
    classes = _Names("enum class", "Deprecated")
    out: dict[str, PyAttribute] = {}
    # current definitions claim names first, so a deprecated twin is the one that gets the suffix
    for attr in sorted(_collect_attributes(inp), key=lambda a: (a.deprecated is not None, a.name)):
        const = consts.claim(
            naming.screaming_snake_case(attr.name), attr.name, attr.source, deprecated=_dep(attr)
        )
        if const is None:
            continue
        enum: PyEnum | None = None
        if isinstance(attr.type, EnumType) and attr.type.members:
            wanted = naming.pascal_case(naming.strip_namespace(attr.name, inp.namespace))
            if wanted in _MODULE_NAMES or not wanted:
                errors.append(
                    Diagnostic(
                        "codegen_name_collision",
                        f"enum class `{wanted}` of `{attr.name}` clashes with a name the module imports",
                        attr.source,
                    )
                )
                continue
            class_name = classes.claim(wanted, attr.name, attr.source, deprecated=_dep(attr))
            if class_name is None:
                continue
            enum = PyEnum(class_name, _enum_base(attr.type), _members(attr.type))
        out[attr.name] = PyAttribute(const, attr, enum)
    errors.extend(consts.errors)
    errors.extend(classes.errors)
    return dict(sorted(out.items()))


def _dep(item: Attribute | Group) -> bool:
    return item.deprecated is not None


def _spec_type(attr: Attribute, enum: PyEnum | None) -> str:
    if enum is not None:
        return ENUMS + enum.class_name
    if isinstance(attr.type, EnumType):
        return py_str(attr.type.value_type)
    return py_str(attr.type)


def _enum_annotation(annotation: str, enum: PyEnum) -> str:
    return f"{annotation} | {ENUMS}{enum.value_alias}" if enum.value_alias else annotation


def _params(
    group: Group, attrs: Mapping[str, PyAttribute], inp: GenerationInput, errors: list[Diagnostic]
) -> tuple[PyParam, ...]:
    kwargs = _Names(f"keyword argument of `{group.id}`:", "_deprecated")
    chosen: dict[str, str] = {}
    for attr in sorted(group.attributes, key=lambda a: a.deprecated is not None):
        wanted = naming.py_identifier(
            naming.snake_case(naming.strip_namespace(attr.name, inp.namespace)), reserved=_RESERVED_KWARGS
        )
        kwarg = kwargs.claim(wanted, attr.name, attr.source, deprecated=_dep(attr))
        if kwarg is not None:
            chosen[attr.name] = kwarg
    errors.extend(kwargs.errors)
    out: list[PyParam] = []
    for attr in group.attributes:
        if attr.name not in chosen:
            continue
        py_attr = attrs.get(attr.name)
        enum = py_attr.enum if py_attr is not None and isinstance(attr.type, EnumType) else None
        if isinstance(attr.type, EnumType) and enum is None and attr.type.members:
            enum = _members_enum(attr, inp)
        annotation = python_type(attr, ENUMS + enum.class_name if enum else None, ABC, TYPES)
        if enum is not None:
            annotation = _enum_annotation(annotation, enum)
        out.append(
            PyParam(
                kwarg=chosen[attr.name],
                attribute=attr,
                annotation=annotation,
                required=attr.requirement_level == "required",
                is_enum=enum is not None,
                is_template=attr.is_template,
                spec_type=_spec_type(attr, enum),
            )
        )
    required = [p for p in out if p.required and not p.is_template]
    optional = [p for p in out if not (p.required and not p.is_template)]
    return tuple(required + optional)


def _members_enum(attr: Attribute, inp: GenerationInput) -> PyEnum:
    assert isinstance(attr.type, EnumType)
    class_name = naming.pascal_case(naming.strip_namespace(attr.name, inp.namespace))
    return PyEnum(class_name, _enum_base(attr.type), _members(attr.type))


def _merge(groups: list[Group], errors: list[Diagnostic]) -> Group:
    """One signal defined by several groups (semconv's per-hardware `hw.status`): one helper for all.

    The first current definition gives brief, kind, unit; attributes are the union, required only
    where every definition requires them.
    """
    base = sorted(groups, key=_dep)[0]
    if len(groups) == 1:
        return base
    for other in groups:
        if (other.instrument, other.unit, other.span_kind) != (base.instrument, base.unit, base.span_kind):
            errors.append(
                Diagnostic(
                    "codegen_signal_conflict",
                    f"`{other.signal_name}` is defined by `{base.id}` ({_where(base.source)}) and "
                    f"`{other.id}` with a different instrument, unit or span kind",
                    other.source,
                )
            )
    merged: dict[str, Attribute] = {}
    for group in sorted(groups, key=_dep):
        for attr in group.attributes:
            merged.setdefault(attr.name, attr)
    attributes = []
    for name, attr in merged.items():
        everywhere = all(
            (a := g.attribute(name)) is not None and a.requirement_level == "required" for g in groups
        )
        if attr.requirement_level == "required" and not everywhere:
            attr = replace(
                attr,
                requirement_level="conditionally_required",
                requirement_text="required by some definitions",
            )
        attributes.append(attr)
    return replace(base, attributes=tuple(attributes))


def _signals(
    groups: Iterable[Group],
    attrs: Mapping[str, PyAttribute],
    inp: GenerationInput,
    errors: list[Diagnostic],
    *,
    what: str,
    make_name: Callable[[str], str],
    suffix: str,
) -> list[PySignal]:
    by_name: dict[str, list[Group]] = {}
    for group in groups:
        by_name.setdefault(group.signal_name, []).append(group)
    merged = [_merge(same, errors) for same in by_name.values()]
    names = _Names(what, suffix)
    out: list[PySignal] = []
    for group in sorted(merged, key=lambda g: (_dep(g), g.signal_name)):
        stripped = naming.strip_namespace(group.signal_name, inp.namespace)
        name = names.claim(make_name(stripped), group.signal_name, group.source, deprecated=_dep(group))
        if name is None:
            continue
        spec_name = f"_SPEC_{naming.screaming_snake_case(name)}"
        out.append(PySignal(name, group, _params(group, attrs, inp, errors), spec_name, _buckets(group)))
    errors.extend(names.errors)
    return sorted(out, key=lambda s: s.name)


def _buckets(group: Group) -> list[float] | None:
    if group.instrument != "histogram":
        return None
    knhk = group.annotations.get("knhk")
    bounds = knhk.get("explicit_bucket_boundaries") if isinstance(knhk, Mapping) else None
    if isinstance(bounds, list) and all(
        isinstance(b, int | float) and not isinstance(b, bool) for b in bounds
    ):
        return [float(b) for b in bounds]
    return None


def _imports_needed(signals: list[PySignal]) -> dict[str, bool]:
    """Which imports a signal module uses, so an empty or attribute-less module has no unused ones."""
    params = [p for s in signals for p in s.params]
    return {
        "signals": bool(signals),
        "strict": bool(params),
        "abc": any(ABC in p.annotation for p in params),
        "types": any(TYPES in p.annotation for p in params),
        "enums": any(ENUMS in p.annotation or ENUMS in p.spec_type for p in params),
        "template": any(p.is_template for p in params),
    }


def context(inp: GenerationInput) -> dict[str, Any]:
    """The python target's template context: attributes, spans, metrics and events with their names."""
    errors: list[Diagnostic] = []
    attrs = _attributes(inp, errors)
    own = inp.own_groups()
    spans = _signals(
        (g for g in own if g.type == "span"),
        attrs,
        inp,
        errors,
        what="span helper",
        make_name=lambda s: "start_" + naming.snake_case(s),
        suffix="_deprecated",
    )
    metrics = _signals(
        (g for g in own if g.type == "metric" and g.instrument is not None),
        attrs,
        inp,
        errors,
        what="metric class",
        make_name=lambda s: naming.pascal_case(s) or "Metric",
        suffix="Deprecated",
    )
    events = _signals(
        (g for g in own if g.type == "event"),
        attrs,
        inp,
        errors,
        what="event helper",
        make_name=lambda s: "emit_" + naming.snake_case(s),
        suffix="_deprecated",
    )
    for metric in metrics:
        if metric.name in _MODULE_NAMES:
            errors.append(
                Diagnostic(
                    "codegen_name_collision",
                    f"metric class `{metric.name}` clashes with a name the module imports",
                    metric.group.source,
                )
            )
    if errors:
        raise CodegenError(*errors)
    enums = [a for a in attrs.values() if a.enum is not None]
    return {
        "py_attributes": list(attrs.values()),
        "py_enums": enums,
        "py_spans": spans,
        "py_metrics": metrics,
        "py_events": events,
        "py_imports": {
            "attributes": {
                "StrEnum": any(e.enum is not None and e.enum.base == "StrEnum" for e in enums),
                "Literal": any(e.enum is not None and e.enum.value_alias for e in enums),
                "IntEnum": any(e.enum is not None and e.enum.base == "IntEnum" for e in enums),
                "Enum": any(e.enum is not None and e.enum.base == "Enum" for e in enums),
            },
            "spans": _imports_needed(spans),
            "metrics": _imports_needed(metrics),
            "events": _imports_needed(events),
        },
    }
