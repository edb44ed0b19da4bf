"""OTLP/HTTP receiver on the stdlib: /v1/traces, /v1/metrics, /v1/logs; protobuf or JSON; gzip.

Sizes are checked before reading (Content-Length) and again while decompressing, so neither a
huge body nor a gzip bomb can make the receiver allocate more than the limit. A client that stalls
mid-request (a Content-Length larger than what it sends) is dropped after `read_timeout` seconds,
and a body nested too deeply to decode is a 400 like any other malformed body: no request ever
ends in a traceback, and every rejected one is counted.
"""

from __future__ import annotations

import json
import logging
import socket
import sys
import threading
import zlib
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from google.protobuf.message import DecodeError
from google.rpc import status_pb2

from knhk_otel.validate.receiver_grpc import SERVICES, Ingest
from knhk_otel.validate.samples import OTLP_SIGNALS, SampleFormatError, parse_otlp_json

_log = logging.getLogger(__name__)

PATHS: dict[str, str] = {"/v1/traces": "traces", "/v1/metrics": "metrics", "/v1/logs": "logs"}
PROTOBUF = "application/x-protobuf"
JSON = "application/json"
_RESPONSES = {signal: response for signal, response in SERVICES.values()}
#: HTTP status → google.rpc.Code of the Status body (INVALID_ARGUMENT unless said otherwise).
_RPC_CODES = {404: 5, 405: 12, 413: 8}


class _Rejected(Exception):
    def __init__(self, status: int, reason: str) -> None:
        super().__init__(reason)
        self.status = status
        self.reason = reason


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    sink: Ingest
    max_payload_bytes: int

    def handle_error(self, request: Any, client_address: Any) -> None:
        """A connection that failed in a way the handler did not foresee: one log line, no traceback."""
        exc = sys.exc_info()[1]
        _log.warning(
            "otlp-http: connection from %s dropped: %s: %s", client_address[0], type(exc).__name__, exc
        )


class _Server6(_Server):
    address_family = socket.AF_INET6


def make_server(address: str, port: int, handler: type[BaseHTTPRequestHandler]) -> Any:
    """A threading HTTP server bound to exactly `address` (IPv4 or IPv6 literal)."""
    server_class = _Server6 if ":" in address else _Server
    return server_class((address, port), handler)


class _Handler(BaseHTTPRequestHandler):
    server: _Server
    protocol_version = "HTTP/1.1"
    timeout = 10.0  # socket timeout of every connection; HttpReceiver sets its own per server class

    def log_message(self, format: str, *args: Any) -> None:
        _log.debug("otlp-http %s " + format, self.client_address[0], *args)

    def _reply(self, status: int, body: bytes, content_type: str) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        if self.close_connection:
            self.send_header("Connection", "close")
        self.end_headers()
        self.wfile.write(body)

    def _reject(self, exc: _Rejected, content_type: str) -> None:
        """OTLP/HTTP errors carry a google.rpc.Status in the request's encoding."""
        self.server.sink.reject("http", f"{self.path}: {exc.reason}")
        code = _RPC_CODES.get(exc.status, 3)
        if content_type == PROTOBUF:
            self._reply(
                exc.status, status_pb2.Status(code=code, message=exc.reason).SerializeToString(), PROTOBUF
            )
        else:
            self._reply(exc.status, json.dumps({"code": code, "message": exc.reason}).encode(), JSON)

    def do_POST(self) -> None:
        content_type = (self.headers.get("Content-Type") or "").split(";")[0].strip().lower()
        try:
            signal = PATHS.get(self.path.split("?", 1)[0])
            if signal is None:
                self._drain_or_close()
                raise _Rejected(404, "unknown path (expected /v1/traces, /v1/metrics or /v1/logs)")
            if content_type not in (PROTOBUF, JSON):
                self._drain_or_close()
                raise _Rejected(415, f"unsupported content type {content_type or '(none)'!r}")
            body = self._read_body()
            request = self._decode(signal, content_type, body)
        except _Rejected as exc:
            self._reject(exc, content_type)
            return
        self.server.sink.ingest(signal, request)
        if content_type == PROTOBUF:
            self._reply(200, _RESPONSES[signal]().SerializeToString(), PROTOBUF)
        else:
            self._reply(200, b"{}", JSON)

    def _drain_or_close(self) -> None:
        """Keep the connection usable after a rejection when the body is small; else close it."""
        length = self.headers.get("Content-Length")
        if length is not None and length.isdigit() and int(length) <= self.server.max_payload_bytes:
            self.rfile.read(int(length))
        else:
            self.close_connection = True

    def _read_body(self) -> bytes:
        limit = self.server.max_payload_bytes
        if "chunked" in (self.headers.get("Transfer-Encoding") or "").lower():
            self.close_connection = True
            raise _Rejected(411, "chunked bodies are not accepted; send Content-Length")
        raw_length = self.headers.get("Content-Length")
        if raw_length is None or not raw_length.strip().isdigit():
            self.close_connection = True
            raise _Rejected(411, "missing or invalid Content-Length")
        length = int(raw_length)
        if length > limit:
            self.close_connection = True
            raise _Rejected(413, f"body of {length} bytes is over the limit of {limit}")
        chunks: list[bytes] = []
        remaining = length
        while remaining:
            try:
                chunk = self.rfile.read(min(remaining, 1 << 16))
            except TimeoutError:
                self.close_connection = True
                raise _Rejected(
                    408, f"body stalled after {length - remaining} of {length} bytes (read timeout)"
                ) from None
            if not chunk:
                self.close_connection = True
                raise _Rejected(400, f"body ended after {length - remaining} of {length} bytes")
            chunks.append(chunk)
            remaining -= len(chunk)
        body = b"".join(chunks)
        encoding = (self.headers.get("Content-Encoding") or "identity").strip().lower()
        if encoding == "gzip":
            return _gunzip(body, limit)
        if encoding != "identity":
            raise _Rejected(415, f"unsupported content encoding {encoding!r}")
        return body

    def _decode(self, signal: str, content_type: str, body: bytes) -> Any:
        if content_type == PROTOBUF:
            try:
                return OTLP_SIGNALS[signal][0].FromString(body)
            except DecodeError as exc:
                raise _Rejected(400, f"malformed {signal} protobuf: {exc}") from exc
        try:
            doc = json.loads(body)
        except (UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise _Rejected(400, f"malformed JSON: {exc}") from exc
        except RecursionError:
            raise _Rejected(400, "JSON nested too deeply") from None
        if not isinstance(doc, dict):
            raise _Rejected(400, "OTLP JSON body must be an object")
        try:
            return parse_otlp_json(signal, doc)
        except SampleFormatError as exc:
            raise _Rejected(400, str(exc)) from exc
        except RecursionError:
            raise _Rejected(400, f"{signal} JSON nested too deeply") from None

    def do_GET(self) -> None:
        self._drain_or_close()
        self._reject(_Rejected(405, "only POST is accepted"), JSON)

    do_PUT = do_GET
    do_DELETE = do_GET


def _gunzip(body: bytes, limit: int) -> bytes:
    decompressor = zlib.decompressobj(wbits=16 + zlib.MAX_WBITS)
    try:
        out = decompressor.decompress(body, limit + 1)
    except zlib.error as exc:
        raise _Rejected(400, f"bad gzip body: {exc}") from exc
    if len(out) > limit or decompressor.unconsumed_tail:
        raise _Rejected(413, f"gzip body inflates to more than the limit of {limit} bytes")
    if not decompressor.eof:
        raise _Rejected(400, "truncated gzip body")
    return out


class HttpReceiver:
    def __init__(
        self,
        sink: Ingest,
        *,
        address: str = "127.0.0.1",
        port: int = 4318,
        max_payload_bytes: int = 16 * 1024 * 1024,
        read_timeout: float = 10.0,
    ) -> None:
        handler = type("_TimedHandler", (_Handler,), {"timeout": read_timeout})
        self._server: _Server = make_server(address, port, handler)
        self._server.sink = sink
        self._server.max_payload_bytes = max_payload_bytes
        self.address = address
        self.port: int = self._server.server_address[1]
        self._thread = threading.Thread(target=self._server.serve_forever, name="otlp-http", daemon=True)

    def start(self) -> int:
        self._thread.start()
        _log.info("OTLP/HTTP listening on %s:%d", self.address, self.port)
        return self.port

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)
