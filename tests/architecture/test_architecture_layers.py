"""The data flows one way: each stage imports only the stages before it, and nothing imports in a cycle.

schema → check / codegen / validate; the mesh's protocol knows nothing of telemetry, and only
`knhk_mesh.telemetry` may touch the generated helpers. These rules are read from the source (imports
and string literals), so a violation fails here before it shows up as a tangle.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

import pytest

from knhk_otel.schema import load_and_resolve

REPO = Path(__file__).resolve().parents[2]
ROOTS = {"knhk_otel": REPO / "src" / "knhk_otel", "knhk_mesh": REPO / "node" / "knhk_mesh"}


def _modules() -> dict[str, Path]:
    out: dict[str, Path] = {}
    for root in ROOTS.values():
        for path in root.rglob("*.py"):
            parts = path.relative_to(root.parent).with_suffix("").parts
            name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
            out[name] = path
    return out


MODULES = _modules()


def _owner(name: str) -> str | None:
    """The project module a dotted import name lands in (None for third-party)."""
    while name and name not in MODULES:
        name = name.rpartition(".")[0]
    return name or None


def _imports(module: str) -> set[str]:
    path = MODULES[module]
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            targets = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - (node.level - 1)]
                origin = ".".join([*base, node.module] if node.module else base)
            else:
                origin = node.module or ""
            # `from pkg import mod` imports the submodule; `from mod import name` the module.
            targets = [
                f"{origin}.{a.name}" if f"{origin}.{a.name}" in MODULES else origin for a in node.names
            ]
        elif (
            isinstance(node, ast.Call)
            and isinstance(node.func, ast.Attribute)
            and node.func.attr == "import_module"
            and node.args
            and isinstance(node.args[0], ast.Constant)
            and isinstance(node.args[0].value, str)
        ):
            targets = [node.args[0].value]
        else:
            continue
        for target in targets:
            owner = _owner(target)
            if owner is not None and owner != module:
                found.add(owner)
    return found


GRAPH = {m: _imports(m) for m in MODULES}


def _under(module: str, *prefixes: str) -> bool:
    return any(module == p or module.startswith(p + ".") for p in prefixes)


def _edges_from(*prefixes: str) -> Iterator[tuple[str, str]]:
    for module, targets in GRAPH.items():
        if _under(module, *prefixes):
            for target in sorted(targets):
                yield module, target


def test_no_module_imports_itself_through_a_cycle() -> None:
    state: dict[str, int] = {}
    cycles: list[list[str]] = []

    def visit(module: str, path: list[str]) -> None:
        state[module] = 1
        for target in sorted(GRAPH[module]):
            if state.get(target) == 1:
                cycles.append([*path[path.index(target) :], target])
            elif target not in state:
                visit(target, [*path, target])
        state[module] = 2

    for module in sorted(GRAPH):
        if module not in state:
            visit(module, [module])
    assert cycles == []


LATER_STAGES = (
    "knhk_otel.check",
    "knhk_otel.codegen",
    "knhk_otel.validate",
    "knhk_otel.runtime",
    "knhk_otel.semconv",
    "knhk_otel.commands",
    "knhk_otel.diff",
    "knhk_otel.stats",
    "knhk_otel.cli",
)


@pytest.mark.parametrize(
    ("stage", "may_import"),
    [
        ("knhk_otel.schema", ("knhk_otel.schema",)),
        ("knhk_otel.check", ("knhk_otel.schema", "knhk_otel.check")),
        ("knhk_otel.codegen", ("knhk_otel.schema", "knhk_otel.codegen")),
        ("knhk_otel.diff", ("knhk_otel.schema", "knhk_otel.check", "knhk_otel.diff")),
        ("knhk_otel.stats", ("knhk_otel.schema", "knhk_otel.stats")),
        # generated code needs only opentelemetry-api: it imports nothing of the toolchain
        ("knhk_otel.semconv", ("knhk_otel.semconv",)),
        # validation knows the registry (counts findings through the generated helper, runs Weaver's
        # advice policies through the one Rego module), nothing of how providers are set up
        (
            "knhk_otel.validate",
            ("knhk_otel.schema", "knhk_otel.validate", "knhk_otel.semconv", "knhk_otel.check.rego"),
        ),
        # the runtime sets providers up and wires the validating hooks in (the tick clock records
        # through the generated helpers); it never reaches the harness above it
        (
            "knhk_otel.runtime",
            ("knhk_otel.schema", "knhk_otel.validate", "knhk_otel.runtime", "knhk_otel.semconv"),
        ),
        (
            # the pure validator: registry in, findings out (SDK hooks and receivers are its edges)
            "knhk_otel.validate.validator",
            (
                "knhk_otel.schema",
                "knhk_otel.validate.index",
                "knhk_otel.validate.findings",
                "knhk_otel.validate.samples",
                "knhk_otel.validate.entities",  # pure too: associations and resource keys in
            ),
        ),
    ],
)
def test_a_stage_imports_only_the_stages_before_it(stage: str, may_import: tuple[str, ...]) -> None:
    wrong = [(m, t) for m, t in _edges_from(stage) if not _under(t, *may_import)]
    assert wrong == []


def _room(module: str) -> str:
    """The room a module lives in: `knhk_otel.validate.sdk` → `knhk_otel.validate`."""
    return ".".join(module.split(".")[:2])


#: Room-to-room imports still to be removed, each with the issue that removes it; any other edge
#: that closes a loop between rooms fails the test below.
ROOM_EDGES_BEING_REMOVED: set[tuple[str, str]] = set()


def test_no_rooms_of_the_toolchain_import_each_other_in_a_loop() -> None:
    """Each room has one job: the harness sits above the runtime, the runtime above validation."""
    rooms: dict[str, set[str]] = {}
    for module, target in _edges_from("knhk_otel"):
        edge = (_room(module), _room(target))
        if edge[0] != edge[1] and edge not in ROOM_EDGES_BEING_REMOVED:
            rooms.setdefault(edge[0], set()).add(edge[1])

    def reaches(start: str, goal: str, seen: set[str]) -> bool:
        return any(nxt == goal or reaches(nxt, goal, seen | {nxt}) for nxt in rooms.get(start, set()) - seen)

    loops = sorted(f"{a} -> {b}" for a, targets in rooms.items() for b in targets if reaches(b, a, {b}))
    assert loops == []


def test_nothing_below_the_harness_imports_it() -> None:
    """The self-test emitter, the pytest plugin and the reference-data locator serve tests and CI only."""
    users = {m for m, t in _edges_from("knhk_otel", "knhk_mesh") if _under(t, "knhk_otel.harness")}
    assert {m for m in users if not _under(m, "knhk_otel.harness")} == set()


def test_the_mesh_protocol_knows_nothing_of_telemetry() -> None:
    edges = [
        (m, t)
        for m, t in _edges_from("knhk_mesh")
        if not _under(m, "knhk_mesh.telemetry", "knhk_mesh.cli") and _under(t, "knhk_otel")
    ]
    assert edges == []


def test_the_mesh_engine_is_the_bottom_room() -> None:
    """Transports, cluster, telemetry and CLI sit above `knhk_mesh.core`; the core imports none of them."""
    wrong = [
        (m, t)
        for m, t in _edges_from("knhk_mesh.core")
        if _under(t, "knhk_mesh", "knhk_otel") and not _under(t, "knhk_mesh.core")
    ]
    assert wrong == []
    assert GRAPH["knhk_mesh.core.engine"] >= {"knhk_mesh.core.registry", "knhk_mesh.core.security"}


def test_only_the_mesh_telemetry_module_touches_the_generated_helpers() -> None:
    users = {m for m, t in _edges_from("knhk_mesh") if _under(t, "knhk_otel.semconv")}
    assert users == {"knhk_mesh.telemetry"}


def _literals(path: Path) -> Iterator[tuple[int, str]]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    docstrings = {
        id(node.body[0].value)
        for node in ast.walk(tree)
        if isinstance(node, ast.Module | ast.ClassDef | ast.FunctionDef | ast.AsyncFunctionDef)
        and node.body
        and isinstance(node.body[0], ast.Expr)
        and isinstance(node.body[0].value, ast.Constant)
    }
    for node in ast.walk(tree):
        if isinstance(node, ast.Constant) and isinstance(node.value, str) and id(node) not in docstrings:
            yield node.lineno, node.value


def test_the_mesh_spells_no_schema_name_of_its_own() -> None:
    registry, _ = load_and_resolve(REPO / "schema")
    assert registry is not None
    names = {a.name for g in registry.groups for a in g.attributes}
    names |= {g.signal_name for g in registry.groups if g.type in ("span", "metric", "event")}
    spelled = [
        f"{path.relative_to(REPO)}:{line}: {value!r}"
        for module, path in MODULES.items()
        if _under(module, "knhk_mesh")
        for line, value in _literals(path)
        if value in names
    ]
    assert spelled == []
