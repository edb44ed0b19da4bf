"""Live-check report: findings per sample shape, statistics, registry coverage; ansi/json/jsonl."""

from __future__ import annotations

import json
import threading
from collections import Counter
from collections.abc import Iterable, Sequence
from typing import Any

from knhk_otel.validate.findings import LEVEL_RANK, LEVELS, Finding, at_or_above
from knhk_otel.validate.index import RegistryIndex, match_template
from knhk_otel.validate.samples import (
    AttributeSample,
    EventSample,
    MetricSample,
    ResourceSample,
    Sample,
    SpanSample,
)

FORMATS = ("ansi", "json", "jsonl")


def _signal_name(sample: Sample) -> str | None:
    if isinstance(sample, ResourceSample):
        return None
    return sample.name


class ReportBuilder:
    """Accumulates validated samples from any thread; `build()` gives the report as a dict.

    Samples with identical findings are grouped (signal, findings) → count, so a run of a million
    spans yields a report the size of its distinct problems.
    """

    def __init__(self, index: RegistryIndex) -> None:
        self.index = index
        self._lock = threading.Lock()
        self._groups: dict[tuple[str, str | None, tuple[int, ...]], list[Any]] = {}
        self._canonical: dict[Finding, Finding] = {}
        self._by_type: Counter[str] = Counter()
        self._without_findings = 0
        self._attrs_seen: set[str] = set()
        self._names_seen: dict[str, set[str]] = {"span": set(), "metric": set(), "event": set()}
        self._input_errors: list[Finding] = []
        self._logs_without_event = 0
        #: Findings Weaver would count on top of ours: it counts a metric's per data point.
        self._per_point_extra: Counter[str] = Counter()

    def add_per_point_extra(self, extra: Counter[str]) -> None:
        if extra:
            with self._lock:
                self._per_point_extra.update(extra)

    def add(self, sample: Sample, findings: Sequence[Finding]) -> None:
        self.add_many(((sample, findings),))

    def add_many(self, judged: Iterable[tuple[Sample, Sequence[Finding]]]) -> None:
        """Samples with their findings, under one lock acquisition (a request's worth at a time)."""
        with self._lock:
            by_type = self._by_type
            attrs_seen = self._attrs_seen
            names_seen = self._names_seen
            clean = 0
            span_names = names_seen["span"]
            for sample, findings in judged:
                signal_type = sample.signal_type
                by_type[signal_type] += 1
                if type(sample) is SpanSample and not sample.events and not sample.links:
                    name: str | None = sample.name
                    span_names.add(sample.name)
                    attrs_seen.update(sample.attributes)
                else:
                    attrs_seen.update(_attribute_keys(sample))
                    name = _signal_name(sample)
                    if name is not None:
                        seen = names_seen.get(signal_type)
                        if seen is not None:
                            seen.add(name)
                    if isinstance(sample, SpanSample):
                        names_seen["event"].update(e.name for e in sample.events)
                if findings:
                    self._count_group(signal_type, name, findings, 1)
                else:
                    clean += 1
            self._without_findings += clean

    def add_tally(
        self, signal_type: str, tally: Iterable[tuple[str, tuple[str, ...], tuple[Finding, ...], int]]
    ) -> None:
        """Many samples at once, as (name, attribute keys, findings, how many) per distinct shape."""
        with self._lock:
            names = self._names_seen.get(signal_type)
            for name, keys, findings, count in tally:
                self._by_type[signal_type] += count
                self._attrs_seen.update(keys)
                if names is not None:
                    names.add(name)
                if findings:
                    self._count_group(signal_type, name, findings, count)
                else:
                    self._without_findings += count

    def _count_group(
        self, signal_type: str, name: str | None, findings: Sequence[Finding], count: int
    ) -> None:
        """Count samples by their findings (lock held). Equal findings are first mapped to one
        canonical object, then grouped by identity: hashing ids is cheaper than comparing values,
        and the stored tuple keeps the objects (so their ids) alive."""
        canon = self._canonical
        found = tuple([canon.setdefault(f, f) for f in findings])
        key = (signal_type, name, tuple(map(id, found)))
        group = self._groups.get(key)
        if group is None:
            self._groups[key] = [count, found]
        else:
            group[0] += count

    def add_input_error(self, finding: Finding) -> None:
        with self._lock:
            self._input_errors.append(finding)
            self._count_group(finding.signal_type, finding.signal_name, (finding,), 1)

    def add_logs_without_event(self, n: int) -> None:
        if n:
            with self._lock:
                self._logs_without_event += n

    def highest_level(self) -> str | None:
        with self._lock:
            levels = {f.level for _, fs in self._groups.values() for f in fs}
        return max(levels, key=lambda lv: LEVEL_RANK[lv]) if levels else None

    def build(self) -> dict[str, Any]:
        with self._lock:
            merged: Counter[tuple[str, str | None, tuple[Finding, ...]]] = Counter()
            for (signal_type, signal_name, _), (count, found) in self._groups.items():
                merged[(signal_type, signal_name, tuple(sorted(found, key=Finding.sort_key)))] += count
            groups = sorted(
                merged.items(),
                key=lambda kv: (kv[0][0], kv[0][1] or "", [f.sort_key() for f in kv[0][2]]),
            )
            by_level: Counter[str] = Counter()
            by_id: Counter[str] = Counter()
            samples = []
            for (signal_type, signal_name, found), count in groups:
                for f in found:
                    by_level[f.level] += count
                    by_id[f.id] += count
                samples.append(
                    {
                        "signal_type": signal_type,
                        "signal_name": signal_name,
                        "count": count,
                        "findings": [f.to_dict() for f in found],
                    }
                )
            highest = max(by_level, key=lambda lv: LEVEL_RANK[lv]) if by_level else None
            statistics = {
                "total_samples": sum(self._by_type.values()),
                "samples_by_type": dict(sorted(self._by_type.items())),
                "samples_without_findings": self._without_findings,
                "log_records_without_event": self._logs_without_event,
                "input_errors": len(self._input_errors),
                "total_findings": sum(by_level.values()),
                "findings_by_level": {lv: by_level.get(lv, 0) for lv in LEVELS},
                "findings_by_id": dict(sorted(by_id.items())),
                **self._per_point(by_id),
                "highest_level": highest,
                **self._coverage(),
            }
        return {"samples": samples, "statistics": statistics}

    def _per_point(self, by_id: Counter[str]) -> dict[str, Any]:
        """Where metric findings counted per data point (as Weaver does) differ from ours."""
        if not self._per_point_extra:
            return {}
        weaver = by_id + self._per_point_extra
        return {"findings_by_id_per_data_point": dict(sorted(weaver.items()))}

    def _coverage(self) -> dict[str, Any]:
        index = self.index
        attr_names = set(index.attributes) | {t.name for t in index.templates}
        seen_attrs: set[str] = set()
        unknown_attrs: set[str] = set()
        for key in self._attrs_seen:
            if key in index.attributes:
                seen_attrs.add(key)
            else:
                tmpl = match_template(index.templates, key)
                if tmpl is not None:
                    seen_attrs.add(tmpl.name)
                else:
                    unknown_attrs.add(key)
        coverage = {"attributes": _ratio(attr_names, seen_attrs)}
        non_registry: dict[str, list[str]] = {"attributes": sorted(unknown_attrs)}
        for kind, table, plural in (
            ("span", index.spans, "spans"),
            ("metric", index.metrics, "metrics"),
            ("event", index.events, "events"),
        ):
            seen = self._names_seen[kind]
            coverage[plural] = _ratio(set(table), seen & set(table))
            non_registry[plural] = sorted(seen - set(table))
        return {"coverage": coverage, "non_registry": non_registry}


def _ratio(defined: set[str], seen: set[str]) -> dict[str, Any]:
    return {
        "total": len(defined),
        "seen": sorted(seen),
        "never_seen": sorted(defined - seen),
        "ratio": round(len(seen) / len(defined), 4) if defined else 1.0,
    }


def _attribute_keys(sample: Sample) -> Iterable[str]:
    if isinstance(sample, SpanSample):
        if not sample.events and not sample.links:
            return sample.attributes.keys()
        keys = set(sample.attributes)
        for e in sample.events:
            keys.update(e.attributes)
        for link in sample.links:
            keys.update(link)
        return keys
    if isinstance(sample, MetricSample):
        keys = set()
        for p in sample.points:
            keys.update(p)
        return keys
    if isinstance(sample, (EventSample, ResourceSample)):
        return sample.attributes.keys()
    if isinstance(sample, AttributeSample):
        return (sample.name,)
    return ()


def fails(report: dict[str, Any], fail_on: str) -> bool:
    """True when the report holds a finding at or above `fail_on` (`none` never fails)."""
    highest = report["statistics"]["highest_level"]
    return highest is not None and at_or_above(highest, fail_on)


# --- rendering ---------------------------------------------------------------------------------

_COLORS = {"violation": "\x1b[31m", "improvement": "\x1b[33m", "information": "\x1b[36m"}
_RESET = "\x1b[0m"


def render(report: dict[str, Any], fmt: str, *, color: bool = False) -> str:
    if fmt == "json":
        return json.dumps(report, indent=2, sort_keys=True) + "\n"
    if fmt == "jsonl":
        lines = [json.dumps(s, sort_keys=True) for s in report["samples"]]
        lines.append(json.dumps({"statistics": report["statistics"]}, sort_keys=True))
        return "\n".join(lines) + "\n"
    if fmt == "ansi":
        return _render_ansi(report, color)
    raise ValueError(f"unknown report format {fmt!r}")


def _render_ansi(report: dict[str, Any], color: bool) -> str:
    def paint(level: str, text: str) -> str:
        return f"{_COLORS[level]}{text}{_RESET}" if color else text

    out: list[str] = []
    for s in report["samples"]:
        name = f" `{s['signal_name']}`" if s["signal_name"] else ""
        out.append(f"{s['signal_type']}{name} (x{s['count']})")
        for f in s["findings"]:
            out.append(f"  {paint(f['level'], f['level'])}[{f['id']}] {f['message']}")
    st = report["statistics"]
    out.append("")
    out.append(
        f"samples: {st['total_samples']} ({', '.join(f'{k} {v}' for k, v in st['samples_by_type'].items())}),"
        f" without findings: {st['samples_without_findings']}"
    )
    levels = ", ".join(f"{lv} {n}" for lv, n in st["findings_by_level"].items())
    out.append(f"findings: {st['total_findings']} ({levels})")
    for fid, n in st["findings_by_id"].items():
        out.append(f"  {fid}: {n}")
    out.append("coverage:")
    for kind, cov in st["coverage"].items():
        out.append(f"  {kind}: {len(cov['seen'])}/{cov['total']} ({cov['ratio']:.0%})")
        if kind != "attributes" and cov["never_seen"]:
            out.append(f"    never seen: {', '.join(cov['never_seen'])}")
    expected = st.get("expected_signals")
    if expected is not None:
        missing = expected["missing"]
        listed = expected["listed"]
        arrived = listed - sum(len(names) for names in missing.values())
        out.append(f"expected signals ({expected['source']}): {arrived}/{listed} arrived")
        for kind, names in missing.items():
            out.append(f"  NEVER ARRIVED ({kind}): {', '.join(names)}")
    for kind, names in st["non_registry"].items():
        if names:
            out.append(f"not in the registry ({kind}): {', '.join(names)}")
    if st["input_errors"]:
        out.append(f"rejected requests: {st['input_errors']}")
    return "\n".join(out) + "\n"
