"""Jinja2 filters every target may use: case styles, comments, Python types and literals, Prometheus names.

Python literals escape everything outside printable ASCII (`\\N{MICRO SIGN}`), so generated code is
the same bytes everywhere and linters never see an ambiguous character.
"""

from __future__ import annotations

import textwrap
import unicodedata
from collections.abc import Callable, Mapping
from typing import Any

from knhk_otel.codegen import naming
from knhk_otel.schema.model import Attribute, AttributeType, EnumType

_PY_SCALARS = {"string": "str", "int": "int", "double": "float", "boolean": "bool"}


def comment(text: str, prefix: str = "# ", width: int = 100) -> str:
    """Wrap `text` to `width` columns (paragraphs kept) with `prefix` on every line."""
    lines: list[str] = []
    for paragraph in str(text).strip().split("\n\n"):
        flat = " ".join(paragraph.split())
        if lines:
            lines.append(prefix.rstrip())
        wrapped = textwrap.wrap(flat, max(20, width - len(prefix)), break_on_hyphens=False) or [""]
        lines.extend((prefix + w).rstrip() for w in wrapped)
    return "\n".join(lines)


def _escape_char(ch: str, quote: str) -> str:
    if ch == "\\":
        return "\\\\"
    if ch == quote:
        return "\\" + quote
    if ch == "\n":
        return "\\n"
    if ch == "\t":
        return "\\t"
    if ch == "\r":
        return "\\r"
    if " " <= ch <= "~":
        return ch
    name = unicodedata.name(ch, "")
    if name:
        return "\\N{" + name + "}"
    code = ord(ch)
    return f"\\u{code:04x}" if code <= 0xFFFF else f"\\U{code:08x}"


def py_str(value: str) -> str:
    """A double-quoted Python string literal of `value` (ASCII only)."""
    return '"' + "".join(_escape_char(c, '"') for c in str(value)) + '"'


def _escape_doc(text: str) -> str:
    # spaces inside `\N{...}` become NUL until wrapping is done, so a name is never split
    escaped = "".join(
        _escape_char(c, "").replace(" ", "\x00") if c > "~" else _escape_char(c, "") for c in text
    )
    return escaped.replace('"""', '\\"\\"\\"')


def _doc_paragraph(paragraph: str, width: int) -> list[str]:
    """Wrap one paragraph; a paragraph of `- ` lines is a bullet list with hanging indents."""
    lines = [line.strip() for line in paragraph.strip().split("\n") if line.strip()]
    if lines and all(line.startswith("- ") for line in lines):
        out: list[str] = []
        for line in lines:
            out.extend(
                textwrap.wrap(
                    _escape_doc(" ".join(line.split())),
                    width,
                    subsequent_indent="  ",
                    break_on_hyphens=False,
                    break_long_words=False,
                )
            )
        return [line.replace("\x00", " ") for line in out]
    flat = _escape_doc(" ".join(paragraph.split()))
    wrapped = textwrap.wrap(flat, width, break_on_hyphens=False, break_long_words=False)
    return [line.replace("\x00", " ") for line in wrapped]


def py_docstring(text: str, indent: int = 0, width: int = 108) -> str:
    """A triple-quoted docstring wrapped to `width` (indent included), safe for any brief.

    Paragraphs are separated by blank lines; a paragraph whose lines all start with `- ` stays a list.
    """
    pad = " " * indent
    body_lines: list[str] = []
    for paragraph in str(text).strip().split("\n\n"):
        wrapped = _doc_paragraph(paragraph, max(30, width - indent - 3))
        if not wrapped:
            continue
        if body_lines:
            body_lines.append("")
        body_lines.extend(wrapped)
    if not body_lines:
        body_lines = ["(no description in the schema)"]
    if body_lines[-1].endswith('"') and not body_lines[-1].endswith('\\"'):
        body_lines[-1] = body_lines[-1][:-1] + '\\"'
    if len(body_lines) == 1 and len(pad) + len(body_lines[0]) + 6 <= width:
        return f'{pad}"""{body_lines[0]}"""'
    out = [f'{pad}"""{body_lines[0]}']
    out.extend((pad + line) if line else "" for line in body_lines[1:])
    out.append(f'{pad}"""')
    return "\n".join(out)


def py_wrap(open_: str, items: list[str], close: str, indent: int = 0, width: int = 108) -> str:
    """`open_ a, b close` on one line when it fits, else one item per line with a trailing comma."""
    flat = open_ + ", ".join(items) + close
    if indent + len(flat) <= width:
        return " " * indent + flat
    pad = " " * indent
    lines = [pad + open_] + [f"{pad}    {item}," for item in items] + [pad + close]
    return "\n".join(lines)


def py_assign(target: str, value_literal: str, indent: int = 0, width: int = 108) -> str:
    """`target = value`, with the value in parentheses on its own line when the line would be too long."""
    pad = " " * indent
    line = f"{pad}{target} = {value_literal}"
    if len(line) <= width or "\n" in value_literal:
        return line
    return f"{pad}{target} = (\n{pad}    {value_literal}\n{pad})"


def py_literal(value: Any, indent: int = 0, width: int = 108, used: int = 0) -> str:
    """A Python literal for YAML-ish data, wrapped to `width`.

    `indent` is the indentation of the line the literal starts on, `used` how many columns of that
    line precede it (beyond the indentation).
    """
    flat = _flat_literal(value)
    if indent + used + len(flat) <= width or not isinstance(value, Mapping | list | tuple):
        return flat
    pad = " " * (indent + 4)
    if isinstance(value, Mapping):
        items = []
        for k, v in value.items():
            key = f"{py_str(str(k))}: "
            items.append(f"{pad}{key}{py_literal(v, indent + 4, width, len(key) + 1)},")
        return "{\n" + "\n".join(items) + "\n" + " " * indent + "}"
    open_, close = ("[", "]") if isinstance(value, list) else ("(", ")")
    items = [f"{pad}{py_literal(v, indent + 4, width, 1)}," for v in value]
    return open_ + "\n" + "\n".join(items) + "\n" + " " * indent + close


def _flat_literal(value: Any) -> str:
    if value is None or isinstance(value, bool):
        return repr(value)
    if isinstance(value, int | float):
        return repr(value)
    if isinstance(value, str):
        return py_str(value)
    if isinstance(value, Mapping):
        return "{" + ", ".join(f"{py_str(str(k))}: {_flat_literal(v)}" for k, v in value.items()) + "}"
    if isinstance(value, list):
        return "[" + ", ".join(_flat_literal(v) for v in value) + "]"
    if isinstance(value, tuple):
        inner = ", ".join(_flat_literal(v) for v in value)
        return "(" + inner + ("," if len(value) == 1 else "") + ")"
    return py_str(str(value))


def py_wrapped_str(value: str, indent: int = 0, width: int = 108, used: int = 0) -> str:
    """A string literal, split into implicitly concatenated parts in parentheses when too long.

    `used` is how many columns of the first line precede the literal (beyond the indentation).
    """
    flat = py_str(value)
    if indent + used + len(flat) <= width:
        return flat
    pad = " " * (indent + 4)
    parts = textwrap.wrap(
        str(value), max(30, width - indent - 8), drop_whitespace=False, break_on_hyphens=False
    )
    return "(\n" + "\n".join(pad + py_str(p) for p in parts) + "\n" + " " * indent + ")"


def python_type(
    attribute: Attribute | AttributeType,
    enum_class: str | None = None,
    abc: str = "",
    types: str = "",
) -> str:
    """The Python annotation for an attribute's schema type.

    `enum_class` names the class generated for an enum attribute; `abc` and `types` are how the
    generated module spells `collections.abc.` and `opentelemetry.util.types.` (e.g. `_abc.`).
    """
    kind = attribute.type if isinstance(attribute, Attribute) else attribute
    if isinstance(kind, EnumType):
        if enum_class:
            return enum_class
        return _PY_SCALARS.get(kind.value_type, "str")
    if kind == "any":
        return f"{types}AttributeValue"
    if kind.startswith("template[") and kind.endswith("]"):
        return f"{abc}Mapping[str, {python_type(kind[len('template[') : -1], None, abc, types)}]"
    if kind.endswith("[]"):
        return f"{abc}Sequence[{_PY_SCALARS.get(kind[:-2], 'str')}]"
    return _PY_SCALARS.get(kind, f"{types}AttributeValue")


def type_label(kind: AttributeType) -> str:
    """Human-readable schema type: `enum (string)` for enums, the type name otherwise."""
    if isinstance(kind, EnumType):
        return f"enum ({kind.value_type})"
    return kind


def md_cell(value: Any) -> str:
    """Text safe inside a Markdown table cell: one line, pipes escaped."""
    text = " ".join(str(value).split())
    return text.replace("|", "\\|")


FILTERS: dict[str, Callable[..., Any]] = {
    "snake_case": naming.snake_case,
    "pascal_case": naming.pascal_case,
    "screaming_snake_case": naming.screaming_snake_case,
    "kebab_case": naming.kebab_case,
    "strip_namespace": naming.strip_namespace,
    "enum_member_name": naming.enum_member_name,
    "py_identifier": naming.py_identifier,
    "prometheus_name": naming.prometheus_name,
    "prometheus_series": naming.prometheus_series,
    "prometheus_label": naming.prometheus_label,
    "comment": comment,
    "python_type": python_type,
    "type_label": type_label,
    "py_str": py_str,
    "py_docstring": py_docstring,
    "py_literal": py_literal,
    "py_assign": py_assign,
    "py_wrap": py_wrap,
    "py_wrapped_str": py_wrapped_str,
    "md_cell": md_cell,
}
