# Two commands do everything on a fresh machine: `make demo` and `make test`.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: demo test lint generate generate-check bench clean venv

venv: $(STAMP)

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

demo: $(STAMP)
	bash scripts/demo.sh

lint: $(STAMP)
	$(BIN)/ruff check src node tests bench
	$(BIN)/mypy src node

generate: $(STAMP)
	$(BIN)/knhk-otel generate

generate-check: $(STAMP)
	$(BIN)/knhk-otel generate --check

test: $(STAMP)
	$(BIN)/knhk-otel check -r schema
	$(BIN)/knhk-otel generate --check
	$(MAKE) lint
	$(BIN)/python -m pytest -q -p no:cacheprovider
	bash scripts/telemetry-schema-ci.sh

bench: $(STAMP)
	$(BIN)/python bench/run.py

clean:
	rm -rf $(VENV) .mypy_cache .ruff_cache .pytest_cache
