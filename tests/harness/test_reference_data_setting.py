"""Reference data comes from one setting; absent, its tests skip loudly; where CI requires it, they fail."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from knhk_otel.harness.reference import (
    ABSENT_PREFIX,
    ENV_DIR,
    ENV_REQUIRE,
    SEMCONV_MODEL,
    ReferenceData,
)

REPO_ROOT = Path(__file__).resolve().parents[2]
A_REFERENCE_TEST = "tests/schema/test_schema_semconv_conformance.py::test_semconv_mixes_both_syntaxes"


def test_the_default_is_shared_reference_beside_the_repository() -> None:
    data = ReferenceData.from_env(REPO_ROOT, {})
    assert data.root == (REPO_ROOT.parent / "shared" / "reference").resolve()
    assert not data.required and not data.configured


def test_a_relative_repository_path_still_finds_the_folder_beside_it(monkeypatch: pytest.MonkeyPatch) -> None:
    """`make test` ends with `python -m knhk_otel.harness.reference .`: "." must mean the repo."""
    monkeypatch.chdir(REPO_ROOT)
    data = ReferenceData.from_env(Path("."), {})
    assert data.root == (REPO_ROOT.parent / "shared" / "reference").resolve()


def test_the_setting_overrides_the_default_and_ci_requires_it(tmp_path: Path) -> None:
    data = ReferenceData.from_env(REPO_ROOT, {ENV_DIR: str(tmp_path), ENV_REQUIRE: "1"})
    assert data.root == tmp_path.resolve() and data.required and data.configured


def test_an_empty_folder_is_not_data(tmp_path: Path) -> None:
    (tmp_path / SEMCONV_MODEL).mkdir(parents=True)
    data = ReferenceData.from_env(REPO_ROOT, {ENV_DIR: str(tmp_path)})
    assert data.find(SEMCONV_MODEL) is None
    (tmp_path / SEMCONV_MODEL / "manifest.yaml").write_text("name: x\n")
    assert data.find(SEMCONV_MODEL) == tmp_path.resolve() / SEMCONV_MODEL


def test_the_absent_line_says_what_where_and_how_to_get_it(tmp_path: Path) -> None:
    line = ReferenceData.from_env(REPO_ROOT, {ENV_DIR: str(tmp_path)}).absent(SEMCONV_MODEL, "the X tests")
    assert line.startswith(ABSENT_PREFIX)
    assert "the X tests" in line and str(tmp_path.resolve()) in line
    assert "make reference" in line and "\n" not in line


def _pytest_on_a_reference_test(reference_dir: Path, require: bool) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k not in (ENV_DIR, ENV_REQUIRE)}
    env[ENV_DIR] = str(reference_dir)
    if require:
        env[ENV_REQUIRE] = "1"
    return subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", A_REFERENCE_TEST],
        cwd=REPO_ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )


def test_absent_data_skips_and_the_run_says_so_at_the_end(tmp_path: Path) -> None:
    proc = _pytest_on_a_reference_test(tmp_path, require=False)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "1 skipped" in proc.stdout
    section = proc.stdout[proc.stdout.index("reference suites skipped") :]
    assert f"1 test(s): {ABSENT_PREFIX}" in section and "make reference" in section


def test_absent_data_fails_where_ci_requires_it(tmp_path: Path) -> None:
    proc = _pytest_on_a_reference_test(tmp_path, require=True)
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert "1 error" in proc.stdout and "skipped" not in proc.stdout
    assert f"{ENV_REQUIRE}=1: absent reference data is a failure" in proc.stdout
