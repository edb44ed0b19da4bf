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
# shellcheck source=scripts/livecheck.sh
source scripts/livecheck.sh
trap livecheck_cleanup EXIT
trap 'exit 130' INT TERM

say() { printf '\n== %s\n' "$*"; }

say "live-check of schema/ on free loopback ports"
livecheck_start schema violation "$WORK/report" 300
if [[ $PROTOCOL == grpc ]]; then ENDPOINT="http://127.0.0.1:$(port grpc)"; else ENDPOINT="http://127.0.0.1:$(port http)"; fi

say "knhk-mesh up: $NODES agents, $BYZANTINE Byzantine, seed $SEED, exporting OTLP ($PROTOCOL) to $ENDPOINT"
set +e
OTEL_EXPORTER_OTLP_ENDPOINT="$ENDPOINT" OTEL_EXPORTER_OTLP_PROTOCOL="$PROTOCOL" \
    timeout 600 "$BIN/knhk-mesh" up --transport memory --nodes "$NODES" --byzantine "$BYZANTINE" \
    --seed "$SEED" --rounds "$ROUNDS" --export
MESH=$?
set -e

say "live-check report"
livecheck_stop
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
