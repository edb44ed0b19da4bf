"""Findings: what the validator says about one emitted sample, as immutable JSON-able values."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Final, Literal

Level = Literal["violation", "improvement", "information"]

#: Precedence of levels (higher = more serious); `--fail-on` compares against it.
LEVEL_RANK: Final[dict[str, int]] = {"information": 1, "improvement": 2, "violation": 3}
LEVELS: Final[tuple[Level, ...]] = ("violation", "improvement", "information")

# Ids shared with Weaver's live-check (same meaning).
MISSING_ATTRIBUTE: Final = "missing_attribute"
TYPE_MISMATCH: Final = "type_mismatch"
UNIT_MISMATCH: Final = "unit_mismatch"
UNEXPECTED_INSTRUMENT: Final = "unexpected_instrument"
UNDEFINED_ENUM_VARIANT: Final = "undefined_enum_variant"
REQUIRED_ATTRIBUTE_NOT_PRESENT: Final = "required_attribute_not_present"
RECOMMENDED_ATTRIBUTE_NOT_PRESENT: Final = "recommended_attribute_not_present"
DEPRECATED: Final = "deprecated"
NOT_STABLE: Final = "not_stable"
MISSING_METRIC: Final = "missing_metric"
MISSING_EVENT: Final = "missing_event"
# Weaver's built-in advice (its default live_check_advice policy) on attribute keys.
MISSING_NAMESPACE: Final = "missing_namespace"
INVALID_FORMAT: Final = "invalid_format"
ILLEGAL_NAMESPACE: Final = "illegal_namespace"
EXTENDS_NAMESPACE: Final = "extends_namespace"
TEMPLATE_ATTRIBUTE: Final = "template_attribute"
# Ids of our own.
MISSING_SPAN: Final = "missing_span"
SPAN_KIND_MISMATCH: Final = "span_kind_mismatch"
UNEXPECTED_ATTRIBUTE: Final = "unexpected_attribute"
BUCKET_BOUNDARIES_MISMATCH: Final = "bucket_boundaries_mismatch"
INVALID_REQUEST: Final = "invalid_request"
# Weaver's entity findings: the resource a signal arrived with, against its entity associations.
ENTITY_REQUIRED_ATTRIBUTE_NOT_PRESENT: Final = "entity_required_attribute_not_present"
ENTITY_RECOMMENDED_ATTRIBUTE_NOT_PRESENT: Final = "entity_recommended_attribute_not_present"
ENTITY_OPT_IN_ATTRIBUTE_NOT_PRESENT: Final = "entity_opt_in_attribute_not_present"
ENTITY_CONDITIONALLY_REQUIRED_ATTRIBUTE_NOT_PRESENT: Final = (
    "entity_conditionally_required_attribute_not_present"
)
ENTITY_ASSOCIATION_NOT_SATISFIED: Final = "entity_association_not_satisfied"

#: The level of every id (docs/findings.md explains each choice).
DEFAULT_LEVELS: Final[dict[str, Level]] = {
    MISSING_ATTRIBUTE: "violation",
    TYPE_MISMATCH: "violation",
    UNIT_MISMATCH: "violation",
    UNEXPECTED_INSTRUMENT: "violation",
    UNDEFINED_ENUM_VARIANT: "violation",
    REQUIRED_ATTRIBUTE_NOT_PRESENT: "violation",
    RECOMMENDED_ATTRIBUTE_NOT_PRESENT: "improvement",
    DEPRECATED: "improvement",
    NOT_STABLE: "information",
    MISSING_METRIC: "violation",
    MISSING_EVENT: "violation",
    MISSING_NAMESPACE: "improvement",
    INVALID_FORMAT: "violation",
    ILLEGAL_NAMESPACE: "violation",
    EXTENDS_NAMESPACE: "information",
    TEMPLATE_ATTRIBUTE: "information",
    MISSING_SPAN: "violation",
    SPAN_KIND_MISMATCH: "violation",
    UNEXPECTED_ATTRIBUTE: "violation",
    BUCKET_BOUNDARIES_MISMATCH: "improvement",
    INVALID_REQUEST: "violation",
    ENTITY_REQUIRED_ATTRIBUTE_NOT_PRESENT: "violation",
    ENTITY_RECOMMENDED_ATTRIBUTE_NOT_PRESENT: "improvement",
    ENTITY_OPT_IN_ATTRIBUTE_NOT_PRESENT: "information",
    ENTITY_CONDITIONALLY_REQUIRED_ATTRIBUTE_NOT_PRESENT: "information",
    ENTITY_ASSOCIATION_NOT_SATISFIED: "violation",
}

#: What in-process validation can report, at a level `count` mode counts: finding id → the signal
#: types it can be about (live-check's request findings never arise in-process). Count mode starts
#: these series at 0, so a first finding is an increase Prometheus sees (a series whose first sample
#: is already 1 has none, and a one-off violation would never fire an alert).
_ATTRIBUTE_SIGNALS: Final = ("span", "metric", "event")
_KEY_SIGNALS: Final = ("span", "metric", "event", "resource")
COUNTED_IN_PROCESS: Final[dict[str, tuple[str, ...]]] = {
    MISSING_SPAN: ("span",),
    SPAN_KIND_MISMATCH: ("span",),
    MISSING_METRIC: ("metric",),
    UNIT_MISMATCH: ("metric",),
    UNEXPECTED_INSTRUMENT: ("metric",),
    BUCKET_BOUNDARIES_MISMATCH: ("metric",),
    MISSING_EVENT: ("span", "event"),  # a span event, or an event (log record)
    MISSING_ATTRIBUTE: _ATTRIBUTE_SIGNALS,  # on a resource it is information
    UNEXPECTED_ATTRIBUTE: _ATTRIBUTE_SIGNALS,
    REQUIRED_ATTRIBUTE_NOT_PRESENT: _ATTRIBUTE_SIGNALS,
    RECOMMENDED_ATTRIBUTE_NOT_PRESENT: _ATTRIBUTE_SIGNALS,
    ENTITY_REQUIRED_ATTRIBUTE_NOT_PRESENT: _ATTRIBUTE_SIGNALS,
    ENTITY_RECOMMENDED_ATTRIBUTE_NOT_PRESENT: _ATTRIBUTE_SIGNALS,
    ENTITY_ASSOCIATION_NOT_SATISFIED: _ATTRIBUTE_SIGNALS,
    TYPE_MISMATCH: _KEY_SIGNALS,
    UNDEFINED_ENUM_VARIANT: _KEY_SIGNALS,
    DEPRECATED: _KEY_SIGNALS,
    MISSING_NAMESPACE: _KEY_SIGNALS,
    INVALID_FORMAT: _KEY_SIGNALS,
    ILLEGAL_NAMESPACE: _KEY_SIGNALS,
}

#: Resource attributes come from the SDK and the deployment, not from instrumented code, so a
#: resource attribute the registry does not define is only worth knowing.
RESOURCE_MISSING_ATTRIBUTE_LEVEL: Final[Level] = "information"


@dataclass(frozen=True, slots=True)
class Finding:
    id: str
    level: Level
    message: str
    signal_type: str
    signal_name: str | None = None
    attribute: str | None = None
    #: entity findings: the entity type (one), or every candidate of an unsatisfied association
    entities: tuple[str, ...] = ()
    # Reports group samples by their tuple of findings: hash each finding once, not per sample.
    _hash: int = field(init=False, repr=False, compare=False, default=0)

    def __post_init__(self) -> None:
        key = (
            self.id,
            self.level,
            self.message,
            self.signal_type,
            self.signal_name,
            self.attribute,
            self.entities,
        )
        object.__setattr__(self, "_hash", hash(key))

    def __hash__(self) -> int:
        return self._hash

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "id": self.id,
            "level": self.level,
            "message": self.message,
            "signal_type": self.signal_type,
            "signal_name": self.signal_name,
        }
        if self.attribute is not None:
            out["attribute"] = self.attribute
        if self.entities:
            aggregate = self.id == ENTITY_ASSOCIATION_NOT_SATISFIED
            out["entity_type"] = list(self.entities) if aggregate else self.entities[0]
        return out

    def sort_key(self) -> tuple[int, str, str, str]:
        return (-LEVEL_RANK[self.level], self.id, self.attribute or "", self.message)

    def __str__(self) -> str:
        where = f"{self.signal_type} `{self.signal_name}`" if self.signal_name else self.signal_type
        return f"{self.level}[{self.id}] {where}: {self.message}"


def at_or_above(level: str, threshold: str) -> bool:
    """True when `level` is as serious as `threshold` or more (`none` is never reached)."""
    if threshold == "none":
        return False
    return LEVEL_RANK[level] >= LEVEL_RANK[threshold]


class SchemaViolation(Exception):
    """Raised at the emission point in strict mode: the emission breaks the schema."""

    def __init__(self, findings: list[Finding]) -> None:
        self.findings = findings
        super().__init__("; ".join(str(f) for f in findings))
