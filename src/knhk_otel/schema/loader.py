"""Finds and parses a registry's files: its manifest, its definition files and, recursively, the
local registries its manifest depends on. Nothing is fetched from the network, ever.
"""

from __future__ import annotations

import errno
import logging
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from knhk_otel.schema.diagnostics import Diagnostic
from knhk_otel.schema.model import Manifest, Source
from knhk_otel.schema.yamlpos import YamlDoc, load_yaml

log = logging.getLogger(__name__)

MANIFEST_NAMES: tuple[str, ...] = ("manifest.yaml", "registry_manifest.yaml")
_YAML_SUFFIXES = (".yaml", ".yml")
_VERSION = re.compile(r"^v?\d+(\.\d+)*([-+.][0-9A-Za-z.-]+)?$")


@dataclass
class LoadedRegistry:
    """A registry's raw documents; `diagnostics` includes those of its dependencies."""

    root: Path
    manifest: Manifest | None
    documents: list[YamlDoc]  # own definition files, sorted by path
    dependencies: list[LoadedRegistry]
    diagnostics: list[Diagnostic] = field(default_factory=list)
    #: A registry published in resolved form: its manifest's `resolved_registry_uri` file.
    published: YamlDoc | None = None


def document_format(doc: YamlDoc) -> Literal["v1", "v2"]:
    """`v2` when the file says `file_format: definition/2` (or the legacy `version: "2"`), else `v1`."""
    data = doc.data
    if isinstance(data, dict) and (
        data.get("file_format") == "definition/2"
        or ("file_format" not in data and str(data.get("version")) == "2")
    ):
        return "v2"
    return "v1"


def display_path(path: Path) -> str:
    """Relative to the current directory when the file is under it, else as given."""
    try:
        cwd = Path.cwd().resolve()
        return str(path.resolve().relative_to(cwd))
    except (ValueError, OSError, RuntimeError):  # RuntimeError: a symlink loop
        return str(path)


def load_documents(root: str | Path) -> LoadedRegistry:
    """Load `root` and its dependencies; problems become diagnostics, never exceptions."""
    return _load(Path(root), ())


def _not_a_folder(root: Path) -> str:
    if root.is_symlink() and not root.exists():
        try:
            root.resolve(strict=True)
        except RuntimeError:
            return "is a symlink loop"
        except OSError as exc:
            if exc.errno == errno.ELOOP:
                return "is a symlink loop"
        return f"is a broken symlink (to {os.readlink(root)})"
    return "is not a folder" if root.exists() else "does not exist"


def _load(root: Path, stack: tuple[Path, ...]) -> LoadedRegistry:
    diagnostics: list[Diagnostic] = []
    shown = display_path(root)
    if not root.is_dir():
        reason = _not_a_folder(root)
        diagnostics.append(Diagnostic("file_unreadable", f"registry folder {shown} {reason}", Source(shown)))
        return LoadedRegistry(root, None, [], [], diagnostics)
    manifest_doc: YamlDoc | None = None
    manifest_file = next((root / n for n in MANIFEST_NAMES if (root / n).is_file()), None)
    if manifest_file is not None:
        manifest_doc, errs = load_yaml(manifest_file, display_path(manifest_file))
        diagnostics.extend(errs)
    manifest, dep_paths = _manifest(root, manifest_doc, diagnostics)
    published = _published(root, manifest_doc, diagnostics)
    if published is not None:
        return LoadedRegistry(root, manifest, [], [], diagnostics, published)
    documents: list[YamlDoc] = []
    for path in _definition_files(root, diagnostics):
        doc, errs = load_yaml(path, display_path(path))
        diagnostics.extend(errs)
        if doc is not None:
            documents.append(doc)
    dependencies: list[LoadedRegistry] = []
    here = root.resolve()
    for dep_path, src in dep_paths:
        target = dep_path.resolve()
        if target == here or target in stack:
            chain = [*stack, here]
            cycle = [*chain[chain.index(target) :], target]
            shown_chain = " -> ".join(display_path(p) for p in cycle)
            what = "itself" if target == here and len(cycle) == 2 else "a registry that depends on it"
            diagnostics.append(
                Diagnostic(
                    "dependency_cycle",
                    f"registry {display_path(root)} depends on {what}: {shown_chain}; "
                    "remove one of these dependencies",
                    src,
                )
            )
            continue
        dep = _load(dep_path, (*stack, here))
        dependencies.append(dep)
        diagnostics.extend(dep.diagnostics)
    if not documents and not dependencies and not any(d.is_error for d in diagnostics):
        diagnostics.append(
            Diagnostic(
                "empty_registry",
                f"registry folder {shown} holds no definition files (*.yaml, *.yml): nothing to check",
                Source(shown),
                severity="warning",
            )
        )
    log.info("loaded %s: %d definition files, %d dependencies", shown, len(documents), len(dependencies))
    return LoadedRegistry(root, manifest, documents, dependencies, diagnostics)


def _published(root: Path, doc: YamlDoc | None, diagnostics: list[Diagnostic]) -> YamlDoc | None:
    """The resolved file a published registry's manifest names (`resolved_registry_uri`), if any."""
    data = doc.data if doc is not None else None
    uri = data.get("resolved_registry_uri") if isinstance(data, dict) else None
    if doc is None or not isinstance(uri, str) or not uri:
        return None
    path = root / uri
    where = doc.source(("resolved_registry_uri",))
    if re.match(r"^[a-z][a-z0-9+.-]*://", uri) or not path.is_file():
        diagnostics.append(
            Diagnostic("dependency_not_found", f"resolved registry {uri!r} is not a local file", where)
        )
        return None
    published, errs = load_yaml(path, display_path(path))
    diagnostics.extend(errs)
    return published


def _definition_files(root: Path, diagnostics: list[Diagnostic]) -> list[Path]:
    """YAML files under `root`, skipping hidden folders and nested registries (they have a manifest)."""
    found: list[Path] = []
    seen: dict[Path, Path] = {}  # real folder -> the path it was first reached by

    def on_error(exc: OSError) -> None:
        where = display_path(Path(exc.filename)) if exc.filename else display_path(root)
        diagnostics.append(
            Diagnostic("file_unreadable", f"cannot list folder: {exc.strerror}", Source(where))
        )

    def new_folder(path: Path) -> bool:
        """False (with a diagnostic) for a folder already walked: a symlink loop or a second link."""
        real = path.resolve()
        if real in seen:
            diagnostics.append(
                Diagnostic(
                    "symlink_loop",
                    f"folder {path} leads back to {display_path(seen[real])} "
                    "(a symlink loop or a second link), already read: skipped (remove the link)",
                    Source(str(path)),
                    severity="warning",
                )
            )
            return False
        seen[real] = path
        return True

    new_folder(root)
    for folder, dirs, files in os.walk(root, onerror=on_error, followlinks=True):
        base = Path(folder)
        dirs[:] = [
            d
            for d in sorted(dirs)
            if not d.startswith(".")
            and not any((base / d / n).is_file() for n in MANIFEST_NAMES)
            and new_folder(base / d)
        ]
        for name in files:
            if name.endswith(_YAML_SUFFIXES) and not (base == root and name in MANIFEST_NAMES):
                found.append(base / name)
    return sorted(found, key=lambda p: p.relative_to(root).as_posix())


def _manifest(
    root: Path, doc: YamlDoc | None, diagnostics: list[Diagnostic]
) -> tuple[Manifest | None, list[tuple[Path, Source]]]:
    """The manifest and the local folders of its dependencies (with where each was declared)."""
    if doc is None:
        return None, []
    data = doc.data
    if data is None:
        data = {}
    if not isinstance(data, dict):
        diagnostics.append(Diagnostic("manifest_invalid", "the manifest must be a mapping", doc.source()))
        return None, []

    def text(key: str) -> str | None:
        value = data.get(key)
        if value is None:
            return None
        if isinstance(value, str | int | float) and not isinstance(value, bool):
            return str(value)
        diagnostics.append(Diagnostic("manifest_invalid", f"`{key}` must be a string", doc.source((key,))))
        return None

    schema_url = text("schema_base_url") or text("schema_url")
    version = text("semconv_version")
    if version is None and schema_url:
        last = schema_url.rstrip("/").rsplit("/", 1)[-1]
        version = last if _VERSION.match(last) else None
    name = text("name") or root.resolve().name
    namespace = text("namespace")
    deps: list[tuple[str, str]] = []
    dep_paths: list[tuple[Path, Source]] = []
    raw_deps = data.get("dependencies")
    if raw_deps is not None and not isinstance(raw_deps, list):
        diagnostics.append(
            Diagnostic("manifest_invalid", "`dependencies` must be a list", doc.source(("dependencies",)))
        )
        raw_deps = None
    for i, entry in enumerate(raw_deps or []):
        at = ("dependencies", i)
        resolved = _dependency(root, doc, entry, at, diagnostics)
        if resolved is not None:
            dep_name, dep_path = resolved
            deps.append((dep_name, str(dep_path)))
            dep_paths.append((dep_path, doc.source((*at, "registry_path"))))
    manifest = Manifest(
        name=name,
        semconv_version=version,
        schema_base_url=schema_url,
        description=text("description") or "",
        namespace=namespace,
        dependencies=tuple(deps),
        source=doc.source(),
    )
    return manifest, dep_paths


def _dependency(
    root: Path, doc: YamlDoc, entry: Any, at: tuple[str | int, ...], diagnostics: list[Diagnostic]
) -> tuple[str, Path] | None:
    if not isinstance(entry, dict):
        diagnostics.append(
            Diagnostic(
                "manifest_invalid", "a dependency must be a mapping {name, registry_path}", doc.source(at)
            )
        )
        return None
    raw_path = entry.get("registry_path")
    name = entry.get("name") or entry.get("schema_url")
    if not isinstance(raw_path, str) or not raw_path:
        diagnostics.append(
            Diagnostic("manifest_invalid", "a dependency needs a local `registry_path`", doc.source(at))
        )
        return None
    where = doc.source((*at, "registry_path"))
    if re.match(r"^[a-z][a-z0-9+.-]*://", raw_path):
        diagnostics.append(
            Diagnostic(
                "dependency_not_found",
                f"dependency {raw_path!r} is remote; only local folders are loaded (no network)",
                where,
            )
        )
        return None
    path = Path(raw_path)
    if not path.is_absolute():
        # relative to the registry; else, as Weaver reads it, to the current directory
        path = root / path if (root / path).exists() or not path.exists() else path
    if path.is_file() and path.name in MANIFEST_NAMES:
        path = path.parent
    if not path.is_dir():
        diagnostics.append(
            Diagnostic("dependency_not_found", f"dependency folder {display_path(path)} not found", where)
        )
        return None
    return (str(name) if name else path.resolve().name), path
