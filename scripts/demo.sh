#!/usr/bin/env bash
# The demo: a local instrumented mesh whose telemetry is validated live.
#
# TRANSPORT=quic (default): `knhk-mesh up --transport quic` starts NODES (16) node processes on
# 127.0.0.1 talking QUIC with mutual authentication, BYZANTINE (2) of them attacking, writes at three
# nodes, runs DURATION (20) seconds with a live table, validates every exported span, metric point
# and event in its embedded live-check, prints the summary (JSON beside it) and exits non-zero on a
# schema violation or if the honest nodes did not converge.
#
# TRANSPORT=memory: starts `knhk-otel live-check` on free loopback ports, runs `knhk-mesh up
# --transport memory` (strict in-process validation, and OTLP export to the live-check), then stops
# the live-check and prints its report. Exit code: the mesh's if it failed, else live-check's verdict.
# Settings: NODES (50), BYZANTINE (3), SEED (7), ROUNDS (20), PROTOCOL (grpc or http/protobuf).
#
# KNHK_BIN (.venv/bin) says where the commands are.
set -euo pipefail
cd "$(dirname "$0")/.."

BIN=${KNHK_BIN:-.venv/bin}
if [[ ${TRANSPORT:-quic} == quic ]]; then
    printf '\n== knhk-mesh up --transport quic: %s node processes, %s Byzantine, %s s\n' \
        "${NODES:-16}" "${BYZANTINE:-2}" "${DURATION:-20}"
    KNHK_OTEL_REGISTRY=${KNHK_OTEL_REGISTRY:-schema} timeout 600 "$BIN/knhk-mesh" up --transport quic \
        --nodes "${NODES:-16}" --byzantine "${BYZANTINE:-2}" --duration "${DURATION:-20}"
    exit $?
fi
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
case $VERDICT in
    0) say "every exported span, metric point and event conforms to schema/" ;;
    1) say "live-check found violations (exit 1)" ;;
    3) say "live-check received no telemetry at all (exit 3): the mesh exported nothing" ;;
    *) say "live-check failed (exit $VERDICT): see its messages above" ;;
esac
exit "$VERDICT"
