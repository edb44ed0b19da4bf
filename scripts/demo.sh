#!/usr/bin/env bash
# The demo: a local instrumented mesh whose telemetry is validated live.
# Starts `knhk-otel live-check` on free loopback ports, runs `knhk-mesh up` (strict in-process
# validation, and OTLP export to the live-check), then stops the live-check and prints its report.
# Exit code: the mesh's if it failed, else live-check's verdict (--fail-on violation).
#
# Settings (environment): NODES (50), BYZANTINE (3), SEED (7), ROUNDS (20), PROTOCOL (grpc or
# http/protobuf; default grpc), KNHK_BIN (.venv/bin).
set -euo pipefail
cd "$(dirname "$0")/.."

BIN=${KNHK_BIN:-.venv/bin}
NODES=${NODES:-50}
BYZANTINE=${BYZANTINE:-3}
SEED=${SEED:-7}
ROUNDS=${ROUNDS:-20}
PROTOCOL=${PROTOCOL:-grpc}
WORK=$(mktemp -d "${TMPDIR:-/tmp}/knhk-demo.XXXXXX")
LIVE_PID=""

cleanup() {
    if [[ -n "$LIVE_PID" ]] && kill -0 "$LIVE_PID" 2>/dev/null; then
        kill -TERM "$LIVE_PID" 2>/dev/null || true
        wait "$LIVE_PID" 2>/dev/null || true
    fi
    rm -rf "$WORK"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

say() { printf '\n== %s\n' "$*"; }

say "live-check of schema/ on free loopback ports"
"$BIN/knhk-otel" live-check -r schema --address 127.0.0.1 \
    --otlp-grpc-port 0 --otlp-http-port 0 --admin-port 0 --ports-file "$WORK/ports.json" \
    --inactivity-timeout 300 --format ansi -o "$WORK/report" --fail-on violation &
LIVE_PID=$!
for _ in $(seq 1 100); do
    [[ -s "$WORK/ports.json" ]] && break
    kill -0 "$LIVE_PID" 2>/dev/null || { echo "live-check exited before listening" >&2; exit 2; }
    sleep 0.1
done
[[ -s "$WORK/ports.json" ]] || { echo "live-check did not listen within 10 s" >&2; exit 2; }
port() { "$BIN/python" -c 'import json,sys; print(json.load(open(sys.argv[1]))[sys.argv[2]])' "$WORK/ports.json" "$1"; }
admin() {
    "$BIN/python" - "$@" <<'PY'
import sys, urllib.request
method, url = sys.argv[1], sys.argv[2]
req = urllib.request.Request(url, method=method, data=b"" if method == "POST" else None)
with urllib.request.urlopen(req, timeout=60) as resp:
    sys.exit(0 if resp.status == 200 else 1)
PY
}
if [[ $PROTOCOL == grpc ]]; then ENDPOINT="http://127.0.0.1:$(port grpc)"; else ENDPOINT="http://127.0.0.1:$(port http)"; fi
ADMIN="http://127.0.0.1:$(port admin)"
for _ in $(seq 1 50); do admin GET "$ADMIN/health" 2>/dev/null && break; sleep 0.1; done

say "knhk-mesh up: $NODES agents, $BYZANTINE Byzantine, seed $SEED, exporting OTLP ($PROTOCOL) to $ENDPOINT"
set +e
OTEL_EXPORTER_OTLP_ENDPOINT="$ENDPOINT" OTEL_EXPORTER_OTLP_PROTOCOL="$PROTOCOL" \
    timeout 600 "$BIN/knhk-mesh" up --transport memory --nodes "$NODES" --byzantine "$BYZANTINE" \
    --seed "$SEED" --rounds "$ROUNDS" --export
MESH=$?
set -e

say "live-check report"
admin POST "$ADMIN/stop"
set +e
wait "$LIVE_PID"
VERDICT=$?
set -e
LIVE_PID=""
sed -n '/^samples:/,$p' "$WORK/report/live_check.txt"
if [[ $MESH -ne 0 ]]; then
    echo "knhk-mesh up failed (exit $MESH)" >&2
    exit "$MESH"
fi
if [[ $VERDICT -eq 0 ]]; then
    say "every exported span, metric point and event conforms to schema/"
else
    say "live-check found violations (exit $VERDICT)"
fi
exit "$VERDICT"
