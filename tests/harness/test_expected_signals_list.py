"""scripts/expected-signals.txt (what CI expects the real emitters to send) speaks of every schema signal."""

from __future__ import annotations

import re
from pathlib import Path

from knhk_otel.schema import load_and_resolve
from knhk_otel.validate.expectations import defined_signals, load_expected

REPO_ROOT = Path(__file__).resolve().parents[2]
LIST = REPO_ROOT / "scripts" / "expected-signals.txt"


def test_every_schema_signal_is_expected_or_commented_out_with_a_reason() -> None:
    registry, _ = load_and_resolve(REPO_ROOT / "schema")
    assert registry is not None
    expected = load_expected(str(LIST), registry)  # the listed ones: the registry defines them all
    mentioned = set(re.findall(r"^#? ?(?:span|metric|event) (\S+)", LIST.read_text(), re.MULTILINE))
    defined = set().union(*defined_signals(registry, own_only=True).values())
    assert sorted(defined - mentioned) == [], "a new schema signal: expect it, or say why it is not emitted"
    assert expected.count() > 0
    for line in LIST.read_text().splitlines():
        if re.match(r"^# (span|metric|event) \S+\s*$", line):
            raise AssertionError(f"commented out without a reason: {line!r}")
