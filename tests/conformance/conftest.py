"""Where Weaver's test data is: the reference-data setting, skipped with one line when absent."""

from __future__ import annotations

from pathlib import Path

import pytest

from knhk_otel.harness.reference import WEAVER_TESTS, ReferenceData

REPO_ROOT = Path(__file__).resolve().parents[2]


def weaver_tests_dir() -> Path:
    """Where Weaver's test data is (for running these modules as scripts)."""
    return ReferenceData.from_env(REPO_ROOT).path(WEAVER_TESTS)


@pytest.fixture(scope="session")
def weaver_tests(reference: ReferenceData) -> Path:
    return reference.require(WEAVER_TESTS, "the conformance tests against Weaver's test data")
