"""Weaver's own resolver cases, resolved by us and compared with what Weaver's tests expect.

Each folder of `weaver-tests/crates/weaver_resolver/data/` with a `registry/` is one case: either
`expected-registry.json` (+ `expected-attribute-catalog.json`: the groups Weaver resolves),
`expected-schema.yaml` (Weaver's v2 resolved output) or `expected-errors.json` (Weaver refuses the
registry). A registry case passes when we resolve it without an error and every group matches
Weaver's on what telemetry depends on: id, type, signal fields (span kind, metric name,
instrument, unit, event name, entity associations) and, per attribute, its name, type (enum
members by value), requirement level, stability and deprecation reason. A v2 expectation is
compared signal by signal (spans, metrics, events, entities) and per attribute group it lists.
Briefs, notes, examples and lineage are not compared (whitespace folding and provenance paths
differ by design). An error case passes when we report an error with the id that corresponds to
Weaver's error.

`KNOWN_DIFFERENCES` lists the cases that still differ, each with its reason; the test fails when a
case leaves that list (update it) or a new one joins it (a regression).
Run `python tests/conformance/test_weaver_resolver_cases.py` for the per-case table.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from knhk_otel.check.runner import run_checks
from knhk_otel.schema.model import Attribute, EnumType, Group

#: Weaver's error kind → the diagnostic id we report for it.
ERROR_IDS: dict[str, str] = {
    "DuplicateAttributeId": "duplicate_attribute_id",
    "DuplicateGroupId": "duplicate_group_id",
    "DuplicateMetricName": "duplicate_metric_name",
    "EntityRefinementChangedIdentity": "entity_identity_changed",
}

#: case → why we still differ from Weaver there.
KNOWN_DIFFERENCES: dict[str, str] = {
    "registry-test-published-1": "Weaver gives the span's bare `ref: a` the requirement level "
    "`required`, which a metric of the published dependency sets for `a` (the published catalog "
    "entry itself has none); the ref sets none, so ours is the default, recommended",
}

_STABILITY = {"experimental": "development"}


def case_dir(weaver_tests: Path) -> Path:
    return weaver_tests / "crates" / "weaver_resolver" / "data"


def cases(weaver_tests: Path) -> list[Path]:
    return sorted(p for p in case_dir(weaver_tests).iterdir() if (p / "registry").is_dir())


def _level(raw: Any) -> str:
    if isinstance(raw, dict):
        return next(iter(raw))
    return str(raw or "recommended")


def _type(raw: Any) -> str:
    if isinstance(raw, dict) and "members" in raw:
        return "enum:" + ",".join(sorted(str(m["value"]) for m in raw["members"]))
    return str(raw)


def _weaver_attribute(raw: dict[str, Any]) -> tuple[str, ...]:
    deprecated = raw.get("deprecated")
    reason = deprecated.get("reason") if isinstance(deprecated, dict) else None
    stability = raw.get("stability")
    return (
        raw["name"],
        _type(raw["type"]),
        _level(raw.get("requirement_level")),
        _STABILITY.get(stability, stability) if stability else "",
        "uncategorized" if reason == "unspecified" else (reason or ""),
    )


def _our_attribute(attr: Attribute) -> tuple[str, ...]:
    if isinstance(attr.type, EnumType):
        kind = "enum:" + ",".join(sorted(str(m.value) for m in attr.type.members))
    else:
        kind = attr.type
    stability = attr.stability or ""
    return (
        attr.name,
        kind,
        attr.requirement_level,
        _STABILITY.get(stability, stability),
        attr.deprecated.reason if attr.deprecated else "",
    )


def _signal(raw: dict[str, Any]) -> tuple[str, ...]:
    kind = raw.get("type", "")
    return (
        raw["id"],
        "entity" if kind == "resource" else kind,
        raw.get("span_kind") or "",
        raw.get("metric_name") or "",
        raw.get("instrument") or "",
        raw.get("unit") or "",
        (raw.get("name") or "") if kind in ("event", "entity", "resource") else "",
        json.dumps(raw.get("entity_associations") or [], sort_keys=True),
    )


def _our_signal(group: Group) -> tuple[str, ...]:
    return _signal(
        {
            "id": group.id,
            "type": group.type,
            "span_kind": group.span_kind,
            "metric_name": group.metric_name,
            "instrument": group.instrument,
            "unit": group.unit,
            "name": group.name,
            "entity_associations": [a.to_dict() for a in group.entity_associations],
        }
    )


def expected_groups(case: Path) -> dict[str, tuple[tuple[str, ...], list[tuple[str, ...]]]]:
    registry = json.loads((case / "expected-registry.json").read_text(encoding="utf-8"))
    catalog = json.loads((case / "expected-attribute-catalog.json").read_text(encoding="utf-8"))
    # Weaver names a v2 file's attribute group after the path it was given (`data/<case>/registry/
    # http.yaml` in its test run); we name it after the file's path inside the registry.
    file_group = f"registry.data.{case.name}.registry."
    out = {}
    for group in registry["groups"]:
        attrs = sorted(_weaver_attribute(catalog[i]) for i in group.get("attributes", []))
        gid = group["id"]
        if gid.startswith(file_group):
            gid = "registry." + gid.removeprefix(file_group)
            group = {**group, "id": gid}
        out[gid] = (_signal(group), attrs)
    return out


def _v2_attribute(catalog: list[dict[str, Any]], ref: dict[str, Any]) -> tuple[str, ...]:
    base = catalog[ref["base"]]
    return _weaver_attribute({**base, "name": base["key"], **{k: v for k, v in ref.items() if k != "base"}})


#: v2 list → (our group type, field naming the signal)
_V2_SIGNALS = {
    "spans": ("span", "type"),
    "metrics": ("metric", "name"),
    "events": ("event", "name"),
    "entities": ("entity", "type"),
}


def expected_v2(case: Path) -> dict[tuple[str, str], list[tuple[str, ...]]]:
    """Weaver's v2 resolved output (`expected-schema.yaml`): each signal (by type and name) and each
    attribute group (by id) with its attributes. The v2 form lists the attribute groups a registry
    publishes, not those of its dependencies; those are compared through the signals using them."""
    doc = yaml.safe_load((case / "expected-schema.yaml").read_text(encoding="utf-8"))
    catalog, registry = doc["attribute_catalog"], doc["registry"]
    out: dict[tuple[str, str], list[tuple[str, ...]]] = {}
    for key, (kind, name_key) in _V2_SIGNALS.items():
        for signal in registry.get(key) or []:
            refs = [
                *signal.get("attributes", []),
                *signal.get("identity", []),
                *signal.get("description", []),
            ]
            out[(kind, signal[name_key])] = sorted(_v2_attribute(catalog, r) for r in refs)
    for group in registry.get("attribute_groups") or []:
        out[("attribute_group", group["id"])] = sorted(_v2_attribute(catalog, r) for r in group["attributes"])
    return out


def _compare_v2(case: Path, registry: Any) -> list[str]:
    expected = expected_v2(case)
    ours = {
        (g.type, g.id if g.type == "attribute_group" else g.signal_name): sorted(
            _our_attribute(a) for a in g.attributes
        )
        for g in registry.groups
    }
    problems = [f"{kind} {name} missing" for kind, name in sorted(set(expected) - set(ours))]
    problems += [
        f"extra {kind} {name}"
        for kind, name in sorted(set(ours) - set(expected))
        if kind != "attribute_group"
    ]
    for key in sorted(set(expected) & set(ours)):
        if expected[key] != ours[key]:
            problems.append(f"{key[0]} {key[1]}: attributes {ours[key]} != Weaver's {expected[key]}")
    return problems


def _refinement_name(gid: str, weaver: tuple[str, ...], ours: tuple[str, ...], group: Group | None) -> bool:
    """Deliberate: a refined event or entity keeps the name its telemetry carries (the refined
    signal's); Weaver's v1 view names it after the refinement's id."""
    return (
        group is not None
        and group.extends is not None
        and weaver[:6] + weaver[7:] == ours[:6] + ours[7:]  # all but the name (6th field)
        and weaver[6] == gid
        and ours[6] == group.extends.split(".", 1)[-1]
    )


def run_case(case: Path) -> tuple[bool, str]:
    """(passed, what differs) for one case."""
    cwd = Path.cwd()
    os.chdir(case.parent.parent)  # as Weaver's tests run: manifests name paths from there
    try:
        report = run_checks(Path("data") / case.name / "registry")
    finally:
        os.chdir(cwd)
    registry = report.registry
    errors = [d for d in report.diagnostics if d.is_error]
    if (case / "expected-schema.yaml").is_file() and not (case / "expected-registry.json").is_file():
        if errors:
            return False, f"we refuse it: {errors[0].render()}"
        problems = _compare_v2(case, registry)
        return not problems, "; ".join(problems)
    if not (case / "expected-registry.json").is_file() and not (case / "expected-errors.json").is_file():
        return False, "no expectation to compare with"
    if (case / "expected-errors.json").is_file():
        expected = json.loads((case / "expected-errors.json").read_text(encoding="utf-8"))
        items = expected.get("CompoundError", [expected])
        wanted = {ERROR_IDS.get(next(iter(item)), next(iter(item))) for item in items}
        got = {d.id for d in errors}
        missing = wanted - got
        if missing:
            ours = sorted(got) or "no error"
            return False, f"Weaver refuses it ({', '.join(sorted(wanted))}); we report {ours}"
        return True, ""
    if errors:
        return False, f"we refuse it: {errors[0].render()}"
    assert registry is not None
    expected = expected_groups(case)
    ours = {g.id: (_our_signal(g), sorted(_our_attribute(a) for a in g.attributes)) for g in registry.groups}
    problems: list[str] = []
    for gid in sorted(set(expected) - set(ours)):
        problems.append(f"group {gid} missing")
    for gid in sorted(set(ours) - set(expected)):
        problems.append(f"extra group {gid}")
    for gid in sorted(set(expected) & set(ours)):
        exp_sig, exp_attrs = expected[gid]
        our_sig, our_attrs = ours[gid]
        if exp_sig != our_sig and not _refinement_name(gid, exp_sig, our_sig, registry.group(gid)):
            problems.append(f"{gid}: {our_sig} != Weaver's {exp_sig}")
        if exp_attrs != our_attrs:
            diff_ours = sorted(set(our_attrs) - set(exp_attrs))
            diff_exp = sorted(set(exp_attrs) - set(our_attrs))
            problems.append(f"{gid}: attributes {diff_ours} != Weaver's {diff_exp}")
    return not problems, "; ".join(problems)


def test_weaver_resolver_cases(weaver_tests: Path) -> None:
    results = {case.name: run_case(case) for case in cases(weaver_tests)}
    assert len(results) >= 30, "Weaver's resolver cases are missing from the reference data"
    differing = {name for name, (ok, _) in results.items() if not ok}
    passed = len(results) - len(differing)
    print(f"Weaver resolver cases: {passed}/{len(results)} pass")
    unexpected = {name: results[name][1] for name in sorted(differing - set(KNOWN_DIFFERENCES))}
    fixed = sorted(set(KNOWN_DIFFERENCES) - differing)
    assert not unexpected, f"cases that differ from Weaver: {unexpected}"
    assert not fixed, f"cases that now agree with Weaver (drop them from KNOWN_DIFFERENCES): {fixed}"


if __name__ == "__main__":
    sys.path.insert(0, str(Path(__file__).parent))
    from conftest import weaver_tests_dir

    root = weaver_tests_dir()
    if not root.is_dir():
        pytest.skip(f"no Weaver test data at {root}")
    total = ok_count = 0
    for case in cases(root):
        ok, why = run_case(case)
        total += 1
        ok_count += ok
        print(f"{'PASS' if ok else 'DIFF'} {case.name}{'' if ok else ': ' + why[:400]}")
    print(f"{ok_count}/{total} pass")
