"""`knhk-otel live-check` refuses wrong arguments, unwritable outputs and malformed input up front,
in one line and within a time and memory bound; its HTTP receiver survives hostile bodies.

The CLI cases run it as a process (`bounded_cli`); the receiver cases run `LiveCheck` in-process and
read the file descriptor 2 to prove that nothing reached stderr as a traceback.
"""

from __future__ import annotations

import http.client
import json
import socket
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from knhk_otel.schema.model import ResolvedRegistry
from knhk_otel.validate.server import LiveCheck, LiveCheckOptions

BoundedCli = Callable[..., Any]
SECONDS = 30.0
RSS_MIB = 400.0
NO_LISTENERS = ("--otlp-grpc-port", "0", "--otlp-http-port", "0", "--admin-port", "0")


def _line(result: Any) -> str:
    assert not result.timed_out and result.seconds < SECONDS
    assert result.max_rss_mib < RSS_MIB, f"peak RSS {result.max_rss_mib:.0f} MiB"
    return str(result.one_line())


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (
            ["--otlp-grpc-port", "70000"],
            "argument --otlp-grpc-port: 70000 is not a port (0-65535; 0 picks a free one)",
        ),
        (["--admin-port", "-1"], "argument --admin-port: -1 is not a port (0-65535; 0 picks a free one)"),
        (["--otlp-http-port", "http"], "argument --otlp-http-port: 'http' is not a port number"),
        (
            ["--address", "localhost:4317"],
            "argument --address: 'localhost:4317' is not an IP address to listen on "
            "(e.g. 127.0.0.1, ::1, 0.0.0.0)",
        ),
        (
            ["--inactivity-timeout", "-5"],
            "argument --inactivity-timeout: -5 must be a finite number of seconds >= 0 (0 = never)",
        ),
        (
            ["--inactivity-timeout", "nan"],
            "argument --inactivity-timeout: nan must be a finite number of seconds >= 0 (0 = never)",
        ),
        (["--max-payload-bytes", "0"], "argument --max-payload-bytes: 0 must be a positive number of bytes"),
    ],
)
def test_a_wrong_argument_is_one_line_before_anything_runs(
    args: list[str], expected: str, shop_dir: Path, bounded_cli: BoundedCli
) -> None:
    result = bounded_cli("live-check", "-r", str(shop_dir), *args, timeout=SECONDS)
    assert result.code == 2
    assert _line(result) == f"knhk-otel live-check: error: {expected} (see `knhk-otel live-check --help`)"


def test_outputs_are_checked_before_listening(
    shop_dir: Path, tmp_path: Path, bounded_cli: BoundedCli
) -> None:
    existing = tmp_path / "report.txt"
    existing.write_text("not a folder\n", encoding="utf-8")
    cases = {
        ("-o", str(existing)): f"-o {existing}: is an existing file; -o takes a folder",
        (
            "--ports-file",
            str(tmp_path),
        ): f"--ports-file {tmp_path}: is a folder; --ports-file takes a file path",
        ("--ports-file", "/proc/knhk/ports.json"): "--ports-file /proc/knhk/ports.json: cannot write in "
        "folder /proc (",
        ("-o", str(existing / "sub")): f"-o {existing / 'sub'}: {existing} is a file, not a folder; "
        "choose a path under a folder",
    }
    for args, expected in cases.items():
        # no --inactivity-timeout: had the check come after start-up, this would run until killed
        result = bounded_cli("live-check", "-r", str(shop_dir), *NO_LISTENERS, *args, timeout=SECONDS)
        assert result.code == 2, args
        line = _line(result)
        assert line.startswith(f"knhk-otel live-check: {expected}"), line
        assert "listening" not in result.err


def test_an_unwritable_report_folder_is_refused_at_start_up(
    shop_dir: Path, tmp_path: Path, bounded_cli: BoundedCli
) -> None:
    import os

    if os.geteuid() == 0:
        pytest.skip("root writes through permission bits; /proc stands for an unwritable folder above")
    locked = tmp_path / "locked"
    locked.mkdir(mode=0o500)
    result = bounded_cli("live-check", "-r", str(shop_dir), *NO_LISTENERS, "-o", str(locked / "r"))
    assert result.code == 2
    assert f"cannot write in folder {locked}" in _line(result)


def test_a_port_in_use_names_the_listener_and_the_port(shop_dir: Path, bounded_cli: BoundedCli) -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        for flag, listener in (("--otlp-http-port", "OTLP/HTTP"), ("--otlp-grpc-port", "OTLP/gRPC")):
            args = list(NO_LISTENERS)
            args[args.index(flag) + 1] = str(port)
            result = bounded_cli("live-check", "-r", str(shop_dir), *args, timeout=SECONDS)
            assert result.code == 2
            assert _line(result) == (
                f"knhk-otel live-check: cannot listen: {listener} listener on 127.0.0.1:{port}: "
                f"Address already in use; stop what uses it or pick another port with {flag} "
                "(0 picks a free one)"
            )


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        (b'{"resourceSpans": []}\n\xff', "in.json:2: not UTF-8 (byte 0xff at offset 22); OTLP JSON is UTF-8"),
        (b"[" * 100_000 + b"]" * 100_000, "in.json: JSON nested too deeply to be telemetry"),
        (b'[{"span": 5}]', "in.json: [0].span: expected an object, got int"),
        (b'[{"metric": {"data_points": {}}}]', "in.json: [0].metric.data_points: expected a list, got dict"),
        (b'"a string"', "in.json: expected a JSON object or array"),
    ],
)
def test_a_bad_input_file_is_one_line(
    content: bytes, expected: str, shop_dir: Path, tmp_path: Path, bounded_cli: BoundedCli
) -> None:
    (tmp_path / "in.json").write_bytes(content)
    result = bounded_cli("live-check", "-r", str(shop_dir), "--input-source", "in.json", cwd=tmp_path)
    assert result.code == 2
    assert _line(result) == f"knhk-otel live-check: {expected}"


def test_bad_stdin_is_one_line(shop_dir: Path, bounded_cli: BoundedCli) -> None:
    result = bounded_cli("live-check", "-r", str(shop_dir), "--input-source", "stdin", stdin=b"\xc3\x28")
    assert result.code == 2
    assert (
        _line(result)
        == "knhk-otel live-check: <stdin>:1: not UTF-8 (byte 0xc3 at offset 0); OTLP JSON is UTF-8"
    )


# --- the HTTP receiver against hostile clients ----------------------------------------------------


@pytest.fixture
def live(shop: ResolvedRegistry) -> Iterator[LiveCheck]:
    lc = LiveCheck(shop, LiveCheckOptions(grpc_port=None, http_port=0, admin_port=None, read_timeout=0.5))
    lc.start()
    yield lc
    lc.stop()
    lc.close()


def _post(port: int, body: bytes) -> tuple[int, bytes]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        conn.request("POST", "/v1/traces", body=body, headers={"Content-Type": "application/json"})
        resp = conn.getresponse()
        return resp.status, resp.read()
    finally:
        conn.close()


def test_a_body_nested_100k_deep_is_a_400_and_counted_without_a_traceback(
    live: LiveCheck, capfd: pytest.CaptureFixture[str]
) -> None:
    port = live.ports["http"]
    deep = b'{"resourceSpans": ' + b"[" * 100_000 + b"]" * 100_000 + b"}"
    status, body = _post(port, deep)
    assert status == 400
    assert json.loads(body)["message"] == "JSON nested too deeply"
    assert _post(port, b'{"resourceSpans": []}')[0] == 200  # still serving
    report = live.stop()
    assert report["statistics"]["input_errors"] == 1
    assert "Traceback" not in capfd.readouterr().err


def test_a_content_length_larger_than_the_body_is_dropped_after_the_read_timeout(
    live: LiveCheck, capfd: pytest.CaptureFixture[str]
) -> None:
    port = live.ports["http"]
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        sock.sendall(
            b"POST /v1/traces HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
            b'Content-Length: 1000\r\n\r\n{"resourceSpans"'
        )
        start = time.monotonic()
        reply = b""
        while chunk := sock.recv(4096):  # the server answers, then closes: recv returns b""
            reply += chunk
        waited = time.monotonic() - start
    assert reply.startswith(b"HTTP/1.1 408 ")
    assert b"Connection: close" in reply
    assert waited < 5.0  # read_timeout is 0.5 s; without it the connection is held forever
    assert _post(port, b'{"resourceSpans": []}')[0] == 200
    report = live.stop()
    assert report["statistics"]["input_errors"] == 1
    assert "Traceback" not in capfd.readouterr().err
