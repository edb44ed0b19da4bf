"""The one exception code generation raises: user errors rendered as one line each."""

from __future__ import annotations

from knhk_otel.schema.diagnostics import Diagnostic


class CodegenError(Exception):
    """A generation error; `lines` are what the CLI prints, one per line, before exiting 1."""

    def __init__(self, *lines: str | Diagnostic) -> None:
        self.lines: list[str] = [x.render() if isinstance(x, Diagnostic) else x for x in lines]
        super().__init__("; ".join(self.lines))
