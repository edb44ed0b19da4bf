#!/usr/bin/env bash
# Telemetry schema CI: check the registry, check that generated code is fresh, then live-check what
# is emitted over OTLP (gRPC and HTTP) in two runs judged apart:
#   1. the synthetic self-test (every generated helper once, both protocols): the helpers conform;
#   2. the real emitters (the mesh, or TELEMETRY_EMITTER): they conform AND every signal listed in
#      EXPECT_SIGNALS arrived; the schema signals they never emitted are printed as UNCOVERED.
# No step is skipped silently: a missing command fails the run, and live-check itself fails when
# nothing arrived (exit 3) or a listed signal never did (exit 4). Exit: the first failing verdict.
#
# Settings (environment):
#   KNHK_BIN            where knhk-otel, knhk-mesh and python live (default: .venv/bin)
#   REGISTRY            registry directory (default: schema)
#   DIAGNOSTIC_FORMAT   ansi | json | gh_workflow_command (default: ansi; the GitHub workflow sets the last)
#   FAIL_ON             violation | improvement | information | none (default: violation)
#   TELEMETRY_EMITTER   the real emitter: a command that emits to $OTEL_EXPORTER_OTLP_ENDPOINT, run once
#                       per protocol (default: `knhk-mesh up` over the memory transport with Byzantine
#                       agents, exporting over OTLP/HTTP, then over OTLP/gRPC, then a 3-process QUIC
#                       drill, `python -m knhk_mesh.drill`, over OTLP/gRPC)
#   EXPECT_SIGNALS      what the real emitter must emit: a list file or `all-own` (default:
#                       scripts/expected-signals.txt, reviewed; it says which signals are not yet emitted)
#   REPORT_DIR          where the reports go: selftest/ and emitters/ (default: a temporary directory)
#   CI_TIMEOUT          seconds any one step may take (default: 120)
set -euo pipefail
cd "$(dirname "$0")/.."

BIN=${KNHK_BIN:-.venv/bin}
REGISTRY=${REGISTRY:-schema}
FORMAT=${DIAGNOSTIC_FORMAT:-ansi}
FAIL_ON=${FAIL_ON:-violation}
EXPECT=${EXPECT_SIGNALS:-scripts/expected-signals.txt}
STEP_TIMEOUT=${CI_TIMEOUT:-120}
WORK=$(mktemp -d "${TMPDIR:-/tmp}/telemetry-schema-ci.XXXXXX")
REPORT_DIR=${REPORT_DIR:-$WORK/report}
# shellcheck source=scripts/livecheck.sh
source scripts/livecheck.sh
trap livecheck_cleanup EXIT
trap 'exit 130' INT TERM

step() { echo "== telemetry-schema-ci: $*" >&2; }
fail() { echo "== telemetry-schema-ci: FAILED: $*" >&2; exit 2; }

for tool in knhk-otel python; do
    [[ -x "$BIN/$tool" ]] || fail "$BIN/$tool not found (run \`make venv\`, or set KNHK_BIN)"
done
if [[ -z "${TELEMETRY_EMITTER:-}" && ! -x "$BIN/knhk-mesh" ]]; then
    fail "$BIN/knhk-mesh not found: the real emitter cannot run (set TELEMETRY_EMITTER for another one)"
fi

step "check $REGISTRY"
timeout "$STEP_TIMEOUT" "$BIN/knhk-otel" check -r "$REGISTRY" --diagnostic-format "$FORMAT"

step "generated code is up to date"
timeout "$STEP_TIMEOUT" "$BIN/knhk-otel" generate -r "$REGISTRY" --check

# over PROTOCOL COMMAND...: run COMMAND exporting to the running live-check over grpc or http/protobuf.
over() {
    local protocol=$1 port=http
    shift
    [[ $protocol == grpc ]] && port=grpc
    OTEL_EXPORTER_OTLP_ENDPOINT="http://127.0.0.1:$(port "$port")" OTEL_EXPORTER_OTLP_PROTOCOL=$protocol \
        OTEL_EXPORTER_OTLP_COMPRESSION=gzip timeout "$STEP_TIMEOUT" "$@"
}

# finish NAME: stop live-check, show the report's summary, keep its verdict in the variable NAME.
finish() {
    livecheck_stop
    sed -n '/^samples:/,$p' "$REPORT_DIR/$1/live_check.txt" >&2
    if [[ $VERDICT -ne 0 ]]; then
        grep -B1 -E '^\s+violation' "$REPORT_DIR/$1/live_check.txt" >&2 || true
    fi
    printf -v "$1" '%s' "$VERDICT"
}

step "[1/2] the synthetic self-test: every generated helper, over OTLP/gRPC then OTLP/HTTP"
livecheck_start "$REGISTRY" "$FAIL_ON" "$REPORT_DIR/selftest" "$STEP_TIMEOUT"
over grpc "$BIN/python" -m knhk_otel.harness.selftest --validation off
over http/protobuf "$BIN/python" -m knhk_otel.harness.selftest --validation off
finish selftest

step "[2/2] the real emitters, expected to emit everything in $EXPECT"
livecheck_start "$REGISTRY" "$FAIL_ON" "$REPORT_DIR/emitters" "$STEP_TIMEOUT" --expect-signals "$EXPECT"
# Over HTTP the agents start with a static membership in a hierarchical mesh of 3 regions (so the
# coordinator sets knhk.mesh.hierarchy.agents from its aggregators' summaries) and rebalance their
# topology (hybrid selection), then in a flat mesh split in halves and healed (the partition
# detector's signals); over gRPC they form one flat mesh and join through agent 0, so registration
# and membership gossip emit too.
for protocol in http/protobuf grpc; do
    if [[ -n "${TELEMETRY_EMITTER:-}" ]]; then
        step "TELEMETRY_EMITTER over $protocol"
        over "$protocol" bash -c "$TELEMETRY_EMITTER"
    else
        # hybrid selection and a rebalance every 5 rounds: knhk.mesh.topology.* from the real engines
        shape=(--topology hierarchical --regions 3 --peer-selection hybrid --rebalance-every 5)
        [[ $protocol == grpc ]] && shape=(--join)
        step "knhk-mesh up (memory transport, 20 agents, 2 Byzantine, ${shape[*]}) exporting over $protocol"
        over "$protocol" "$BIN/knhk-mesh" up --transport memory --nodes 20 --byzantine 2 --rounds 10 \
            --seed 7 "${shape[@]}" --export >/dev/null
        if [[ $protocol == http/protobuf ]]; then
            # a flat mesh cut in halves at round 30 for 30 rounds, healed by round 90
            step "knhk-mesh up (memory transport, 20 agents, 2 Byzantine, --partition 50/50@3s+3s) exporting over $protocol"
            over "$protocol" "$BIN/knhk-mesh" up --transport memory --nodes 20 --byzantine 2 --rounds 90 \
                --seed 7 --partition 50/50@3s+3s --export >/dev/null
        fi
    fi
done
if [[ -z "${TELEMETRY_EMITTER:-}" ]]; then
    # the QUIC-only signals (send-queue size, refused handshakes) from real node processes: 3 nodes
    # write, converge, then one is revoked and refused
    step "knhk-mesh drill (3 QUIC node processes, one revoked and refused) exporting over grpc"
    over grpc "$BIN/python" -m knhk_mesh.drill --nodes 3 --timeout 30
fi
finish emitters

# Per kind, the coverage line and its never-seen names: signals the schema promises and no component sends.
uncovered=$(grep -B1 '^    never seen:' "$REPORT_DIR/emitters/live_check.txt" | grep -v '^--$' || true)
if [[ -n "$uncovered" ]]; then
    step "UNCOVERED: schema signals no real emitter sent (the self-test's coverage does not count here):"
    echo "$uncovered" >&2
fi

for verdict in "$selftest" "$emitters"; do
    if [[ $verdict -ne 0 ]]; then
        step "FAILED: self-test verdict $selftest, real emitters verdict $emitters (see docs/findings.md); reports in $REPORT_DIR"
        exit "$verdict"
    fi
done
step "telemetry conforms to $REGISTRY (fail-on $FAIL_ON) and every expected signal arrived"
