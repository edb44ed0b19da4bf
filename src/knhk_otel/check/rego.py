"""Rego policies as Weaver runs them: the one module that talks to a Rego engine.

Weaver evaluates `.rego` files with regorus; so do we, through its Python bindings (the optional
`rego` extra: `gordon-to-regorus`, imported as `regorus`). Swapping the binding means changing only
this module. Everything here returns diagnostics, never raises: a missing binding, a Rego syntax
error, an evaluation error or a finding that is not an object each becomes one diagnostic naming
the policy file and, where known, its line.

Stages and their documents (Weaver's):

- `before_resolution`: `input` is each definition file as written (one evaluation per file);
- `after_resolution`: `input` is the resolved registry;
- `comparison_after_resolution`: `input` is the resolved registry, `data` the baseline's;
- `live_check_advice`: `input` is `{"sample": ...}` per sample (see `advise`).

The resolved registry document carries both of Weaver's views, so policies written for either run
unchanged: `groups` (the v1 resolved registry, attributes inline) and `registry` + `refinements`
(the v2 view: `attributes` with `key`, `spans` with `type`, `metrics`/`events` with `name`,
`entities` with `type`).
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from knhk_otel.schema.diagnostics import Diagnostic, Severity
from knhk_otel.schema.model import Attribute, Group, ResolvedRegistry, Source

STAGES = ("before_resolution", "after_resolution", "comparison_after_resolution")
_SEVERITY: dict[str, Severity] = {"violation": "error", "improvement": "warning", "information": "info"}
_LOCATION = re.compile(r"-->\s*(?P<file>.+?):(?P<line>\d+):(?P<col>\d+)")
_MESSAGE = re.compile(r"^error:\s*(?P<msg>.+)$", re.MULTILINE)


def available() -> bool:
    try:
        import regorus  # noqa: F401
    except ImportError:
        return False
    return True


def is_rego(path: str | Path) -> bool:
    """A `.rego` file, or a folder (of Rego policies: Python policies are single files)."""
    p = Path(path)
    return p.suffix == ".rego" or p.is_dir()


@dataclass
class RegoPolicies:
    """Compiled policy files and the packages (stages) they define."""

    engine: Any
    files: list[str]
    packages: set[str]
    deny_lines: dict[str, int]  # package → first file:line defining `deny` (for finding errors)
    deny_files: dict[str, str]


def _error_source(text: str, fallback: str) -> tuple[Source, str]:
    loc = _LOCATION.search(text)
    msg = _MESSAGE.search(text)
    message = msg["msg"].strip() if msg else text.strip().splitlines()[0] if text.strip() else "error"
    if loc:
        return Source(loc["file"], int(loc["line"]), int(loc["col"])), message
    return Source(fallback, 0, 0), message


def policy_files(paths: Sequence[str]) -> tuple[list[Path], list[Diagnostic]]:
    """The `.rego` files of each path (a folder: its `*.rego`, tests `*_test.rego` left out)."""
    out: list[Path] = []
    diagnostics: list[Diagnostic] = []
    for raw in paths:
        path = Path(raw)
        if path.is_dir():
            found = sorted(p for p in path.glob("*.rego") if not p.name.endswith("_test.rego"))
            if not found:
                diagnostics.append(
                    Diagnostic("policy_file_invalid", "policy folder holds no .rego file", Source(raw, 0, 0))
                )
            out.extend(found)
        elif path.is_file():
            out.append(path)
        else:
            missing = Diagnostic("policy_file_invalid", "policy file does not exist", Source(raw, 0, 0))
            diagnostics.append(missing)
    return out, diagnostics


def load(paths: Sequence[str | Path]) -> tuple[RegoPolicies | None, list[Diagnostic]]:
    """Compile the policy files into one engine; each file that does not compile is a diagnostic."""
    try:
        import regorus
    except ImportError:
        where = Source(str(paths[0]), 0, 0) if paths else None
        return None, [
            Diagnostic(
                "rego_unavailable",
                "Rego policies need the regorus bindings: pip install 'knhk-otel[rego]'",
                where,
            )
        ]
    engine = regorus.Engine()
    diagnostics: list[Diagnostic] = []
    files: list[str] = []
    packages: set[str] = set()
    deny_lines: dict[str, int] = {}
    deny_files: dict[str, str] = {}
    for path in paths:
        shown = str(path)
        try:
            text = Path(path).read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            diagnostics.append(Diagnostic("policy_file_invalid", f"cannot read: {exc}", Source(shown, 0, 0)))
            continue
        try:
            package = engine.add_policy(shown, text)
        except RuntimeError as exc:
            src, message = _error_source(str(exc), shown)
            diagnostics.append(Diagnostic("policy_file_invalid", f"Rego: {message}", src))
            continue
        files.append(shown)
        name = str(package).removeprefix("data.")
        packages.add(name)
        for i, line in enumerate(text.splitlines(), 1):
            if line.startswith("deny") and name not in deny_lines:
                deny_lines[name] = i
                deny_files[name] = shown
    return RegoPolicies(engine, files, packages, deny_lines, deny_files), diagnostics


def evaluate(
    policies: RegoPolicies, stage: str, input_doc: Any, data: Any | None
) -> tuple[list[Any], list[Diagnostic]]:
    """The values of `data.<stage>.deny` for one input (and `data`), or the evaluation error."""
    engine = policies.engine
    where = Source(policies.deny_files.get(stage, policies.files[0]), policies.deny_lines.get(stage, 0), 1)
    try:
        engine.clear_data()
        if data is not None:
            engine.add_data_json(json.dumps(data))
        engine.set_input_json(json.dumps(input_doc))
        result = json.loads(engine.eval_query_as_json(f"data.{stage}.deny"))
    except RuntimeError as exc:
        src, message = _error_source(str(exc), where.path)
        return [], [Diagnostic("policy_failed", f"Rego evaluation of `{stage}` failed: {message}", src)]
    values: list[Any] = []
    for row in result.get("result", []):
        for expr in row.get("expressions", []):
            value = expr.get("value")
            if isinstance(value, list):
                values.extend(value)
            elif value is not None:
                values.append(value)
    return values, []


def _is_finding(value: Any) -> bool:
    """Weaver's finding (`id`, `level`, `message`, ...) or its legacy violation (`id`, `type`, ...)."""
    if not isinstance(value, dict) or not isinstance(value.get("id"), str):
        return False
    return isinstance(value.get("type"), str) or (
        isinstance(value.get("level"), str) and isinstance(value.get("message"), str)
    )


def finding_diagnostic(finding: Any, stage: str, policies: RegoPolicies, locate: Any = None) -> Diagnostic:
    """One finding of a `deny` rule as a diagnostic (violation → error, improvement → warning)."""
    where = Source(policies.deny_files.get(stage, ""), policies.deny_lines.get(stage, 0), 1)
    if not _is_finding(finding):
        shown = json.dumps(finding, sort_keys=True)[:120]
        return Diagnostic(
            "policy_failed",
            f"`{stage}` policy returned {shown}, not a finding: an object with a string `id` and "
            "either `level` and `message` or Weaver's legacy violation `type`",
            where,
        )
    level = finding.get("level", "violation")
    severity = _SEVERITY.get(level, "error") if isinstance(level, str) else "error"
    message = finding.get("message")
    if not isinstance(message, str) or not message:
        keys = ("group", "attr", "signal_type", "signal_name")
        parts = [f"{k} `{finding[k]}`" for k in keys if k in finding]
        message = f"{finding['id']}: " + (", ".join(parts) or json.dumps(finding, sort_keys=True))
    found = locate(finding) if locate is not None else None
    return Diagnostic(finding["id"], message, found or where, severity)


def check_before_resolution(policies: RegoPolicies, docs: Iterable[Any]) -> list[Diagnostic]:
    """`before_resolution` over each file as written; findings point at the file."""
    if "before_resolution" not in policies.packages:
        return []
    out: list[Diagnostic] = []
    for doc in docs:
        if doc.data is None:
            continue
        values, errors = evaluate(policies, "before_resolution", doc.data, None)
        out.extend(errors)

        def locate(finding: Any, doc: Any = doc) -> Source | None:
            return _locate_raw(doc, finding)

        out.extend(finding_diagnostic(v, "before_resolution", policies, locate) for v in values)
        if errors:
            break
    return out


def check_after_resolution(
    policies: RegoPolicies, registry: ResolvedRegistry, baseline: ResolvedRegistry | None
) -> list[Diagnostic]:
    out: list[Diagnostic] = []
    document = registry_document(registry)
    stages: list[tuple[str, dict[str, Any] | None]] = [("after_resolution", None)]
    if baseline is not None:
        stages.append(("comparison_after_resolution", registry_document(baseline)))
    for stage, data in stages:
        if stage not in policies.packages:
            continue
        values, errors = evaluate(policies, stage, document, data)
        out.extend(errors)
        out.extend(finding_diagnostic(v, stage, policies, _registry_locator(registry)) for v in values)
    return out


def _locate_raw(doc: Any, finding: Any) -> Source | None:
    group_id = finding.get("group") if isinstance(finding, dict) else None
    data = doc.data
    if isinstance(group_id, str) and isinstance(data, dict) and isinstance(data.get("groups"), list):
        for i, group in enumerate(data["groups"]):
            if isinstance(group, dict) and group.get("id") == group_id:
                src: Source = doc.source(("groups", i, "id"))
                return src
    return doc.source(())  # type: ignore[no-any-return]


def _registry_locator(registry: ResolvedRegistry) -> Any:
    by_name: dict[str, Source] = {}
    for g in registry.groups:
        if g.source is not None:
            by_name.setdefault(g.id, g.source)
            by_name.setdefault(g.signal_name, g.source)
        for a in g.attributes:
            if a.source is not None and g.type == "attribute_group":
                by_name.setdefault(a.name, a.source)

    def locate(finding: dict[str, Any]) -> Source | None:
        raw_context = finding.get("context")
        context: dict[str, Any] = raw_context if isinstance(raw_context, dict) else {}
        for key in (
            finding.get("signal_name"),
            finding.get("group"),
            finding.get("attr"),
            context.get("attribute_key"),
            context.get("group_id"),
        ):
            if isinstance(key, str) and key in by_name:
                return by_name[key]
        return None

    return locate


# --- the documents ----------------------------------------------------------------------------


def _v2_attribute(a: Attribute) -> dict[str, Any]:
    out = a.to_dict()
    out["key"] = out.pop("name")
    return out


def _v2_signal(g: Group, name_key: str, name: str) -> dict[str, Any]:
    out: dict[str, Any] = {name_key: name}
    if g.brief:
        out["brief"] = g.brief
    if g.note:
        out["note"] = g.note
    if g.stability is not None:
        out["stability"] = g.stability
    if g.deprecated is not None:
        out["deprecated"] = g.deprecated.to_dict()
    if g.annotations:
        out["annotations"] = dict(g.annotations)
    out["attributes"] = [_v2_attribute(a) for a in g.attributes]
    if g.span_kind is not None:
        out["kind"] = g.span_kind
    if g.instrument is not None:
        out["instrument"] = g.instrument
    if g.unit is not None:
        out["unit"] = g.unit
    return out


def registry_document(registry: ResolvedRegistry) -> dict[str, Any]:
    """The resolved registry as Rego sees it: Weaver's v1 `groups` and its v2 `registry` view."""
    attributes: dict[str, dict[str, Any]] = {}
    v2: dict[str, list[dict[str, Any]]] = {
        "attributes": [],
        "attribute_groups": [],
        "spans": [],
        "metrics": [],
        "events": [],
        "entities": [],
    }
    refinements: dict[str, list[dict[str, Any]]] = {"spans": [], "metrics": [], "events": []}
    for g in registry.groups:
        if g.type == "attribute_group":
            for a in g.attributes:
                attributes.setdefault(a.name, _v2_attribute(a))
            if not g.id.startswith("registry."):
                v2["attribute_groups"].append({"id": g.id, **_v2_signal(g, "id", g.id)})
        elif g.type in ("span", "metric", "event", "entity"):
            name_key = "type" if g.type in ("span", "entity") else "name"
            signal = _v2_signal(g, name_key, g.signal_name)
            plural = {"span": "spans", "metric": "metrics", "event": "events", "entity": "entities"}[g.type]
            parent = registry.group(g.extends) if g.extends is not None else None
            if plural in refinements and parent is not None and parent.type == g.type:
                refinements[plural].append({"id": g.id, **signal})
            else:
                v2[plural].append(signal)
    v2["attributes"] = list(attributes.values())
    return {**registry.to_dict(), "registry": v2, "refinements": refinements}


def run_tests(paths: Sequence[str | Path]) -> dict[str, bool]:
    """Evaluate every `test_*` rule of the given files (policies plus their `_test.rego` files)."""
    policies, diagnostics = load(paths)
    if policies is None or diagnostics:
        raise ValueError("; ".join(d.render() for d in diagnostics))
    out: dict[str, bool] = {}
    for path in policies.files:
        text = Path(path).read_text(encoding="utf-8")
        package = next((m[1] for m in re.finditer(r"^package\s+([\w.]+)", text, re.MULTILINE)), None)
        for m in re.finditer(r"^(test_\w+)\s", text, re.MULTILINE):
            result = json.loads(policies.engine.eval_query_as_json(f"data.{package}.{m[1]}"))
            values = [e.get("value") for r in result.get("result", []) for e in r.get("expressions", [])]
            out[m[1]] = values == [True]
    return out
