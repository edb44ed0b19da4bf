"""A receiver that only decodes: the project's OTLP/gRPC and OTLP/HTTP receivers around `DecodeOnly`.

Run as its own process (like `knhk-otel live-check`, which it stands beside in the end-to-end
bench): prints its ports as one JSON line, serves until a line arrives on stdin, then prints what
it read as one JSON line and exits.
"""

from __future__ import annotations

import json
import sys

from telemetry_mix import DecodeOnly

from knhk_otel.validate.receiver_grpc import GrpcReceiver
from knhk_otel.validate.receiver_http import HttpReceiver


def main() -> int:
    sink = DecodeOnly()
    grpc_receiver = GrpcReceiver(sink, address="127.0.0.1", port=0)
    http_receiver = HttpReceiver(sink, address="127.0.0.1", port=0)
    ports = {"grpc": grpc_receiver.start(), "http": http_receiver.start()}
    print(json.dumps(ports), flush=True)
    sys.stdin.readline()
    grpc_receiver.stop()
    http_receiver.stop()
    print(json.dumps({"spans": sink.spans, "items": sink.items, "rejected": sink.rejected}), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
