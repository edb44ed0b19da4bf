"""Where Weaver's test data is: the reference-data setting, skipped with one line when absent."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[2]


def reference_dir() -> Path:
    """`KNHK_REFERENCE_DIR`, default `../shared/reference` beside the clone."""
    return Path(os.environ.get("KNHK_REFERENCE_DIR") or REPO_ROOT.parent / "shared" / "reference")


def weaver_tests_dir() -> Path:
    return reference_dir() / "weaver-tests"


@pytest.fixture(scope="session")
def weaver_tests() -> Path:
    root = weaver_tests_dir()
    if not (root / "crates").is_dir():
        pytest.skip(f"Weaver's test data not present at {root} (set KNHK_REFERENCE_DIR)")
    return root
