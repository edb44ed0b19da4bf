# Two commands do everything on a fresh machine: `make demo` and `make test`.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: demo test lint generate generate-check bench clean venv prometheus reference

venv: $(STAMP)

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

# Debian's prometheus + promtool: the real backend of the operator tests. Installed as root (apt-get
# update first); elsewhere the Prometheus tests skip with a reason, except under CI or
# KNHK_REQUIRE_REFERENCE, where they fail.
prometheus:
	@if command -v prometheus >/dev/null && command -v promtool >/dev/null; then :; \
	elif [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
	  echo "make: installing Debian's prometheus (apt-get)"; \
	  export DEBIAN_FRONTEND=noninteractive; \
	  apt-get -o DPkg::Lock::Timeout=600 update -qq && \
	  apt-get -o DPkg::Lock::Timeout=600 install -y -qq --no-install-recommends prometheus >/dev/null; \
	else echo "make: prometheus/promtool not installed and not root: the Prometheus tests will skip" >&2; fi

demo: $(STAMP) prometheus
	bash scripts/demo.sh

lint: $(STAMP)
	$(BIN)/ruff check src node tests bench
	$(BIN)/ruff format --check src node tests bench
	$(BIN)/mypy src node

generate: $(STAMP)
	$(BIN)/knhk-otel generate

generate-check: $(STAMP)
	$(BIN)/knhk-otel generate --check

test: $(STAMP) prometheus
	$(BIN)/knhk-otel check -r schema --future
	$(BIN)/knhk-otel generate --check
	$(MAKE) lint
	$(BIN)/python -m pytest -q -p no:cacheprovider
	bash scripts/telemetry-schema-ci.sh
	@$(BIN)/python -m knhk_otel.harness.reference .

# Fetch the pinned reference data (semconv v1.44.0, Weaver's schemas and test data, Grafana, OTelBin,
# compose) into $$KNHK_REFERENCE_DIR (default ../shared/reference). Needs internet access; never run on
# the development machines (no network): `bash scripts/fetch-reference.sh --help` says what it fetches.
reference:
	bash scripts/fetch-reference.sh

bench: $(STAMP)
	$(BIN)/python bench/run.py

clean:
	rm -rf $(VENV) .mypy_cache .ruff_cache .pytest_cache
