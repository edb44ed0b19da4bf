#!/usr/bin/env bash
# Telemetry schema CI: check the registry, check that generated code is fresh, then live-check the
# telemetry an emitter sends over OTLP (gRPC and HTTP) and exit with live-check's verdict.
#
# Settings (environment):
#   KNHK_BIN            where knhk-otel and python live (default: .venv/bin)
#   REGISTRY            registry directory (default: schema)
#   DIAGNOSTIC_FORMAT   ansi | json | gh_workflow_command (default: ansi; the GitHub workflow sets the last)
#   FAIL_ON             violation | improvement | information | none (default: violation)
#   TELEMETRY_EMITTER   command that emits telemetry to $OTEL_EXPORTER_OTLP_ENDPOINT, run once per
#                       protocol (default: python -m knhk_otel.harness.selftest — every generated
#                       helper — once per protocol, then `knhk-mesh up --export` when the mesh exists)
#   REPORT_DIR          where the live-check report is written (default: a temporary directory)
#   CI_TIMEOUT          seconds any one step may take (default: 120)
set -euo pipefail
cd "$(dirname "$0")/.."

BIN=${KNHK_BIN:-.venv/bin}
REGISTRY=${REGISTRY:-schema}
FORMAT=${DIAGNOSTIC_FORMAT:-ansi}
FAIL_ON=${FAIL_ON:-violation}
STEP_TIMEOUT=${CI_TIMEOUT:-120}
WORK=$(mktemp -d "${TMPDIR:-/tmp}/telemetry-schema-ci.XXXXXX")
REPORT_DIR=${REPORT_DIR:-$WORK/report}
# shellcheck source=scripts/livecheck.sh
source scripts/livecheck.sh
trap livecheck_cleanup EXIT
trap 'exit 130' INT TERM

step() { echo "== telemetry-schema-ci: $*" >&2; }

step "check $REGISTRY"
timeout "$STEP_TIMEOUT" "$BIN/knhk-otel" check -r "$REGISTRY" --diagnostic-format "$FORMAT"

step "generated code is up to date"
timeout "$STEP_TIMEOUT" "$BIN/knhk-otel" generate -r "$REGISTRY" --check

step "live-check on free ports"
livecheck_start "$REGISTRY" "$FAIL_ON" "$REPORT_DIR" "$STEP_TIMEOUT"

emit() {
    if [[ -n "${TELEMETRY_EMITTER:-}" ]]; then
        timeout "$STEP_TIMEOUT" bash -c "$TELEMETRY_EMITTER"
    else
        timeout "$STEP_TIMEOUT" "$BIN/python" -m knhk_otel.harness.selftest --validation off
    fi
}

step "emit over OTLP/gRPC"
OTEL_EXPORTER_OTLP_ENDPOINT="http://127.0.0.1:$(port grpc)" OTEL_EXPORTER_OTLP_PROTOCOL=grpc \
    OTEL_EXPORTER_OTLP_COMPRESSION=gzip emit
step "emit over OTLP/HTTP"
OTEL_EXPORTER_OTLP_ENDPOINT="http://127.0.0.1:$(port http)" OTEL_EXPORTER_OTLP_PROTOCOL=http/protobuf emit
if [[ -z "${TELEMETRY_EMITTER:-}" && -x "$BIN/knhk-mesh" ]]; then
    step "run the mesh (memory transport, Byzantine agents) exporting over OTLP/HTTP"
    OTEL_EXPORTER_OTLP_ENDPOINT="http://127.0.0.1:$(port http)" OTEL_EXPORTER_OTLP_PROTOCOL=http/protobuf \
        timeout "$STEP_TIMEOUT" "$BIN/knhk-mesh" up --transport memory --nodes 20 --byzantine 2 --rounds 10 \
        --seed 7 --export >/dev/null
fi

step "stop live-check and read its verdict"
livecheck_stop
sed -n '/^samples:/,$p' "$REPORT_DIR/live_check.txt" >&2
if [[ $VERDICT -eq 0 ]]; then
    step "telemetry conforms to $REGISTRY (fail-on $FAIL_ON)"
else
    step "telemetry breaks $REGISTRY (exit $VERDICT); report: $REPORT_DIR/live_check.txt"
    grep -B1 -E '^\s+violation' "$REPORT_DIR/live_check.txt" >&2 || true
fi
exit "$VERDICT"
