"""The python target's output is a package a user can ship: it needs nothing but opentelemetry-api.

A generated package is installed into a bare virtual environment holding only `opentelemetry-api`
(pip finds it in the local cache or on PyPI) and used there: helpers through the API's own no-op
providers, strict mode from the package's own `strict` module, enum arguments given as members or
as their values. Nothing of the toolchain (knhk_otel, grpc, aioquic, PyNaCl, protobuf) may be
installed or imported.
"""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from knhk_otel.cli import main
from knhk_otel.runtime import strict as toolchain_strict
from knhk_otel.runtime.strict import SchemaUsageError
from knhk_otel.semconv import attributes, spans
from knhk_otel.semconv import strict as generated_strict

from .conftest import REPO_ROOT, Sdk

PYPROJECT = """
[build-system]
requires = ["setuptools"]
build-backend = "setuptools.build_meta"

[project]
name = "mesh-telemetry"
version = "0.1.0"
dependencies = ["opentelemetry-api"]

[tool.setuptools]
packages = ["mesh_telemetry"]
"""

USE = """
import json, sys
from opentelemetry import _logs, metrics as otel_metrics, trace
import mesh_telemetry
from mesh_telemetry import attributes, events, metrics, spans, strict

tracer = trace.get_tracer("user")
with spans.start_gossip_round(tracer, node_id="a", gossip_round=1, gossip_phase="push"):
    pass
with spans.start_gossip_round(tracer, node_id="a", gossip_round=2, gossip_phase=attributes.GossipPhase.PULL):
    pass
messages = metrics.Messages(otel_metrics.get_meter("user"))
messages.add(1, message_direction="sent", message_type=attributes.MessageType.PUSH)
events.emit_byzantine_detected(
    _logs.get_logger("user"), node_id="a", peer_id="b", byzantine_kind=attributes.ByzantineKind.EQUIVOCATION
)
strict.set_strict(True)
try:
    spans.start_gossip_round(tracer, node_id="a", gossip_round=1, gossip_phase="pushh")
    error = None
except strict.SchemaUsageError as exc:
    error = str(exc)
toolchain = sorted(
    m for m in sys.modules if m.split(".")[0] in ("knhk_otel", "grpc", "aioquic", "nacl", "google")
)
print(json.dumps({"error": error, "toolchain": toolchain, "file": mesh_telemetry.__file__}))
"""


@pytest.mark.slow
def test_a_generated_package_installs_and_runs_with_only_the_otel_api(tmp_path: Path) -> None:
    project = tmp_path / "project"
    (project / "mesh_telemetry").mkdir(parents=True)
    (project / "pyproject.toml").write_text(textwrap.dedent(PYPROJECT).lstrip(), encoding="utf-8")
    assert (
        main(["generate", "python", "-r", str(REPO_ROOT / "schema"), "-o", str(project / "mesh_telemetry")])
        == 0
    )
    generated = "\n".join(p.read_text(encoding="utf-8") for p in (project / "mesh_telemetry").glob("*.py"))
    assert "knhk_otel" not in generated
    assert "from the registry `knhk_mesh 0.1.0`" in generated and str(REPO_ROOT) not in generated

    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, timeout=300)
    python = str(venv / "bin" / "python")
    from importlib import metadata

    api = f"opentelemetry-api=={metadata.version('opentelemetry-api')}"
    install = subprocess.run(
        [python, "-m", "pip", "install", "--quiet", api, str(project)],
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert install.returncode == 0, install.stderr
    freeze = subprocess.run(
        [python, "-m", "pip", "freeze"], capture_output=True, text=True, timeout=120, check=True
    ).stdout.lower()
    installed = {line.split("==")[0].split(" @ ")[0] for line in freeze.splitlines() if line}
    assert {"opentelemetry-api", "mesh-telemetry"} <= installed
    assert not installed & {"knhk-otel", "grpcio", "aioquic", "pynacl", "protobuf", "opentelemetry-sdk"}

    run = subprocess.run(
        [python, "-c", USE], cwd=tmp_path, capture_output=True, text=True, timeout=120, check=False
    )
    assert run.returncode == 0, run.stderr
    result = json.loads(run.stdout)
    assert result["toolchain"] == []
    assert str(venv) in result["file"]
    values = ", ".join(repr(m.value) for m in attributes.GossipPhase)
    assert result["error"] == (
        "start_gossip_round: attribute `knhk.mesh.gossip.phase`: 'pushh' is not a member of GossipPhase "
        f"nor one of its values ({values})"
    )


def test_an_enum_argument_takes_the_member_or_its_value(sdk: Sdk) -> None:
    tracer = sdk.tracer_provider.get_tracer("t")
    for strict_on in (False, True):
        toolchain_strict.set_strict(strict_on)
        try:
            with spans.start_gossip_round(tracer, node_id="a", gossip_round=1, gossip_phase="merge"):
                pass
            with spans.start_gossip_round(
                tracer, node_id="a", gossip_round=1, gossip_phase=attributes.GossipPhase.MERGE
            ):
                pass
        finally:
            toolchain_strict.set_strict(False)
    phases = [s.attributes["knhk.mesh.gossip.phase"] for s in sdk.spans.get_finished_spans()]  # type: ignore[index]
    assert phases == ["merge"] * 4
    assert all(type(p) is str for p in phases)  # the value, not the enum member, reaches OTel


def test_a_wrong_enum_value_fails_clearly_in_strict_mode() -> None:
    from opentelemetry.trace import NoOpTracer

    toolchain_strict.set_strict(True)
    try:
        with pytest.raises(SchemaUsageError) as info:
            spans.start_gossip_round(NoOpTracer(), node_id="a", gossip_round=1, gossip_phase="pushh")  # type: ignore[arg-type]
    finally:
        toolchain_strict.set_strict(False)
    assert "'pushh' is not a member of GossipPhase nor one of its values" in str(info.value)
    assert not isinstance(info.value, AttributeError)


def test_the_toolchain_switch_is_the_generated_packages_switch() -> None:
    toolchain_strict.set_strict(True)
    try:
        assert generated_strict.enabled is True
    finally:
        toolchain_strict.set_strict(False)
    assert generated_strict.enabled is False
    assert toolchain_strict.SchemaUsageError is generated_strict.SchemaUsageError
