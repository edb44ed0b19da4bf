"""Hook of the `markdown` target: splits the registry into components, one page per source file.

A component is the file a group was written in (`schema/gossip.yaml` → `gossip.md`, a dependency's
`schema/otel/registry.yaml` → `otel-registry.md`), so the docs follow the schema's own layout.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import PurePosixPath
from typing import Any

from knhk_otel.codegen import naming
from knhk_otel.codegen.engine import GenerationInput
from knhk_otel.schema.model import Attribute, Group


@dataclass(slots=True)
class Component:
    slug: str  # page file name without `.md`
    source: str  # the source file, relative to the registry
    groups: list[Group] = field(default_factory=list)
    title: str = ""

    def of_type(self, kind: str) -> list[Group]:
        return [g for g in self.groups if g.type == kind]

    @property
    def attributes(self) -> list[Attribute]:
        return sorted(
            (a for g in self.groups if g.type == "attribute_group" for a in g.attributes),
            key=lambda a: a.name,
        )

    @property
    def spans(self) -> list[Group]:
        return sorted(self.of_type("span"), key=lambda g: g.signal_name)

    @property
    def metrics(self) -> list[Group]:
        return sorted(self.of_type("metric"), key=lambda g: g.signal_name)

    @property
    def events(self) -> list[Group]:
        return sorted(self.of_type("event"), key=lambda g: g.signal_name)


def _relative_source(path: str, inp: GenerationInput) -> str:
    """The group's file relative to the registry root, so pages do not depend on where it was run."""
    src = PurePosixPath(path.replace("\\", "/"))
    root = PurePosixPath(str(inp.registry_root).replace("\\", "/"))
    try:
        return str(src.relative_to(root))
    except ValueError:
        parts = src.parts
        if root.name in parts:
            idx = len(parts) - 1 - parts[::-1].index(root.name)
            return str(PurePosixPath(*parts[idx + 1 :])) if idx + 1 < len(parts) else src.name
        return src.name


def context(inp: GenerationInput) -> dict[str, Any]:
    components: dict[str, Component] = {}
    for group in inp.registry.groups:
        if group.source is not None:
            rel = _relative_source(group.source.path, inp)
        else:
            rel = ".".join(group.id.split(".")[:2]) + ".yaml"
        stem = rel.rsplit(".", 1)[0] if rel.endswith((".yaml", ".yml")) else rel
        slug = naming.kebab_case(stem.replace("/", "-").replace(".", "-")) or "registry"
        comp = components.setdefault(slug, Component(slug=slug, source=rel))
        comp.groups.append(group)
    for comp in components.values():
        names = [g.display_name for g in comp.groups if g.type == "attribute_group" and g.display_name]
        comp.title = names[0] if len(names) == 1 else comp.slug.replace("-", " ").capitalize()
    # an attribute links to the page defining it in a `registry.*` group, else to its first mention
    attribute_pages: dict[str, str] = {}
    for registry_only in (True, False):
        for comp in sorted(components.values(), key=lambda c: c.slug):
            for g in comp.groups:
                if g.type == "attribute_group" and (g.id.startswith("registry.") or not registry_only):
                    for a in g.attributes:
                        attribute_pages.setdefault(a.name, comp.slug)
    return {
        "components": sorted(components.values(), key=lambda c: c.slug),
        "attribute_pages": attribute_pages,
    }
