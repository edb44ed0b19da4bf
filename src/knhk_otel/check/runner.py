"""The whole check pipeline: load → syntax → resolve → semantics → policies → baseline.

`run_checks` never raises on bad input; everything it finds is a Diagnostic in the report, in
pipeline order and, within a stage, in file order.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path

from knhk_otel.check import rego
from knhk_otel.check.baseline import check_baseline
from knhk_otel.check.policies import DEFAULT_POLICIES, Policy, load_policy_file, run_policies
from knhk_otel.check.semantics import check_semantics
from knhk_otel.check.syntax import check_documents
from knhk_otel.schema import LoadedRegistry, load_documents, resolve
from knhk_otel.schema.diagnostics import Diagnostic
from knhk_otel.schema.model import ResolvedRegistry
from knhk_otel.schema.yamlpos import YamlDoc

log = logging.getLogger(__name__)

#: The resolver's reader reports malformed fields as `invalid_definition` (and a bad `file_format`
#: as `unknown_file_format`); the syntax and semantic stages say the same with a precise id and
#: path, so the reader's copy is dropped for files they flagged.
_READER_DUPLICATE_IDS = frozenset({"invalid_definition", "unknown_file_format"})

#: Our rules that Weaver does not apply: warnings by default, so a registry Weaver passes is not
#: failed by us; errors under `--future` (Weaver's flag for the rules that will become errors).
STRICTER_THAN_WEAVER = frozenset(
    {"name_format", "stable_references_development", "empty_brief", "attribute_namespace_collision"}
)


@dataclass
class CheckReport:
    root: str
    diagnostics: list[Diagnostic] = field(default_factory=list)
    files: int = 0
    groups: int = 0
    registry: ResolvedRegistry | None = None

    @property
    def errors(self) -> int:
        return sum(1 for d in self.diagnostics if d.severity == "error")

    @property
    def warnings(self) -> int:
        return sum(1 for d in self.diagnostics if d.severity == "warning")

    def summary(self) -> str:
        mark = "✔" if self.errors == 0 else "✘"
        return (
            f"{mark} {self.root}: {self.files} files, {self.groups} groups, "
            f"{self.errors} errors, {self.warnings} warnings"
        )


def all_documents(loaded: LoadedRegistry) -> Iterator[YamlDoc]:
    """The registry's own files, then each dependency's (depth first)."""
    yield from loaded.documents
    for dep in loaded.dependencies:
        yield from all_documents(dep)


def _sorted_by_place(diagnostics: Iterable[Diagnostic]) -> list[Diagnostic]:
    def key(d: Diagnostic) -> tuple[str, int, int]:
        return (d.source.path, d.source.line, d.source.col) if d.source else ("", 0, 0)

    return sorted(diagnostics, key=key)


def run_checks(
    root: str | Path,
    policy_files: Sequence[str] = (),
    baseline_root: str | Path | None = None,
    *,
    default_policies: Sequence[Policy] = DEFAULT_POLICIES,
    future: bool = False,
) -> CheckReport:
    report = CheckReport(root=str(root))
    loaded = load_documents(root)
    docs = list(all_documents(loaded))
    report.files = len(docs)
    out = report.diagnostics
    out.extend(loaded.diagnostics)
    syntax = check_documents(docs)
    out.extend(syntax)
    if not loaded.root.is_dir():
        return report
    registry, resolve_diags = resolve(loaded)
    report.registry = registry
    report.groups = len(registry.groups)
    namespace = loaded.manifest.namespace if loaded.manifest else None
    semantics = check_semantics(docs, registry, namespace)
    flagged = {d.source.path for d in (*syntax, *semantics) if d.source and d.severity == "error"}
    out.extend(
        d
        for d in resolve_diags
        if not (d.id in _READER_DUPLICATE_IDS and d.source is not None and d.source.path in flagged)
    )
    out.extend(_weaver_severity(semantics, future))
    policies = list(default_policies)
    rego_paths = [p for p in policy_files if rego.is_rego(p)]
    for path in policy_files:
        if path in rego_paths:
            continue
        found, errors = load_policy_file(path)
        policies.extend(found)
        out.extend(errors)
    out.extend(_sorted_by_place(_weaver_severity(run_policies(registry, policies), future)))
    baseline: ResolvedRegistry | None = None
    if baseline_root is not None:
        baseline, problems = _baseline(baseline_root)
        out.extend(problems)
        if baseline is not None:
            out.extend(_sorted_by_place(check_baseline(registry, baseline)))
    if rego_paths:
        out.extend(_rego(rego_paths, loaded.documents, registry, baseline))
    log.info("checked %s: %d files, %d groups, %d diagnostics", root, report.files, report.groups, len(out))
    return report


def _weaver_severity(diagnostics: Iterable[Diagnostic], future: bool) -> Iterator[Diagnostic]:
    """Our stricter-than-Weaver findings: warnings, or all errors under `--future`."""
    for d in diagnostics:
        if d.id in STRICTER_THAN_WEAVER:
            d = replace(d, severity="error" if future else "warning")
        yield d


def _rego(
    paths: Sequence[str],
    docs: Sequence[YamlDoc],
    registry: ResolvedRegistry,
    baseline: ResolvedRegistry | None,
) -> list[Diagnostic]:
    """Weaver's Rego stages: before_resolution per file, after_resolution, comparison."""
    files, out = rego.policy_files(paths)
    if not files:
        return out
    policies, errors = rego.load(files)
    out.extend(errors)
    if policies is None or not policies.files:
        return out
    out.extend(rego.check_before_resolution(policies, docs))
    out.extend(rego.check_after_resolution(policies, registry, baseline))
    return out


def _baseline(baseline_root: str | Path) -> tuple[ResolvedRegistry | None, list[Diagnostic]]:
    loaded = load_documents(baseline_root)
    if not loaded.root.is_dir():
        return None, [
            Diagnostic("baseline_invalid", f"baseline registry: {d.message}", d.source)
            for d in loaded.diagnostics
        ]
    baseline, resolve_diags = resolve(loaded)
    problems = [d for d in (*loaded.diagnostics, *resolve_diags) if d.is_error]
    if problems:
        first = problems[0]
        return None, [
            Diagnostic(
                "baseline_invalid",
                f"baseline registry has {len(problems)} error(s); first: [{first.id}] {first.message}",
                first.source,
            )
        ]
    return baseline, []
