"""Syntax stage: validate each registry file against the project's own JSON Schema (v1 or v2).

Every jsonschema error becomes exactly one diagnostic at the YAML position of the failing node, with
a message that names the field path (`groups[2].span_kind`) and, for unknown names, a did-you-mean.
The schemas avoid `anyOf`/`oneOf` (they use `if`/`then`/`else` on the node's own shape), so every
error jsonschema reports is already the precise one: no "not valid under any of the given schemas".

Diagnostic ids: `syntax` (an error: the file breaks its schema) and `empty_file` (a warning: the
file parses to nothing).
"""

from __future__ import annotations

import difflib
import json
from collections.abc import Iterable, Sequence
from functools import cache
from importlib import resources
from typing import Any, Literal

from jsonschema import Draft202012Validator
from jsonschema.exceptions import ValidationError

from knhk_otel.schema.diagnostics import Diagnostic
from knhk_otel.schema.yamlpos import PathKey, YamlDoc

DocumentFormat = Literal["v1", "v2"]

#: File names that describe a registry rather than define telemetry; never schema-checked here.
MANIFEST_NAMES = frozenset({"manifest.yaml", "registry_manifest.yaml"})

_JSON_TYPE_NAMES = {
    dict: "a mapping",
    list: "a list",
    str: "a string",
    bool: "a boolean",
    int: "an integer",
    float: "a number",
    type(None): "nothing (null)",
}


def document_format(doc: YamlDoc) -> DocumentFormat:
    """v2 when the file declares a `file_format` other than `definition/1` (the v2 schema then judges
    its value) or the legacy marker `version: "2"`; v1 otherwise."""
    data = doc.data
    if not isinstance(data, dict):
        return "v1"
    if "file_format" in data:
        return "v1" if data["file_format"] == "definition/1" else "v2"
    return "v2" if str(data.get("version")) == "2" else "v1"


@cache
def schema(fmt: DocumentFormat) -> dict[str, Any]:
    name = "semconv-v1.schema.json" if fmt == "v1" else "semconv-v2.schema.json"
    text = resources.files("knhk_otel.check").joinpath("schemas").joinpath(name).read_text(encoding="utf-8")
    loaded: dict[str, Any] = json.loads(text)
    return loaded


@cache
def _validator(fmt: DocumentFormat) -> Draft202012Validator:
    s = schema(fmt)
    Draft202012Validator.check_schema(s)
    return Draft202012Validator(s)


def format_path(path: Sequence[str | int]) -> str:
    out = ""
    for part in path:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += f".{part}" if out else str(part)
    return out or "<document>"


def did_you_mean(word: object, choices: Iterable[str]) -> str | None:
    if not isinstance(word, str):
        return None
    close = difflib.get_close_matches(word, list(choices), n=1, cutoff=0.6)
    return f"did you mean `{close[0]}`?" if close else None


def _describe(value: Any) -> str:
    return _JSON_TYPE_NAMES.get(type(value), type(value).__name__)


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def _error_diagnostics(doc: YamlDoc, err: ValidationError) -> list[Diagnostic]:
    path: PathKey = tuple(err.absolute_path)
    where = format_path(path)
    inst = err.instance
    kind = err.validator
    # jsonschema types these as possibly Unset; for a raised error they are always set.
    schema: dict[str, Any] = err.schema if isinstance(err.schema, dict) else {}
    expected_value: Any = err.validator_value
    if kind == "additionalProperties" and isinstance(inst, dict):
        allowed = list(schema.get("properties", {}))
        out = []
        for key in inst:
            if key in allowed:
                continue
            out.append(
                Diagnostic(
                    "syntax",
                    f"{format_path((*path, str(key)))}: unknown field `{key}`",
                    doc.source((*path, str(key)), key=True),
                    hint=did_you_mean(key, allowed),
                )
            )
        return out
    if kind == "required" and isinstance(inst, dict):
        missing = [name for name in expected_value if name not in inst]
        return [
            Diagnostic("syntax", f"{where}: missing required field `{name}`", doc.source(path))
            for name in missing
        ]
    if kind == "enum":
        options = [str(o) for o in expected_value]
        return [
            Diagnostic(
                "syntax",
                f"{where}: {_short(inst)} is not one of {', '.join(options)}",
                doc.source(path),
                hint=did_you_mean(inst, options),
            )
        ]
    if kind == "const":
        return [
            Diagnostic("syntax", f"{where}: must be {expected_value!r}, not {_short(inst)}", doc.source(path))
        ]
    if kind == "type":
        expected = expected_value if isinstance(expected_value, list) else [expected_value]
        wanted = " or ".join(str(t) for t in expected if t != "null")
        return [Diagnostic("syntax", f"{where}: expected {wanted}, got {_describe(inst)}", doc.source(path))]
    if kind in ("minItems", "minLength"):
        return [Diagnostic("syntax", f"{where}: must not be empty", doc.source(path))]
    if kind in ("minProperties", "maxProperties") and isinstance(schema.get("properties"), dict):
        keys = ", ".join(schema["properties"])
        return [Diagnostic("syntax", f"{where}: must have exactly one of {keys}", doc.source(path))]
    return [Diagnostic("syntax", f"{where}: {err.message}", doc.source(path))]


def check_document(doc: YamlDoc) -> list[Diagnostic]:
    """All syntax diagnostics of one parsed file, in file order, one per problem."""
    if doc.data is None:
        return [Diagnostic("empty_file", "file defines nothing", doc.source(()), severity="warning")]
    fmt = document_format(doc)
    seen: set[tuple[str, str, int, int]] = set()
    out: list[Diagnostic] = []
    for err in _validator(fmt).iter_errors(doc.data):
        for diag in _error_diagnostics(doc, err):
            src = diag.source
            key = (diag.message, src.path if src else "", src.line if src else 0, src.col if src else 0)
            if key not in seen:
                seen.add(key)
                out.append(diag)
    out.sort(key=lambda d: (d.source.line, d.source.col) if d.source else (0, 0))
    return out


def check_documents(docs: Iterable[YamlDoc]) -> list[Diagnostic]:
    out: list[Diagnostic] = []
    for doc in docs:
        if doc.path.replace("\\", "/").rsplit("/", 1)[-1] in MANIFEST_NAMES:
            continue
        out.extend(check_document(doc))
    return out
