"""The few Prometheus HTTP API calls the renderer makes (`/api/v1/query_range`), with one-line errors."""

from __future__ import annotations

import json
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass
from typing import Any


class PrometheusError(Exception):
    """Prometheus could not be reached or refused a query; the message is one line."""


@dataclass(frozen=True, slots=True)
class Series:
    labels: dict[str, str]
    times: list[float]  # unix seconds
    values: list[float]


def _get(url: str, path: str, params: dict[str, str], timeout_s: float) -> Any:
    full = f"{url.rstrip('/')}{path}?{urllib.parse.urlencode(params)}"
    try:
        with urllib.request.urlopen(full, timeout=timeout_s) as resp:
            body = json.loads(resp.read())
    except urllib.error.HTTPError as exc:  # Prometheus explains a bad query in the body
        try:
            body = json.loads(exc.read())
        except ValueError:
            raise PrometheusError(f"{url}: HTTP {exc.code} for {path}") from exc
    except (urllib.error.URLError, OSError) as exc:
        reason = getattr(exc, "reason", exc)
        raise PrometheusError(f"{url}: cannot reach Prometheus ({reason})") from exc
    except ValueError as exc:
        raise PrometheusError(f"{url}: {path} did not answer JSON (is this a Prometheus?)") from exc
    if not isinstance(body, dict) or body.get("status") != "success":
        error = body.get("error", body) if isinstance(body, dict) else body
        raise PrometheusError(f"{url}: {path} failed: {error}")
    return body["data"]


def query_range(
    url: str, expr: str, start: float, end: float, step_s: float, timeout_s: float = 30.0
) -> list[Series]:
    """Evaluate `expr` over [start, end] every `step_s` seconds; NaN and ±Inf samples are kept as floats."""
    data = _get(
        url,
        "/api/v1/query_range",
        {"query": expr, "start": f"{start:.3f}", "end": f"{end:.3f}", "step": f"{step_s:g}"},
        timeout_s,
    )
    out: list[Series] = []
    for item in data.get("result", []):
        values = item.get("values", [])
        out.append(
            Series(
                labels={str(k): str(v) for k, v in item.get("metric", {}).items()},
                times=[float(t) for t, _ in values],
                values=[float(v) for _, v in values],
            )
        )
    return out


def check_ready(url: str, timeout_s: float = 5.0) -> None:
    """Fail early, in one line, when `url` is not a Prometheus answering queries."""
    _get(url, "/api/v1/query", {"query": "1"}, timeout_s)
