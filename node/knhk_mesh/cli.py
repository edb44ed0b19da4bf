"""`knhk-mesh`: run a mesh. `up --transport memory` runs N agents in one process and prints a summary."""

from __future__ import annotations

import argparse
import logging
import os
import sys
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from typing import NoReturn

from knhk_mesh.adversary import Adversary, Attack, adversary
from knhk_mesh.cluster import Cluster, build_cluster
from knhk_mesh.core.config import MeshConfig

log = logging.getLogger("knhk_mesh")

EXIT_OK, EXIT_FAILED, EXIT_USAGE = 0, 1, 2


class UsageError(Exception):
    """A bad command line; reported as one line, exit status 2."""


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        raise UsageError(message)


def _positive(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not an integer") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"{text} must be at least 1")
    return value


def _non_negative(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not an integer") from None
    if value < 0:
        raise argparse.ArgumentTypeError(f"{text} must not be negative")
    return value


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="knhk-mesh", description="The KNHK gossip mesh.")
    sub = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)
    up = sub.add_parser("up", help="run a mesh and print a summary")
    up.add_argument("--transport", choices=["memory"], required=True, help="memory: N agents in this process")
    up.add_argument("--nodes", type=_positive, required=True, help="number of agents")
    up.add_argument("--byzantine", type=_non_negative, default=0, help="Byzantine agents among them (< n/3)")
    up.add_argument("--rounds", type=_positive, default=20, help="gossip rounds to run (default 20)")
    up.add_argument("--seed", type=int, default=1, help="seed of every random choice (default 1)")
    up.add_argument("--fanout", type=_positive, default=10, help="peers per round, k (default 10)")
    up.add_argument("--export", action="store_true", help="also export over OTLP (OTEL_* variables)")
    return parser


@dataclass
class UpResult:
    cluster: Cluster
    coverage_rounds: int | None
    identical_after: int | None


def _validate(args: argparse.Namespace) -> None:
    if args.byzantine * 3 >= args.nodes:
        raise UsageError(
            f"--byzantine {args.byzantine} with --nodes {args.nodes}: Byzantine agents must be fewer than n/3"
        )
    if args.nodes < 2:
        raise UsageError("--nodes must be at least 2 for a mesh")


def run_up(args: argparse.Namespace, out: object = sys.stdout) -> int:
    from knhk_mesh.telemetry import MeshTelemetry
    from knhk_otel.runtime import strict
    from knhk_otel.runtime.config import TelemetryConfig
    from knhk_otel.runtime.providers import build_providers
    from knhk_otel.runtime.ticks import TickClock, schema_budgets, tick_ns_from_env
    from knhk_otel.validate.findings import SchemaViolation
    from knhk_otel.validate.sdk import FindingRecorder, install_recorder, uninstall_recorder

    def say(line: str = "") -> None:
        print(line, file=out)  # type: ignore[call-overload]

    _validate(args)
    try:
        tick_ns = tick_ns_from_env(os.environ)
        tconfig = TelemetryConfig.from_env(validation="strict", export=args.export)
    except ValueError as exc:
        raise UsageError(str(exc)) from None
    strict.set_strict(True)
    recorder = FindingRecorder()
    install_recorder(recorder)
    providers = build_providers(tconfig)
    hub = MeshTelemetry(
        providers.tracer_provider,
        providers.meter_provider,
        providers.logger_provider,
        tick_clock=TickClock(tick_ns=tick_ns, budgets=schema_budgets()),
    )
    attacks = [list(Attack)[i % len(Attack)] for i in range(args.byzantine)]
    config = MeshConfig(fanout=args.fanout, region="local")
    interval = config.round_interval
    violation: SchemaViolation | None = None
    try:
        cluster = build_cluster(
            args.nodes,
            seed=args.seed,
            config=config,
            instrumentation=lambda ident: hub.for_node(ident.hex_id),
            byzantine=[adversary(a) for a in attacks],
        )
        result = _drive(cluster, args.rounds, interval)
    except SchemaViolation as exc:
        violation = exc
    finally:
        try:
            providers.shutdown()
        except SchemaViolation as exc:
            violation = violation or exc
        uninstall_recorder(recorder)
        strict.set_strict(False)
    if violation is not None:
        say(f"knhk-mesh: telemetry broke the schema: {violation.findings[0]}")
        return EXIT_FAILED
    honest = result.cluster.honest
    say(
        f"knhk-mesh up: {args.nodes} agents ({len(honest)} honest, {args.byzantine} Byzantine), "
        f"fanout {args.fanout}, seed {args.seed}, {args.rounds} rounds, memory transport"
    )
    if result.coverage_rounds is None:
        say(f"convergence: the first write did NOT reach every honest agent in {args.rounds} rounds")
    else:
        identical = "never" if result.identical_after is None else _rounds(result.identical_after)
        say(
            f"convergence: the first write reached all {len(honest)} honest agents in "
            f"{_rounds(result.coverage_rounds)}; all writes, identical state at every honest agent "
            f"after {identical}"
        )
    say(f"tick budgets (1 tick = {hub.ticks.tick_ns} ns = {hub.ticks.tick_ns / 1000:g} µs):")
    say(f"  {'operation':<18} {'budget':>6}  {'mean':>18}  {'max':>20}  {'within budget':>16}")
    for op, budget in hub.ticks.budgets.items():
        st = hub.ticks.stats.get(op)
        if st is None or not st.count:
            say(f"  {op:<18} {budget:>6}  {'not measured':>18}")
            continue
        mean_t, max_t = st.mean_ns() / hub.ticks.tick_ns, st.max_ns / hub.ticks.tick_ns
        within = 100.0 * (st.count - st.overruns) / st.count
        say(
            f"  {op:<18} {budget:>6}  {mean_t:>6.2f} t ({st.mean_ns() / 1000:>6.1f} µs)  "
            f"{max_t:>7.2f} t ({st.max_ns / 1000:>7.1f} µs)  {within:>6.1f}% of {st.count}"
        )
    by_kind: dict[str, int] = defaultdict(int)
    for (kind, _peer), count in hub.detections.items():
        by_kind[kind] += count
    say("Byzantine detections by kind:" + ("" if by_kind else " none"))
    for kind, count in sorted(by_kind.items()):
        say(f"  {kind:<18} {count}")
    bad = [b for b in result.cluster.byzantine if isinstance(b, Adversary)]
    if bad:
        say("reputation of Byzantine agents as seen by honest agents (min / max):")
        for b in bad:
            reps = [h.registry.reputation(b.agent_id) for h in honest]
            say(f"  {b.agent_id.hex()}  {b.attack.value:<17} {min(reps):.2f} / {max(reps):.2f}")
    violations = recorder.violations()
    levels: dict[str, int] = defaultdict(int)
    for f in recorder.findings:
        levels[f.level] += 1
    notes = levels.pop("information", 0)
    say(
        f"schema findings: {sum(levels.values())} (violations {levels['violation']}, improvements "
        f"{levels['improvement']}); {notes} informational notes (development-stability attributes)"
    )
    ok = result.coverage_rounds is not None and result.identical_after is not None and not violations
    return EXIT_OK if ok else EXIT_FAILED


def _drive(cluster: Cluster, rounds: int, interval: float) -> UpResult:
    net = cluster.network
    net.run_for(interval)
    honest = cluster.honest
    first = honest[0].write("mesh/hello", b"world", net.now)
    coverage: int | None = None
    identical: int | None = None
    for r in range(1, rounds + 1):
        if r == 2:
            for i in (len(honest) // 3, 2 * len(honest) // 3):
                honest[i].write(f"mesh/agent-{i}", f"written at round {r}".encode(), net.now)
        net.run_for(interval)
        if coverage is None and cluster.all_have(first.agent, first.key, first.version):
            coverage = r
        if r >= 2 and len(cluster.digests()) == 1:
            identical = identical or r
        elif r >= 2:
            identical = None
    return UpResult(cluster, coverage, identical)


def _rounds(n: int) -> str:
    return f"{n} round" if n == 1 else f"{n} rounds"


def main(argv: Sequence[str] | None = None) -> int:
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    try:
        args = build_parser().parse_args(argv)
        if args.command == "up":
            return run_up(args)
    except UsageError as exc:
        print(f"knhk-mesh: error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except BrokenPipeError:
        # the reader (e.g. `| head`) went away: stop quietly, as other command-line tools do
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return EXIT_FAILED
    return EXIT_USAGE


if __name__ == "__main__":
    sys.exit(main())
