"""A real Prometheus (Debian's `prometheus` and `promtool`) for the operator tests.

`start_prometheus(scrape_configs, rule_files=...)` starts one on 127.0.0.1 on a free port with a
config written into the test's tmp dir, waits until it is ready and stops it after the test.
Where the binaries are absent the tests skip with a reason, except under CI or
KNHK_REQUIRE_REFERENCE, where a missing backend fails instead of passing on nothing.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import yaml

READY_TIMEOUT_S = 30.0


def _required() -> bool:
    return any(
        os.environ.get(v, "").strip() not in ("", "0", "false") for v in ("CI", "KNHK_REQUIRE_REFERENCE")
    )


def prometheus_binary(name: str) -> str:
    """Path of `prometheus` or `promtool`; skips (fails under CI / KNHK_REQUIRE_REFERENCE) when absent."""
    path = shutil.which(name)
    if path is None:
        reason = f"{name} not installed (Debian's `prometheus`; `make test` installs it as root)"
        if _required():
            pytest.fail(f"{reason}, and CI/KNHK_REQUIRE_REFERENCE forbids skipping")
        pytest.skip(reason)
    return path


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class PrometheusServer:
    """One running Prometheus and the few API calls the tests make."""

    url: str
    workdir: Path
    process: subprocess.Popen[bytes]
    log: Path
    _stopped: bool = field(default=False, repr=False)

    def api(self, path: str, **params: str) -> Any:
        query = f"?{urllib.parse.urlencode(params)}" if params else ""
        with urllib.request.urlopen(f"{self.url}{path}{query}", timeout=10) as resp:
            body = json.loads(resp.read())
        if body.get("status") != "success":
            raise AssertionError(f"{path} {params}: {body}")
        return body["data"]

    def query(self, expr: str) -> list[dict[str, Any]]:
        """Instant query; the result vector (or matrix) as Prometheus returns it."""
        data = self.api("/api/v1/query", query=expr)
        result: list[dict[str, Any]] = data["result"]
        return result

    def alerts(self) -> list[dict[str, Any]]:
        result: list[dict[str, Any]] = self.api("/api/v1/alerts")["alerts"]
        return result

    def rules(self) -> list[dict[str, Any]]:
        groups: list[dict[str, Any]] = self.api("/api/v1/rules")["groups"]
        return [rule for group in groups for rule in group["rules"]]

    def targets(self) -> list[dict[str, Any]]:
        result: list[dict[str, Any]] = self.api("/api/v1/targets")["activeTargets"]
        return result

    def wait_for(self, what: str, predicate: Callable[[], bool], timeout_s: float = 60.0) -> None:
        """Poll `predicate` every 0.5 s until true; fail naming `what` (and the log tail) after timeout."""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise AssertionError(f"prometheus exited ({self.process.returncode}): {self.log_tail()}")
            if predicate():
                return
            time.sleep(0.5)
        raise AssertionError(f"timed out after {timeout_s:.0f} s waiting for {what}; log: {self.log_tail()}")

    def log_tail(self, lines: int = 15) -> str:
        try:
            return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return "(no log)"

    def stop(self) -> None:
        if self._stopped:
            return
        self._stopped = True
        self.process.terminate()
        try:
            self.process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(timeout=5)


StartPrometheus = Callable[..., PrometheusServer]


def _ready(url: str) -> bool:
    try:
        with urllib.request.urlopen(f"{url}/-/ready", timeout=2) as resp:
            return resp.status == 200
    except (urllib.error.URLError, OSError):
        return False


@pytest.fixture
def start_prometheus(tmp_path: Path) -> Iterator[StartPrometheus]:
    """Factory: `start_prometheus(scrape_configs, rule_files=[...], scrape_interval="1s", ...)`.

    `scrape_configs` is the list of Prometheus scrape_config dicts; `rule_files` are copied into the
    working directory. Every server started is stopped when the test ends.
    """
    binary = prometheus_binary("prometheus")
    started: list[PrometheusServer] = []

    def start(
        scrape_configs: Sequence[dict[str, Any]],
        *,
        rule_files: Sequence[Path] = (),
        scrape_interval: str = "1s",
        evaluation_interval: str = "1s",
    ) -> PrometheusServer:
        workdir = tmp_path / f"prometheus-{len(started)}"
        (workdir / "rules").mkdir(parents=True)
        copied = []
        for rule_file in rule_files:
            target = workdir / "rules" / Path(rule_file).name
            shutil.copyfile(rule_file, target)
            copied.append(str(target))
        config = {
            "global": {"scrape_interval": scrape_interval, "evaluation_interval": evaluation_interval},
            "rule_files": copied,
            "scrape_configs": list(scrape_configs),
        }
        config_path = workdir / "prometheus.yml"
        config_path.write_text(yaml.safe_dump(config, sort_keys=False), encoding="utf-8")
        last_error = ""
        for _attempt in range(3):  # a free port can be taken between probing and binding
            port = free_port()
            log = workdir / f"prometheus-{port}.log"
            with log.open("wb") as out:
                process = subprocess.Popen(
                    [
                        binary,
                        f"--config.file={config_path}",
                        f"--storage.tsdb.path={workdir / 'data'}",
                        f"--web.listen-address=127.0.0.1:{port}",
                        "--web.enable-lifecycle",
                        "--storage.tsdb.retention.time=1h",
                    ],
                    stdout=out,
                    stderr=subprocess.STDOUT,
                    cwd=workdir,
                )
            server = PrometheusServer(f"http://127.0.0.1:{port}", workdir, process, log)
            started.append(server)
            deadline = time.monotonic() + READY_TIMEOUT_S
            while time.monotonic() < deadline and process.poll() is None and not _ready(server.url):
                time.sleep(0.2)
            if process.poll() is None and _ready(server.url):
                return server
            server.stop()
            last_error = server.log_tail()
        raise AssertionError(f"prometheus did not become ready: {last_error}")

    yield start
    for server in started:
        server.stop()


@pytest.fixture
def promtool() -> str:
    return prometheus_binary("promtool")
