"""`live-check --advice-policies DIR`: Weaver's `live_check_advice` Rego policies on every sample.

Weaver gives each policy one document per sample — `{"sample": {"span": ...}}`, and one per
attribute, span event and metric it holds (`{"sample": {"attribute": {name, value, type}}}`), with
the registry's matching definition as `registry_group` (the signal's) or `registry_attribute` —
and turns what `deny` holds into findings. We do the same, so Weaver users' advice policies run
unchanged; their findings join ours on the sample. The Rego engine lives in `check.rego`.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from knhk_otel.check import rego
from knhk_otel.schema.model import ResolvedRegistry, Source
from knhk_otel.validate.findings import LEVEL_RANK, Finding
from knhk_otel.validate.index import RegistryIndex
from knhk_otel.validate.samples import (
    AttributeSample,
    EventSample,
    MetricSample,
    ResourceSample,
    Sample,
    SpanSample,
)
from knhk_otel.validate.validator import Validator

STAGE = "live_check_advice"


class AdvicePolicyError(Exception):
    """A policy folder that cannot be used: one line naming the file and line."""


def _type_name(value: Any) -> str:
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int):
        return "int"
    if isinstance(value, float):
        return "double"
    if isinstance(value, (tuple, list)):
        inner = {_type_name(v) for v in value}
        return f"{inner.pop()}[]" if len(inner) == 1 else "any"
    return "string"


def _json_value(value: Any) -> Any:
    if isinstance(value, tuple):
        return [_json_value(v) for v in value]
    if isinstance(value, bytes):
        return value.hex()
    if isinstance(value, dict):
        return {k: _json_value(v) for k, v in value.items()}
    return value


def _attributes(attrs: Mapping[str, Any]) -> list[dict[str, Any]]:
    return [{"name": k, "value": _json_value(v), "type": _type_name(v)} for k, v in attrs.items()]


class AdvicePolicies:
    """Compiled `live_check_advice` policies and the registry documents they may read."""

    def __init__(self, paths: Sequence[str | Path], registry: ResolvedRegistry | RegistryIndex) -> None:
        files, problems = rego.policy_files([str(p) for p in paths])
        policies = None
        if files:
            policies, errors = rego.load(files)
            problems.extend(errors)
        if problems or policies is None:
            raise AdvicePolicyError(problems[0].render() if problems else "no advice policy loaded")
        if STAGE not in policies.packages:
            raise AdvicePolicyError(f"{paths[0]}: no `package {STAGE}` policy found")
        self.policies = policies
        index = registry if isinstance(registry, RegistryIndex) else RegistryIndex(registry)
        self.index = index
        self._attributes = {a.name: a.to_dict() for a in index.registry.registry_attributes().values()}

    def _group(self, sample: Sample) -> dict[str, Any] | None:
        table = {"span": self.index.spans, "metric": self.index.metrics, "event": self.index.events}
        rules = table.get(sample.signal_type)
        name = getattr(sample, "name", None)
        rule = rules.get(name) if rules is not None and isinstance(name, str) else None
        return rule.group.to_dict() if rule is not None else None

    def _documents(self, sample: Sample) -> list[tuple[dict[str, Any], str, str | None]]:
        """(input document, signal type, signal name) for the sample and everything it holds."""
        group = self._group(sample)
        docs: list[tuple[dict[str, Any], str, str | None]] = []
        signal_type = sample.signal_type
        signal_name: str | None = getattr(sample, "name", None)
        attribute_sets: list[Mapping[str, Any]] = []
        if isinstance(sample, SpanSample):
            docs.append(
                (
                    {
                        "sample": {
                            "span": {
                                "name": sample.name,
                                "kind": sample.kind,
                                "attributes": _attributes(sample.attributes),
                                "span_events": [
                                    {"name": e.name, "attributes": _attributes(e.attributes)}
                                    for e in sample.events
                                ],
                                "span_links": [{"attributes": _attributes(link)} for link in sample.links],
                            }
                        }
                    },
                    signal_type,
                    signal_name,
                )
            )
            for event in sample.events:
                docs.append(
                    (
                        {
                            "sample": {
                                "span_event": {
                                    "name": event.name,
                                    "attributes": _attributes(event.attributes),
                                }
                            }
                        },
                        signal_type,
                        signal_name,
                    )
                )
                attribute_sets.append(event.attributes)
            attribute_sets.append(sample.attributes)
            attribute_sets.extend(sample.links)
        elif isinstance(sample, MetricSample):
            docs.append(
                (
                    {
                        "sample": {
                            "metric": {
                                "name": sample.name,
                                "instrument": sample.instrument,
                                "unit": sample.unit or "",
                                "data_points": [{"attributes": _attributes(p)} for p in sample.points],
                            }
                        }
                    },
                    signal_type,
                    signal_name,
                )
            )
            attribute_sets.extend(sample.points)
        elif isinstance(sample, EventSample):
            docs.append(
                (
                    {
                        "sample": {
                            "log": {"event_name": sample.name, "attributes": _attributes(sample.attributes)}
                        }
                    },
                    signal_type,
                    signal_name,
                )
            )
            attribute_sets.append(sample.attributes)
        elif isinstance(sample, ResourceSample):
            docs.append(
                ({"sample": {"resource": {"attributes": _attributes(sample.attributes)}}}, signal_type, None)
            )
            attribute_sets.append(sample.attributes)
        elif isinstance(sample, AttributeSample):
            attribute_sets.append({sample.name: sample.value} if sample.has_value else {sample.name: None})
        signal = isinstance(sample, SpanSample | MetricSample | EventSample)
        resource = sample.resource if isinstance(sample, SpanSample | MetricSample | EventSample) else None
        for doc, _, _ in docs:
            if group is not None:
                doc["registry_group"] = group
            if signal:  # Weaver's input: the resource the signal arrived with, or null
                doc["resource"] = None if resource is None else {"attributes": _attributes(resource)}
        for attrs in attribute_sets:
            for item in _attributes(attrs):
                if item["value"] is None:
                    item.pop("value")
                    item.pop("type")
                doc = {"sample": {"attribute": item}}
                registered = self._attributes.get(item["name"])
                if registered is not None:
                    doc["registry_attribute"] = registered
                if group is not None:
                    doc["registry_group"] = group
                docs.append((doc, signal_type, signal_name))
        return docs

    def findings(self, sample: Sample) -> list[Finding]:
        out: list[Finding] = []
        for doc, signal_type, signal_name in self._documents(sample):
            values, errors = rego.evaluate(self.policies, STAGE, doc, None)
            for error in errors:
                out.append(
                    Finding("advice_policy_failed", "violation", error.render(), signal_type, signal_name)
                )
            for value in values:
                out.append(_finding(value, signal_type, signal_name, self._deny_at))
        return out

    @property
    def _deny_at(self) -> str:
        """Where the `deny` rule is (file:line:col), to name it when it returns no finding."""
        policies = self.policies
        return str(Source(policies.deny_files.get(STAGE, ""), policies.deny_lines.get(STAGE, 0), 1))


def _shown(value: Any) -> str:
    return json.dumps(value, sort_keys=True, default=str)[:120]


def _finding(value: Any, signal_type: str, signal_name: str | None, where: str) -> Finding:
    """A `deny` value: Weaver's finding (`id`, `level`, `message`) or its advice form."""
    if isinstance(value, dict):
        fid = value.get("id", value.get("advice_type"))
        level = value.get("level", value.get("advice_level", "violation"))
        message = value.get("message")
        context = value.get("context", value.get("advice_context"))
        attribute = context.get("attribute_key") if isinstance(context, dict) else None
        if isinstance(fid, str) and isinstance(message, str) and level in LEVEL_RANK:
            return Finding(
                fid,
                level,
                message,
                value.get("signal_type", signal_type),
                value.get("signal_name", signal_name),
                attribute if isinstance(attribute, str) else None,
            )
    return Finding(
        "advice_policy_failed",
        "violation",
        f"{where}: the `{STAGE}` policy returned {_shown(value)}, not a finding: an object with string "
        f"`id` and `message` (or `advice_type`) and a `level` of {', '.join(LEVEL_RANK)}",
        signal_type,
        signal_name,
    )


class AdvisedValidator(Validator):
    """Our findings plus those of the advice policies, for every sample.

    The policies take the place of the default advice (as in Weaver, where a custom advice
    folder replaces its default policy); every other finding stays.
    """

    def __init__(self, registry: ResolvedRegistry | RegistryIndex, advice: AdvicePolicies) -> None:
        super().__init__(registry, default_advice=False)
        self.advice = advice

    def validate(self, sample: Sample) -> list[Finding]:
        return [*super().validate(sample), *self.advice.findings(sample)]
