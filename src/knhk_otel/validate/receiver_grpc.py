"""OTLP/gRPC receiver: the three collector Export services, gzip accepted, sizes bounded.

Requests arrive as raw bytes (no deserializer) so that a malformed payload becomes our own
INVALID_ARGUMENT with a finding, not an opaque transport error.
"""

from __future__ import annotations

import logging
import socket
from concurrent import futures
from typing import Any, Protocol

import grpc
from google.protobuf.message import DecodeError
from opentelemetry.proto.collector.logs.v1 import logs_service_pb2
from opentelemetry.proto.collector.metrics.v1 import metrics_service_pb2
from opentelemetry.proto.collector.trace.v1 import trace_service_pb2

from knhk_otel.validate.samples import OTLP_SIGNALS

_log = logging.getLogger(__name__)


class Ingest(Protocol):
    """Where receivers hand decoded requests and report rejected ones."""

    def ingest(self, signal: str, request: Any) -> None: ...

    def reject(self, transport: str, reason: str) -> None: ...


#: gRPC service name → (signal, response class)
SERVICES: dict[str, tuple[str, Any]] = {
    "opentelemetry.proto.collector.trace.v1.TraceService": (
        "traces",
        trace_service_pb2.ExportTraceServiceResponse,
    ),
    "opentelemetry.proto.collector.metrics.v1.MetricsService": (
        "metrics",
        metrics_service_pb2.ExportMetricsServiceResponse,
    ),
    "opentelemetry.proto.collector.logs.v1.LogsService": (
        "logs",
        logs_service_pb2.ExportLogsServiceResponse,
    ),
}


class GrpcReceiver:
    def __init__(
        self,
        sink: Ingest,
        *,
        address: str = "127.0.0.1",
        port: int = 4317,
        max_payload_bytes: int = 16 * 1024 * 1024,
        workers: int = 4,
    ) -> None:
        self.sink = sink
        self.address = address
        self.requested_port = port
        self.max_payload_bytes = max_payload_bytes
        # grpc core refuses what is far over the limit (RESOURCE_EXHAUSTED, after decompression);
        # what is only somewhat over reaches the handler, which refuses it with a finding.
        hard_limit = min(2 * max_payload_bytes + 1024, 2**31 - 1)
        self._server = grpc.server(
            futures.ThreadPoolExecutor(max_workers=workers, thread_name_prefix="otlp-grpc"),
            options=[
                ("grpc.max_receive_message_length", hard_limit),
                ("grpc.so_reuseport", 0),
            ],
        )
        handlers = []
        for service, (signal, response_class) in SERVICES.items():
            method = grpc.unary_unary_rpc_method_handler(
                self._handler(signal, response_class),
                request_deserializer=None,
                response_serializer=lambda m: m.SerializeToString(),
            )
            handlers.append(grpc.method_handlers_generic_handler(service, {"Export": method}))
        self._server.add_generic_rpc_handlers(tuple(handlers))
        self.port = 0

    def _handler(self, signal: str, response_class: Any) -> Any:
        request_class = OTLP_SIGNALS[signal][0]

        def export(data: bytes, context: grpc.ServicerContext) -> Any:
            if len(data) > self.max_payload_bytes:
                reason = (
                    f"{signal} request of {len(data)} bytes is over the limit of {self.max_payload_bytes}"
                )
                self.sink.reject("grpc", reason)
                context.abort(grpc.StatusCode.RESOURCE_EXHAUSTED, reason)
            try:
                request = request_class.FromString(data)
            except DecodeError as exc:
                reason = f"malformed {signal} protobuf: {exc}"
                self.sink.reject("grpc", reason)
                context.abort(grpc.StatusCode.INVALID_ARGUMENT, reason)
            self.sink.ingest(signal, request)
            return response_class()

        return export

    def start(self) -> int:
        host = f"[{self.address}]" if ":" in self.address else self.address
        _probe_bind(self.address, self.requested_port)
        self.port = self._server.add_insecure_port(f"{host}:{self.requested_port}")
        if self.port == 0:
            raise OSError("cannot bind (the port is in use, or the address is not on this machine)")
        self._server.start()
        _log.info("OTLP/gRPC listening on %s:%d", self.address, self.port)
        return self.port

    def stop(self, grace: float = 2.0) -> None:
        self._server.stop(grace).wait()


def _probe_bind(address: str, port: int) -> None:
    """Bind the port once ourselves: grpc core reports a busy port only as a log line on stderr and a
    generic RuntimeError, while the socket's OSError says why (in use, address not available)."""
    family = socket.AF_INET6 if ":" in address else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as grpc does
        probe.bind((address, port))
