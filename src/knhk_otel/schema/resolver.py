"""Resolves a loaded registry into the model: refs, `ref_group`s, `extends`, refinements, imports.

Dependencies are resolved first, each on its own. Their attribute groups are kept (their attributes
are what refs point at); their signals only when an `imports:` wildcard asks for them, as in Weaver.
Every group resolves its parent (`extends`) first; cycles are reported, never followed forever.
"""

from __future__ import annotations

import difflib
import fnmatch
import logging
import os
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from knhk_otel.schema.diagnostics import Diagnostic
from knhk_otel.schema.loader import LoadedRegistry, document_format
from knhk_otel.schema.model import Attribute, EntityAssociation, Group, ResolvedRegistry, Source
from knhk_otel.schema.published import read_published
from knhk_otel.schema.specs import AttrRef, FileSpec, GroupRef, GroupSpec, ImportSpec, Reader
from knhk_otel.schema.v1 import read_v1
from knhk_otel.schema.v2 import read_v2
from knhk_otel.schema.yamlpos import YamlDoc

log = logging.getLogger(__name__)

#: Fields a refinement takes from the group it refines when it does not set them itself.
_INHERITED_FIELDS = (
    "brief",
    "note",
    "stability",
    "deprecated",
    "span_kind",
    "metric_name",
    "instrument",
    "unit",
    "name",
    "display_name",
    "annotations",
    "entity_associations",
    "identity",
)
_SIGNAL_FIELDS = ("span_kind", "metric_name", "instrument", "unit", "name")


@dataclass
class _Resolved:
    """One registry resolved; a registry depending on it picks from `groups` (see `_included`)."""

    groups: list[Group]  # dependency groups included, then own groups
    own: list[Group]
    by_id: dict[str, Group]  # own groups and every group of every dependency (for extends/ref_group)
    attributes: dict[str, Attribute]  # own definitions first, then the dependencies'
    #: what an entity association of a dependent may name here: entity type or refinement id →
    #: the entity (own entities and those this registry imports; one hop, like `imports`)
    entities: dict[str, Group]


def resolve(loaded: LoadedRegistry) -> tuple[ResolvedRegistry, list[Diagnostic]]:
    """Resolve a loaded registry; returns only resolution diagnostics (not `loaded.diagnostics`)."""
    diagnostics: list[Diagnostic] = []
    result = _resolve(loaded, diagnostics, set())
    registry = ResolvedRegistry(
        groups=tuple(result.groups),
        manifest=loaded.manifest,
        own=frozenset(g.id for g in result.own),
    )
    return registry, diagnostics


def _resolve(loaded: LoadedRegistry, diagnostics: list[Diagnostic], active: set[Path]) -> _Resolved:
    if loaded.published is not None:
        groups, attributes, problems = read_published(loaded.published)
        diagnostics.extend(problems)
        entities = {g.signal_name: g for g in groups if g.type == "entity"}
        groups = [_bind(g, entities, [], diagnostics) for g in groups]
        return _Resolved(groups, groups, {g.id: g for g in groups}, attributes, entities)
    here = loaded.root.resolve()
    active = active | {here}
    deps = [_resolve(d, diagnostics, active) for d in loaded.dependencies if d.root.resolve() not in active]
    dep_by_id: dict[str, Group] = {}
    dep_attrs: dict[str, Attribute] = {}
    for dep in deps:
        for gid, group in dep.by_id.items():
            dep_by_id.setdefault(gid, group)
        for name, attr in dep.attributes.items():
            dep_attrs.setdefault(name, attr)
    files = [_read(doc, loaded.root, diagnostics) for doc in loaded.documents]
    specs: dict[str, GroupSpec] = {}
    order: list[str] = []
    for spec in (g for f in files for g in f.groups):
        if spec.id in specs:
            first = specs[spec.id].source
            diagnostics.append(
                Diagnostic(
                    "duplicate_group_id", f"group `{spec.id}` is already defined at {first}", spec.source
                )
            )
            continue
        specs[spec.id] = spec
        order.append(spec.id)
    own_attrs = _definitions(specs, order, diagnostics, dep_attrs)
    attributes = {**dep_attrs, **own_attrs}
    resolver = _GroupResolver(specs, dep_by_id, attributes, diagnostics)
    resolved = [g for g in (resolver.group(gid) for gid in order) if g is not None]
    included = _included(deps, [i for f in files for i in f.imports], diagnostics)
    entities = _entity_surface(resolved, specs, deps, included)
    resolved = [_bind(g, entities, deps, diagnostics) for g in resolved]
    own = [g for g in resolved if not specs[g.id].internal]
    own_ids = {g.id for g in own}
    groups = [g for g in included if g.id not in own_ids] + own
    by_id = {**dep_by_id, **{g.id: g for g in resolved}}
    exported = {k: g for k, g in entities.items() if not _excluded(g)}
    return _Resolved(groups, own, by_id, {**dep_attrs, **own_attrs}, exported)


def _excluded(group: Group) -> bool:
    """`annotations: {dependency_resolution: {exclude: true}}`: kept from dependents (Weaver's)."""
    rule = group.annotations.get("dependency_resolution")
    return isinstance(rule, dict) and rule.get("exclude") is True


def _entity_keys(group: Group, refinement: bool) -> list[str]:
    """The names an association reaches an entity by: its type, or a refinement's id."""
    if not refinement:
        return [group.signal_name]
    return list(dict.fromkeys([group.id, group.id.removeprefix("entity.")]))


def _entity_surface(
    resolved: list[Group], specs: dict[str, GroupSpec], deps: list[_Resolved], included: list[Group]
) -> dict[str, Group]:
    """Entities this registry defines (first definition per name), then those it imports."""
    out: dict[str, Group] = {}
    for g in resolved:
        if g.type == "entity":
            for key in _entity_keys(g, specs[g.id].refinement):
                out.setdefault(key, g)
    imported = {id(g) for g in included if g.type == "entity"}
    for dep in deps:
        for key, g in dep.entities.items():
            if id(g) in imported:
                out.setdefault(key, g)
    return out


def _bind(
    group: Group, local: dict[str, Group], deps: list[_Resolved], diagnostics: list[Diagnostic]
) -> Group:
    """Bind each association leaf of `group` to the entity it names (already bound leaves stay)."""
    if not group.entity_associations:
        return group

    def bind(expression: EntityAssociation) -> EntityAssociation:
        if expression.kind != "entity":
            return replace(expression, operands=tuple(bind(o) for o in expression.operands))
        if expression.target is not None:
            return expression  # bound where the signal was defined: it keeps that answer
        entity = _find_entity(group, expression, local, deps, diagnostics)
        if entity is None:
            return expression
        identity = set(entity.identity)
        requirements = tuple(
            (a.name, "required" if a.name in identity else a.requirement_level) for a in entity.attributes
        )
        return replace(expression, target=entity.id, requirements=requirements)

    return replace(group, entity_associations=tuple(bind(a) for a in group.entity_associations))


def _find_entity(
    group: Group,
    leaf: EntityAssociation,
    local: dict[str, Group],
    deps: list[_Resolved],
    diagnostics: list[Diagnostic],
) -> Group | None:
    """The one entity `leaf` names: this registry's first, else exactly one dependency's."""
    found = local.get(leaf.entity)
    if found is not None:
        if _excluded(found) and not _excluded(group):
            diagnostics.append(
                Diagnostic(
                    "private_entity",
                    f"entity association `{leaf.entity}` of group `{group.id}`: the entity is kept from "
                    "dependents (`dependency_resolution: {exclude: true}`) but the signal is not, so a "
                    "registry importing the signal could not follow it; exclude the signal too, or publish "
                    "the entity",
                    leaf.source,
                )
            )
        return found
    candidates: dict[tuple[str, str, int], Group] = {}
    for dep in deps:
        g = dep.entities.get(leaf.entity)
        if g is not None:  # one definition reached by two paths (a diamond) is one candidate
            at = (os.path.realpath(g.source.path), g.source.line) if g.source else ("", id(g))
            candidates.setdefault((g.id, *at), g)
    if len(candidates) == 1:
        return next(iter(candidates.values()))
    where = f"entity association `{leaf.entity}` of group `{group.id}`"
    if not candidates:
        known = set(local) | {k for dep in deps for k in dep.entities}
        diagnostics.append(
            Diagnostic(
                "unresolved_entity",
                f"{where}: no entity of this registry or of its dependencies has that type "
                "(nor a refinement that id)",
                leaf.source,
                hint=_did_you_mean(leaf.entity, known),
            )
        )
    else:
        places = ", ".join(sorted(str(g.source) for g in candidates.values()))
        diagnostics.append(
            Diagnostic(
                "ambiguous_entity",
                f"{where}: several dependencies define it ({places}); define or import one here",
                leaf.source,
            )
        )
    return None


def _read(doc: YamlDoc, root: Path, diagnostics: list[Diagnostic]) -> FileSpec:
    reader = Reader(doc)
    data = doc.data
    spec = FileSpec()
    if data is None:
        return spec  # an empty file defines nothing
    fmt = data.get("file_format") if isinstance(data, dict) else None
    if fmt is not None and fmt not in ("definition/1", "definition/2"):
        reader.report(
            "unknown_file_format",
            f"unknown file_format {fmt!r} (expected `definition/2`, `definition/1`, or none for the v1 "
            "`groups:` syntax)",
            ("file_format",),
        )
    elif document_format(doc) == "v2":
        if fmt is None:
            reader.report(
                "deprecated_syntax",
                'the file marker `version: "2"` is deprecated; write `file_format: definition/2`',
                ("version",),
                severity="warning",
            )
        spec = read_v2(reader, _rel_path(doc.path, root))
    else:
        spec = read_v1(reader)
    diagnostics.extend(reader.diagnostics)
    return spec


def _rel_path(shown: str, root: Path) -> str:
    """The file's path inside its registry (`messaging/kafka.yaml`): unique per file."""
    path = Path(shown)
    try:
        rel = path.resolve().relative_to(root.resolve())
    except (ValueError, OSError):
        rel = Path(path.name)
    return rel.as_posix()


def _definitions(
    specs: dict[str, GroupSpec],
    order: list[str],
    diagnostics: list[Diagnostic],
    dep_attrs: dict[str, Attribute],
) -> dict[str, Attribute]:
    """Every attribute the registry defines (not refs, but `prefix: true` refs), each name once."""
    out: dict[str, Attribute] = {}
    prefixed: list[AttrRef] = []
    for gid in order:
        for member in specs[gid].members:
            if isinstance(member, AttrRef) and member.define_as is not None:
                prefixed.append(member)
                continue
            if not isinstance(member, Attribute):
                continue
            if member.name in out:
                diagnostics.append(
                    Diagnostic(
                        "duplicate_attribute_id",
                        f"attribute `{member.name}` is already defined at {out[member.name].source}",
                        member.source,
                    )
                )
                continue
            out[member.name] = member
    # a prefixed ref may build on another prefixed ref: settle them until none makes progress
    while prefixed:
        pending: list[AttrRef] = []
        for ref in prefixed:
            base = out.get(ref.name) or dep_attrs.get(ref.name)
            if base is None:
                pending.append(ref)
            elif ref.define_as not in out:
                out[ref.define_as or ref.name] = replace(
                    base, **ref.overrides, name=ref.define_as or ref.name, source=ref.source
                )
        if len(pending) == len(prefixed):
            break
        prefixed = pending
    return out


def _member_name(member: Attribute | AttrRef) -> str:
    if isinstance(member, AttrRef) and member.define_as is not None:
        return member.define_as
    return member.name


class _GroupResolver:
    """Resolves groups on demand, parents first, remembering results and the groups in progress."""

    def __init__(
        self,
        specs: dict[str, GroupSpec],
        dep_groups: dict[str, Group],
        attributes: dict[str, Attribute],
        diagnostics: list[Diagnostic],
    ) -> None:
        self.specs = specs
        self.dep_groups = dep_groups
        self.attributes = attributes
        self.diagnostics = diagnostics
        self.done: dict[str, Group | None] = {}
        self.active: list[str] = []

    def _known(self, group_id: str) -> bool:
        return group_id in self.specs or group_id in self.dep_groups

    def _lookup(self, group_id: str, source: Source | None, via: str) -> Group | None:
        """The resolved group `group_id`, reporting a cycle or an unknown id at `source`."""
        if group_id in self.active:
            cycle = [*self.active[self.active.index(group_id) :], group_id]
            self.diagnostics.append(Diagnostic("extends_cycle", f"{via} cycle: {' -> '.join(cycle)}", source))
            return None
        if not self._known(group_id):
            diag_id = "unresolved_extends" if via == "extends" else "unresolved_ref_group"
            candidates = [*self.specs, *self.dep_groups]
            self.diagnostics.append(
                Diagnostic(
                    diag_id,
                    f"{via} `{group_id}`: no such group",
                    source,
                    hint=_did_you_mean(group_id, candidates),
                )
            )
            return None
        return self.group(group_id)

    def group(self, group_id: str) -> Group | None:
        if group_id in self.done:
            return self.done[group_id]
        spec = self.specs.get(group_id)
        if spec is None:
            return self.dep_groups.get(group_id)
        self.active.append(group_id)
        try:
            resolved = self._build(spec)
        finally:
            self.active.pop()
        self.done[group_id] = resolved
        return resolved

    def _set_fields(self, group_id: str, name: str) -> dict[str, Any] | None:
        """The fields group `group_id`'s own `ref` to `name` sets, when it refers to it directly."""
        spec = self.specs.get(group_id)
        for member in spec.members if spec is not None else ():
            if isinstance(member, AttrRef) and member.define_as is None and member.name == name:
                return member.overrides
        return None

    def _identity(self, group_id: str, depth: int = 0) -> frozenset[str] | None:
        """The identifying attributes of entity `group_id` (a refinement has its parent's)."""
        spec = self.specs.get(group_id)
        if spec is None or depth > 32:
            return None
        if spec.refinement and spec.extends is not None:
            return self._identity(spec.extends, depth + 1)
        return frozenset(spec.identity)

    def _check_identity(self, spec: GroupSpec) -> None:
        """An entity refinement may refine identifying attributes, never change which they are."""
        identity = self._identity(spec.extends or "")
        if identity is None:
            return
        changed = [(n, "identifying") for n in spec.identity if n not in identity]
        changed += [(n, "descriptive") for n in spec.descriptive if n in identity]
        for name, role in changed:
            self.diagnostics.append(
                Diagnostic(
                    "entity_identity_changed",
                    f"entity refinement `{spec.id}` lists `{name}` as {role}, which changes the identity "
                    f"of `{spec.extends}` (identifying: {', '.join(sorted(identity)) or 'none'})",
                    spec.source,
                )
            )

    def _build(self, spec: GroupSpec) -> Group:
        attrs: dict[str, Attribute] = {}
        fields: dict[str, Any] = {}
        if spec.extends is not None:
            if spec.refinement and spec.extends == spec.id and spec.id in self.dep_groups:
                # a refinement may keep the id of the dependency's signal it refines
                parent: Group | None = self.dep_groups[spec.id]
            else:
                parent = self._lookup(spec.extends, spec.extends_source, "extends")
            if parent is not None:
                attrs = {a.name: a for a in parent.attributes}
                names = _INHERITED_FIELDS if spec.refinement else _SIGNAL_FIELDS
                if spec.refinement or parent.type == spec.type:
                    fields = {n: getattr(parent, n) for n in names}
        fields.update(spec.fields)
        explicit = {_member_name(m) for m in spec.members if isinstance(m, Attribute | AttrRef)}
        local: dict[str, Source | None] = {}
        via_group: dict[str, str] = {}  # attribute → the ref_group that brought it
        inherited = set(attrs)
        for member in spec.members:
            if isinstance(member, GroupRef):
                included = self._lookup(member.group_id, member.source, "ref_group")
                for attr in included.attributes if included is not None else ():
                    if attr.name in via_group and via_group[attr.name] != member.group_id:
                        self.diagnostics.append(
                            Diagnostic(
                                "duplicate_attribute_id",
                                f"attribute `{attr.name}` reaches group `{spec.id}` through both "
                                f"`{via_group[attr.name]}` and `{member.group_id}`",
                                member.source,
                            )
                        )
                        continue
                    via_group[attr.name] = member.group_id
                    if attr.name in explicit:
                        continue
                    if attr.name in inherited:
                        # a refinement keeps what it refines; the group only overrides what it sets
                        overrides = self._set_fields(member.group_id, attr.name)
                        if overrides is not None:
                            attr = replace(attrs[attr.name], **overrides)
                    attrs[attr.name] = attr
                continue
            name = _member_name(member)
            if name in local:
                self.diagnostics.append(
                    Diagnostic(
                        "duplicate_attribute_in_group",
                        f"attribute `{name}` appears twice in group `{spec.id}` (first at {local[name]})",
                        member.source,
                    )
                )
                continue
            local[name] = member.source
            if isinstance(member, Attribute):
                attrs[member.name] = member
                continue
            if member.define_as is not None and member.define_as in self.attributes:
                attrs[name] = self.attributes[name]
                continue
            base = attrs.get(member.name) or self.attributes.get(member.name)
            if base is None:
                self.diagnostics.append(
                    Diagnostic(
                        "unresolved_ref",
                        f"group `{spec.id}` refers to attribute `{member.name}`, which no registry defines",
                        member.source,
                        hint=_did_you_mean(member.name, self.attributes),
                    )
                )
                continue
            attrs[member.name] = replace(base, **member.overrides, source=member.source)
        if spec.extends is not None:
            fields["extends"] = spec.extends
        if spec.identity:
            fields["identity"] = spec.identity
        if spec.refinement and spec.type == "entity":
            self._check_identity(spec)
        return Group(
            id=spec.id, type=spec.type, attributes=tuple(attrs.values()), source=spec.source, **fields
        )


def _included(deps: list[_Resolved], imports: list[ImportSpec], diagnostics: list[Diagnostic]) -> list[Group]:
    """Dependency groups the registry includes: all attribute groups, and the signals it imports."""
    out: list[Group] = []
    matched: set[int] = set()
    seen: set[str] = set()
    for dep in deps:
        for group in dep.groups:
            if group.id in seen:
                continue
            keep = group.type == "attribute_group"
            for i, imp in enumerate(imports):
                if _imports(imp, group):
                    matched.add(i)
                    keep = True
            if keep:
                seen.add(group.id)
                out.append(group)
    for i, imp in enumerate(imports):
        if i not in matched:
            what = "no dependency is declared" if not deps else "it matches no group of any dependency"
            diagnostics.append(
                Diagnostic("unresolved_import", f"import {imp.kind} `{imp.pattern}`: {what}", imp.source)
            )
    return out


def _imports(imp: ImportSpec, group: Group) -> bool:
    if imp.kind == "metrics" and group.type == "metric":
        name = group.metric_name or group.id.removeprefix("metric.")
    elif imp.kind == "events" and group.type == "event":
        name = group.name or group.id.removeprefix("event.")
    elif imp.kind == "entities" and group.type == "entity":
        name = group.name or group.id.removeprefix("entity.")
    elif imp.kind == "spans" and group.type == "span":
        name = group.id.removeprefix("span.")
    elif imp.kind == "attribute_groups" and group.type == "attribute_group":
        name = group.id
    else:
        return False
    return fnmatch.fnmatchcase(name, imp.pattern) or fnmatch.fnmatchcase(group.id, imp.pattern)


def _did_you_mean(name: str, candidates: Any) -> str | None:
    close = difflib.get_close_matches(name, list(candidates), n=1, cutoff=0.75)
    return f"did you mean `{close[0]}`?" if close else None
