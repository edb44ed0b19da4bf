"""Structural check of an OpenTelemetry Collector config, beyond its JSON Schema: every component a
pipeline names is defined, every defined one is used, `memory_limiter` comes first and `batch` last
in every pipeline, and no two listeners share a port."""

from __future__ import annotations

import re
from typing import Any

_KINDS = ("receivers", "processors", "exporters", "connectors")
_PORT = re.compile(r":(\d+)$")


def _endpoints(value: Any, path: str) -> list[tuple[str, str]]:
    """(path, endpoint) of every `endpoint` key under `value` that binds a local port."""
    found: list[tuple[str, str]] = []
    if isinstance(value, dict):
        for key, item in value.items():
            if key == "endpoint" and isinstance(item, str):
                found.append((path, item))
            else:
                found.extend(_endpoints(item, f"{path}.{key}"))
    return found


def problems(config: dict[str, Any], name: str = "config") -> list[str]:
    """One line per problem, naming the config, the section and the component."""
    out: list[str] = []
    service = config.get("service") or {}
    pipelines: dict[str, Any] = service.get("pipelines") or {}
    if not pipelines:
        out.append(f"{name}: service.pipelines: no pipeline")
    used: dict[str, set[str]] = {kind: set() for kind in _KINDS}
    for pname, pipeline in pipelines.items():
        for kind in ("receivers", "processors", "exporters"):
            for comp in pipeline.get(kind) or []:
                defined = config.get(kind) or {}
                connectors = config.get("connectors") or {}
                if comp in connectors and kind in ("receivers", "exporters"):
                    used["connectors"].add(comp)
                elif comp not in defined:
                    out.append(f"{name}: service.pipelines.{pname}.{kind}: `{comp}` is not defined in {kind}")
                else:
                    used[kind].add(comp)
        if not pipeline.get("receivers") or not pipeline.get("exporters"):
            out.append(f"{name}: service.pipelines.{pname}: needs at least one receiver and one exporter")
        procs = [p.split("/")[0] for p in pipeline.get("processors") or []]
        if not procs or procs[0] != "memory_limiter":
            out.append(f"{name}: service.pipelines.{pname}.processors: memory_limiter must come first")
        if not procs or procs[-1] != "batch":
            out.append(f"{name}: service.pipelines.{pname}.processors: batch must come last")
    for kind in _KINDS:
        for comp in config.get(kind) or {}:
            if comp not in used[kind]:
                out.append(f"{name}: {kind}.{comp}: defined but used by no pipeline")
    for ext in service.get("extensions") or []:
        if ext not in (config.get("extensions") or {}):
            out.append(f"{name}: service.extensions: `{ext}` is not defined in extensions")
    for ext in config.get("extensions") or {}:
        if ext not in (service.get("extensions") or []):
            out.append(f"{name}: extensions.{ext}: defined but not enabled in service.extensions")
    # listeners: receivers, extensions and the exporters that serve (prometheus)
    listeners = _endpoints(config.get("receivers") or {}, "receivers") + _endpoints(
        config.get("extensions") or {}, "extensions"
    )
    listeners += [
        (f"exporters.{comp}", cfg["endpoint"])
        for comp, cfg in (config.get("exporters") or {}).items()
        if comp.split("/")[0] == "prometheus" and isinstance(cfg, dict) and "endpoint" in cfg
    ]
    seen: dict[int, str] = {}
    for path, endpoint in listeners:
        match = _PORT.search(endpoint)
        if match is None:
            out.append(f"{name}: {path}: endpoint {endpoint!r} has no port")
            continue
        port = int(match.group(1))
        if not 0 < port < 65536:
            out.append(f"{name}: {path}: port {port} is outside 1..65535")
        elif port in seen:
            out.append(f"{name}: {path}: port {port} is already used by {seen[port]}")
        else:
            seen[port] = path
    return out
