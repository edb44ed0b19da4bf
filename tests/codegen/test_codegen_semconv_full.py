"""The python target on the full OpenTelemetry semantic conventions: imports, mypy --strict and ruff clean."""

from __future__ import annotations

import importlib
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from opentelemetry.sdk.metrics import MeterProvider

from knhk_otel.codegen import discover, generate_target
from knhk_otel.schema import load_and_resolve

from .conftest import REPO_ROOT, VENV_BIN

PACKAGE = "semconv_full_model"


@pytest.fixture(scope="module")
def generated(tmp_path_factory: pytest.TempPathFactory, semconv_model: Path) -> Iterator[Path]:
    model = semconv_model
    registry, diagnostics = load_and_resolve(model)
    assert registry is not None
    assert not [d for d in diagnostics if d.is_error], [d.render() for d in diagnostics[:5]]
    root = tmp_path_factory.mktemp("semconv")
    changes = generate_target(discover()["python"], registry, model, root / PACKAGE, registry_display="model")
    assert {c.path.name for c in changes} == {
        "__init__.py",
        "attributes.py",
        "spans.py",
        "metrics.py",
        "events.py",
        "strict.py",
    }
    sys.path.insert(0, str(root))
    yield root
    sys.path.remove(str(root))
    for name in [m for m in sys.modules if m.startswith(PACKAGE)]:
        del sys.modules[name]


@pytest.mark.slow
def test_every_module_imports_and_every_metric_class_builds(generated: Path) -> None:
    mods = {
        m: importlib.import_module(f"{PACKAGE}.{m}") for m in ("attributes", "spans", "metrics", "events")
    }
    assert mods["attributes"].HTTP_REQUEST_METHOD == "http.request.method"
    assert mods["attributes"].HttpRequestMethod.OTHER == "_OTHER"
    meter = MeterProvider().get_meter("full")
    classes = [
        c for c in vars(mods["metrics"]).values() if isinstance(c, type) and c.__module__.endswith(".metrics")
    ]
    assert len(classes) > 400
    for cls in classes:
        cls(meter)
    assert len([f for f in vars(mods["spans"]) if f.startswith("start_")]) > 50
    assert len([f for f in vars(mods["events"]) if f.startswith("emit_")]) > 20


@pytest.mark.slow
def test_generated_code_passes_mypy_strict(generated: Path) -> None:
    env = {**os.environ, "MYPYPATH": str(REPO_ROOT / "src")}
    result = subprocess.run(
        [str(VENV_BIN / "mypy"), "--strict", "--cache-dir", str(generated / ".mypy_cache"), PACKAGE],
        cwd=generated,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-2000:]


@pytest.mark.slow
def test_generated_code_passes_ruff(generated: Path) -> None:
    result = subprocess.run(
        [
            str(VENV_BIN / "ruff"),
            "check",
            "--no-cache",
            "--config",
            str(REPO_ROOT / "pyproject.toml"),
            "--config",
            "lint.isort.known-first-party = ['knhk_otel']",
            PACKAGE,
        ],
        cwd=generated,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-2000:]
