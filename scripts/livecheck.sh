# Shared by scripts/demo.sh and scripts/telemetry-schema-ci.sh (source it; it runs nothing itself):
# start `knhk-otel live-check` on free loopback ports, wait until it serves, stop it for its verdict.
# Expects BIN (where knhk-otel and python live) and WORK (a scratch directory) to be set.

LIVE_PID=""

# port NAME: the port live-check bound for NAME (grpc, http, admin).
port() { "$BIN/python" -c 'import json,sys; print(json.load(open(sys.argv[1]))[sys.argv[2]])' "$WORK/ports.json" "$1"; }

# admin METHOD URL: one request to the admin port; fails unless it answers 200.
admin() {
    "$BIN/python" - "$@" <<'PY'
import sys, urllib.request
method, url = sys.argv[1], sys.argv[2]
req = urllib.request.Request(url, method=method, data=b"" if method == "POST" else None)
with urllib.request.urlopen(req, timeout=60) as resp:
    sys.exit(0 if resp.status == 200 else 1)
PY
}

# livecheck_start REGISTRY FAIL_ON REPORT_DIR INACTIVITY_S [LIVE-CHECK ARGS...]: start it and wait
# for /health (bounded). One at a time: stop the previous one before starting the next.
livecheck_start() {
    rm -f "$WORK/ports.json"
    "$BIN/knhk-otel" live-check -r "$1" \
        --address 127.0.0.1 --otlp-grpc-port 0 --otlp-http-port 0 --admin-port 0 \
        --ports-file "$WORK/ports.json" --inactivity-timeout "$4" \
        --format ansi -o "$3" --fail-on "$2" "${@:5}" &
    LIVE_PID=$!
    for _ in $(seq 1 100); do
        [[ -s "$WORK/ports.json" ]] && break
        kill -0 "$LIVE_PID" 2>/dev/null || { echo "live-check exited before listening" >&2; return 2; }
        sleep 0.1
    done
    [[ -s "$WORK/ports.json" ]] || { echo "live-check did not start listening in 10 s" >&2; return 2; }
    ADMIN="http://127.0.0.1:$(port admin)"
    for _ in $(seq 1 50); do admin GET "$ADMIN/health" 2>/dev/null && break; sleep 0.1; done
    admin GET "$ADMIN/health"
}

# livecheck_stop: POST /stop, wait for the process; its exit code (the verdict) lands in VERDICT.
livecheck_stop() {
    admin POST "$ADMIN/stop"
    set +e
    wait "$LIVE_PID"
    VERDICT=$?
    set -e
    LIVE_PID=""
}

# livecheck_cleanup: for an EXIT trap; stops a live-check still running and removes WORK.
livecheck_cleanup() {
    if [[ -n "$LIVE_PID" ]] && kill -0 "$LIVE_PID" 2>/dev/null; then
        kill -TERM "$LIVE_PID" 2>/dev/null || true
        wait "$LIVE_PID" 2>/dev/null || true
    fi
    rm -rf "$WORK"
}
