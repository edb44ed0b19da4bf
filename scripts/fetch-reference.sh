#!/usr/bin/env bash
# `make reference`: fetch the other projects' data the test suite and the benches compare against
# (it never goes into this repository) into $KNHK_REFERENCE_DIR (default ../shared/reference).
#
# NEEDS INTERNET ACCESS to github.com / codeload.github.com / raw.githubusercontent.com. It has
# never been run on the machines this project is developed and tested on (they reach only package
# registries), so the first run anywhere is its first real test: each download is checked, and the
# result is compared file by file with scripts/reference.sha256, the checksums of the copies the
# suite was written against; a difference is listed, never hidden.
#
# Pinned sources (what lands where under the reference directory):
#   semconv-v1.44.0/{model,policies,policies_test}  open-telemetry/semantic-conventions tag v1.44.0
#   weaver/*.json                                   open-telemetry/weaver commit afa9700c, schemas/
#   weaver-tests/                                   the same Weaver commit: crates/weaver_resolver/data,
#                                                   crates/weaver_live_check/{data,src/live_checker.rs},
#                                                   crates/weaver_checker/data, defaults/{rego,policies}
#   grafana/*.jsonschema.json                       grafana/grafana-foundation-sdk, jsonschema/
#   otelcol/otelbin-collector.schema.json           dash0hq/otelbin, the collector config schema
#   compose/compose-spec.json                       compose-spec/compose-spec, schema/compose-spec.json
# Each piece keeps its project's LICENSE beside it.
set -euo pipefail
cd "$(dirname "$0")/.."

DEST=${KNHK_REFERENCE_DIR:-../shared/reference}
SEMCONV_TAG=v1.44.0
WEAVER_REF=afa9700c
GRAFANA_SDK_REF=5e6b0fa2c4d22d59fac8ce22753e509c62d206a0
OTELBIN_REF=d56f33fc4e733b5403deee96d8778f82da10fca7
COMPOSE_REF=b2835e8acc1e42e7aecbc27a9bc4a1fc66ef21ba
GRAFANA_PANELS="dashboard common bargauge gauge heatmap nodegraph piechart prometheus stat table text timeseries"

if [[ "${1:-}" == "--help" || "${1:-}" == "-h" ]]; then
    sed -n '2,/^set -euo/p' "$0" | sed '$d' | sed 's/^# \{0,1\}//'
    exit 0
fi
for tool in curl tar sha256sum; do
    command -v "$tool" >/dev/null || { echo "make reference: needs \`$tool\` (apt-get install $tool)" >&2; exit 2; }
done

WORK=$(mktemp -d "${TMPDIR:-/tmp}/knhk-reference.XXXXXX")
trap 'rm -rf "$WORK"' EXIT
say() { echo "make reference: $*" >&2; }

# get URL FILE: download or fail with one line naming the URL (bounded: 120 s per file).
get() {
    mkdir -p "$(dirname "$2")"
    curl --fail --silent --show-error --location --max-time 120 --retry 2 -o "$2" "$1" \
        || { say "cannot download $1 (no internet access here?)"; exit 1; }
}

# tarball OWNER/REPO REF: the repository's archive at REF, unpacked; prints the unpacked folder.
tarball() {
    local out="$WORK/${1//\//_}-$2"
    get "https://codeload.github.com/$1/tar.gz/$2" "$out.tar.gz"
    mkdir -p "$out"
    tar -xzf "$out.tar.gz" -C "$out" --strip-components=1
    echo "$out"
}

raw() { get "https://raw.githubusercontent.com/$1/$2/$3" "$4"; }

STAGE="$WORK/reference"
mkdir -p "$STAGE"

say "semantic-conventions $SEMCONV_TAG"
src=$(tarball open-telemetry/semantic-conventions "$SEMCONV_TAG")
mkdir -p "$STAGE/semconv-v1.44.0"
cp -r "$src/model" "$src/policies" "$src/policies_test" "$src/LICENSE" "$STAGE/semconv-v1.44.0/"

say "weaver $WEAVER_REF (JSON Schemas and test data)"
src=$(tarball open-telemetry/weaver "$WEAVER_REF")
mkdir -p "$STAGE/weaver" "$STAGE/weaver-tests"
cp "$src/schemas/semconv.schema.json" "$src/schemas/semconv.schema.v2.json" \
    "$src/schemas/policy.finding.json" "$src/LICENSE" "$STAGE/weaver/"
for piece in crates/weaver_resolver/data crates/weaver_live_check/data crates/weaver_checker/data \
    defaults/rego defaults/policies; do
    mkdir -p "$STAGE/weaver-tests/$(dirname "$piece")"
    cp -r "$src/$piece" "$STAGE/weaver-tests/$piece"
done
mkdir -p "$STAGE/weaver-tests/crates/weaver_live_check/src"
cp "$src/crates/weaver_live_check/src/live_checker.rs" "$STAGE/weaver-tests/crates/weaver_live_check/src/"
cp "$src/LICENSE" "$STAGE/weaver-tests/"

say "grafana-foundation-sdk JSON Schemas"
for panel in $GRAFANA_PANELS; do
    raw grafana/grafana-foundation-sdk "$GRAFANA_SDK_REF" "jsonschema/$panel.jsonschema.json" \
        "$STAGE/grafana/$panel.jsonschema.json"
done
raw grafana/grafana-foundation-sdk "$GRAFANA_SDK_REF" LICENSE "$STAGE/grafana/LICENSE"

say "OTelBin collector schema"
raw dash0hq/otelbin "$OTELBIN_REF" packages/otelbin/src/components/monaco-editor/schema.json \
    "$STAGE/otelcol/otelbin-collector.schema.json"
raw dash0hq/otelbin "$OTELBIN_REF" LICENSE "$STAGE/otelcol/LICENSE"

say "compose specification"
raw compose-spec/compose-spec "$COMPOSE_REF" schema/compose-spec.json "$STAGE/compose/compose-spec.json"
raw compose-spec/compose-spec "$COMPOSE_REF" LICENSE "$STAGE/compose/LICENSE"

# Compare with the copies the suite was written against; list what differs, do not hide it.
( cd "$STAGE" && sha256sum --check --quiet "$OLDPWD/scripts/reference.sha256" ) >"$WORK/diff.txt" 2>&1 \
    && say "every file matches scripts/reference.sha256" \
    || { say "these files differ from the pinned copies (tests may disagree):"; sed 's/^/  /' "$WORK/diff.txt" >&2; }

mkdir -p "$DEST"
cp -r "$STAGE/." "$DEST/"
say "reference data in $(cd "$DEST" && pwd); tests find it there (or set KNHK_REFERENCE_DIR)"
