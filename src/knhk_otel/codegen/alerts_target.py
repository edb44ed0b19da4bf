"""Hook of the `alerts` target: Prometheus recording and alerting rules over the schema's metrics,
plus a promtool unit test per alert (one firing and one non-firing case).

The rules are knowledge the schema cannot hold (thresholds, what an operator does), so they are
written here; every metric they read is looked up in the registry and spelled by the Prometheus
naming of `naming.prometheus_name`, so a renamed or removed metric fails generation instead of
producing a rule that silently matches nothing. Parameters (`-D`): `rate_window` (default 5m),
`alert_for` (overrides every alert's own `for:`; tests shorten it), `runbook_base`.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

import yaml

from knhk_otel.codegen import naming
from knhk_otel.codegen.engine import GenerationInput
from knhk_otel.codegen.errors import CodegenError
from knhk_otel.schema.model import Group

#: The recording rules dashboards read (names shared with the dashboards target).
RECORDING_RULES = (
    "knhk_mesh:tick_usage:p50",
    "knhk_mesh:tick_usage:p95",
    "knhk_mesh:tick_usage:p99",
    "knhk_mesh:tick_budget_compliance:ratio",
    "knhk_mesh:convergence_rounds:p95",
    "knhk_mesh:gossip_rounds:rate",
    "knhk_mesh:messages:rate",
    "knhk_mesh:network_io_bytes:rate",
    "knhk_mesh:messages_rejected:rate",
    "knhk_mesh:byzantine_events:rate",
)
_COLLECTOR_FAILURES = '"otelcol_exporter_send_failed_(spans|metric_points|log_records)(_total)?"'
_DURATION = re.compile(r"^(\d+(ms|s|m|h|d|w|y))+$")


@dataclass(frozen=True)
class _Case:
    """One promtool case: input series (name{labels} → values) and the labels of firing alerts."""

    series: dict[str, str]
    fires: bool


@dataclass(frozen=True)
class _Alert:
    name: str
    expr: str
    for_: str
    severity: str
    summary: str
    description: str
    firing: _Case
    quiet: _Case
    labels_of_firing: dict[str, str]
    fired: str  # the description promtool must render for the firing case (default parameters)

    @property
    def runbook(self) -> str:
        return naming.kebab_case(self.name) + ".md"


class _Names:
    """Prometheus series names of the registry's metrics, by schema metric name."""

    def __init__(self, inp: GenerationInput) -> None:
        self._metrics: dict[str, Group] = {m.signal_name: m for m in inp.registry.metrics()}
        self.used: set[str] = set()

    def __call__(self, metric: str, series: str = "") -> str:
        group = self._metrics.get(metric)
        if group is None:
            raise CodegenError(
                f"alerts target: error[unknown_metric]: a rule reads `{metric}`, which the registry "
                "does not define (rename the rule's metric or restore it in the schema)"
            )
        self.used.add(metric)
        return naming.prometheus_name(group) + series


def _duration(params: dict[str, Any], key: str, default: str) -> str:
    value = params.get(key)
    text = default if value is None or value == "" else str(value)
    if not _DURATION.match(text):
        raise CodegenError(f"alerts target: error[params]: {key}={text!r} is not a Prometheus duration")
    return text


def _rules(inp: GenerationInput) -> tuple[list[dict[str, Any]], list[_Alert], set[str]]:
    m = _Names(inp)
    w = _duration(dict(inp.params), "rate_window", "5m")
    override = inp.params.get("alert_for")
    fo = (
        (lambda d: _duration(dict(inp.params), "alert_for", d))
        if override not in (None, "")
        else (lambda d: d)
    )
    by = "job, instance"
    op = naming.prometheus_label("knhk.mesh.tick.operation")
    usage_b, usage_c = m("knhk.mesh.tick.usage", "_bucket"), m("knhk.mesh.tick.usage", "_count")
    overruns = m("knhk.mesh.tick.overruns")
    records: list[dict[str, Any]] = []
    for q in ("50", "95", "99"):
        records.append(
            {
                "record": f"knhk_mesh:tick_usage:p{q}",
                "expr": f"histogram_quantile(0.{q}, sum by ({by}, {op}, le) (rate({usage_b}[{w}])))",
            }
        )
    records.append(
        {
            "record": "knhk_mesh:tick_budget_compliance:ratio",
            # no overrun yet means no overrun series: count it as zero, not as missing
            "expr": (
                f"1 - ((sum by ({by}, {op}) (rate({overruns}[{w}])) or sum by ({by}, {op}) "
                f"(rate({usage_c}[{w}])) * 0) / (sum by ({by}, {op}) (rate({usage_c}[{w}])) > 0))"
            ),
        }
    )
    conv_b = m("knhk.mesh.convergence.rounds", "_bucket")
    records.append(
        {
            "record": "knhk_mesh:convergence_rounds:p95",
            "expr": f"histogram_quantile(0.95, sum by ({by}, le) (rate({conv_b}[{w}])))",
        }
    )
    direction = naming.prometheus_label("knhk.mesh.message.direction")
    mtype = naming.prometheus_label("knhk.mesh.message.type")
    reason = naming.prometheus_label("knhk.mesh.rejection.reason")
    kind = naming.prometheus_label("knhk.mesh.byzantine.kind")
    for record, metric, labels in (
        ("knhk_mesh:gossip_rounds:rate", "knhk.mesh.gossip.rounds", ""),
        ("knhk_mesh:messages:rate", "knhk.mesh.messages", f", {direction}, {mtype}"),
        ("knhk_mesh:network_io_bytes:rate", "knhk.mesh.network.io", f", {direction}"),
        ("knhk_mesh:messages_rejected:rate", "knhk.mesh.messages.rejected", f", {reason}"),
        ("knhk_mesh:byzantine_events:rate", "knhk.mesh.byzantine.events", f", {kind}"),
    ):
        records.append({"record": record, "expr": f"sum by ({by}{labels}) (rate({m(metric)}[{w}]))"})
    assert tuple(r["record"] for r in records) == RECORDING_RULES

    peers = m("knhk.mesh.peer.count")
    status = m("knhk.mesh.partition.status")
    status_label = naming.prometheus_label("knhk.mesh.partition.status")
    detected = m("knhk.mesh.partitions.detected")
    byz = m("knhk.mesh.byzantine.events")
    distrusted = m("knhk.mesh.peer.distrusted")
    findings = m("knhk.mesh.schema.findings")
    level = naming.prometheus_label("knhk.mesh.schema.finding.level")
    failures = m("knhk.mesh.telemetry.export.failures")
    node = 'job="knhk-mesh", instance="node-a"'
    alerts = [
        _Alert(
            "KnhkPartitionDetected",
            f"sum by ({by}) (increase({detected}[{w}])) > 0",
            fo("0s"),
            "critical",
            "A mesh node detected a network partition.",
            "{{ $labels.instance }} detected {{ $value | humanize }} partition(s) in the last " + w + ".",
            _Case({f"{detected}{{{node}}}": "0x5 1+1x30"}, True),
            _Case({f"{detected}{{{node}}}": "2x30"}, False),
            {"job": "knhk-mesh", "instance": "node-a"},
            "node-a detected 5 partition(s) in the last 5m.",
        ),
        _Alert(
            "KnhkPeersBelowQuorum",
            f'sum by ({by}) ({status}{{{status_label}="partitioned"}}) > 0',
            fo("1m"),
            "critical",
            "Mesh agents reach fewer peers than their quorum and refuse writes.",
            "{{ $labels.instance }} has {{ $value }} agent(s) reaching fewer than n - f members (f < n/3): "
            "they are read-only until the partition heals.",
            _Case({f'{status}{{{node}, {status_label}="partitioned"}}': "1x30"}, True),
            _Case({f'{status}{{{node}, {status_label}="partitioned"}}': "0x30"}, False),
            {"job": "knhk-mesh", "instance": "node-a"},
            "node-a has 1 agent(s) reaching fewer than n - f members (f < n/3): they are read-only until "
            "the partition heals.",
        ),
        _Alert(
            "KnhkByzantineDetectionsRising",
            # unknown_sender is not an offence (it costs no reputation): a restarted agent, one pruned
            # while suspended or the far side of a long partition sends before it is known again
            f'sum by ({by}, {kind}) (rate({byz}{{{kind}!="unknown_sender"}}[{w}])) > 0',
            fo("1m"),
            "warning",
            "Mesh nodes are detecting Byzantine behaviour.",
            "{{ $labels.instance }} detects {{ $labels." + kind + ' }} at {{ $value | printf "%.2f" }}/s.',
            _Case({f'{byz}{{{node}, {kind}="equivocation"}}': "0+5x30"}, True),
            _Case(
                {
                    f'{byz}{{{node}, {kind}="equivocation"}}': "7x30",
                    f'{byz}{{{node}, {kind}="unknown_sender"}}': "0+5x30",
                },
                False,
            ),
            {"job": "knhk-mesh", "instance": "node-a", kind: "equivocation"},
            "node-a detects equivocation at 0.08/s.",
        ),
        _Alert(
            "KnhkDistrustedPeers",
            f"{distrusted} > 0",
            fo("1m"),
            "warning",
            "A mesh node ignores peers whose reputation fell under 0.5.",
            "{{ $labels.instance }} distrusts {{ $value }} peer(s); the reputation.changed events name them.",
            _Case({f"{distrusted}{{{node}}}": "0 0 2x30"}, True),
            _Case({f"{distrusted}{{{node}}}": "0x30"}, False),
            {"job": "knhk-mesh", "instance": "node-a"},
            "node-a distrusts 2 peer(s); the reputation.changed events name them.",
        ),
        _Alert(
            "KnhkTickBudgetCompliance",
            "knhk_mesh:tick_budget_compliance:ratio < 0.95",
            fo("5m"),
            "warning",
            "An operation of the mesh fits its tick budget less than 95 % of the time.",
            "{{ $labels." + op + " }} on {{ $labels.instance }} fits its tick budget "
            "{{ $value | humanizePercentage }} of the time.",
            _Case(
                {
                    f'{usage_c}{{{node}, {op}="merge"}}': "0+100x30",
                    f'{overruns}{{{node}, {op}="merge"}}': "0+20x30",
                },
                True,
            ),
            _Case(
                {
                    f'{usage_c}{{{node}, {op}="merge"}}': "0+100x30",
                    f'{overruns}{{{node}, {op}="merge"}}': "0+1x30",
                },
                False,
            ),
            {"job": "knhk-mesh", "instance": "node-a", op: "merge"},
            "merge on node-a fits its tick budget 80% of the time.",
        ),
        _Alert(
            "KnhkSlowConvergence",
            f"knhk_mesh:convergence_rounds:p95 > on ({by}) (log2({peers}) + 3)",
            fo("10m"),
            "warning",
            "Mesh state takes more gossip rounds to converge than O(log n) promises.",
            "95 % of convergences on {{ $labels.instance }} take up to {{ $value }} rounds, more than "
            "log2(peers) + 3.",
            _Case(
                {
                    f'{conv_b}{{{node}, le="4"}}': "0x30",
                    f'{conv_b}{{{node}, le="8"}}': "0x30",
                    f'{conv_b}{{{node}, le="20"}}': "0+10x30",
                    f'{conv_b}{{{node}, le="+Inf"}}': "0+10x30",
                    f"{peers}{{{node}}}": "16x30",
                },
                True,
            ),
            _Case(
                {
                    f'{conv_b}{{{node}, le="4"}}': "0+10x30",
                    f'{conv_b}{{{node}, le="8"}}': "0+10x30",
                    f'{conv_b}{{{node}, le="20"}}': "0+10x30",
                    f'{conv_b}{{{node}, le="+Inf"}}': "0+10x30",
                    f"{peers}{{{node}}}": "16x30",
                },
                False,
            ),
            {"job": "knhk-mesh", "instance": "node-a"},
            "95 % of convergences on node-a take up to 19.4 rounds, more than log2(peers) + 3.",
        ),
        _Alert(
            "KnhkSchemaViolations",
            f'sum by ({by}) (increase({findings}{{{level}="violation"}}[{w}])) > 0',
            fo("0s"),
            "warning",
            "Emitted telemetry contradicts the schema.",
            "{{ $labels.instance }} emitted {{ $value | humanize }} schema violation(s) in the last "
            + w
            + "; run `knhk-otel live-check` to see which.",
            _Case({f'{findings}{{{node}, {level}="violation"}}': "0+3x30"}, True),
            _Case(
                {
                    f'{findings}{{{node}, {level}="improvement"}}': "0+3x30",
                    f'{findings}{{{node}, {level}="violation"}}': "2x30",
                },
                False,
            ),
            {"job": "knhk-mesh", "instance": "node-a"},
            "node-a emitted 15 schema violation(s) in the last 5m; run `knhk-otel live-check` to see which.",
        ),
        _Alert(
            "KnhkTelemetryExportFailing",
            f"sum by ({by}) (rate({failures}[{w}])) > 0 or sum by ({by}) "
            f"(rate({{__name__=~{_COLLECTOR_FAILURES}}}[{w}])) > 0",
            fo("5m"),
            "warning",
            "Telemetry is not reaching the backend.",
            '{{ $labels.instance }} fails to export telemetry ({{ $value | printf "%.2f" }} failed batches '
            "or items per second): the Collector or its backend is unreachable or refusing.",
            _Case({f'{failures}{{{node}, knhk_mesh_schema_signal_type="span"}}': "0+2x30"}, True),
            _Case({f'{failures}{{{node}, knhk_mesh_schema_signal_type="span"}}': "4x30"}, False),
            {"job": "knhk-mesh", "instance": "node-a"},
            "node-a fails to export telemetry (0.03 failed batches or items per second): the Collector "
            "or its backend is unreachable or refusing.",
        ),
    ]
    return records, alerts, m.used


def _minutes(duration: str) -> int:
    """Whole minutes of a Prometheus duration, rounded up (promtool evaluates at minute steps here)."""
    total = 0.0
    for amount, unit in re.findall(r"(\d+)(ms|s|m|h|d|w|y)", duration):
        total += (
            int(amount)
            * {"ms": 0.001, "s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800, "y": 31536000}[unit]
        )
    return int(-(-total // 60))


def context(inp: GenerationInput) -> dict[str, Any]:
    records, alerts, used = _rules(inp)
    base = str(inp.params.get("runbook_base") or "docs/runbooks").rstrip("/")
    window = _duration(dict(inp.params), "rate_window", "5m")
    rules = {
        "groups": [
            {"name": "knhk-mesh-recording", "rules": records},
            {
                "name": "knhk-mesh-alerts",
                "rules": [
                    {
                        "alert": a.name,
                        "expr": a.expr,
                        "for": a.for_,
                        "labels": {"severity": a.severity},
                        "annotations": {
                            "summary": a.summary,
                            "description": a.description,
                            "runbook_url": f"{base}/{a.runbook}",
                        },
                    }
                    for a in alerts
                ],
            },
        ]
    }
    # Evaluate after the window has filled and the `for:` has passed, at minute steps.
    tests = []
    for a in alerts:
        at = _minutes(window) + _minutes(a.for_) + 5
        for case in (a.firing, a.quiet):
            expected: list[dict[str, Any]] = []
            if case.fires:
                expected.append(
                    {
                        "exp_labels": {**a.labels_of_firing, "severity": a.severity},
                        "exp_annotations": {
                            "summary": a.summary,
                            "description": a.fired,
                            "runbook_url": f"{base}/{a.runbook}",
                        },
                    }
                )
            tests.append(
                {
                    "name": f"{a.name} {'fires' if case.fires else 'stays quiet'}",
                    "interval": "1m",
                    "input_series": [{"series": s, "values": v} for s, v in case.series.items()],
                    "alert_rule_test": [{"eval_time": f"{at}m", "alertname": a.name, "exp_alerts": expected}],
                }
            )
    return {
        "rules_yaml": yaml.safe_dump(rules, sort_keys=False, width=110, allow_unicode=True),
        "tests_yaml": yaml.safe_dump(
            {"rule_files": ["../knhk-mesh.rules.yaml"], "evaluation_interval": "1m", "tests": tests},
            sort_keys=False,
            width=110,
            allow_unicode=True,
        ),
        "alert_names": [a.name for a in alerts],
        "runbooks": [a.runbook for a in alerts],
        "metrics_read": sorted(used),
    }
