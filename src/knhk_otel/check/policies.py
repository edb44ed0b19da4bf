"""Policy stage: rules over the resolved registry, the defaults plus any `--policy FILE.py`.

A policy is a plain function `(ResolvedRegistry) -> Iterable[Diagnostic]`. A policy file exposes
them as a `POLICIES` list, or as module-level functions named `policy_*` (in file order). Loading
or running a broken policy file yields one diagnostic, never a traceback.

Default policies (errors unless noted):

===================================  ==========================================================
id                                   rule
===================================  ==========================================================
name_format                          own attribute, metric, span and event names match
                                     ``^[a-z][a-z0-9]*([._][a-z0-9]+)*$``
namespace                            own names live under the manifest's `namespace`
                                     (a registry that declares none is held to none)
stable_references_development        a stable, non-deprecated signal does not require an
                                     unstable (development, experimental, alpha, beta)
                                     attribute; as `recommended` or `conditionally_required`
                                     it is a *warning* (OTel: stable groups SHOULD NOT), as
                                     `opt_in` it is allowed (OTel: stable groups MAY)
metric_attribute_unbounded           *warning*: a metric attribute whose values are unbounded
                                     (a string or number without enum members: ids, addresses,
                                     ports, free text) multiplies the metric's series; an
                                     `opt_in` attribute, or one annotated ``knhk: {cardinality:
                                     bounded}``, is accepted (docs/cardinality.md)
attribute_namespace_collision        *warning*, error under ``--future``: an own
                                     attribute's name is not the namespace of another
                                     attribute (`a.b` beside `a.b.c`): a flattening backend
                                     cannot hold both, and every emission of the longer one is
                                     Weaver's live-check `illegal_namespace` finding; deprecated
                                     attributes are exempt
===================================  ==========================================================

Loader diagnostics: `policy_file_invalid` (cannot be read, imported, or exposes no policies) and
`policy_failed` (a policy raised, or returned something that is not a Diagnostic).
"""

from __future__ import annotations

import importlib.util
import inspect
import re
import sys
import traceback
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType

from knhk_otel.schema.diagnostics import Diagnostic
from knhk_otel.schema.model import Attribute, EnumType, Group, ResolvedRegistry, Source

PolicyFn = Callable[[ResolvedRegistry], Iterable[Diagnostic]]

NAME_RE = re.compile(r"^[a-z][a-z0-9]*([._][a-z0-9]+)*$")
UNSTABLE = frozenset({"development", "experimental", "alpha", "beta"})
SIGNALS = ("span", "metric", "event")


@dataclass(frozen=True, slots=True)
class Policy:
    name: str
    fn: PolicyFn
    origin: str  # "default" or the policy file's path


def own_groups(registry: ResolvedRegistry) -> list[Group]:
    return [g for g in registry.groups if g.id in registry.own]


def dependency_attribute_names(registry: ResolvedRegistry) -> set[str]:
    """Names a dependency defines: using them is referencing, not defining."""
    return {
        a.name
        for g in registry.groups
        if g.id not in registry.own and g.type == "attribute_group"
        for a in g.attributes
    }


def own_attributes(registry: ResolvedRegistry) -> list[Attribute]:
    """Each attribute the registry itself defines, once (the first place it appears)."""
    foreign = dependency_attribute_names(registry)
    seen: dict[str, Attribute] = {}
    for g in own_groups(registry):
        for a in g.attributes:
            if a.name not in foreign:
                seen.setdefault(a.name, a)
    return list(seen.values())


def own_signal_names(registry: ResolvedRegistry) -> Iterator[tuple[Group, str, str]]:
    """(group, kind, name) for each own span, metric and event that has a name.

    A metric without `metric_name` or an event without `name` is the semantic stage's finding;
    falling back to the group id here would report the same problem twice under another id.
    """
    for g in own_groups(registry):
        if g.type not in SIGNALS:
            continue
        if (g.type == "metric" and not g.metric_name) or (g.type == "event" and not g.name):
            continue
        yield g, g.type, g.signal_name


def policy_name_format(registry: ResolvedRegistry) -> Iterator[Diagnostic]:
    for a in own_attributes(registry):
        if not NAME_RE.match(a.name):
            yield Diagnostic(
                "name_format",
                f"attribute name `{a.name}` is not lower-case dot.separated (a-z, 0-9, `_`)",
                a.source,
            )
    for g, kind, name in own_signal_names(registry):
        if not NAME_RE.match(name):
            yield Diagnostic(
                "name_format",
                f"{kind} name `{name}` is not lower-case dot.separated (a-z, 0-9, `_`)",
                g.source,
            )


def _under(name: str, namespace: str) -> bool:
    return name == namespace or name.startswith(namespace + ".")


def policy_namespace(registry: ResolvedRegistry) -> Iterator[Diagnostic]:
    namespace = registry.manifest.namespace if registry.manifest else None
    if not namespace:
        return
    hint = f"own definitions live under `{namespace}.`; reference standard attributes with `ref`"
    for a in own_attributes(registry):
        if not _under(a.name, namespace):
            yield Diagnostic(
                "namespace",
                f"attribute `{a.name}` is outside the namespace `{namespace}`",
                a.source,
                hint=hint,
            )
    for g, kind, name in own_signal_names(registry):
        if not _under(name, namespace):
            yield Diagnostic(
                "namespace", f"{kind} `{name}` is outside the namespace `{namespace}`", g.source, hint=hint
            )


def policy_stable_references_development(registry: ResolvedRegistry) -> Iterator[Diagnostic]:
    for g in own_groups(registry):
        if g.type not in SIGNALS or g.stability != "stable" or g.deprecated is not None:
            continue
        for a in g.attributes:
            if a.stability not in UNSTABLE or a.deprecated is not None or a.requirement_level == "opt_in":
                continue
            yield Diagnostic(
                "stable_references_development",
                f"stable {g.type} `{g.signal_name}` uses {a.stability} attribute `{a.name}` "
                f"as {a.requirement_level}",
                a.source or g.source,
                severity="error" if a.requirement_level == "required" else "warning",
                hint="stabilise the attribute, make it opt_in, or keep the signal in development",
            )


_BOUNDED_TYPES = ("boolean",)


def _declared_bounded(a: Attribute) -> bool:
    knhk = a.annotations.get("knhk") if isinstance(a.annotations, dict) else None
    return isinstance(knhk, dict) and knhk.get("cardinality") == "bounded"


def policy_metric_attribute_unbounded(registry: ResolvedRegistry) -> Iterator[Diagnostic]:
    """A metric's series are the product of its attributes' values: one unbounded attribute (a node
    id on 450 agents) overflows the SDK's cardinality limit and the backend's memory."""
    for g in own_groups(registry):
        if g.type != "metric":
            continue
        for a in g.attributes:
            if (
                isinstance(a.type, EnumType)
                or a.type in _BOUNDED_TYPES
                or a.requirement_level == "opt_in"  # OTel's way to say "high cardinality: your call"
                or _declared_bounded(a)
            ):
                continue
            yield Diagnostic(
                "metric_attribute_unbounded",
                f"metric `{g.signal_name}` has attribute `{a.name}` of type {a.type} without enum "
                "members: its values are unbounded, and every value is one more series",
                a.source or g.source,
                severity="warning",
                hint="move ids and addresses to spans/events or the resource, use an enum, or annotate "
                "the attribute `knhk: {cardinality: bounded}` (docs/cardinality.md)",
            )


def policy_attribute_namespace_collision(registry: ResolvedRegistry) -> Iterator[Diagnostic]:
    """Flag `a.b` when `a.b.c` exists too: the live checker would call every `a.b.c` illegal."""
    live = {
        a.name: a
        for g in registry.groups
        if g.type == "attribute_group"
        for a in g.attributes
        if a.deprecated is None
    }
    for a in own_attributes(registry):
        if a.deprecated is not None:
            continue
        below = sorted(n for n in live if n.startswith(a.name + "."))
        if below:
            more = f" and {len(below) - 1} more" if len(below) > 1 else ""
            yield Diagnostic(
                "attribute_namespace_collision",
                f"attribute `{a.name}` is also the namespace of `{below[0]}`{more}",
                a.source,
                hint="rename one of them (e.g. `" + a.name + ".kind`), or deprecate the old name",
            )


DEFAULT_POLICIES: tuple[Policy, ...] = (
    Policy("name_format", policy_name_format, "default"),
    Policy("namespace", policy_namespace, "default"),
    Policy("stable_references_development", policy_stable_references_development, "default"),
    Policy("metric_attribute_unbounded", policy_metric_attribute_unbounded, "default"),
    Policy("attribute_namespace_collision", policy_attribute_namespace_collision, "default"),
)


def _import(path: Path) -> ModuleType:
    name = f"knhk_otel_policy_{abs(hash(str(path.resolve())))}"
    spec = importlib.util.spec_from_file_location(name, path)
    if spec is None or spec.loader is None:
        raise ImportError(f"cannot import {path}")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    try:
        spec.loader.exec_module(module)
    except BaseException:
        sys.modules.pop(name, None)
        raise
    return module


def _where_raised(exc: BaseException, path: str) -> Source:
    """The deepest frame inside the policy file, so the diagnostic points at the failing line."""
    line = 0
    target = str(Path(path).resolve())
    for frame in traceback.extract_tb(exc.__traceback__):
        if frame.filename and str(Path(frame.filename).resolve()) == target:
            line = frame.lineno or 0
    return Source(path, line, 1 if line else 0)


def not_a_python_policy(path: str) -> Diagnostic:
    """The one answer to a policy file that is neither Python nor Rego (`.rego` goes to check.rego)."""
    return Diagnostic(
        "policy_file_invalid",
        "not a policy file: policies are Python files (FILE.py exposing `POLICIES` or `policy_*` "
        "functions) or Weaver's Rego policies (FILE.rego, or a folder of them)",
        Source(path, 0, 0),
    )


def load_policy_file(path: str) -> tuple[list[Policy], list[Diagnostic]]:
    """Import a policy file; any failure is one `policy_file_invalid` diagnostic."""
    file = Path(path)
    if not file.is_file():
        return [], [Diagnostic("policy_file_invalid", "policy file does not exist", Source(path, 0, 0))]
    if file.suffix != ".py":
        return [], [not_a_python_policy(path)]
    try:
        module = _import(file)
    except SyntaxError as exc:
        src = Source(path, exc.lineno or 0, exc.offset or 0)
        return [], [Diagnostic("policy_file_invalid", f"policy file does not compile: {exc.msg}", src)]
    except Exception as exc:  # a policy file is user code: any failure to import is a finding
        return [], [
            Diagnostic(
                "policy_file_invalid",
                f"policy file failed to import: {type(exc).__name__}: {exc}",
                _where_raised(exc, path),
            )
        ]
    found: list[Policy] = []
    declared = getattr(module, "POLICIES", None)
    if declared is not None:
        if not isinstance(declared, list | tuple) or not all(callable(p) for p in declared):
            return [], [
                Diagnostic(
                    "policy_file_invalid", "`POLICIES` must be a list of functions", Source(path, 1, 1)
                )
            ]
        found = [Policy(getattr(p, "__name__", repr(p)), p, path) for p in declared]
    else:
        functions = [
            fn
            for name, fn in vars(module).items()
            if name.startswith("policy_") and inspect.isfunction(fn) and fn.__module__ == module.__name__
        ]
        functions.sort(key=lambda fn: fn.__code__.co_firstlineno)
        found = [Policy(fn.__name__, fn, path) for fn in functions]
    if not found:
        return [], [
            Diagnostic(
                "policy_file_invalid",
                "policy file exposes no policies (define `POLICIES = [...]` or functions named `policy_*`)",
                Source(path, 1, 1),
            )
        ]
    return found, []


def run_policies(registry: ResolvedRegistry, policies: Iterable[Policy]) -> list[Diagnostic]:
    out: list[Diagnostic] = []
    for policy in policies:
        try:
            results = list(policy.fn(registry))
        except Exception as exc:  # user code: report where it broke and keep checking
            where = _where_raised(exc, policy.origin) if policy.origin != "default" else None
            out.append(
                Diagnostic(
                    "policy_failed", f"policy `{policy.name}` raised {type(exc).__name__}: {exc}", where
                )
            )
            continue
        for item in results:
            if isinstance(item, Diagnostic):
                out.append(item)
            else:
                src = Source(policy.origin, 0, 0) if policy.origin != "default" else None
                out.append(
                    Diagnostic(
                        "policy_failed",
                        f"policy `{policy.name}` returned {type(item).__name__}, not a Diagnostic",
                        src,
                    )
                )
                break
    return out
