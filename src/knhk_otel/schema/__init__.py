"""Stage 1 of the pipeline: load registry YAML (v1 and v2 syntax) into the resolved model.

`load_documents` reads files (manifest, definitions, local dependencies) with positions; the check
stage validates those raw documents; `resolve` turns them into a `ResolvedRegistry`. Neither raises
on bad input: every problem is a `Diagnostic` with `file:line:col`.
"""

from __future__ import annotations

from pathlib import Path

from knhk_otel.schema.diagnostics import Diagnostic
from knhk_otel.schema.loader import LoadedRegistry, document_format, load_documents
from knhk_otel.schema.model import ResolvedRegistry
from knhk_otel.schema.resolver import resolve
from knhk_otel.schema.yamlpos import YamlDoc

__all__ = [
    "Diagnostic",
    "LoadedRegistry",
    "ResolvedRegistry",
    "YamlDoc",
    "document_format",
    "load_and_resolve",
    "load_documents",
    "resolve",
]


def load_and_resolve(root: str | Path) -> tuple[ResolvedRegistry | None, list[Diagnostic]]:
    """Load and resolve in one go; the registry is None only when nothing could be loaded at all."""
    loaded = load_documents(root)
    diagnostics = list(loaded.diagnostics)
    if not loaded.root.is_dir():
        return None, diagnostics
    registry, resolve_diagnostics = resolve(loaded)
    return registry, diagnostics + resolve_diagnostics
