"""Put rendered files on disk, or (`--check`) say which on-disk files differ from what would be written.

A file in the output folder that carries the generated-file marker but is no longer rendered is
"extra": `--check` names it and a normal run deletes it. Files without the marker are never touched.
"""

from __future__ import annotations

import logging
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from knhk_otel.codegen.engine import GENERATED_MARKER

log = logging.getLogger(__name__)

ChangeKind = Literal["missing", "stale", "extra"]
_SKIP_DIRS = {"__pycache__", ".mypy_cache", ".ruff_cache", ".pytest_cache"}


@dataclass(frozen=True, slots=True)
class Change:
    kind: ChangeKind
    path: Path  # as the user should read it (output folder joined with the relative name)

    def render(self) -> str:
        why = {
            "missing": "missing (run `knhk-otel generate`)",
            "stale": "stale (differs from what `knhk-otel generate` writes)",
            "extra": "extra (generated earlier, no longer produced: delete it or run `knhk-otel generate`)",
        }[self.kind]
        return f"{self.path.as_posix()}: {why}"


def _is_generated(path: Path, target: str | None = None) -> bool:
    """Carries the generated-file marker (and, given `target`, names no other target: two targets
    may share a folder, e.g. `collector` and its `rules/` written by `alerts`)."""
    try:
        with path.open("rb") as fh:
            head = fh.read(2048).lower()
    except OSError:
        return False
    if GENERATED_MARKER.encode() not in head:
        return False
    named = re.search(rb"\(target ([^)]+)\)", head)
    return target is None or named is None or named.group(1).decode(errors="replace") == target.lower()


def _existing_generated(out_dir: Path, target: str | None = None) -> set[str]:
    found: set[str] = set()
    if not out_dir.is_dir():
        return found
    for root, dirs, names in os.walk(out_dir):
        dirs[:] = sorted(d for d in dirs if d not in _SKIP_DIRS)
        for name in names:
            path = Path(root) / name
            if _is_generated(path, target):
                found.add(path.relative_to(out_dir).as_posix())
    return found


def plan(out_dir: Path, files: Mapping[str, str], target: str | None = None) -> list[Change]:
    """What differs between `files` and `out_dir`, sorted by path."""
    changes: list[Change] = []
    for rel, content in files.items():
        path = out_dir / rel
        try:
            current = path.read_bytes()
        except FileNotFoundError:
            changes.append(Change("missing", path))
            continue
        if current != content.encode("utf-8"):
            changes.append(Change("stale", path))
    for rel in sorted(_existing_generated(out_dir, target) - set(files)):
        changes.append(Change("extra", out_dir / rel))
    return sorted(changes, key=lambda c: c.path.as_posix())


def write(out_dir: Path, files: Mapping[str, str], target: str | None = None) -> list[Change]:
    """Write missing and stale files, delete extra generated ones; return what was changed."""
    changes = plan(out_dir, files, target)
    for change in changes:
        if change.kind == "extra":
            change.path.unlink()
            log.info("deleted %s", change.path)
            continue
        change.path.parent.mkdir(parents=True, exist_ok=True)
        rel = change.path.relative_to(out_dir).as_posix()
        change.path.write_bytes(files[rel].encode("utf-8"))
        log.info("wrote %s", change.path)
    return changes
