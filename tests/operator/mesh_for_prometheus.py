"""A running instrumented in-memory mesh that serves its metrics for Prometheus, for the end-to-end
operator test: `python mesh_for_prometheus.py --nodes 500 --byzantine 2`.

It prints `prometheus HOST PORT` once its endpoint listens, then gossips round after round (one
write every few rounds, so convergence keeps being measured) until `quit` on stdin, end of stdin or
`--max-seconds`. Faults are switched on stdin, one command a line: `byzantine off` (the adversaries
stop attacking), `overrun on` (one tick becomes 1 ns, so every operation overruns its budget),
`overrun off` (one tick becomes 1 s), `partition 50/50` (the honest agents are cut into sides by the
memory network's link control, as `knhk-mesh up --partition` does), `heal`, `undescribed span` (one
span the schema does not define, ended through the process' validating tracer provider: a real
schema violation, counted once). Everything else is the mesh as `knhk-mesh up` runs it: one
process-level resource, schema validation counting findings.
"""

from __future__ import annotations

import argparse
import contextlib
import queue
import sys
import threading
import time
from pathlib import Path

from knhk_mesh.adversary import Adversary, Attack, adversary
from knhk_mesh.cluster import build_cluster
from knhk_mesh.core.config import MeshConfig
from knhk_mesh.core.errors import PartitionedError
from knhk_mesh.split import SplitSpec
from knhk_mesh.telemetry import MeshTelemetry
from knhk_otel.runtime.config import TelemetryConfig
from knhk_otel.runtime.providers import build_providers
from knhk_otel.runtime.ticks import TickClock, schema_budgets

CALM_TICK_NS = 1_000_000_000  # one tick = 1 s: no operation overruns
OVERRUN_TICK_NS = 1  # one tick = 1 ns: every operation overruns
SCHEMA = Path(__file__).resolve().parents[2] / "schema"
UNDESCRIBED_SPAN = "knhk.e2e.undescribed"  # no `span.` group of the schema names it
ATTACKS = (Attack.FORGED_SIGNATURE, Attack.IMPERSONATION)  # detected at once, cheap at 500 agents


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--nodes", type=int, default=500)
    parser.add_argument("--byzantine", type=int, default=2)
    parser.add_argument("--max-seconds", type=float, default=600.0)
    args = parser.parse_args()

    config = TelemetryConfig(
        service_name="knhk-mesh",
        export=False,
        validation="count",
        metrics_exporters=("prometheus",),
        prometheus_host="127.0.0.1",
        prometheus_port=0,
        registry_path=str(SCHEMA),
    )
    telemetry = build_providers(config)
    hub = MeshTelemetry(
        telemetry.tracer_provider,
        telemetry.meter_provider,
        telemetry.logger_provider,
        tick_clock=TickClock(tick_ns=CALM_TICK_NS, budgets=schema_budgets()),
    )
    mesh_config = MeshConfig(fanout=10, region="local")
    cluster = build_cluster(
        args.nodes,
        seed=7,
        config=mesh_config,
        instrumentation=lambda ident: hub.for_node(ident.hex_id),
        byzantine=[
            adversary(ATTACKS[i % len(ATTACKS)], start_round=2, attack_rounds=10**6)
            for i in range(args.byzantine)
        ],
    )
    assert telemetry.prometheus_address is not None
    host, port = telemetry.prometheus_address
    print(f"prometheus {host} {port}", flush=True)

    commands: queue.Queue[str] = queue.Queue()

    def read_stdin() -> None:
        for line in sys.stdin:
            commands.put(line.strip())
        commands.put("quit")

    threading.Thread(target=read_stdin, daemon=True).start()
    deadline = time.monotonic() + args.max_seconds
    net = cluster.network
    round_no = 0
    try:
        while time.monotonic() < deadline:
            try:
                while True:
                    command = commands.get_nowait()
                    if command == "quit":
                        return 0
                    if command == "byzantine off":
                        for node in cluster.byzantine:
                            if isinstance(node, Adversary):
                                node.attack_rounds = 0
                    elif command == "overrun on":
                        hub.ticks.tick_ns = OVERRUN_TICK_NS
                    elif command == "overrun off":
                        hub.ticks.tick_ns = CALM_TICK_NS
                    elif command.startswith("partition "):
                        sides = SplitSpec.parse(command.split()[1] + "@0s+1s").sides(cluster.honest)
                        net.partition([[e.address for e in side] for side in sides])
                    elif command == "heal":
                        net.heal()
                    elif command == "undescribed span":
                        tracer = telemetry.tracer_provider.get_tracer("knhk_e2e")
                        tracer.start_span(UNDESCRIBED_SPAN).end()
                    else:
                        print(f"unknown command {command!r}", file=sys.stderr, flush=True)
                        continue
                    print(f"ok {command} at round {round_no}", flush=True)
            except queue.Empty:
                pass
            if round_no % 4 == 0:
                writer = cluster.honest[(round_no // 4) % len(cluster.honest)]
                with contextlib.suppress(PartitionedError):  # read-only while cut off (counted, read_only)
                    writer.write(f"e2e/round-{round_no}", b"value", net.now)
            net.run_for(mesh_config.round_interval)
            round_no += 1
        print("max seconds reached", file=sys.stderr, flush=True)
        return 0
    finally:
        telemetry.shutdown()


if __name__ == "__main__":
    sys.exit(main())
