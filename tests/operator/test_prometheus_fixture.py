"""The shared Prometheus fixture starts a real server that scrapes, evaluates rules and stops."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml


def test_prometheus_scrapes_itself_and_evaluates_a_rule(start_prometheus: Any, tmp_path: Path) -> None:
    rules = tmp_path / "self.yaml"
    rules.write_text(
        yaml.safe_dump(
            {
                "groups": [
                    {
                        "name": "self",
                        "rules": [
                            {"record": "job:up:sum", "expr": "sum by (job) (up)"},
                            {"alert": "SelfUp", "expr": "up == 1", "labels": {"severity": "info"}},
                        ],
                    }
                ]
            }
        ),
        encoding="utf-8",
    )
    server = start_prometheus([], rule_files=[rules])
    host = server.url.removeprefix("http://")
    # A second server scraping the first one: scrape configs reach the real config file.
    scraper = start_prometheus(
        [{"job_name": "other", "static_configs": [{"targets": [host]}]}], rule_files=[rules]
    )
    scraper.wait_for("a successful scrape", lambda: bool(scraper.query('up{job="other"} == 1')), 30)
    scraper.wait_for("the recording rule", lambda: bool(scraper.query('job:up:sum{job="other"}')), 30)
    scraper.wait_for(
        "the alert to fire", lambda: any(a["labels"]["alertname"] == "SelfUp" for a in scraper.alerts()), 30
    )
    assert {r["name"] for r in scraper.rules()} == {"job:up:sum", "SelfUp"}
    server.stop()
    assert server.process.poll() is not None


def test_promtool_checks_a_broken_rule_file(promtool: str, tmp_path: Path) -> None:
    import subprocess

    bad = tmp_path / "bad.yaml"
    bad.write_text(
        "groups:\n  - name: x\n    rules:\n      - record: a\n        expr: 'sum(('\n", encoding="utf-8"
    )
    proc = subprocess.run([promtool, "check", "rules", str(bad)], capture_output=True, text=True, timeout=60)
    assert proc.returncode != 0
    assert "bad.yaml" in proc.stdout + proc.stderr
