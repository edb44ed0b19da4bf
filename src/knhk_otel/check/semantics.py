"""Semantic stage: what the JSON Schema cannot say, checked on the written files (exact positions).

Diagnostic ids (every one an error unless marked *warning*):

============================  =================================================================
id                            meaning
============================  =================================================================
missing_span_kind             a span (v1 `span_kind`, v2 `kind`) does not say its kind
missing_metric_name           a v1 metric group has no `metric_name`
missing_instrument            a metric has no `instrument`
missing_unit                  a metric has no `unit`
unknown_instrument            `instrument` is not counter, updowncounter, gauge or histogram
malformed_unit                a unit is not UCUM-like (letters, digits, `/ . * ^ % ' _ -`, `{annotation}`)
missing_event_name            an event has no `name`
duplicate_metric_name         two metric definitions carry the same metric name
duplicate_enum_member         two members of one enum share an `id`, or a `value` while neither
                              is deprecated (a deprecated alias may keep its successor's value)
invalid_example               an example does not fit the attribute's type (scalar, array, enum);
                              a *warning* on a `ref`'s own examples (see `_check_attribute`)
invalid_bucket_boundaries     `annotations.knhk.explicit_bucket_boundaries` is not an increasing
                              list of numbers, or sits on something that is not a histogram
missing_brief                 a span, metric or event has no `brief` (Weaver requires one)
empty_brief                   *warning* (an error under `--future`): a `brief` that is empty
empty_attributes              *warning*: `attributes:` with no value (`[]` says "none" on purpose)
histogram_without_buckets     *warning*: a histogram under the manifest's namespace gives no
                              bucket advice (the SDK's defaults suit milliseconds only)
invalid_tick_budget           `annotations.knhk.tick_budgets` is not a mapping of snake_case
                              operation names to positive integers (ticks)
============================  =================================================================

Unresolved refs, extends cycles and duplicate group or attribute ids belong to the resolver and
are not repeated here. Checks skip a node the syntax stage already rejected (wrong type of value),
so one problem never yields two diagnostics.
"""

from __future__ import annotations

import itertools
import re
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, replace
from typing import Any

from knhk_otel.check.syntax import MANIFEST_NAMES, did_you_mean, document_format
from knhk_otel.schema.diagnostics import Diagnostic
from knhk_otel.schema.model import EnumType, ResolvedRegistry
from knhk_otel.schema.yamlpos import PathKey, YamlDoc

INSTRUMENTS: tuple[str, ...] = ("counter", "updowncounter", "gauge", "histogram")

#: UCUM-ish: unit symbols and operators, or `{annotation}` without blanks; at least one piece.
UNIT_RE = re.compile(r"^(?:[A-Za-z0-9%/.*^'_\-]|\{[^{}\s]+\})+$")

TICK_OPERATION_RE = re.compile(r"^[a-z][a-z0-9]*(?:_[a-z0-9]+)*$")


@dataclass(frozen=True, slots=True)
class Definition:
    """One signal or attribute group as written: where it is and what kind it is."""

    doc: YamlDoc
    path: PathKey
    kind: str  # attribute_group, span, metric, event, entity, scope, refinement
    raw: dict[str, Any]
    v2: bool


def definitions(doc: YamlDoc) -> Iterator[Definition]:
    data = doc.data
    if not isinstance(data, dict):
        return
    if document_format(doc) == "v1":
        for i, g in enumerate(_list(data.get("groups"))):
            if isinstance(g, dict):
                yield Definition(doc, ("groups", i), str(g.get("type", "")), g, False)
        return
    sections = {
        "attribute_groups": "attribute_group",
        "spans": "span",
        "metrics": "metric",
        "events": "event",
        "entities": "entity",
        "span_refinements": "refinement",
        "metric_refinements": "refinement",
        "event_refinements": "refinement",
        "entity_refinements": "refinement",
    }
    for section, kind in sections.items():
        for i, g in enumerate(_list(data.get(section))):
            if isinstance(g, dict):
                yield Definition(doc, (section, i), kind, g, True)


def _list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else []


def _attribute_entries(doc: YamlDoc) -> Iterator[tuple[PathKey, dict[str, Any]]]:
    """Every attribute definition or reference of a file, with its path."""
    data = doc.data
    if not isinstance(data, dict):
        return
    if document_format(doc) == "v2":
        for i, a in enumerate(_list(data.get("attributes"))):
            if isinstance(a, dict):
                yield ("attributes", i), a
    for d in definitions(doc):
        for i, a in enumerate(_list(d.raw.get("attributes"))):
            if isinstance(a, dict):
                yield (*d.path, "attributes", i), a


def _is_definition_file(doc: YamlDoc) -> bool:
    return doc.path.replace("\\", "/").rsplit("/", 1)[-1] not in MANIFEST_NAMES


def check_semantics(
    docs: Iterable[YamlDoc], registry: ResolvedRegistry | None, namespace: str | None = None
) -> list[Diagnostic]:
    """All semantic diagnostics of the files; `registry` supplies the types of referenced attributes."""
    files = [d for d in docs if _is_definition_file(d)]
    types = _attribute_types(files, registry)
    out: list[Diagnostic] = []
    metric_names: dict[str, Definition] = {}
    for doc in files:
        for d in definitions(doc):
            if d.kind == "span":
                out.extend(_check_span(d))
            elif d.kind == "metric":
                out.extend(_check_metric(d, metric_names, namespace))
            elif d.kind == "event" and "name" not in d.raw:
                out.append(_at(d, (), "missing_event_name", f"event `{_label(d)}` has no `name`"))
            out.extend(_check_annotations(d))
            out.extend(_check_empty(d))
        for path, attr in _attribute_entries(doc):
            out.extend(_check_attribute(doc, path, attr, types))
    return out


_NEEDS_BRIEF = frozenset({"span", "metric", "event"})


def _check_empty(d: Definition) -> list[Diagnostic]:
    """Weaver's rules: a signal needs a `brief`; an empty brief or attribute list is only a warning."""
    out: list[Diagnostic] = []
    label = _label(d)
    if "brief" not in d.raw:
        if d.kind in _NEEDS_BRIEF:
            out.append(_at(d, (), "missing_brief", f"{d.kind} `{label}` has no brief"))
    else:
        brief = d.raw.get("brief")
        if brief is None or (isinstance(brief, str) and not brief.strip()):
            message = f"{d.kind} `{label}` has an empty brief"
            out.append(_at(d, ("brief",), "empty_brief", message, severity="warning"))
    if "attributes" in d.raw and d.raw.get("attributes") is None:  # `[]` says "none" on purpose
        out.append(
            _at(
                d,
                ("attributes",),
                "empty_attributes",
                f"{d.kind} `{label}`: `attributes:` has no value (write `[]` for none)",
                severity="warning",
            )
        )
    return out


def _label(d: Definition) -> str:
    for key in ("id", "name", "type", "key"):
        value = d.raw.get(key)
        if isinstance(value, str):
            return value
    return "/".join(str(p) for p in d.path)


def _at(d: Definition, sub: PathKey, diag_id: str, message: str, **kw: Any) -> Diagnostic:
    return Diagnostic(diag_id, message, d.doc.source((*d.path, *sub)), **kw)


def _check_span(d: Definition) -> list[Diagnostic]:
    field = "kind" if d.v2 else "span_kind"
    if field in d.raw:
        return []
    return [
        _at(
            d,
            (),
            "missing_span_kind",
            f"span `{_label(d)}` has no `{field}`",
            hint="one of client, server, producer, consumer, internal",
        )
    ]


def _check_metric(d: Definition, seen: dict[str, Definition], namespace: str | None) -> list[Diagnostic]:
    out: list[Diagnostic] = []
    label = _label(d)
    name_key = "name" if d.v2 else "metric_name"
    name = d.raw.get(name_key)
    if not d.v2 and name is None:
        out.append(_at(d, (), "missing_metric_name", f"metric group `{label}` has no `metric_name`"))
    if isinstance(name, str):
        first = seen.get(name)
        if first is not None:
            out.append(
                _at(
                    d,
                    (name_key,),
                    "duplicate_metric_name",
                    f"metric name `{name}` is already defined at {first.doc.source((*first.path, name_key))}",
                )
            )
        else:
            seen[name] = d
    instrument = d.raw.get("instrument")
    if "instrument" not in d.raw:
        out.append(_at(d, (), "missing_instrument", f"metric `{label}` has no `instrument`"))
    elif isinstance(instrument, str) and instrument not in INSTRUMENTS:
        out.append(
            _at(
                d,
                ("instrument",),
                "unknown_instrument",
                f"metric `{label}`: instrument {instrument!r} is not one of {', '.join(INSTRUMENTS)}",
                hint=did_you_mean(instrument, INSTRUMENTS),
            )
        )
    unit = d.raw.get("unit")
    if "unit" not in d.raw:
        out.append(
            _at(
                d,
                (),
                "missing_unit",
                f"metric `{label}` has no `unit`",
                hint="use `1` for a dimensionless value",
            )
        )
    elif isinstance(unit, str) and not UNIT_RE.match(unit):
        out.append(
            _at(
                d,
                ("unit",),
                "malformed_unit",
                f"metric `{label}`: unit {unit!r} is not a UCUM unit",
                hint="use symbols like `s`, `By`, `By/s`, `1` or an annotation like `{round}`, no blanks",
            )
        )
    if (
        instrument == "histogram"
        and namespace
        and isinstance(name, str)
        and _under(name, namespace)
        and _knhk_annotation(d.raw, "explicit_bucket_boundaries") is None
    ):
        out.append(
            _at(
                d,
                (),
                "histogram_without_buckets",
                f"histogram `{name}` gives no bucket advice "
                "(annotations.knhk.explicit_bucket_boundaries); the SDK's defaults suit milliseconds",
                severity="warning",
            )
        )
    return out


def _under(name: str, namespace: str) -> bool:
    return name == namespace or name.startswith(namespace + ".")


def _knhk_annotation(raw: Mapping[str, Any], key: str) -> Any:
    annotations = raw.get("annotations")
    if not isinstance(annotations, dict):
        return None
    knhk = annotations.get("knhk")
    return knhk.get(key) if isinstance(knhk, dict) else None


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _check_annotations(d: Definition) -> list[Diagnostic]:
    out: list[Diagnostic] = []
    sub: PathKey = ("annotations", "knhk")
    buckets = _knhk_annotation(d.raw, "explicit_bucket_boundaries")
    if buckets is not None:
        where = (*sub, "explicit_bucket_boundaries")
        if d.kind != "metric" or d.raw.get("instrument") != "histogram":
            out.append(
                _at(
                    d,
                    where,
                    "invalid_bucket_boundaries",
                    f"`{_label(d)}` is not a histogram: bucket advice has no use",
                )
            )
        elif (
            not isinstance(buckets, list)
            or not buckets
            or not all(_is_number(b) for b in buckets)
            or any(b >= c for b, c in itertools.pairwise(buckets))
        ):
            out.append(
                _at(
                    d,
                    where,
                    "invalid_bucket_boundaries",
                    f"`{_label(d)}`: explicit_bucket_boundaries must be a non-empty, strictly increasing "
                    f"list of numbers, got {buckets!r}",
                )
            )
    budgets = _knhk_annotation(d.raw, "tick_budgets")
    if budgets is not None:
        where = (*sub, "tick_budgets")
        if not isinstance(budgets, dict) or not budgets:
            out.append(
                _at(d, where, "invalid_tick_budget", "tick_budgets must be a mapping of operation to ticks")
            )
            return out
        for op, ticks in budgets.items():
            if not isinstance(op, str) or not TICK_OPERATION_RE.match(op):
                out.append(
                    _at(
                        d,
                        (*where, str(op)),
                        "invalid_tick_budget",
                        f"tick budget name {op!r} is not snake_case",
                    )
                )
            elif isinstance(ticks, bool) or not isinstance(ticks, int) or ticks <= 0:
                out.append(
                    _at(
                        d,
                        (*where, op),
                        "invalid_tick_budget",
                        f"tick budget `{op}` must be a positive whole number of ticks, got {ticks!r}",
                    )
                )
    return out


def _attribute_types(files: list[YamlDoc], registry: ResolvedRegistry | None) -> dict[str, Any]:
    """Type of every known attribute name: the resolved registry first, the raw files as fallback."""
    types: dict[str, Any] = {}
    if registry is not None:
        for name, attr in registry.registry_attributes().items():
            types[name] = attr.type
        for group in registry.groups:
            for attr in group.attributes:
                types.setdefault(attr.name, attr.type)
    for doc in files:
        for _, raw in _attribute_entries(doc):
            defined = raw.get("id", raw.get("key"))
            if isinstance(defined, str) and "type" in raw:
                types.setdefault(defined, raw["type"])
    return types


def _check_attribute(
    doc: YamlDoc, path: PathKey, raw: dict[str, Any], types: dict[str, Any]
) -> list[Diagnostic]:
    out: list[Diagnostic] = []
    name = raw.get("id", raw.get("key", raw.get("ref")))
    if not isinstance(name, str):
        return out
    declared = raw.get("type") if "ref" not in raw else types.get(name)
    if isinstance(declared, dict) and isinstance(declared.get("members"), list) and "ref" not in raw:
        out.extend(_check_members(doc, (*path, "type", "members"), name, declared["members"]))
    if "examples" in raw and declared is not None:
        found = _check_examples(doc, (*path, "examples"), name, declared, raw["examples"])
        if "ref" in raw:
            # An example on a reference documents one use and cannot change the definition's type, so
            # it warns. (OTel 1.44 itself has one: zos/common.yaml gives int `process.pid` '008A'.)
            found = [replace(d, severity="warning") for d in found]
        out.extend(found)
    return out


def _check_members(doc: YamlDoc, path: PathKey, name: str, members: list[Any]) -> list[Diagnostic]:
    out: list[Diagnostic] = []
    ids: dict[Any, int] = {}
    values: dict[Any, int] = {}
    for i, m in enumerate(members):
        if not isinstance(m, dict):
            continue
        value_counts = "deprecated" not in m
        mid, value = m.get("id"), m.get("value")
        if isinstance(mid, str):
            if mid in ids:
                out.append(
                    Diagnostic(
                        "duplicate_enum_member",
                        f"enum `{name}`: member id `{mid}` repeats member {ids[mid]}",
                        doc.source((*path, i, "id")),
                    )
                )
            else:
                ids[mid] = i
        if value_counts and isinstance(value, str | int | float) and not isinstance(value, bool):
            if value in values:
                out.append(
                    Diagnostic(
                        "duplicate_enum_member",
                        f"enum `{name}`: value {value!r} repeats member {values[value]}",
                        doc.source((*path, i, "value")),
                    )
                )
            else:
                values[value] = i
    return out


def _scalar_fits(kind: str, value: Any) -> bool:
    if isinstance(value, dict | list):
        return True  # not a scalar at all: the syntax stage reports it
    if kind == "string":
        return isinstance(value, str)
    if kind == "int":
        return isinstance(value, int) and not isinstance(value, bool)
    if kind == "double":
        return _is_number(value)
    if kind == "boolean":
        return isinstance(value, bool)
    return True  # any


def _enum_kind(declared: Any) -> str | None:
    """The value type of an enum (a resolved `EnumType` or a raw `{members: [...]}`), else None."""
    if isinstance(declared, EnumType):
        return declared.value_type
    if isinstance(declared, dict) and isinstance(declared.get("members"), list):
        values = [m.get("value") for m in declared["members"] if isinstance(m, dict)]
        if values and all(isinstance(v, int) and not isinstance(v, bool) for v in values):
            return "int"
        if values and all(_is_number(v) for v in values):
            return "double"
        return "string"
    return None


def _check_examples(doc: YamlDoc, path: PathKey, name: str, declared: Any, examples: Any) -> list[Diagnostic]:
    """Each example must fit the type; an array type takes one array, or a list of arrays.

    Enum examples only need the members' value type: semantic-convention enums are open, so a
    well-typed value outside the members is legitimate.
    """
    enum_kind = _enum_kind(declared)
    if enum_kind is not None:
        kind, is_array, shown = enum_kind, False, f"enum of {enum_kind}"
    elif isinstance(declared, str):
        base = declared[len("template[") : -1] if declared.startswith("template[") else declared
        kind, is_array, shown = base.removesuffix("[]"), base.endswith("[]"), declared
    else:
        return []
    if not isinstance(examples, list):
        cases: list[tuple[PathKey, Any]] = [(path, examples)]
    elif is_array and not any(isinstance(x, list) for x in examples):
        cases = [(path, examples)]  # a flat list is one array example
    else:
        cases = [((*path, i), x) for i, x in enumerate(examples)]
    out: list[Diagnostic] = []
    for where, example in cases:
        if is_array and isinstance(example, dict):
            continue  # the syntax stage reports a mapping
        if is_array and not isinstance(example, list):
            bad: Any = example
        else:
            parts = example if is_array else [example]
            bad = next((p for p in parts if not _scalar_fits(kind, p)), _NONE)
        if bad is not _NONE:
            out.append(
                Diagnostic(
                    "invalid_example",
                    f"attribute `{name}`: example {bad!r} does not fit type `{shown}`",
                    doc.source(where),
                )
            )
    return out


_NONE = object()
