"""Counts of what a resolved registry defines, by type, stability and deprecation, own vs dependencies."""

from __future__ import annotations

from collections import Counter
from typing import Any

from knhk_otel.schema.model import Attribute, Group, ResolvedRegistry

W = 28  # width of the row labels in the text table
SIGNAL_TYPES = ("span", "metric", "event", "entity")


def _attributes(registry: ResolvedRegistry, own: bool) -> list[Attribute]:
    """Attributes defined on each side, once each: a dependency's are those of its attribute groups;
    the registry's own are those its groups carry that no dependency defines."""
    foreign: dict[str, Attribute] = {}
    for g in registry.groups:
        if g.id not in registry.own and g.type == "attribute_group":
            for a in g.attributes:
                foreign.setdefault(a.name, a)
    if not own:
        return list(foreign.values())
    mine: dict[str, Attribute] = {}
    for g in registry.groups:
        if g.id in registry.own:
            for a in g.attributes:
                if a.name not in foreign:
                    mine.setdefault(a.name, a)
    return list(mine.values())


def _side(groups: list[Group], attributes: list[Attribute]) -> dict[str, Any]:
    by_type = Counter(g.type for g in groups)
    signals = [g for g in groups if g.type in SIGNAL_TYPES]
    return {
        "attribute_group": by_type.get("attribute_group", 0),
        "attributes": len(attributes),
        "span": by_type.get("span", 0),
        "metric": by_type.get("metric", 0),
        "event": by_type.get("event", 0),
        "entity": by_type.get("entity", 0),
        "stability": {
            "attributes": dict(sorted(Counter(a.stability or "unspecified" for a in attributes).items())),
            "signals": dict(sorted(Counter(g.stability or "unspecified" for g in signals).items())),
        },
        "deprecated": {
            "attributes": sum(1 for a in attributes if a.deprecated is not None),
            "signals": sum(1 for g in signals if g.deprecated is not None),
        },
        "instruments": dict(
            sorted(Counter(g.instrument or "unspecified" for g in groups if g.type == "metric").items())
        ),
        "span_kinds": dict(
            sorted(Counter(g.span_kind or "unspecified" for g in groups if g.type == "span").items())
        ),
    }


def compute_stats(registry: ResolvedRegistry) -> dict[str, Any]:
    own_groups = [g for g in registry.groups if g.id in registry.own]
    dep_groups = [g for g in registry.groups if g.id not in registry.own]
    own_attrs = _attributes(registry, own=True)
    dep_attrs = _attributes(registry, own=False)
    return {
        "registry": registry.manifest.name if registry.manifest else None,
        "groups": len(registry.groups),
        "own": _side(own_groups, own_attrs),
        "dependencies": _side(dep_groups, dep_attrs),
        "total": _side(list(registry.groups), own_attrs + dep_attrs),
    }


def render_text(stats: dict[str, Any]) -> str:
    rows = ("attribute_group", "attributes", "span", "metric", "event", "entity")
    sides = ("own", "dependencies", "total")
    lines = [f"registry {stats['registry'] or '<unnamed>'}: {stats['groups']} groups", ""]
    lines.append(f"{'':<{W}}" + "".join(f"{s:>14}" for s in sides))
    for row in rows:
        lines.append(f"{row:<{W}}" + "".join(f"{stats[s][row]:>14}" for s in sides))
    for kind in ("attributes", "signals"):
        lines.append(
            f"{'deprecated ' + kind:<{W}}" + "".join(f"{stats[s]['deprecated'][kind]:>14}" for s in sides)
        )
    for kind in ("attributes", "signals"):
        levels = sorted(stats["total"]["stability"][kind])
        for level in levels:
            label = f"{kind} {level}"
            lines.append(
                f"{label:<{W}}" + "".join(f"{stats[s]['stability'][kind].get(level, 0):>14}" for s in sides)
            )
    for key, title in (("instruments", "instrument"), ("span_kinds", "span kind")):
        for value in sorted(stats["total"][key]):
            label = f"{title} {value}"
            lines.append(f"{label:<{W}}" + "".join(f"{stats[s][key].get(value, 0):>14}" for s in sides))
    return "\n".join(lines)
