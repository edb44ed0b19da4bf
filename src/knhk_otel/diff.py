"""Schema evolution between a registry and its baseline: added, removed, renamed, updated, obsoleted.

Attributes are keyed by name, metrics by metric name, spans and events by their signal name. A
name newly deprecated in the current registry counts as `renamed` (reason renamed, with its
`renamed_to`), `obsoleted` or `uncategorized`, not as `updated`. Every list is sorted by name, so
the output is deterministic.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from knhk_otel.check.baseline import attribute_index, type_label
from knhk_otel.schema.model import Attribute, Deprecated, Group, ResolvedRegistry

KINDS = ("attributes", "metrics", "spans", "events")
CHANGES = ("added", "removed", "renamed", "obsoleted", "uncategorized", "updated")


def _signals(registry: ResolvedRegistry, kind: str) -> dict[str, Group]:
    out: dict[str, Group] = {}
    for g in registry.of_type(kind):  # type: ignore[arg-type]  # kind is one of span/metric/event
        out.setdefault(g.signal_name, g)
    return out


def _attribute_fields(a: Attribute) -> dict[str, Any]:
    return {"type": type_label(a.type), "brief": a.brief.strip(), "stability": a.stability}


def _signal_fields(g: Group) -> dict[str, Any]:
    fields: dict[str, Any] = {"brief": g.brief.strip(), "stability": g.stability}
    if g.type == "metric":
        fields.update(instrument=g.instrument, unit=g.unit)
    if g.type == "span":
        fields["span_kind"] = g.span_kind
    return fields


def _compare(
    now: Mapping[str, Any],
    before: Mapping[str, Any],
    fields: Any,
) -> dict[str, list[Any]]:
    out: dict[str, list[Any]] = {c: [] for c in CHANGES}
    for name in sorted(now.keys() - before.keys()):
        out["added"].append(name)
    for name in sorted(before.keys() - now.keys()):
        out["removed"].append(name)
    for name in sorted(now.keys() & before.keys()):
        new, old = now[name], before[name]
        dep: Deprecated | None = new.deprecated
        if dep is not None and old.deprecated is None:
            if dep.reason == "renamed":
                out["renamed"].append({"name": name, "renamed_to": dep.renamed_to})
            else:
                out[dep.reason].append(name)
            continue
        changes = {
            key: {"from": value, "to": fields(new)[key]}
            for key, value in fields(old).items()
            if value != fields(new)[key]
        }
        if isinstance(new, Group) and isinstance(old, Group):
            added = sorted({a.name for a in new.attributes} - {a.name for a in old.attributes})
            removed = sorted({a.name for a in old.attributes} - {a.name for a in new.attributes})
            if added or removed:
                changes["attributes"] = {"added": added, "removed": removed}
        if changes:
            out["updated"].append({"name": name, "changes": changes})
    return out


def compute_diff(current: ResolvedRegistry, baseline: ResolvedRegistry) -> dict[str, Any]:
    result: dict[str, Any] = {
        "attributes": _compare(attribute_index(current), attribute_index(baseline), _attribute_fields)
    }
    for kind, group_type in (("metrics", "metric"), ("spans", "span"), ("events", "event")):
        result[kind] = _compare(_signals(current, group_type), _signals(baseline, group_type), _signal_fields)
    return result


def _line(change: str, item: Any) -> str:
    if change == "renamed":
        return f"{item['name']} → {item['renamed_to']}"
    if change == "updated":
        parts = []
        for key, value in item["changes"].items():
            if key == "attributes":
                parts += [f"+{n}" for n in value["added"]] + [f"-{n}" for n in value["removed"]]
            else:
                parts.append(f"{key}: {value['from']!r} → {value['to']!r}")
        return f"{item['name']} ({'; '.join(parts)})"
    return str(item)


def _md_line(change: str, item: Any) -> str:
    if change == "renamed":
        return f"`{item['name']}` → `{item['renamed_to']}`"
    if change == "updated":
        parts = []
        for key, value in item["changes"].items():
            if key == "attributes":
                parts += [f"+`{n}`" for n in value["added"]] + [f"-`{n}`" for n in value["removed"]]
            else:
                parts.append(f"{key}: `{value['from']}` → `{value['to']}`")
        return f"`{item['name']}`: {'; '.join(parts)}"
    return f"`{item}`"


_MARK = {"added": "+", "removed": "-", "renamed": "→", "obsoleted": "✝", "uncategorized": "?", "updated": "~"}


def render_text(diff: Mapping[str, Any]) -> str:
    lines: list[str] = []
    for kind in KINDS:
        counts = ", ".join(f"{len(diff[kind][c])} {c}" for c in CHANGES if diff[kind][c])
        lines.append(f"{kind}: {counts or 'no changes'}")
        for change in CHANGES:
            for item in diff[kind][change]:
                lines.append(f"  {_MARK[change]} {change:<13} {_line(change, item)}")
    return "\n".join(lines)


def render_markdown(diff: Mapping[str, Any]) -> str:
    lines = ["# Registry changes", ""]
    for kind in KINDS:
        lines.append(f"## {kind.capitalize()}")
        lines.append("")
        if not any(diff[kind][c] for c in CHANGES):
            lines += ["No changes.", ""]
            continue
        for change in CHANGES:
            items = diff[kind][change]
            if not items:
                continue
            lines.append(f"### {change.capitalize()} ({len(items)})")
            lines.append("")
            lines += [f"- {_md_line(change, item)}" for item in items]
            lines.append("")
    return "\n".join(lines).rstrip() + "\n"
