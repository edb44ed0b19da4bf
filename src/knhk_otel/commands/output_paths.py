"""Checks at start-up that a command's output file or folder can be written, before any long work.

A live-check that runs for an hour and then cannot write its report loses everything it judged, so
every `-o`, `--output` and `--ports-file` is probed first: the nearest existing folder must accept
a new file (a real probe: permission bits say nothing to root or on a read-only mount).
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path


class OutputPathError(Exception):
    """One line for the user: which path, which flag, why, and what to do."""


def _nearest_existing(path: Path) -> Path:
    probe = path
    while not probe.exists() and probe != probe.parent:
        probe = probe.parent
    return probe


def _probe_writable(folder: Path, flag: str, target: Path) -> None:
    if not folder.is_dir():
        raise OutputPathError(
            f"{flag} {target}: {folder} is a file, not a folder; choose a path under a folder"
        )
    try:
        fd, name = tempfile.mkstemp(dir=folder, prefix=".knhk-otel-probe-")
    except OSError as exc:
        reason = exc.strerror or type(exc).__name__
        raise OutputPathError(
            f"{flag} {target}: cannot write in folder {folder} ({reason}); choose a writable folder"
        ) from exc
    os.close(fd)
    os.unlink(name)


def check_output_file(path: str | Path, flag: str) -> None:
    """`path` will be written as a file: it must not be a folder, and its folder must be writable."""
    target = Path(path)
    if target.is_dir():
        raise OutputPathError(f"{flag} {target}: is a folder; {flag} takes a file path")
    if target.exists() and not os.access(target, os.W_OK):
        raise OutputPathError(f"{flag} {target}: the file is not writable")
    _probe_writable(_nearest_existing(target.parent if str(target.parent) else Path(".")), flag, target)


def check_output_folder(path: str | Path, flag: str) -> None:
    """`path` will hold written files: it must be a folder (or not exist yet) somewhere writable."""
    target = Path(path)
    if target.exists() and not target.is_dir():
        raise OutputPathError(f"{flag} {target}: is an existing file; {flag} takes a folder")
    _probe_writable(_nearest_existing(target), flag, target)
