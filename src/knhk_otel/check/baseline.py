"""Compatibility stage: what a registry may not do to the stable parts of its baseline.

Compared by name (attributes, spans, events) and metric name (metrics). Only what the baseline
calls `stable` and does not already deprecate is protected; deprecating it (with `renamed_to` for
a rename) is the allowed way out, and removing something the baseline already deprecated is fine.

=================================  ==============================================================
id                                 violation (all errors)
=================================  ==============================================================
baseline_removed                   a stable attribute, metric, span or event is gone
baseline_renamed                   a stable name is gone and a look-alike of the same type
                                   appeared: a rename must keep the old one, deprecated with
                                   `renamed_to`
baseline_type_changed              a stable attribute changed type (enum value type included)
baseline_enum_member_removed       a member of a stable enum attribute is gone
baseline_instrument_changed        a stable metric changed instrument
baseline_unit_changed              a stable metric changed unit
baseline_span_kind_changed         a stable span changed span kind
baseline_stability_downgraded      a stable attribute, metric, span or event is no longer stable
=================================  ==============================================================
"""

from __future__ import annotations

import difflib
from collections.abc import Iterator

from knhk_otel.schema.diagnostics import Diagnostic
from knhk_otel.schema.model import (
    Attribute,
    AttributeType,
    EnumType,
    Group,
    GroupType,
    ResolvedRegistry,
)


def attribute_index(registry: ResolvedRegistry) -> dict[str, Attribute]:
    """Every attribute by name: registry definitions first, then those only signals carry."""
    out = dict(registry.registry_attributes())
    for g in registry.groups:
        for a in g.attributes:
            out.setdefault(a.name, a)
    return out


def metric_index(registry: ResolvedRegistry) -> dict[str, Group]:
    out: dict[str, Group] = {}
    for g in registry.metrics():
        out.setdefault(g.signal_name, g)
    return out


def type_label(t: AttributeType) -> str:
    return f"enum of {t.value_type}" if isinstance(t, EnumType) else t


def _protected(stability: str | None, deprecated: object) -> bool:
    return stability == "stable" and deprecated is None


def _look_alike(name: str, added: list[str]) -> str | None:
    close = difflib.get_close_matches(name, added, n=1, cutoff=0.6)
    return close[0] if close else None


def check_baseline(current: ResolvedRegistry, baseline: ResolvedRegistry) -> list[Diagnostic]:
    return [
        *_attributes(current, baseline),
        *_metrics(current, baseline),
        *_signals(current, baseline, "span"),
        *_signals(current, baseline, "event"),
    ]


def _gone(kind: str, name: str, old: Group, now: dict[str, Group], added: list[str]) -> Diagnostic:
    """A stable signal missing from the current registry: renamed when a look-alike appeared."""
    twin = _look_alike(name, added)
    if twin is not None:
        return Diagnostic(
            "baseline_renamed",
            f"stable {kind} `{name}` was renamed to `{twin}` without deprecating it",
            now[twin].source,
            hint=f"keep `{name}` with `deprecated: {{reason: renamed, renamed_to: {twin}}}`",
        )
    return Diagnostic(
        "baseline_removed",
        f"stable {kind} `{name}` was removed",
        old.source,
        hint="deprecate it instead of removing it",
    )


def _signal_index(registry: ResolvedRegistry, kind: GroupType) -> dict[str, Group]:
    out: dict[str, Group] = {}
    for g in registry.of_type(kind):
        out.setdefault(g.signal_name, g)
    return out


def _signals(current: ResolvedRegistry, baseline: ResolvedRegistry, kind: GroupType) -> Iterator[Diagnostic]:
    """Spans and events: a stable one may be deprecated, never removed, renamed or downgraded."""
    now = _signal_index(current, kind)
    before = _signal_index(baseline, kind)
    for name, old in before.items():
        if not _protected(old.stability, old.deprecated):
            continue
        new = now.get(name)
        if new is None:
            added = [n for n, g in now.items() if n not in before and g.span_kind == old.span_kind]
            yield _gone(kind, name, old, now, added)
            continue
        if new.span_kind != old.span_kind:
            yield Diagnostic(
                "baseline_span_kind_changed",
                f"stable span `{name}` changed span kind from {old.span_kind} to {new.span_kind}",
                new.source,
            )
        if new.stability != "stable" and new.deprecated is None:
            yield Diagnostic(
                "baseline_stability_downgraded",
                f"stable {kind} `{name}` became {new.stability or 'unspecified'}",
                new.source,
            )


def _attributes(current: ResolvedRegistry, baseline: ResolvedRegistry) -> Iterator[Diagnostic]:
    now = attribute_index(current)
    before = attribute_index(baseline)
    for name, old in before.items():
        if not _protected(old.stability, old.deprecated):
            continue
        new = now.get(name)
        if new is None:
            added = [
                n for n, a in now.items() if n not in before and type_label(a.type) == type_label(old.type)
            ]
            twin = _look_alike(name, added)
            if twin is not None:
                yield Diagnostic(
                    "baseline_renamed",
                    f"stable attribute `{name}` was renamed to `{twin}` without deprecating it",
                    now[twin].source,
                    hint=f"keep `{name}` with `deprecated: {{reason: renamed, renamed_to: {twin}}}`",
                )
            else:
                yield Diagnostic(
                    "baseline_removed",
                    f"stable attribute `{name}` was removed",
                    old.source,
                    hint="deprecate it instead of removing it",
                )
            continue
        if type_label(new.type) != type_label(old.type):
            yield Diagnostic(
                "baseline_type_changed",
                f"stable attribute `{name}` changed type "
                f"from `{type_label(old.type)}` to `{type_label(new.type)}`",
                new.source,
            )
        elif isinstance(old.type, EnumType) and isinstance(new.type, EnumType):
            kept = {m.value for m in new.type.members}
            for m in old.type.members:
                if m.value not in kept and m.deprecated is None:
                    yield Diagnostic(
                        "baseline_enum_member_removed",
                        f"stable enum attribute `{name}` lost member `{m.id}` ({m.value!r})",
                        new.source,
                    )
        if new.stability != "stable" and new.deprecated is None:
            yield Diagnostic(
                "baseline_stability_downgraded",
                f"stable attribute `{name}` became {new.stability or 'unspecified'}",
                new.source,
            )


def _metrics(current: ResolvedRegistry, baseline: ResolvedRegistry) -> Iterator[Diagnostic]:
    now = metric_index(current)
    before = metric_index(baseline)
    for name, old in before.items():
        if not _protected(old.stability, old.deprecated):
            continue
        new = now.get(name)
        if new is None:
            added = [n for n, g in now.items() if n not in before and g.instrument == old.instrument]
            yield _gone("metric", name, old, now, added)
            continue
        if new.instrument != old.instrument:
            yield Diagnostic(
                "baseline_instrument_changed",
                f"stable metric `{name}` changed instrument from {old.instrument} to {new.instrument}",
                new.source,
            )
        if new.unit != old.unit:
            yield Diagnostic(
                "baseline_unit_changed",
                f"stable metric `{name}` changed unit from {old.unit!r} to {new.unit!r}",
                new.source,
            )
        if new.stability != "stable" and new.deprecated is None:
            yield Diagnostic(
                "baseline_stability_downgraded",
                f"stable metric `{name}` became {new.stability or 'unspecified'}",
                new.source,
            )
