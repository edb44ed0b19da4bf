"""The python target on hand-built registries: naming rules, collisions, templates, escaping, merging."""

from __future__ import annotations

import importlib
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType

import pytest

from knhk_otel.codegen import CodegenError, builtin_names, discover, generate_target
from knhk_otel.schema.model import Deprecated, EnumMember, EnumType, ResolvedRegistry

from .conftest import REPO_ROOT, VENV_BIN, Sdk, attr, group, registry_of

_counter = iter(range(10_000))


@pytest.fixture
def build(tmp_path: Path) -> Iterator[object]:
    """Generate the python target for a registry into tmp_path and import it as a fresh package."""
    imported: list[str] = []

    def make(registry: ResolvedRegistry) -> dict[str, ModuleType]:
        package = f"acme_semconv_{next(_counter)}"
        target = discover()["python"]
        generate_target(target, registry, tmp_path, tmp_path / package, registry_display="acme")
        if str(tmp_path) not in sys.path:
            sys.path.insert(0, str(tmp_path))
        modules = {
            m: importlib.import_module(f"{package}.{m}")
            for m in ("attributes", "spans", "metrics", "events", "strict")
        }
        imported.append(package)
        return modules

    yield make
    for name in [m for m in sys.modules if any(m.startswith(p) for p in imported)]:
        del sys.modules[name]
    if str(tmp_path) in sys.path:
        sys.path.remove(str(tmp_path))


STATUS = EnumType(
    members=(
        EnumMember("ok", "ok", brief='Fine, "really".'),
        EnumMember("_other", "_OTHER"),
        EnumMember("1xx", "1xx", deprecated=Deprecated("obsoleted", note="Gone.")),
    )
)
CODE = EnumType(members=(EnumMember("low", 1), EnumMember("high", 2)), value_type="int")


def _rich_registry() -> ResolvedRegistry:
    attrs = (
        attr("acme.class", "string", "required", brief='Tricky """ brief with \\ and 5\u00b5s.'),
        attr("acme.status", STATUS),
        attr("acme.code", CODE),
        attr("acme.labels", "template[string]"),
        attr("acme.tags", "string[]"),
        attr("acme.blob", "any"),
        attr("acme.value", "double"),
    )
    return registry_of(
        group("registry.acme", "attribute_group", *attrs),
        group("span.acme.work", "span", *attrs, span_kind="consumer", brief="Work."),
        group(
            "metric.acme.jobs",
            "metric",
            attrs[0],
            attrs[6],
            metric_name="acme.jobs",
            instrument="counter",
            unit="{job}",
        ),
        group(
            "metric.acme.old",
            "metric",
            attrs[0],
            metric_name="acme.old",
            instrument="gauge",
            unit="1",
            deprecated=Deprecated("renamed", renamed_to="acme.jobs"),
        ),
        group("event.acme.done", "event", attrs[1], name="acme.done"),
    )


def test_builtin_targets_include_python_markdown_and_dashboards() -> None:
    assert {"dashboards", "markdown", "python"} <= set(builtin_names())


def test_names_keywords_builtins_and_reserved_kwargs(build, sdk: Sdk) -> None:  # type: ignore[no-untyped-def]
    mods = build(_rich_registry())
    a, spans, metrics = mods["attributes"], mods["spans"], mods["metrics"]
    assert a.ACME_CLASS == "acme.class" and a.ACME_LABELS == "acme.labels"
    assert [m.name for m in a.Status] == ["OK", "OTHER", "V1XX"]
    assert issubclass(a.Code, int) and a.Code.HIGH == 2
    assert 'Tricky """ brief with \\ and 5\u00b5s.' in (spans.start_work.__doc__ or "")
    assert "Deprecated (renamed: renamed to `acme.jobs`)" in (metrics.Old.__doc__ or "")
    assert "\\N{MICRO SIGN}" in Path(a.__file__).read_text(encoding="ascii")  # generated code is ASCII
    tracer = sdk.tracer_provider.get_tracer("t")
    with spans.start_work(
        tracer,
        class_="x",
        status=a.Status.OTHER,
        code=a.Code.LOW,
        labels={"team": "core", "tier": "1"},
        tags=["a", "b"],
        blob=3,
        value_=1.5,
    ):
        pass
    (span,) = sdk.spans.get_finished_spans()
    assert dict(span.attributes or {}) == {
        "acme.class": "x",
        "acme.status": "_OTHER",
        "acme.code": 1,
        "acme.labels.team": "core",
        "acme.labels.tier": "1",
        "acme.tags": ("a", "b"),
        "acme.blob": 3,
        "acme.value": 1.5,
    }
    assert type(span.attributes["acme.code"]) is int  # type: ignore[index]
    jobs = metrics.Jobs(sdk.meter_provider.get_meter("m"))
    jobs.add(2, class_="x", value_=0.5)


def test_strict_checks_template_values_and_arrays(build, sdk: Sdk) -> None:  # type: ignore[no-untyped-def]
    """Each generated package has its own strict switch (it imports nothing of the toolchain)."""
    mods = build(_rich_registry())
    strict = mods["strict"]
    tracer = sdk.tracer_provider.get_tracer("t")
    strict.set_strict(True)
    error = strict.SchemaUsageError
    with pytest.raises(error, match=r"acme\.labels\.team`: expected string, got int"):
        mods["spans"].start_work(tracer, class_="x", labels={"team": 3})
    with pytest.raises(error, match=r"acme\.tags`: expected a sequence of string"):
        mods["spans"].start_work(tracer, class_="x", tags="ab")
    with pytest.raises(error, match=r"acme\.code`: 5 is not a member of Code nor one of its values"):
        mods["spans"].start_work(tracer, class_="x", code=5)
    mods["spans"].start_work(tracer, class_="x", code=1)  # a member's value is accepted
    with pytest.raises(error, match=r"acme\.code`: True is not a member of Code"):
        mods["spans"].start_work(tracer, class_="x", code=True)  # bool is not the int 1


def test_collision_after_stripping_names_both_definitions() -> None:
    reg = registry_of(
        group("registry.acme", "attribute_group", attr("acme.run_id", source=None), line=3),
        group("span.acme.a", "span", attr("acme.run_id"), attr("acme.run.id"), line=9),
        group("registry.acme.more", "attribute_group", attr("acme.run.id"), line=20),
    )
    with pytest.raises(CodegenError) as info:
        generate_target(discover()["python"], reg, Path("acme"), Path("unused"), check=True)
    text = "\n".join(info.value.lines)
    assert "attribute constant `ACME_RUN_ID` would be generated for both `acme.run.id`" in text
    assert "and `acme.run_id`" in text
    assert "keyword argument of `span.acme.a`: `run_id`" in text


def test_deprecated_twin_gets_a_suffix_instead_of_an_error(build) -> None:  # type: ignore[no-untyped-def]
    old = attr("acme.run_id", deprecated=Deprecated("renamed", renamed_to="acme.run.id"))
    reg = registry_of(
        group("registry.acme", "attribute_group", old, attr("acme.run.id")),
        group("span.acme.a", "span", old, attr("acme.run.id")),
    )
    mods = build(reg)
    assert mods["attributes"].ACME_RUN_ID == "acme.run.id"
    assert mods["attributes"].ACME_RUN_ID_DEPRECATED == "acme.run_id"
    assert "run_id_deprecated" in mods["spans"].start_a.__code__.co_varnames


def test_one_metric_defined_by_several_groups_becomes_one_class(build, sdk: Sdk) -> None:  # type: ignore[no-untyped-def]
    common = attr("acme.id", "string", "required")
    reg = registry_of(
        group("metric.acme.fan.status", "metric", common, attr("acme.fan", "string", "required"),
              metric_name="acme.status", instrument="updowncounter", unit="1"),
        group("metric.acme.disk.status", "metric", common, attr("acme.disk"),
              metric_name="acme.status", instrument="updowncounter", unit="1"),
    )  # fmt: skip
    status = build(reg)["metrics"].Status(sdk.meter_provider.get_meter("m"))
    status.add(1, id_="x")  # `acme.fan` is required by one definition only, so optional here
    status.add(1, id_="x", fan="f1", disk="d1")
    points = sdk.metrics.get_metrics_data().resource_metrics[0].scope_metrics[0].metrics[0].data.data_points
    assert sorted((dict(p.attributes) for p in points), key=len) == [
        {"acme.id": "x"},
        {"acme.id": "x", "acme.fan": "f1", "acme.disk": "d1"},
    ]


@pytest.mark.parametrize(
    "registry",
    [
        registry_of(),
        registry_of(group("registry.acme", "attribute_group", attr("acme.x"))),
        registry_of(
            group("span.acme.bare", "span", span_kind="internal"),
            group("metric.acme.bare", "metric", metric_name="acme.bare", instrument="gauge", unit="{x}"),
            group("event.acme.bare", "event", name="acme.bare"),
        ),
    ],
    ids=["empty", "attributes-only", "signals-without-attributes"],
)
def test_sparse_registries_generate_lint_clean_code(registry: ResolvedRegistry, tmp_path: Path) -> None:
    out = tmp_path / "sparse_pkg"
    generate_target(discover()["python"], registry, tmp_path, out, registry_display="acme")
    result = subprocess.run(
        [
            str(VENV_BIN / "ruff"),
            "check",
            "--no-cache",
            "--config",
            str(REPO_ROOT / "pyproject.toml"),
            "--config",
            "lint.isort.known-first-party = ['knhk_otel']",
            str(out),
        ],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stdout
    for name in ("attributes", "spans", "metrics", "events"):
        compile((out / f"{name}.py").read_text(), name, "exec")
