"""Strict mode for the generated helpers: check every attribute against the schema at run time.

Off by default, so a helper costs what a careful hand-written OTel call costs. Tests (and the mesh
in its test suite) turn it on: then a wrong type, an unknown enum value or a missing required
attribute raises `SchemaUsageError` naming the helper and the attribute, instead of producing
telemetry the schema does not describe.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from enum import Enum
from typing import Final

#: One attribute of a helper: (attribute name, schema type or enum class, required).
AttributeSpec = tuple[str, "str | type[Enum]", bool]

#: Read by generated helpers on every call (a module attribute is the cheapest check there is);
#: change it only through `set_strict`.
enabled: bool = False

_SCALARS: Final[dict[str, tuple[type, ...]]] = {
    "string": (str,),
    "int": (int,),
    "double": (float, int),
    "boolean": (bool,),
}


class SchemaUsageError(TypeError):
    """A generated helper was called with values the schema does not allow (strict mode only)."""


def set_strict(on: bool) -> None:
    """Turn strict checking on or off for every generated helper in the process."""
    global enabled
    enabled = bool(on)


def is_strict() -> bool:
    return enabled


def _scalar_ok(kind: str, value: object) -> bool:
    allowed = _SCALARS[kind]
    if kind in ("int", "double") and isinstance(value, bool):
        return False  # bool is an int subclass, but the schema keeps them apart
    return isinstance(value, allowed)


def _value_problem(kind: str | type[Enum], value: object) -> str | None:
    """Why `value` does not fit `kind`, or None when it does."""
    if isinstance(kind, type):
        if isinstance(value, kind):
            return None
        allowed = ", ".join(repr(m.value) for m in kind)
        return f"{value!r} is not a member of {kind.__name__} ({allowed})"
    if kind == "any":
        if isinstance(value, str | bool | int | float):
            return None
        if isinstance(value, Sequence) and all(isinstance(v, str | bool | int | float) for v in value):
            return None
        return f"{type(value).__name__} is not a valid attribute value"
    if kind.endswith("[]"):
        elem = kind[:-2]
        if isinstance(value, str | bytes) or not isinstance(value, Sequence):
            return f"expected a sequence of {elem}, got {type(value).__name__}"
        for item in value:
            if not _scalar_ok(elem, item):
                return f"expected a sequence of {elem}, got an item {item!r}"
        return None
    if kind in _SCALARS:
        if _scalar_ok(kind, value):
            return None
        return f"expected {kind}, got {type(value).__name__} {value!r}"
    return f"unknown schema type {kind!r}"


def check(helper: str, spec: Sequence[AttributeSpec], values: Sequence[object]) -> None:
    """Raise `SchemaUsageError` for the first value of `values` (same order as `spec`) that is wrong."""
    for (name, kind, required), value in zip(spec, values, strict=True):
        if value is None:
            if required:
                raise SchemaUsageError(f"{helper}: required attribute `{name}` is missing")
            continue
        if isinstance(kind, str) and kind.startswith("template["):
            inner = kind[len("template[") : -1]
            if not isinstance(value, Mapping):
                raise SchemaUsageError(
                    f"{helper}: attribute `{name}` is a template: expected a mapping of keys to {inner}, "
                    f"got {type(value).__name__}"
                )
            for key, item in value.items():
                if not isinstance(key, str) or not key:
                    raise SchemaUsageError(f"{helper}: attribute `{name}` has an invalid key {key!r}")
                problem = _value_problem(inner, item)
                if problem is not None:
                    raise SchemaUsageError(f"{helper}: attribute `{name}.{key}`: {problem}")
            continue
        problem = _value_problem(kind, value)
        if problem is not None:
            raise SchemaUsageError(f"{helper}: attribute `{name}`: {problem}")
