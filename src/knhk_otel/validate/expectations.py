"""Which spans, metrics and events a live-check run must have received, and which never arrived.

A list file names one signal per line as `span NAME`, `metric NAME` or `event NAME` (`#` starts a
comment); `all-own` means every span, metric and event the registry itself defines. Every listed
name must be one the registry defines, so a typo in the list is an error, not a signal that
"never arrived".
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from knhk_otel.schema.model import ResolvedRegistry

ALL_OWN = "all-own"
KINDS = {"span": "spans", "metric": "metrics", "event": "events"}


class ExpectationError(Exception):
    """A list file that cannot be read or names something wrong: one line, with file and line."""


@dataclass(frozen=True)
class Expected:
    source: str  # the file, or `all-own`
    signals: Mapping[str, frozenset[str]]  # "spans" / "metrics" / "events" → names

    def count(self) -> int:
        return sum(len(names) for names in self.signals.values())

    def missing(self, report: Mapping[str, Any]) -> dict[str, list[str]]:
        """Per kind, the listed names the report's coverage never saw (empty kinds left out)."""
        coverage = report["statistics"]["coverage"]
        out: dict[str, list[str]] = {}
        for plural, names in self.signals.items():
            never = sorted(names - set(coverage[plural]["seen"]))
            if never:
                out[plural] = never
        return out


def defined_signals(registry: ResolvedRegistry, own_only: bool) -> dict[str, set[str]]:
    own = registry.own or frozenset(g.id for g in registry.groups)
    out: dict[str, set[str]] = {plural: set() for plural in KINDS.values()}
    for g in registry.groups:
        if g.type in KINDS and (not own_only or g.id in own):
            out[KINDS[g.type]].add(g.signal_name)
    return out


def load_expected(spec: str, registry: ResolvedRegistry) -> Expected:
    if spec == ALL_OWN:
        own = defined_signals(registry, own_only=True)
        return Expected(ALL_OWN, {k: frozenset(v) for k, v in own.items()})
    path = Path(spec)
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) else "not UTF-8"
        raise ExpectationError(f"{path}: cannot read the expected-signals list: {reason}") from exc
    defined = defined_signals(registry, own_only=False)
    listed: dict[str, set[str]] = {plural: set() for plural in KINDS.values()}
    for number, raw in enumerate(text.splitlines(), 1):
        line = raw.split("#", 1)[0].strip()
        if not line:
            continue
        kind, _, name = line.partition(" ")
        name = name.strip()
        if kind not in KINDS or not name or " " in name:
            raise ExpectationError(
                f"{path}:{number}: expected `span NAME`, `metric NAME` or `event NAME`, not {line!r}"
            )
        if name not in defined[KINDS[kind]]:
            raise ExpectationError(f"{path}:{number}: the registry defines no {kind} `{name}`")
        listed[KINDS[kind]].add(name)
    expected = Expected(str(path), {k: frozenset(v) for k, v in listed.items()})
    if not expected.count():
        raise ExpectationError(f"{path}: the expected-signals list names no signal")
    return expected
