"""Bad OTLP input gets a 4xx / gRPC error and a finding; the server keeps serving and loses nothing."""

from __future__ import annotations

import gzip
import http.client
import json
import socket
from collections.abc import Iterator

import grpc
import pytest
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, KeyValue
from opentelemetry.proto.trace.v1.trace_pb2 import ResourceSpans, ScopeSpans, Span

from knhk_otel.schema.model import ResolvedRegistry
from knhk_otel.validate.server import LiveCheck, LiveCheckOptions

LIMIT = 4096
TRACE_METHOD = "/opentelemetry.proto.collector.trace.v1.TraceService/Export"


def _refund_request(order_id: str) -> bytes:
    span = Span(
        name="shop.refund",
        kind=Span.SPAN_KIND_INTERNAL,
        attributes=[KeyValue(key="shop.order.id", value=AnyValue(string_value=order_id))],
    )
    request = ExportTraceServiceRequest(
        resource_spans=[ResourceSpans(scope_spans=[ScopeSpans(spans=[span])])]
    )
    return request.SerializeToString()


@pytest.fixture
def live(shop: ResolvedRegistry) -> Iterator[LiveCheck]:
    lc = LiveCheck(shop, LiveCheckOptions(grpc_port=0, http_port=0, admin_port=None, max_payload_bytes=LIMIT))
    lc.start()
    yield lc
    lc.stop()
    lc.close()


def _post(port: int, path: str, body: bytes, headers: dict[str, str]) -> tuple[int, bytes]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        conn.request("POST", path, body=body, headers=headers)
        resp = conn.getresponse()
        return resp.status, resp.read()
    finally:
        conn.close()


PROTO = {"Content-Type": "application/x-protobuf"}


def test_each_bad_http_request_gets_its_4xx_and_valid_ones_beside_them_are_kept(live: LiveCheck) -> None:
    port = live.ports["http"]
    good = _refund_request("o-1")
    bomb = gzip.compress(b"\0" * (LIMIT * 50))
    assert len(bomb) < LIMIT  # small on the wire, huge once inflated
    cases = [
        ("/v1/traces", b"\xff\xff\xff\xff", PROTO, 400),  # malformed protobuf
        ("/v1/traces", good, {"Content-Type": "text/plain"}, 415),  # wrong content type
        ("/v1/traces", gzip.compress(good)[:-6], {**PROTO, "Content-Encoding": "gzip"}, 400),  # truncated
        ("/v1/traces", bomb, {**PROTO, "Content-Encoding": "gzip"}, 413),  # gzip bomb
        ("/v1/traces", good, {**PROTO, "Content-Encoding": "br"}, 415),  # unknown encoding
        ("/v1/profiles", good, PROTO, 404),  # unknown signal
        ("/v1/traces", b"{not json", {"Content-Type": "application/json"}, 400),
        ("/v1/traces", b"[1, 2]", {"Content-Type": "application/json"}, 400),
        ("/v1/traces", b"x" * (LIMIT + 1), PROTO, 413),  # over the size limit
    ]
    statuses = []
    for i, (path, body, headers, _) in enumerate(cases):
        statuses.append(_post(port, path, body, headers)[0])
        assert _post(port, "/v1/traces", _refund_request(f"o-{i}"), PROTO) == (200, b"")
    assert statuses == [expected for *_, expected in cases]
    gz_status, _ = _post(port, "/v1/traces", gzip.compress(good), {**PROTO, "Content-Encoding": "gzip"})
    assert gz_status == 200
    report = live.stop()
    st = report["statistics"]
    assert st["samples_by_type"] == {"span": len(cases) + 1}
    assert st["samples_without_findings"] == len(cases) + 1
    assert st["input_errors"] == len(cases)
    rejections = report["samples"]
    assert len(rejections) == len(cases)  # one entry per distinct reason
    assert {(r["signal_type"], r["signal_name"]) for r in rejections} == {("request", "otlp-http")}
    assert {f["id"] for r in rejections for f in r["findings"]} == {"invalid_request"}
    assert st["findings_by_id"] == {"invalid_request": len(cases)}


def test_a_huge_declared_length_is_refused_before_reading(live: LiveCheck) -> None:
    with socket.create_connection(("127.0.0.1", live.ports["http"]), timeout=10) as sock:
        sock.sendall(
            b"POST /v1/traces HTTP/1.1\r\nHost: x\r\nContent-Type: application/x-protobuf\r\n"
            b"Content-Length: 999999999\r\n\r\n"
        )
        head = sock.recv(4096)
    assert head.startswith(b"HTTP/1.1 413")


def test_a_body_shorter_than_its_length_is_a_400(live: LiveCheck) -> None:
    with socket.create_connection(("127.0.0.1", live.ports["http"]), timeout=10) as sock:
        sock.sendall(
            b"POST /v1/traces HTTP/1.1\r\nHost: x\r\nContent-Type: application/x-protobuf\r\n"
            b"Content-Length: 100\r\n\r\nabc"
        )
        sock.shutdown(socket.SHUT_WR)
        head = sock.recv(4096)
    assert head.startswith(b"HTTP/1.1 400")


def test_otlp_json_over_http_is_validated(live: LiveCheck) -> None:
    doc = {
        "resourceSpans": [
            {
                "scopeSpans": [
                    {
                        "spans": [
                            {
                                "traceId": "5b8efff798038103d269b633813fc60c",
                                "spanId": "eee19b7ec3c1b174",
                                "name": "shop.checkout",
                                "kind": 2,
                                "attributes": [
                                    {"key": "shop.order.id", "value": {"stringValue": "o-1"}},
                                    {"key": "shop.item.count", "value": {"intValue": "3"}},
                                    {"key": "shop.payment.method", "value": {"stringValue": "cash"}},
                                ],
                            }
                        ]
                    }
                ]
            }
        ]
    }
    status, body = _post(
        live.ports["http"], "/v1/traces", json.dumps(doc).encode(), {"Content-Type": "application/json"}
    )
    assert (status, body) == (200, b"{}")
    st = live.stop()["statistics"]
    assert (st["samples_by_type"], st["total_findings"]) == ({"span": 1}, 0)


def test_bad_grpc_requests_get_invalid_argument_and_resource_exhausted(live: LiveCheck) -> None:
    with grpc.insecure_channel(f"127.0.0.1:{live.ports['grpc']}") as channel:
        export = channel.unary_unary(TRACE_METHOD)
        with pytest.raises(grpc.RpcError) as malformed:
            export(b"\xff\xff\xff\xff", timeout=10)
        assert malformed.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        with pytest.raises(grpc.RpcError) as oversized:
            export(_refund_request("x" * (LIMIT + 10)), timeout=10)
        assert oversized.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
        with pytest.raises(grpc.RpcError) as bomb:
            export(_refund_request("y" * (LIMIT * 4)), timeout=10, compression=grpc.Compression.Gzip)
        assert bomb.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
        assert export(_refund_request("o-1"), timeout=10) == b""
        assert export(_refund_request("o-2"), timeout=10, compression=grpc.Compression.Gzip) == b""
    report = live.stop()
    st = report["statistics"]
    assert st["samples_by_type"] == {"span": 2}
    assert st["findings_by_id"] == {"invalid_request": 2}  # the gzip bomb stops in grpc core, before us


def test_errors_carry_a_google_rpc_status_in_the_request_encoding(live: LiveCheck) -> None:
    from google.rpc import status_pb2

    status, body = _post(live.ports["http"], "/v1/metrics", b"\xff\xff", PROTO)
    assert status == 400
    decoded = status_pb2.Status.FromString(body)
    assert decoded.code == 3  # INVALID_ARGUMENT
    assert "malformed metrics protobuf" in decoded.message
    status, body = _post(
        live.ports["http"], "/v1/logs", b"x" * (LIMIT + 1), {"Content-Type": "application/json"}
    )
    assert (status, json.loads(body)["code"]) == (413, 8)  # RESOURCE_EXHAUSTED
