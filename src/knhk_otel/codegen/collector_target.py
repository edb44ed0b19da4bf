"""Hook of the `collector` target: the agent and gateway OpenTelemetry Collector configs and the
Prometheus config that scrapes them and the nodes.

Configs are built as data and dumped as YAML, so what `collector_lint` checks is what is written.
Parameters (`-D`): `gateway_endpoint`, `trace_backends` (list, for the load-balancing exporter),
`remote_write_url`, `logs_endpoint`, `livecheck_endpoint` (null = no fan-out to `knhk-otel
live-check`), `node_targets` (list of host:port of nodes' own Prometheus endpoints),
`scrape_interval`, `evaluation_interval`.
"""

from __future__ import annotations

from typing import Any

import yaml

from knhk_otel.codegen.engine import GenerationInput

OTLP_GRPC_PORT = 4317
OTLP_HTTP_PORT = 4318
HEALTH_PORT = 13133
PROMETHEUS_EXPORTER_PORT = 8889  # the agent's scrape endpoint of the mesh's metrics
SIGNALS = ("traces", "metrics", "logs")


def _otlp_receiver() -> dict[str, Any]:
    return {
        "protocols": {
            "grpc": {"endpoint": f"0.0.0.0:{OTLP_GRPC_PORT}"},
            "http": {"endpoint": f"0.0.0.0:{OTLP_HTTP_PORT}"},
        }
    }


def _common_processors() -> dict[str, Any]:
    # memory_limiter first (refuse data before memory runs out), batch last (batch what survives)
    return {
        "memory_limiter": {"check_interval": "1s", "limit_percentage": 80, "spike_limit_percentage": 20},
        "batch": {"timeout": "5s", "send_batch_size": 8192},
    }


def _service(exporters: dict[str, list[str]]) -> dict[str, Any]:
    return {
        "extensions": ["health_check"],
        "pipelines": {
            signal: {
                "receivers": ["otlp"],
                "processors": ["memory_limiter", "batch"],
                "exporters": exporters[signal],
            }
            for signal in SIGNALS
        },
    }


def agent_config(params: dict[str, Any]) -> dict[str, Any]:
    """One node's agent: OTLP in; metrics out to a Prometheus scrape endpoint, traces and logs to the
    gateway; `debug` everywhere; optionally every signal to `knhk-otel live-check` as well."""
    exporters: dict[str, Any] = {
        "prometheus": {
            "endpoint": f"0.0.0.0:{PROMETHEUS_EXPORTER_PORT}",
            # node identity stays on target_info (the resource), never on every series
            "resource_to_telemetry_conversion": {"enabled": False},
            "metric_expiration": "5m",
        },
        "otlp/gateway": {
            "endpoint": str(params.get("gateway_endpoint") or "${env:KNHK_GATEWAY_ENDPOINT:-gateway:4317}"),
            "tls": {"insecure": True},
            "sending_queue": {"enabled": True, "queue_size": 5000},
            "retry_on_failure": {"enabled": True, "max_elapsed_time": "5m"},
        },
        "debug": {"verbosity": "basic"},
    }
    per_signal = {
        "traces": ["otlp/gateway", "debug"],
        "metrics": ["prometheus", "debug"],
        "logs": ["otlp/gateway", "debug"],
    }
    livecheck = params.get("livecheck_endpoint")
    if livecheck:
        exporters["otlp/livecheck"] = {"endpoint": str(livecheck), "tls": {"insecure": True}}
        for signal in SIGNALS:
            per_signal[signal].append("otlp/livecheck")
    return {
        "extensions": {"health_check": {"endpoint": f"0.0.0.0:{HEALTH_PORT}"}},
        "receivers": {"otlp": _otlp_receiver()},
        "processors": _common_processors(),
        "exporters": exporters,
        "service": _service(per_signal),
    }


def gateway_config(params: dict[str, Any]) -> dict[str, Any]:
    """The scale-out tier: OTLP in from many agents; traces load-balanced by trace id over the trace
    backends, metrics remote-written to Prometheus, logs to the log backend."""
    backends = params.get("trace_backends") or ["trace-backend-1:4317", "trace-backend-2:4317"]
    exporters: dict[str, Any] = {
        "loadbalancing": {
            "routing_key": "traceID",
            "protocol": {"otlp": {"tls": {"insecure": True}, "timeout": "5s"}},
            "resolver": {"static": {"hostnames": [str(b) for b in backends]}},
        },
        "prometheusremotewrite": {
            "endpoint": str(params.get("remote_write_url") or "http://prometheus:9090/api/v1/write"),
            "resource_to_telemetry_conversion": {"enabled": False},
            "target_info": {"enabled": True},
        },
        "otlp/logs": {
            "endpoint": str(params.get("logs_endpoint") or "${env:KNHK_LOGS_ENDPOINT:-log-backend:4317}"),
            "tls": {"insecure": True},
        },
        "debug": {"verbosity": "basic"},
    }
    return {
        "extensions": {"health_check": {"endpoint": f"0.0.0.0:{HEALTH_PORT}"}},
        "receivers": {"otlp": _otlp_receiver()},
        "processors": _common_processors(),
        "exporters": exporters,
        "service": _service(
            {
                "traces": ["loadbalancing", "debug"],
                "metrics": ["prometheusremotewrite", "debug"],
                "logs": ["otlp/logs", "debug"],
            }
        ),
    }


def prometheus_config(params: dict[str, Any]) -> dict[str, Any]:
    """Scrape the agent Collector's exporter and the nodes' own endpoints; load the generated rules."""
    nodes = params.get("node_targets") or ["knhk-node-1:9464", "knhk-node-2:9464", "knhk-node-3:9464"]
    return {
        "global": {
            "scrape_interval": str(params.get("scrape_interval") or "15s"),
            "evaluation_interval": str(params.get("evaluation_interval") or "15s"),
        },
        "rule_files": ["rules/*.rules.yaml"],
        "scrape_configs": [
            {
                # job and instance of each series are the emitter's service.name and
                # service.instance.id, set by the Collector's exporter: keep them
                "job_name": "otel-collector",
                "honor_labels": True,
                "static_configs": [{"targets": [f"otel-collector:{PROMETHEUS_EXPORTER_PORT}"]}],
            },
            {"job_name": "knhk-mesh", "static_configs": [{"targets": [str(n) for n in nodes]}]},
        ],
    }


def _dump(data: dict[str, Any]) -> str:
    return yaml.safe_dump(data, sort_keys=False, width=110)


def context(inp: GenerationInput) -> dict[str, Any]:
    params = dict(inp.params)
    return {
        "agent_yaml": _dump(agent_config(params)),
        "gateway_yaml": _dump(gateway_config(params)),
        "prometheus_yaml": _dump(prometheus_config(params)),
    }
