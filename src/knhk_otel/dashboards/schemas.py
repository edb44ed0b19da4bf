"""Validate dashboards against Grafana's own JSON Schemas (`dashboard.jsonschema.json` and one per panel
plugin), the way Grafana reads them: the dashboard as a whole, then each panel's `options` and
`fieldConfig.defaults.custom` by its plugin's schema and each Prometheus target by the query schema.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping
from functools import cache
from pathlib import Path
from typing import Any

import jsonschema


@cache
def _load(path: Path) -> dict[str, Any]:
    loaded: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
    return loaded


def _validator(schema_dir: Path, name: str, definition: str | None) -> jsonschema.Draft7Validator | None:
    path = schema_dir / f"{name}.jsonschema.json"
    if not path.is_file():
        return None
    doc = _load(path)
    if definition is not None:
        if definition not in doc.get("definitions", {}):
            return None
        doc = {**doc, "$ref": f"#/definitions/{definition}"}
    return jsonschema.Draft7Validator(doc)


def _errors(validator: jsonschema.Draft7Validator, instance: Any, where: str) -> Iterator[str]:
    for err in sorted(validator.iter_errors(instance), key=lambda e: list(map(str, e.absolute_path))):
        path = "/".join(str(p) for p in err.absolute_path)
        yield f"{where}{'/' + path if path else ''}: {err.message}"


def validate_dashboard(dashboard: Mapping[str, Any], schema_dir: Path) -> list[str]:
    """One line per schema error (an empty list when Grafana's schemas accept the dashboard)."""
    root = _validator(schema_dir, "dashboard", None)
    if root is None:
        raise FileNotFoundError(f"{schema_dir}/dashboard.jsonschema.json: no such file")
    out = list(_errors(root, dashboard, "dashboard"))
    query = _validator(schema_dir, "prometheus", None)
    panels = list(dashboard.get("panels", []) or [])
    for panel in list(panels):
        panels.extend(panel.get("panels", []) or [])
    for panel in panels:
        kind = str(panel.get("type"))
        where = f"panel {panel.get('id')} ({kind})"
        if kind == "row":
            continue
        options = _validator(schema_dir, kind, "Options")
        if options is None:
            out.append(f"{where}: Grafana publishes no schema for panel type {kind!r} in {schema_dir}")
            continue
        out.extend(_errors(options, panel.get("options", {}), f"{where}/options"))
        custom = _validator(schema_dir, kind, "FieldConfig")
        defaults = (panel.get("fieldConfig") or {}).get("defaults") or {}
        if custom is not None and "custom" in defaults:
            out.extend(_errors(custom, defaults["custom"], f"{where}/fieldConfig/defaults/custom"))
        for target in panel.get("targets", []) or []:
            if query is not None and (target.get("datasource") or {}).get("type") == "prometheus":
                out.extend(_errors(query, target, f"{where}/targets/{target.get('refId')}"))
    return out
