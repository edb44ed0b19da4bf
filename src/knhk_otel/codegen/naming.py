"""Names derived from schema names: case styles, Python identifiers and Prometheus series names.

Every stage that turns a schema name into another name (codegen targets, collector rules,
dashboards, the validator reading Prometheus) calls these, so one rule holds everywhere.
"""

from __future__ import annotations

import re

from knhk_otel.schema.model import Group

_WORD_SPLIT = re.compile(r"[^0-9A-Za-z]+")
_CAMEL_BOUNDARY = re.compile(r"(?<=[a-z0-9])(?=[A-Z])")

#: Python keywords (hard-coded rather than read from `keyword`, so output is the same on every version).
PY_KEYWORDS: frozenset[str] = frozenset(
    [
        "False",
        "None",
        "True",
        "and",
        "as",
        "assert",
        "async",
        "await",
        "break",
        "class",
        "continue",
        "def",
        "del",
        "elif",
        "else",
        "except",
        "finally",
        "for",
        "from",
        "global",
        "if",
        "import",
        "in",
        "is",
        "lambda",
        "nonlocal",
        "not",
        "or",
        "pass",
        "raise",
        "return",
        "try",
        "while",
        "with",
        "yield",
    ]
)

#: Lower-case builtins a keyword argument must not shadow (fixed list, same reason as above).
PY_BUILTINS: frozenset[str] = frozenset(
    [
        "abs",
        "aiter",
        "all",
        "anext",
        "any",
        "ascii",
        "bin",
        "bool",
        "breakpoint",
        "bytearray",
        "bytes",
        "callable",
        "chr",
        "classmethod",
        "compile",
        "complex",
        "copyright",
        "credits",
        "delattr",
        "dict",
        "dir",
        "divmod",
        "enumerate",
        "eval",
        "exec",
        "exit",
        "filter",
        "float",
        "format",
        "frozenset",
        "getattr",
        "globals",
        "hasattr",
        "hash",
        "help",
        "hex",
        "id",
        "input",
        "int",
        "isinstance",
        "issubclass",
        "iter",
        "len",
        "license",
        "list",
        "locals",
        "map",
        "max",
        "memoryview",
        "min",
        "next",
        "object",
        "oct",
        "open",
        "ord",
        "pow",
        "print",
        "property",
        "quit",
        "range",
        "repr",
        "reversed",
        "round",
        "set",
        "setattr",
        "slice",
        "sorted",
        "staticmethod",
        "str",
        "sum",
        "super",
        "tuple",
        "type",
        "vars",
        "zip",
    ]
)


def words(name: str) -> list[str]:
    """Split on anything that is not a letter or digit, and on camelCase boundaries."""
    out: list[str] = []
    for part in _WORD_SPLIT.split(name):
        if part:
            out.extend(w for w in _CAMEL_BOUNDARY.split(part) if w)
    return out


def snake_case(name: str) -> str:
    return "_".join(w.lower() for w in words(name))


def screaming_snake_case(name: str) -> str:
    return "_".join(w.upper() for w in words(name))


def kebab_case(name: str) -> str:
    return "-".join(w.lower() for w in words(name))


def pascal_case(name: str) -> str:
    return "".join(w[:1].upper() + w[1:].lower() for w in words(name))


def strip_namespace(name: str, namespace: str | None) -> str:
    """`knhk.mesh.gossip.round` → `gossip.round` when the registry's namespace is `knhk.mesh`."""
    if namespace:
        prefix = namespace.rstrip(".") + "."
        if name.startswith(prefix) and len(name) > len(prefix):
            return name[len(prefix) :]
    return name


def py_identifier(name: str, *, reserved: frozenset[str] = frozenset()) -> str:
    """A safe Python identifier: leading digit gets `n_`, keywords/builtins/reserved get a trailing `_`."""
    ident = name if name else "_"
    if ident[0].isdigit():
        ident = "n_" + ident
    if ident in PY_KEYWORDS or ident in PY_BUILTINS or ident in reserved:
        ident += "_"
    return ident


def enum_member_name(member_id: str) -> str:
    """SCREAMING_SNAKE of an enum member id; `_OTHER` becomes `OTHER`, `1xx` becomes `V1XX`."""
    name = screaming_snake_case(member_id)
    if not name:
        name = "EMPTY"
    if name[0].isdigit():
        name = "V" + name
    if name in PY_KEYWORDS:
        name += "_"
    return name


# --- Prometheus -----------------------------------------------------------------------------------

#: UCUM units the OpenTelemetry → Prometheus translation spells out as a suffix.
_PROM_UNITS: dict[str, str] = {
    "d": "days",
    "h": "hours",
    "min": "minutes",
    "s": "seconds",
    "ms": "milliseconds",
    "us": "microseconds",
    "ns": "nanoseconds",
    "By": "bytes",
    "KiBy": "kibibytes",
    "MiBy": "mebibytes",
    "GiBy": "gibibytes",
    "TiBy": "tebibytes",
    "KBy": "kilobytes",
    "MBy": "megabytes",
    "GBy": "gigabytes",
    "TBy": "terabytes",
    "m": "meters",
    "V": "volts",
    "A": "amperes",
    "J": "joules",
    "W": "watts",
    "g": "grams",
    "Cel": "celsius",
    "Hz": "hertz",
    "%": "percent",
}
_PROM_PER_UNITS: dict[str, str] = {"s": "second", "m": "minute", "h": "hour", "d": "day", "w": "week"}
_PROM_INVALID = re.compile(r"[^a-zA-Z0-9_:]+")
_ANNOTATION = re.compile(r"\{[^}]*\}")


def _unit_words(unit: str | None) -> list[str]:
    """Suffix words for a unit: `s` → [seconds], `By/s` → [bytes, per, second], `{round}` → []."""
    if not unit:
        return []
    cleaned = _ANNOTATION.sub("", unit).strip()
    if not cleaned or cleaned == "1":
        return []  # dimensionless: the Python exporter adds nothing (the Collector would add `ratio`)
    main, _, per = cleaned.partition("/")
    out: list[str] = []
    if main and main != "1":
        out.append(_PROM_UNITS.get(main, main))
    if per:
        out.extend(["per", _PROM_PER_UNITS.get(per, _PROM_UNITS.get(per, per))])
    return [w for w in (_PROM_INVALID.sub("_", w).strip("_") for w in out) if w]


def prometheus_label(attribute_name: str) -> str:
    """Attribute name → label name: dots (and every other invalid character) become underscores."""
    label = _PROM_INVALID.sub("_", attribute_name)
    if label[:1].isdigit():
        label = "key_" + label
    return label


def prometheus_name(metric: Group) -> str:
    """The Prometheus metric family name of a metric group.

    Counter `knhk.mesh.gossip.rounds` unit `{round}` → `knhk_mesh_gossip_rounds_total`; unit `s`
    adds `_seconds`, `By` adds `_bytes` (not repeated when the name already ends with it); a
    histogram's series are this name plus `_bucket`/`_sum`/`_count` (see `prometheus_series`).
    """
    base = _PROM_INVALID.sub("_", metric.signal_name).strip("_")
    base = re.sub(r"__+", "_", base)
    parts = base.split("_")
    for word in _unit_words(metric.unit):
        if word not in parts[-len(word.split("_")) :]:
            parts.append(word)
    name = "_".join(p for p in parts if p)
    if metric.instrument == "counter" and not name.endswith("_total"):
        name += "_total"
    return name


def prometheus_series(metric: Group) -> tuple[str, ...]:
    """Every series name a metric produces in Prometheus (three for a histogram, one otherwise)."""
    name = prometheus_name(metric)
    if metric.instrument == "histogram":
        return (f"{name}_bucket", f"{name}_sum", f"{name}_count")
    return (name,)
