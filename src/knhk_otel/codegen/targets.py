"""Generation targets: a folder of Jinja2 templates plus `target.yaml` saying what renders where.

A target is data, not code: adding one (collector config, alert rules, dashboards, a user's CSV)
means adding a folder. `target.yaml` keys:

    description: one line
    output: src/knhk_otel/semconv      # default output folder, relative to the working directory
    comment: "# "                      # header prefix, or [prefix, suffix] (e.g. ["<!-- ", " -->"]),
                                       # or "none" when the format has no comments (the template then
                                       # places `generated_header` itself)
    format: python                     # optional output normalisation (python | text, default text)
    hook: pkg.module:function          # optional Python hook adding context (or `hook.py` in the folder)
    params: {key: value}               # defaults for -D/--params
    files:
      - template: attributes.py.j2
        output: attributes.py          # rendered once for the registry
      - template: group.md.j2
        for_each: group                # once per group ...
        group_types: [span, metric]    # ... of these types (optional)
        output: "{{ group.id | kebab_case }}.md"   # file-name pattern (Jinja)
      - template: page.md.j2
        for_each: components           # once per item of a list the hook put in the context
        as: component
        output: "{{ component.slug }}.md"
"""

from __future__ import annotations

import difflib
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

import yaml

from knhk_otel.codegen.errors import CodegenError

TARGET_FILE = "target.yaml"
_GROUP_TYPES = {"attribute_group", "span", "event", "metric", "entity", "scope", "undefined"}
_TARGET_KEYS = ("description", "output", "comment", "format", "hook", "params", "files")
_RULE_KEYS = ("template", "output", "for_each", "group_types", "as")


@dataclass(frozen=True, slots=True)
class FileRule:
    template: str
    output: str
    for_each: str | None = None  # None = once; "group" = per group; else a context list key
    as_name: str = "item"
    group_types: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class Target:
    name: str
    directory: Path
    files: tuple[FileRule, ...]
    output: str = ""
    description: str = ""
    comment: tuple[str, str] | None = ("# ", "")
    format: str = "text"
    hook: str | None = None
    params: dict[str, Any] = field(default_factory=dict)


def _fail(path: Path, message: str) -> CodegenError:
    return CodegenError(f"{path}: error[target_config]: {message}")


def _no_unknown_keys(raw: dict[Any, Any], known: tuple[str, ...], where: str, path: Path) -> None:
    """A misspelt key would otherwise be ignored silently and its setting lost."""
    for key in raw:
        if key not in known:
            close = difflib.get_close_matches(str(key), known, n=1)
            hint = f"did you mean `{close[0]}`?" if close else f"known keys: {', '.join(known)}"
            raise _fail(path, f"{where}unknown key `{key}`; {hint}")


def _comment(value: Any, path: Path) -> tuple[str, str] | None:
    if value is None:
        return ("# ", "")
    if value == "none":
        return None
    if isinstance(value, str):
        return (value, "")
    if isinstance(value, list) and len(value) == 2 and all(isinstance(v, str) for v in value):
        return (value[0], value[1])
    raise _fail(path, "`comment` must be a prefix string, [prefix, suffix] or `none`")


def _rule(raw: Any, index: int, path: Path) -> FileRule:
    where = f"files[{index}]"
    if not isinstance(raw, dict):
        raise _fail(path, f"{where} must be a mapping")
    _no_unknown_keys(raw, _RULE_KEYS, f"{where}: ", path)
    template, output = raw.get("template"), raw.get("output")
    if not isinstance(template, str) or not isinstance(output, str):
        raise _fail(path, f"{where} needs `template` and `output` strings")
    for_each = raw.get("for_each")
    if for_each is not None and not isinstance(for_each, str):
        raise _fail(path, f"{where}.for_each must be a string")
    types = raw.get("group_types", [])
    if not isinstance(types, list) or not all(isinstance(t, str) and t in _GROUP_TYPES for t in types):
        raise _fail(
            path, f"{where}.group_types must be a list of group types ({', '.join(sorted(_GROUP_TYPES))})"
        )
    default_as = "group" if for_each == "group" else "item"
    as_name = raw.get("as", default_as)
    if not isinstance(as_name, str) or not as_name.isidentifier():
        raise _fail(path, f"{where}.as must be an identifier")
    return FileRule(template, output, for_each, as_name, tuple(types))


def load_target(directory: Path, name: str | None = None) -> Target:
    """Read `directory/target.yaml`; a malformed file is a one-line `CodegenError`."""
    path = directory / TARGET_FILE
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise _fail(path, f"cannot read: {exc.strerror}") from exc
    except UnicodeDecodeError as exc:
        raise _fail(
            path, f"not UTF-8 (byte 0x{exc.object[exc.start]:02x} at offset {exc.start}); save it as UTF-8"
        ) from exc
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        raise _fail(path, f"invalid YAML{where}: {exc.problem or exc.context}") from exc
    except yaml.YAMLError as exc:
        raise _fail(path, f"invalid YAML: {exc}".replace("\n", " ")) from exc
    if not isinstance(raw, dict):
        raise _fail(path, "must be a mapping")
    _no_unknown_keys(raw, _TARGET_KEYS, "", path)
    files = raw.get("files")
    if not isinstance(files, list) or not files:
        raise _fail(path, "`files` must be a non-empty list")
    params = raw.get("params", {}) or {}
    if not isinstance(params, dict):
        raise _fail(path, "`params` must be a mapping")
    hook = raw.get("hook")
    if hook is not None and not isinstance(hook, str):
        raise _fail(path, "`hook` must be `module:function` or a .py file in the target folder")
    fmt = raw.get("format", "text")
    if fmt not in ("text", "python"):
        raise _fail(path, "`format` must be `text` or `python`")
    return Target(
        name=name or directory.name,
        directory=directory,
        files=tuple(_rule(r, i, path) for i, r in enumerate(files)),
        output=str(raw.get("output", "") or ""),
        description=str(raw.get("description", "") or ""),
        comment=_comment(raw.get("comment"), path),
        format=fmt,
        hook=hook,
        params=dict(params),
    )


def builtin_dir() -> Path:
    return Path(str(resources.files("knhk_otel") / "templates"))


def target_dirs(extra_dirs: list[Path] | None = None) -> dict[str, Path]:
    """Built-in target folders, then every `-t DIR` (a folder of target folders) adding or overriding
    by name. Nothing is parsed here, so a broken target only fails a run that asks for it."""
    found: dict[str, Path] = {}
    for root in [builtin_dir(), *(extra_dirs or [])]:
        if not root.is_dir():
            raise CodegenError(f"{root}: error[target_dir]: not a directory")
        for child in sorted(root.iterdir()):
            if (child / TARGET_FILE).is_file():
                found[child.name] = child
    return found


def discover(extra_dirs: list[Path] | None = None) -> dict[str, Target]:
    """Every target of `target_dirs`, loaded (fails on the first broken one)."""
    return {name: load_target(folder) for name, folder in target_dirs(extra_dirs).items()}


def builtin_names() -> list[str]:
    return sorted(p.name for p in builtin_dir().iterdir() if (p / TARGET_FILE).is_file())
