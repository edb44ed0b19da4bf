"""Weaver's live-check tests (`weaver_live_check/src/live_checker.rs`), run through our validator.

Each Weaver test builds a registry in Rust; `livecheck/<name>/registry.yaml` is that registry in
the v1 syntax. The samples are Weaver's (its `data/*.json` files, or the attribute strings of its
attribute test), and each expectation is one of Weaver's assertions: the finding ids of one sample,
or how many findings of one id a whole sample file gets (Weaver counts a metric's findings per
data point). Finding levels are not compared: where ours differ it is on purpose
(docs/findings.md, "Where we differ from Weaver on purpose").

`KNOWN_DIFFERENCES` names the expectations we still miss, each with its reason; the test fails when
one leaves that list or a new one joins it.
Run `python tests/conformance/test_weaver_livecheck_cases.py` for the per-expectation table.
"""

from __future__ import annotations

import json
import sys
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from knhk_otel.schema import load_and_resolve
from knhk_otel.validate.advice import AdvicePolicies, AdvisedValidator
from knhk_otel.validate.findings import Finding
from knhk_otel.validate.samples import (
    AttributeSample,
    EventSample,
    MetricSample,
    from_weaver_samples,
)
from knhk_otel.validate.validator import Validator

HERE = Path(__file__).resolve().parent


@dataclass(frozen=True)
class Expectation:
    name: str
    weaver: Any  # what Weaver's test asserts
    ours: Callable[[Path], Any]  # the same measure on our findings (Weaver's data folder in)


def _validator(registry: str) -> Validator:
    return _VALIDATORS.get(registry) or _VALIDATORS.setdefault(registry, _load(registry))


_VALIDATORS: dict[str, Validator] = {}


def _load(registry: str) -> Validator:
    resolved, diagnostics = load_and_resolve(HERE / "livecheck" / registry)
    errors = [d.render() for d in diagnostics if d.is_error]
    assert resolved is not None and not errors, errors
    return Validator(resolved)


def _typed(text: str) -> Any:
    """Weaver's `name=value` attribute samples: the value's type is inferred from its text."""
    for cast in (int, float):
        try:
            return cast(text)
        except ValueError:
            pass
    return {"true": True, "false": False}.get(text, text)


def _attribute_ids(sample: str) -> list[str]:
    name, eq, value = sample.partition("=")
    found = _validator("attributes").validate(AttributeSample(name, _typed(value) if eq else None, bool(eq)))
    return sorted(f.id for f in found)


#: Weaver's `run_attribute_live_checker_test`: each sample and the ids of its findings.
ATTRIBUTE_SAMPLES: list[tuple[str, list[str]]] = [
    ("test.string=value", []),
    ("testString2", ["invalid_format", "missing_attribute", "missing_namespace"]),
    ("test.deprecated=42", ["deprecated", "not_stable", "type_mismatch"]),
    ("aws.s3.bucket.name", ["missing_attribute"]),
    ("test.enum=foo", ["undefined_enum_variant"]),
    ("test.enum=example_variant1", []),
    ("test.enum=42.42", ["type_mismatch"]),
    (
        "test.string.not.allowed=example_value",
        ["extends_namespace", "illegal_namespace", "missing_attribute"],
    ),
    ("test.extends=new_value", ["extends_namespace", "missing_attribute"]),
    ("test.template.my.key=42", ["template_attribute", "type_mismatch"]),
    ("test.deprecated.allowed=42", ["extends_namespace", "missing_attribute"]),
    ("test.enum=17", ["undefined_enum_variant"]),
]


def _file_counts(registry: str, data: str, ids: tuple[str, ...]) -> Callable[[Path], dict[str, int]]:
    """How many findings of each id a sample file gets, a metric's counted per data point."""

    def count(weaver_data: Path) -> dict[str, int]:
        validator = _validator(registry)
        batch = from_weaver_samples(json.loads((weaver_data / data).read_text(encoding="utf-8")))
        counts: Counter[str] = Counter()
        for sample in [*batch.resources, *batch.samples]:
            found: list[Finding]
            if isinstance(sample, MetricSample):
                metric, points = validator.validate_metric_points(sample)
                found = [*metric, *(f for point in points for f in point)]
            else:
                found = validator.validate(sample)
            counts.update(f.id for f in found)
        return {i: counts[i] for i in ids}

    return count


#: Findings of ours Weaver's v1 live-check has no counterpart for: it does not match spans (nor
#: their events) to definitions, nor judge which attributes a signal declares.
OURS_ONLY = frozenset({"missing_span", "span_kind_mismatch", "unexpected_attribute"})


def _total_without_span_matching(registry: str, data: str) -> Callable[[Path], int]:
    def total(weaver_data: Path) -> int:
        validator = _validator(registry)
        batch = from_weaver_samples(json.loads((weaver_data / data).read_text(encoding="utf-8")))
        count = 0
        for sample in [*batch.resources, *batch.samples]:
            for f in validator.validate(sample):
                span_event = f.id == "missing_event" and f.signal_type == "span"
                count += not (f.id in OURS_ONLY or span_event)
        return count

    return total


def _advised_attribute_ids(sample: str) -> Callable[[Path], list[str]]:
    """Weaver's `run_custom_rego_test`: its custom advice policies (in place of the default advice)."""

    def ids(weaver_data: Path) -> list[str]:
        resolved, _ = load_and_resolve(HERE / "livecheck" / "custom")
        assert resolved is not None
        name, eq, value = sample.partition("=")
        attribute = AttributeSample(name, _typed(value) if eq else None, bool(eq))
        advice = AdvicePolicies([weaver_data / "policies" / "live_check_advice"], resolved)
        return sorted(f.id for f in AdvisedValidator(resolved, advice).validate(attribute))

    return ids


REQUIRED, RECOMMENDED, OPT_IN, CONDITIONAL, UNSATISFIED = (
    "entity_required_attribute_not_present",
    "entity_recommended_attribute_not_present",
    "entity_opt_in_attribute_not_present",
    "entity_conditionally_required_attribute_not_present",
    "entity_association_not_satisfied",
)


def _resource(*names: str) -> dict[str, str]:
    return {n: "x" for n in names}


def _signal_findings(registry: str, signal: str, name: str, resource: dict[str, str] | None) -> list[Any]:
    """All findings of one stable, attribute-less signal sample arriving with `resource`."""
    if signal == "metric":
        sample: EventSample | MetricSample = MetricSample(name, "gauge", "s", [{}], None, resource)
    else:
        sample = EventSample(name, {}, resource)
    return _validator(registry).validate(sample)


def _entity(
    registry: str, name: str, resource: dict[str, str] | None, *, signal: str = "event", keep: str = "entity_"
) -> Callable[[Path], list[tuple[str, str, str | None, tuple[str, ...]]]]:
    """(id, level, attribute, entity types) of the findings whose id starts with `keep`, sorted."""

    def measure(_data: Path) -> list[tuple[str, str, str | None, tuple[str, ...]]]:
        found = _signal_findings(registry, signal, name, resource)
        return sorted((f.id, f.level, f.attribute, f.entities) for f in found if f.id.startswith(keep))

    return measure


def _entity_ids(
    registry: str, name: str, resource: dict[str, str] | None, ids: frozenset[str], signal: str = "event"
) -> Callable[[Path], list[str]]:
    """Which of `ids` the sample's findings have (what a Weaver `any`/`all` assertion looks at)."""

    def measure(_data: Path) -> list[str]:
        found = _signal_findings(registry, signal, name, resource)
        return sorted({f.id for f in found} & ids)

    return measure


def _deployment_cases(registry: str) -> list[Expectation]:
    """`run_entity_validation_test`: its four cases, on the v1 or the v2 registry."""
    ctx = registry.removeprefix("entity_")
    all_four = [
        (CONDITIONAL, "information", "deployment.region", ("deployment",)),
        (OPT_IN, "information", "deployment.tier", ("deployment",)),
        (RECOMMENDED, "improvement", "deployment.environment", ("deployment",)),
        (REQUIRED, "violation", "deployment.name", ("deployment",)),
    ]
    event = "deployment.started"
    return [
        # Weaver asserts exactly four findings (its TypeAdvisor only): so all of ours are compared
        Expectation(f"{ctx}: empty resource", all_four, _entity(registry, event, {}, keep="")),
        Expectation(
            f"{ctx}: required present",
            [RECOMMENDED],
            _entity_ids(registry, event, _resource("deployment.name"), frozenset({REQUIRED, RECOMMENDED})),
        ),
        Expectation(
            f"{ctx}: all present",
            [],
            _entity(
                registry,
                event,
                _resource(
                    "deployment.name", "deployment.environment", "deployment.tier", "deployment.region"
                ),
            ),
        ),
        Expectation(f"{ctx}: no resource", all_four, _entity(registry, event, None, keep="")),
    ]


def _livecheck_sample_entities(data: Path) -> list[list[tuple[str, str | None, tuple[str, ...]]]]:
    """Weaver's `entity_associations.json` on its registry: each log's entity findings."""
    model = data / "model" / "entity_associations"
    resolved, diagnostics = load_and_resolve(model)
    assert resolved is not None and not [d for d in diagnostics if d.is_error]
    validator = Validator(resolved)
    batch = from_weaver_samples(json.loads((data / "entity_associations.json").read_text(encoding="utf-8")))
    return [
        sorted((f.id, f.attribute, f.entities) for f in validator.validate(s) if f.id.startswith("entity_"))
        for s in batch.samples
    ]


#: Weaver's `one_of`/`all_of` assertions: (label, what it expects, registry, event, resource keys).
ASSOCIATION_CASES: list[tuple[str, Any, str, str, tuple[str, ...]]] = [
    ("one_of satisfied by host", [], "entity_one_all", "one_of.evt", ("host.name",)),
    (
        "one_of unsatisfied: one aggregate",
        [(UNSATISFIED, "violation", None, ("host", "container"))],
        "entity_one_all",
        "one_of.evt",
        (),
    ),
    (
        "all_of with host only: container's attribute",
        [(REQUIRED, "violation", "container.id", ("container",))],
        "entity_one_all",
        "all_of.evt",
        ("host.name",),
    ),
    ("all_of satisfied", [], "entity_one_all", "all_of.evt", ("host.name", "container.id")),
    ("top-level all_of groups: the second satisfied", [], "entity_multi", "multi.evt", ("container.id",)),
    (
        "top-level all_of groups: the first satisfied",
        [],
        "entity_multi",
        "multi.evt",
        ("tenant.id", "host.name"),
    ),
    (
        "top-level all_of groups: neither, one aggregate naming all",
        [(UNSATISFIED, "violation", None, ("tenant", "host", "container"))],
        "entity_multi",
        "multi.evt",
        (),
    ),
    (
        "v2 entity of a dependency: missing",
        [(REQUIRED, "violation", "host.id", ("host",))],
        "entity_dependency_v2/plain",
        "thing.happened",
        (),
    ),
    ("v2 entity of a dependency: present", [], "entity_dependency_v2/plain", "thing.happened", ("host.id",)),
]


ENTITY_EXPECTATIONS: list[Expectation] = [
    *_deployment_cases("entity_deployment"),
    *_deployment_cases("entity_deployment_v2"),
    *(
        e
        for registry in ("entity_metric", "entity_metric_v2")
        for e in (
            Expectation(
                f"{registry.removeprefix('entity_')}: resource without host.name",
                [REQUIRED],
                _entity_ids(registry, "system.uptime", {}, frozenset({REQUIRED}), "metric"),
            ),
            Expectation(
                f"{registry.removeprefix('entity_')}: resource with host.name",
                [],
                _entity_ids(
                    registry, "system.uptime", _resource("host.name"), frozenset({REQUIRED}), "metric"
                ),
            ),
        )
    ),
    *(
        Expectation(label, expected, _entity(registry, event, _resource(*present) if present else {}))
        for label, expected, registry, event, present in ASSOCIATION_CASES
    ),
    Expectation(
        "v2 refinement of a dependency's entity",
        [REQUIRED],
        _entity_ids("entity_dependency_v2/top", "thing.happened", {}, frozenset({REQUIRED})),
    ),
    Expectation(
        "v2 local entity wins over the dependency's",
        ["host.name"],
        lambda _d: sorted(
            {str(f.attribute) for f in _signal_findings("entity_dependency_v2/top", "event", "local.evt", {})}
        ),
    ),
    Expectation(
        "v2 the dependency's signal keeps the dependency's entity",
        ["host.id"],
        lambda _d: sorted(
            {
                str(f.attribute)
                for f in _signal_findings("entity_dependency_v2/top", "event", "dependency.evt", {})
            }
        ),
    ),
    Expectation(
        "entity_associations.json (what its registry's comments state)",
        [
            [(UNSATISFIED, None, ("host", "container")), (REQUIRED, "tenant.id", ("tenant",))],
            [(REQUIRED, "tenant.id", ("tenant",))],
            [(RECOMMENDED, "container.name", ("container",))],
        ],
        _livecheck_sample_entities,
    ),
]

EXPECTATIONS: list[Expectation] = [
    Expectation("custom rego: custom.string=hello", [], _advised_attribute_ids("custom.string=hello")),
    Expectation(
        "custom rego: test.string",
        ["contains_test", "missing_attribute"],
        _advised_attribute_ids("test.string"),
    ),
    Expectation("span.json: total findings", 14, _total_without_span_matching("attributes", "span.json")),
    *(
        Expectation(f"attribute {sample}", expected, lambda _d, s=sample: _attribute_ids(s))
        for sample, expected in ATTRIBUTE_SAMPLES
    ),
    Expectation(
        "metrics.json: finding counts",
        {
            "recommended_attribute_not_present": 2,
            "missing_attribute": 2,
            "not_stable": 2,
            "missing_metric": 3,
            "missing_namespace": 2,
        },
        _file_counts(
            "metrics",
            "metrics.json",
            (
                "recommended_attribute_not_present",
                "missing_attribute",
                "not_stable",
                "missing_metric",
                "missing_namespace",
            ),
        ),
    ),
    Expectation(
        "logs.json: finding counts",
        {
            "missing_attribute": 1,
            "required_attribute_not_present": 1,
            "not_stable": 4,
            "deprecated": 1,
            "missing_event": 1,
        },
        _file_counts(
            "events",
            "logs.json",
            (
                "missing_attribute",
                "required_attribute_not_present",
                "not_stable",
                "deprecated",
                "missing_event",
            ),
        ),
    ),
    *ENTITY_EXPECTATIONS,
]

#: expectation → why we still differ from Weaver there.
KNOWN_DIFFERENCES: dict[str, str] = {
    "logs.json: finding counts": "a log record without `event_name` is a plain log: we count it "
    "(`log_records_without_event`), Weaver judges its attributes (one more not_stable)",
}


def run(weaver_data: Path) -> dict[str, tuple[bool, Any, Any]]:
    out = {}
    for e in EXPECTATIONS:
        ours = e.ours(weaver_data)
        out[e.name] = (ours == e.weaver, ours, e.weaver)
    return out


def test_weaver_livecheck_expectations(weaver_tests: Path) -> None:
    results = run(weaver_tests / "crates" / "weaver_live_check" / "data")
    differing = {name for name, (ok, _, _) in results.items() if not ok}
    print(f"Weaver live-check expectations: {len(results) - len(differing)}/{len(results)} met")
    unexpected = {n: results[n][1:] for n in sorted(differing - set(KNOWN_DIFFERENCES))}
    fixed = sorted(set(KNOWN_DIFFERENCES) - differing)
    assert not unexpected, f"expectations we now miss (ours, Weaver's): {unexpected}"
    assert not fixed, f"expectations now met (drop them from KNOWN_DIFFERENCES): {fixed}"


def test_attribute_samples_without_reference_data() -> None:
    """The attribute expectations need no reference file: they run on every clone."""
    for sample, expected in ATTRIBUTE_SAMPLES:
        if f"attribute {sample}" not in KNOWN_DIFFERENCES:
            assert _attribute_ids(sample) == expected, sample


if __name__ == "__main__":
    sys.path.insert(0, str(HERE))
    from conftest import weaver_tests_dir

    data = weaver_tests_dir() / "crates" / "weaver_live_check" / "data"
    results = run(data)
    for name, (ok, ours, weaver) in results.items():
        print(f"{'PASS' if ok else 'DIFF'} {name}" + ("" if ok else f": ours {ours}, Weaver {weaver}"))
    print(f"{sum(ok for ok, _, _ in results.values())}/{len(results)} met")
