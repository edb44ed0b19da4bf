"""Code generation: render template targets (python helpers, markdown docs, ...) from a resolved registry.

`generate_target` is the whole pipeline for one target; the CLI (`knhk-otel generate`) and tests
call it. Targets are folders of templates (see `targets`); naming rules live in `naming`.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from knhk_otel.codegen.engine import GENERATED_MARKER, GenerationInput, render
from knhk_otel.codegen.errors import CodegenError
from knhk_otel.codegen.targets import Target, builtin_names, discover, load_target, target_dirs
from knhk_otel.codegen.writer import Change, plan, write
from knhk_otel.schema.model import ResolvedRegistry

__all__ = [
    "GENERATED_MARKER",
    "Change",
    "CodegenError",
    "GenerationInput",
    "Target",
    "builtin_names",
    "discover",
    "generate_target",
    "load_target",
    "plan",
    "render",
    "target_dirs",
    "write",
]


def generate_target(
    target: Target,
    registry: ResolvedRegistry,
    registry_root: Path,
    out_dir: Path,
    *,
    registry_display: str | None = None,
    params: Mapping[str, Any] | None = None,
    check: bool = False,
) -> list[Change]:
    """Render `target` and write it to `out_dir` (or only compare, with `check`); return the changes."""
    merged = {**target.params, **(params or {})}
    inp = GenerationInput(
        registry=registry,
        registry_root=registry_root,
        registry_display=registry_display or registry_root.name,
        target=target,
        params=merged,
    )
    files = render(inp)
    return plan(out_dir, files, target.name) if check else write(out_dir, files, target.name)
