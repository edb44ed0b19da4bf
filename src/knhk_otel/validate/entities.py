"""Judges the resource a signal arrived with against the signal's entity associations.

A signal's associations say which entity its telemetry describes; the resource is what names it.
A leaf is satisfied when the resource carries every identifying (required) attribute of its
entity; `all_of` needs every operand, `one_of` (and the top-level list) one. An unsatisfied
`one_of` with several operands is one finding naming every candidate: listing each candidate's
missing attributes would ask for all of them when one would do. Satisfied branches still report
the attributes they miss below `required`, as Weaver does.
"""

from __future__ import annotations

from collections.abc import Collection, Iterator
from typing import Final

from knhk_otel.schema.model import EntityAssociation
from knhk_otel.validate import findings as F
from knhk_otel.validate.findings import Finding

_BY_LEVEL: Final[dict[str, str]] = {
    "required": F.ENTITY_REQUIRED_ATTRIBUTE_NOT_PRESENT,
    "recommended": F.ENTITY_RECOMMENDED_ATTRIBUTE_NOT_PRESENT,
    "opt_in": F.ENTITY_OPT_IN_ATTRIBUTE_NOT_PRESENT,
    "conditionally_required": F.ENTITY_CONDITIONALLY_REQUIRED_ATTRIBUTE_NOT_PRESENT,
}

#: A missing attribute (entity, attribute, level), or an unsatisfied `one_of` (its entities).
_Gap = tuple[str, str, str] | tuple[str, ...]


def _evaluate(expr: EntityAssociation, present: Collection[str]) -> tuple[bool, list[_Gap]]:
    if expr.kind == "entity":
        if expr.target is None:  # unbound (the resolver reported it): nothing to judge against
            return True, []
        gaps: list[_Gap] = [(expr.entity, a, lvl) for a, lvl in expr.requirements if a not in present]
        return not any(g[2] == "required" for g in gaps), gaps
    results = [_evaluate(o, present) for o in expr.operands]
    if expr.kind == "all_of" or len(results) == 1:
        satisfied = all(ok for ok, _ in results)
        return satisfied, [g for _, found in results for g in found]
    chosen = [found for ok, found in results if ok]
    if chosen:
        return True, [g for found in chosen for g in found]
    return False, [("*", *dict.fromkeys(leaf.entity for leaf in expr.leaves()))]


def entity_findings(
    associations: tuple[EntityAssociation, ...],
    present: Collection[str],
    signal_type: str,
    signal_name: str,
) -> Iterator[Finding]:
    """The findings of a resource with attribute keys `present`, for one signal's associations."""
    if not associations:
        return
    top = associations[0] if len(associations) == 1 else EntityAssociation("one_of", operands=associations)
    _, gaps = _evaluate(top, present)
    for gap in gaps:
        if gap[0] == "*":
            entities = gap[1:]
            names = ", ".join(f"`{e}`" for e in entities)
            yield Finding(
                F.ENTITY_ASSOCIATION_NOT_SATISFIED,
                F.DEFAULT_LEVELS[F.ENTITY_ASSOCIATION_NOT_SATISFIED],
                f"The resource identifies none of the entities {names} (one of them is expected).",
                signal_type,
                signal_name,
                entities=tuple(entities),
            )
            continue
        entity, attribute, level = gap[0], gap[1], gap[2]
        fid = _BY_LEVEL[level]
        yield Finding(
            fid,
            F.DEFAULT_LEVELS[fid],
            f"The resource lacks `{attribute}`, a {level.replace('_', ' ')} attribute of entity `{entity}`.",
            signal_type,
            signal_name,
            attribute,
            entities=(entity,),
        )
