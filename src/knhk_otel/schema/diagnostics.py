"""Diagnostics: errors and warnings as values with a place and an id, never exceptions that escape.

Every stage (load, resolve, check) returns these; the CLI renders each as one line:
`path:line:col: error[id]: message` (line and column only where known).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Literal

from knhk_otel.schema.model import Source

Severity = Literal["error", "warning", "info"]


@dataclass(frozen=True, slots=True)
class Diagnostic:
    id: str
    message: str
    source: Source | None = None
    severity: Severity = "error"
    hint: str | None = None  # e.g. "did you mean `knhk.mesh.peer.id`?"

    @property
    def is_error(self) -> bool:
        return self.severity == "error"

    def render(self, fmt: str = "ansi") -> str:
        """One line in `ansi`, `json` or `gh_workflow_command` form."""
        where = str(self.source) if self.source else "<registry>"
        text = self.message + (f" ({self.hint})" if self.hint else "")
        if fmt == "json":
            return json.dumps(
                {
                    "id": self.id,
                    "severity": self.severity,
                    "message": self.message,
                    "hint": self.hint,
                    "file": self.source.path if self.source else None,
                    "line": self.source.line if self.source and self.source.line else None,
                    "col": self.source.col if self.source and self.source.col else None,
                },
                sort_keys=True,
            )
        if fmt == "gh_workflow_command":
            level = {"error": "error", "warning": "warning", "info": "notice"}[self.severity]
            if self.source:
                loc = f"file={self.source.path},"
                if self.source.line:
                    loc += f"line={self.source.line},"
                    loc += f"col={self.source.col}," if self.source.col else ""
            else:
                loc = ""
            esc = text.replace("%", "%25").replace("\r", "%0D").replace("\n", "%0A")
            return f"::{level} {loc}title={self.id}::{esc}"
        return f"{where}: {self.severity}[{self.id}]: {text}"


class DiagnosticError(Exception):
    """Raised only at a stage boundary when the caller asked for fail-fast; carries the diagnostics."""

    def __init__(self, diagnostics: list[Diagnostic]) -> None:
        self.diagnostics = diagnostics
        super().__init__("; ".join(d.render() for d in diagnostics[:3]))
