"""`knhk-otel dashboards render` against a real Prometheus: one PNG per dashboard, panels in their
grid places, panels with data counted, an empty query shown as such (not passed silently)."""

from __future__ import annotations

import json
import struct
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest


def _board(uid: str, title: str, panels: list[dict[str, Any]]) -> dict[str, Any]:
    return {
        "uid": uid,
        "title": title,
        "templating": {
            "list": [
                {"name": "job", "type": "query", "allValue": ".*", "current": {"value": "$__all"}},
                {"name": "instance", "type": "query", "allValue": ".*", "current": {"value": "$__all"}},
            ]
        },
        "panels": panels,
    }


def _panel(
    pid: int, kind: str, title: str, expr: str, grid: tuple[int, int, int, int], unit: str
) -> dict[str, Any]:
    x, y, w, h = grid
    return {
        "id": pid,
        "type": kind,
        "title": title,
        "gridPos": {"x": x, "y": y, "w": w, "h": h},
        "fieldConfig": {"defaults": {"unit": unit, "custom": {"axisLabel": "requests/s"}}},
        "targets": [{"refId": "A", "expr": expr, "legendFormat": "{{handler}}"}],
    }


def _png_size(path: Path) -> tuple[int, int]:
    head = path.read_bytes()[:24]
    assert head[:8] == b"\x89PNG\r\n\x1a\n", path
    width, height = struct.unpack(">II", head[16:24])
    return int(width), int(height)


@pytest.mark.slow
def test_render_writes_one_png_per_dashboard_with_data_from_prometheus(
    start_prometheus: Any, tmp_path: Path
) -> None:
    server = start_prometheus([])  # Prometheus scrapes itself: real counters and gauges
    host = server.url.removeprefix("http://")
    scraper = start_prometheus([{"job_name": "prom", "static_configs": [{"targets": [host]}]}])
    scraper.wait_for(
        "three scrapes", lambda: bool(scraper.query('count_over_time(up{job="prom"}[1m]) >= 3')), 60
    )
    sel = '{job=~"$job", instance=~"$instance"}'
    boards = tmp_path / "boards"
    boards.mkdir()
    rate = f"sum by (handler) (rate(prometheus_http_requests_total{sel}[$__rate_interval]))"
    (boards / "a.json").write_text(
        json.dumps(
            _board(
                "a",
                "Requests",
                [
                    {"id": 1, "type": "row", "title": "HTTP", "gridPos": {"x": 0, "y": 0, "w": 24, "h": 1}},
                    _panel(2, "timeseries", "Requests per second", rate, (0, 1, 16, 8), "reqps"),
                    _panel(3, "stat", "Targets up", f"sum(up{sel})", (16, 1, 8, 4), "short"),
                    _panel(4, "timeseries", "Nothing here", f"absent_metric_xyz{sel}", (16, 5, 8, 4), "s"),
                ],
            )
        ),
        encoding="utf-8",
    )
    (boards / "b.json").write_text(
        json.dumps(_board("b", "Up", [_panel(1, "stat", "Up", f"up{sel}", (0, 0, 24, 4), "short")])),
        encoding="utf-8",
    )
    out = tmp_path / "png"
    # a separate process, as a user runs it (matplotlib stays out of the test process)
    done = subprocess.run(
        [
            str(Path(sys.executable).with_name("knhk-otel")),
            "dashboards",
            "render",
            "--prometheus",
            scraper.url,
            "-o",
            str(out),
            "-d",
            str(boards),
            "--range",
            "2m",
            "--scrape-interval",
            "1s",
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines() == [
        f"{out / 'a.png'}: 3 panels, 2 with data (no data: Nothing here)",
        f"{out / 'b.png'}: 1 panels, 1 with data",
    ]
    a_width, a_height = _png_size(out / "a.png")
    b_width, b_height = _png_size(out / "b.png")
    assert a_width == b_width == 1760  # 22 in at 80 dpi: the 24-column grid across the page
    assert a_height > b_height  # 9 grid rows against 4
    assert (out / "a.png").stat().st_size > 20_000
