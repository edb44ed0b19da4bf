"""Weaver's entity-association resolver fixtures (`weaver_resolver/data/entity-assoc-imports/`).

Weaver's Rust tests over these registries are not part of the reference data; the fixtures' own
README states what each one must give (resolves, fails, or which definition an association
reaches), and that is what this test holds us to. The rows about `imports` alone (no association)
are the import tests' business, not this one's.
Run `python tests/conformance/test_weaver_entity_assoc_fixtures.py` for the per-fixture table.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable
from pathlib import Path

from knhk_otel.check.runner import run_checks
from knhk_otel.schema.model import ResolvedRegistry

#: The ids of our errors for an association that cannot be bound.
ASSOCIATION_ERRORS = frozenset({"unresolved_entity", "ambiguous_entity", "private_entity"})


def _reaches(signal_id: str, attribute: str) -> Callable[[ResolvedRegistry], bool]:
    """The association of `signal_id` is bound to an entity identified by `attribute`."""

    def check(registry: ResolvedRegistry) -> bool:
        group = registry.group(signal_id)
        leaves = [leaf for a in (group.entity_associations if group else ()) for leaf in a.leaves()]
        return (
            bool(leaves)
            and all(leaf.target for leaf in leaves)
            and any((attribute, "required") in leaf.requirements for leaf in leaves)
        )

    return check


def _all_bound(registry: ResolvedRegistry) -> bool:
    leaves = [leaf for g in registry.groups for a in g.entity_associations for leaf in a.leaves()]
    return bool(leaves) and all(leaf.target is not None for leaf in leaves)


#: fixture → what its README says: "fails", or a check the resolved registry must pass.
EXPECTED: dict[str, str | Callable[[ResolvedRegistry], bool]] = {
    "middle": _reaches("metric.middle.request.count", "host.id"),
    "middle_bad_assoc": "fails",
    "middle_excluded_assoc": "fails",
    "middle_assoc_export": _reaches("metric.middle.request.count", "host.id"),
    "top_rebind": _reaches("metric.middle.request.count", "host.id"),  # base's host, not its own
    "top_private_first": _reaches("metric.top.request.count", "rival.host.uid"),
    "top_public_first": _reaches("metric.top.request.count", "rival.host.uid"),
    "top_ambiguous_assoc": "fails",
    "top_diamond_assoc": _reaches("metric.top.request.count", "host.id"),
    "top_transitive_assoc": "fails",
    "middle_refinement_assoc": _all_bound,
    "middle_refined_signal": _all_bound,
    "local_shapes": _all_bound,
    "local_private_assoc": "fails",
    "local_private_pair": _all_bound,
    "middle_name_clash": "fails",
    "legacy_by_id": "fails",
}


def run_fixture(crate: Path, name: str) -> tuple[bool, str]:
    cwd = Path.cwd()
    os.chdir(crate)  # as Weaver's tests run: manifests name dependency paths from there
    try:
        report = run_checks(Path("data") / "entity-assoc-imports" / name)
    finally:
        os.chdir(cwd)
    errors = [d for d in report.diagnostics if d.is_error]
    expected = EXPECTED[name]
    if expected == "fails":
        if any(d.id in ASSOCIATION_ERRORS for d in errors):
            return True, ""
        return False, f"Weaver refuses it; we give {[d.id for d in errors] or 'no error'}"
    if errors:
        return False, f"we refuse it: {errors[0].render()}"
    assert report.registry is not None and callable(expected)
    return (True, "") if expected(report.registry) else (False, "bound to another entity, or not at all")


#: fixture → why we still differ.
KNOWN_DIFFERENCES: dict[str, str] = {}


def test_weaver_entity_association_fixtures(weaver_tests: Path) -> None:
    crate = weaver_tests / "crates" / "weaver_resolver"
    assert (crate / "data" / "entity-assoc-imports").is_dir(), (
        "the fixtures are missing from the reference data"
    )
    results = {name: run_fixture(crate, name) for name in EXPECTED}
    differing = {n for n, (ok, _) in results.items() if not ok}
    print(f"Weaver entity-association fixtures: {len(results) - len(differing)}/{len(results)} agree")
    unexpected = {n: results[n][1] for n in sorted(differing - set(KNOWN_DIFFERENCES))}
    assert not unexpected, f"fixtures that differ from Weaver: {unexpected}"
    fixed = sorted(set(KNOWN_DIFFERENCES) - differing)
    assert not fixed, f"fixtures now agreeing (drop them from KNOWN_DIFFERENCES): {fixed}"


if __name__ == "__main__":
    sys.path.insert(0, str(Path(__file__).parent))
    from conftest import weaver_tests_dir

    crate = weaver_tests_dir() / "crates" / "weaver_resolver"
    results = {name: run_fixture(crate, name) for name in EXPECTED}
    for name, (ok, why) in results.items():
        print(f"{'PASS' if ok else 'DIFF'} {name}" + ("" if ok else f": {why}"))
    print(f"{sum(ok for ok, _ in results.values())}/{len(results)} agree")
