"""`knhk-mesh`: run a mesh. `up --transport memory` runs N agents in one process and prints a summary."""

from __future__ import annotations

import argparse
import itertools
import logging
import os
import socket
import sys
import time
from collections import defaultdict
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NoReturn
from urllib.parse import urlsplit

from knhk_mesh.adversary import Adversary, Attack, adversary
from knhk_mesh.cluster import BASE_PORT, MAX_AGENTS, MEMORY_HOST, Cluster, build_cluster
from knhk_mesh.core.config import MeshConfig
from knhk_mesh.core.engine import MeshEngine
from knhk_mesh.core.topology import Strategy, TopologyKind
from knhk_mesh.localcluster import region_names
from knhk_mesh.sim import command as sim_command
from knhk_mesh.split import SplitRehearsal, SplitSpec
from knhk_mesh.transport.memory import region_latency
from knhk_mesh.upquic import LiveChecker

log = logging.getLogger("knhk_mesh")

EXIT_OK, EXIT_FAILED, EXIT_USAGE = 0, 1, 2
EXIT_INTERRUPTED = 130  # 128 + SIGINT, as shells report it


class UsageError(Exception):
    """A bad command line; reported as one line, exit status 2."""


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        raise UsageError(message)


def _int_at_least(minimum: int, too_small: str) -> Callable[[str], int]:
    """An argparse type: an integer of at least `minimum`, else `"{text} {too_small}"`."""

    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not an integer") from None
        if value < minimum:
            raise argparse.ArgumentTypeError(f"{text} {too_small}")
        return value

    return parse


_positive = _int_at_least(1, "must be at least 1")
_non_negative = _int_at_least(0, "must not be negative")


def _port(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a port number, got {text!r}") from None
    if not 0 <= value <= 65535:
        raise argparse.ArgumentTypeError(f"port {value} is outside 0..65535")
    return value


def _float_within(low: float, high: float, between: str) -> Callable[[str], float]:
    """An argparse type: a number in [low, high], else `"{text} must be between {between}"`."""

    def parse(text: str) -> float:
        try:
            value = float(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
        if not low <= value <= high:
            raise argparse.ArgumentTypeError(f"{text} must be between {between}")
        return value

    return parse


_interval = _float_within(0.02, 60, "0.02 and 60 seconds")
_fraction = _float_within(0.0, 1.0, "0 and 1")


def _split_spec(text: str) -> SplitSpec:
    try:
        return SplitSpec.parse(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="knhk-mesh", description="The KNHK gossip mesh.")
    sub = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)
    up = sub.add_parser("up", help="run a mesh and print a summary")
    up.add_argument(
        "--transport",
        choices=["memory", "quic"],
        required=True,
        help="memory: N agents in this process; quic: N node processes on 127.0.0.1",
    )
    up.add_argument("--nodes", type=_positive, required=True, help="number of agents")
    up.add_argument("--byzantine", type=_non_negative, default=0, help="Byzantine agents among them (< n/3)")
    up.add_argument("--rounds", type=_positive, default=20, help="gossip rounds to run (default 20)")
    up.add_argument("--seed", type=int, default=1, help="seed of every random choice (default 1)")
    up.add_argument("--fanout", type=_positive, default=None, help="peers per round, k (default 10; quic: 4)")
    up.add_argument(
        "--join",
        action="store_true",
        help="memory: agents start knowing only agent 0 and join through it (signed, address-proven "
        "membership gossip) instead of a static full membership",
    )
    up.add_argument(
        "--partition",
        type=_split_spec,
        action="append",
        default=[],
        metavar="SIDES@STARTs+DURATIONs",
        help="memory: rehearse a network split, e.g. 50/50@10s+5s cuts the honest agents in halves at "
        "10 s of engine time (round 100 at 0.1 s rounds) for 5 s; the run must outlast it; repeat "
        "for several splits, one after the other",
    )
    up.add_argument("--export", action="store_true", help="also export over OTLP (OTEL_* variables)")
    up.add_argument(
        "--prometheus-port",
        type=_port,
        metavar="PORT",
        help="serve metrics for Prometheus on PORT, 0 = a free one (default: OTEL_METRICS_EXPORTER="
        "prometheus with OTEL_EXPORTER_PROMETHEUS_HOST/PORT, else off); quic: 0 only, every node "
        "process serves its own endpoint",
    )
    up.add_argument(
        "--prometheus-host", metavar="HOST", help="address of the metrics endpoint (default localhost)"
    )
    up.add_argument("--duration", type=_positive, default=20, help="quic: seconds to run after the writes")
    up.add_argument("--round-interval", type=_interval, default=0.25, help="quic: seconds per round (0.25)")
    up.add_argument(
        "--workdir", type=Path, default=None, help="quic: PKI, configs, logs (default: a temp dir)"
    )
    up.add_argument(
        "--summary", type=Path, default=None, help="quic: JSON summary file (default: in workdir)"
    )
    _add_topology_options(up)
    up.add_argument(
        "--topology",
        choices=[t.value for t in TopologyKind],
        default=TopologyKind.SINGLE_REGION.value,
        help="single_region (one flat mesh, default), multi_region (regional meshes whose "
        "leaders gossip across regions) or hierarchical (edge, aggregator, coordinator); the last two "
        "need --regions R >= 2",
    )
    _add_network_commands(sub)
    _add_topology_command(sub)
    simulate = sub.add_parser(
        "simulate", help="simulate one write spreading through up to millions of agents (no sockets)"
    )
    sim_command.add_arguments(simulate)
    return parser


def _add_topology_options(up: argparse.ArgumentParser) -> None:
    up.add_argument(
        "--peer-selection",
        choices=[s.value for s in Strategy],
        default=Strategy.RANDOM.value,
        help="how each agent picks its round targets (default random; latency, hybrid and geographic "
        "prefer near peers after the first rebalance)",
    )
    up.add_argument(
        "--nearest-fraction", type=_fraction, default=0.2, help="hybrid: share of nearest targets (0.2)"
    )
    up.add_argument(
        "--rebalance-every", type=_positive, default=100, metavar="N", help="rounds between rebalances (100)"
    )
    up.add_argument(
        "--regions",
        type=_positive,
        default=1,
        metavar="R",
        help="spread the agents round-robin over R regions (memory: 5 ms inside a region, 80-150 ms "
        "between regions)",
    )


def _add_network_commands(sub: argparse._SubParsersAction[_Parser]) -> None:
    certs = sub.add_parser("certs", help="the mesh PKI: CA, node certificates, revocation")
    csub = certs.add_subparsers(dest="certs_command", required=True, parser_class=_Parser)
    init = csub.add_parser("init", help="create the mesh CA (ca.key, ca.pem, crl.pem)")
    init.add_argument("--dir", type=Path, default=Path("pki"), help="CA folder (default ./pki)")
    init.add_argument("--days", type=_positive, default=3650, help="CA validity in days (default 3650)")
    issue = csub.add_parser("issue", help="issue or renew NODE's certificate, bound to its ed25519 identity")
    issue.add_argument("node", metavar="NODE", help="node name (files NODE.key, NODE.pem)")
    issue.add_argument("--dir", type=Path, default=Path("pki"), help="CA folder (default ./pki)")
    issue.add_argument("--out", type=Path, default=None, help="where NODE.key/NODE.pem go (default: --dir)")
    issue.add_argument("--days", type=_positive, default=30, help="validity in days (default 30)")
    issue.add_argument("--key", type=Path, default=None, help="existing identity key (PEM) to bind")
    revoke = csub.add_parser("revoke", help="put a node certificate on the CA's revocation list")
    revoke.add_argument("certificate", type=Path, metavar="CERT", help="the node's certificate (PEM)")
    revoke.add_argument("--dir", type=Path, default=Path("pki"), help="CA folder (default ./pki)")
    node = sub.add_parser("node", help="run one mesh node over QUIC")
    node.add_argument("--config", type=Path, required=True, help="the node's YAML configuration")
    for name, text in (
        ("put", "write KEY=VALUE at a running node"),
        ("get", "read KEY"),
        ("status", "node status"),
    ):
        p = sub.add_parser(name, help=text)
        p.add_argument("--admin", required=True, metavar="HOST:PORT", help="the node's admin endpoint")
        if name in ("put", "get"):
            p.add_argument("key", metavar="KEY")
        if name == "put":
            p.add_argument("value", metavar="VALUE")
        if name == "get":
            p.add_argument("--agent", default=None, help="whose entry (agent id hex; default the node's own)")


def _add_topology_command(sub: argparse._SubParsersAction[_Parser]) -> None:
    topo = sub.add_parser(
        "topology", help="a node's topology as RDF (docs/topology-rdf.md): export it, or ask it in SPARQL"
    )
    where = topo.add_mutually_exclusive_group()
    where.add_argument("--admin", metavar="HOST:PORT", help="a running node's admin endpoint")
    where.add_argument("--data-dir", type=Path, metavar="DIR", help="a stopped node's data folder")
    topo.add_argument("--format", choices=["turtle", "ntriples"], default="turtle", help="export format")
    topo.add_argument("--sparql", metavar="QUERY", help="a SPARQL query (prefixes kt: and rdf: predeclared)")


@dataclass
class UpResult:
    cluster: Cluster
    coverage_rounds: int | None
    identical_after: int | None
    splits: Sequence[SplitRehearsal] = ()


def _validate(args: argparse.Namespace) -> None:
    if args.byzantine * 3 >= args.nodes:
        raise UsageError(
            f"--byzantine {args.byzantine} with --nodes {args.nodes}: Byzantine agents must be fewer than n/3"
        )
    if args.nodes < 2:
        raise UsageError("--nodes must be at least 2 for a mesh")
    if args.topology != TopologyKind.SINGLE_REGION and not 2 <= args.regions <= args.nodes:
        raise UsageError(
            f"--topology {args.topology} needs --regions R with 2 <= R <= --nodes ({args.nodes}), "
            f"got {args.regions}"
        )
    if args.transport == "quic" and args.prometheus_port not in (None, 0):
        raise UsageError(
            f"--prometheus-port {args.prometheus_port} with --transport quic: every node process serves "
            "its own metrics endpoint on a free port; give 0 (the addresses are printed and summarised)"
        )
    if args.transport == "quic" and args.prometheus_host not in (None, "127.0.0.1"):
        raise UsageError(
            f"--prometheus-host {args.prometheus_host} with --transport quic: the node processes listen "
            "on 127.0.0.1 only"
        )
    if args.partition and args.transport != "memory":
        raise UsageError("--partition: split rehearsals run on the memory transport only")
    interval = MeshConfig().round_interval
    ends = 0.0
    for spec in args.partition:
        if spec.start < ends:
            raise UsageError(
                f"--partition at {spec.start:g} s starts before the previous split ends ({ends:g} s)"
            )
        ends = spec.start + spec.duration
        if ends / interval >= args.rounds:
            raise UsageError(
                f"--partition ends at {ends:g} s, after the run's {args.rounds * interval:g} s "
                f"({args.rounds} rounds of {interval:g} s): raise --rounds above "
                f"{round(ends / interval)} (and leave time to heal)"
            )
        if len(spec.shares) > args.nodes - args.byzantine:
            raise UsageError(f"--partition: {len(spec.shares)} sides need as many honest agents")
    if args.transport == "memory" and args.nodes > MAX_AGENTS:
        raise UsageError(
            f"--nodes {args.nodes}: the memory transport addresses at most {MAX_AGENTS:,} agents "
            f"(one port each, {BASE_PORT}-65535)"
        )


def _check_export_endpoint(endpoint: str, timeout: float = 2.0) -> None:
    """Refuse --export up front when nothing listens at the OTLP endpoint (rather than minutes of
    exporter retry warnings): one line that names the endpoint and what to do."""
    url = urlsplit(endpoint if "://" in endpoint else f"http://{endpoint}")
    host = url.hostname or "localhost"
    try:
        port = url.port or (443 if url.scheme == "https" else 80)
    except ValueError:
        raise UsageError(f"--export: OTLP endpoint {endpoint!r} has no valid port") from None
    try:
        socket.create_connection((host, port), timeout=timeout).close()
    except OSError as exc:
        raise UsageError(
            f"--export: nothing answers at the OTLP endpoint {endpoint} ({exc.strerror or exc}); start a "
            "collector or `knhk-otel live-check` there, point OTEL_EXPORTER_OTLP_ENDPOINT at one, "
            "or drop --export"
        ) from None


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
        if args.prometheus_port is not None or args.prometheus_host is not None:
            exporters = tuple(dict.fromkeys((*tconfig.metrics_exporters, "prometheus")))
            tconfig = tconfig.with_overrides(
                metrics_exporters=exporters,
                prometheus_port=args.prometheus_port,
                prometheus_host=args.prometheus_host,
            )
    except ValueError as exc:
        raise UsageError(str(exc)) from None
    if tconfig.export and args.export:
        _check_export_endpoint(tconfig.endpoint)
    strict.set_strict(True)
    recorder = FindingRecorder()
    install_recorder(recorder)
    try:
        providers = build_providers(tconfig)
    except ValueError as exc:
        uninstall_recorder(recorder)
        strict.set_strict(False)
        raise UsageError(str(exc)) from None
    args.fanout = args.fanout or 10
    regions = region_names(args.nodes, args.regions)
    config = MeshConfig(
        fanout=args.fanout,
        region="local",
        peer_selection=Strategy(args.peer_selection),
        nearest_fraction=args.nearest_fraction,
        rebalance_every_rounds=args.rebalance_every,
        topology=TopologyKind(args.topology),
    )
    hub = MeshTelemetry.for_config(
        config,
        providers.tracer_provider,
        providers.meter_provider,
        providers.logger_provider,
        tick_clock=TickClock(tick_ns=tick_ns, budgets=schema_budgets()),
    )
    providers.exports.listener = hub.export_failed
    if providers.prometheus_address is not None:
        host, port = providers.prometheus_address
        say(f"metrics for Prometheus: http://{host}:{port}/metrics")
    attacks = [list(Attack)[i % len(Attack)] for i in range(args.byzantine)]
    interval = config.round_interval
    violation: SchemaViolation | None = None
    try:
        cluster = build_cluster(
            args.nodes,
            seed=args.seed,
            config=config,
            instrumentation=lambda ident: hub.for_node(ident.hex_id),
            byzantine=[adversary(a) for a in attacks],
            full_membership=not args.join,
            regions=regions,
            link_latency=region_latency({(MEMORY_HOST, BASE_PORT + i): r for i, r in enumerate(regions)})
            if regions
            else None,
        )
        splits = [SplitRehearsal(spec, cluster, interval) for spec in args.partition]
        for split, after in itertools.pairwise(splits):
            split.until_round = after.start_round
        result = _drive(cluster, args.rounds, interval, splits)
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
        f"fanout {args.fanout}, seed {args.seed}, {args.rounds} rounds, memory transport, {args.topology}"
    )
    _say_regions(say, result.cluster)
    if result.coverage_rounds is None:
        say(f"convergence: the first write did NOT reach every honest agent in {args.rounds} rounds")
    else:
        identical = "never" if result.identical_after is None else _rounds(result.identical_after)
        say(
            f"convergence: the first write reached all {len(honest)} honest agents in "
            f"{_rounds(result.coverage_rounds)}; all writes, identical state at every honest agent "
            f"after {identical}"
        )
    for split in result.splits:
        for line in split.summary():
            say(line)
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
    ok = ok and all(split.all_healthy() for split in result.splits)
    return EXIT_OK if ok else EXIT_FAILED


def _say_regions(say: Callable[[str], None], cluster: Cluster) -> None:
    """Each region's leader (and level) as its members see it: one line per region."""
    by_region: dict[str, list[MeshEngine]] = defaultdict(list)
    for engine in cluster.honest:
        if engine.regions is not None:
            by_region[engine.config.region].append(engine)
    for region, members in sorted(by_region.items()):
        views = {m.agent_id: m.regions.view for m in members if m.regions is not None and m.regions.view}
        leaders = {v.leader for v in views.values() if v.leader is not None}
        names = ", ".join(sorted(lead.hex() for lead in leaders)) or "none"
        agreed = len(leaders) == 1 and len(views) == len(members)
        agree = "every member agrees" if agreed else "members DISAGREE"
        own = views.get(next(iter(leaders))) if len(leaders) == 1 else None
        role = f" ({own.level.value})" if own is not None and own.level is not None else ""
        say(f"region {region}: {len(members)} honest agents, leader {names}{role}, {agree}")


def _drive(cluster: Cluster, rounds: int, interval: float, splits: Sequence[SplitRehearsal] = ()) -> UpResult:
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
        for split in splits:
            split.before_round(r)
        net.run_for(interval)
        for split in splits:
            split.after_round(r)
        if coverage is None and cluster.all_have(first.agent, first.key, first.version):
            coverage = r
        if r >= 2 and len(cluster.digests()) == 1:
            identical = identical or r
        elif r >= 2:
            identical = None
    return UpResult(cluster, coverage, identical, splits)


def _live_check_factory() -> LiveChecker:
    """An embedded live-check (OTLP gRPC on a free loopback port) of the registry the nodes emit for."""
    from knhk_otel.runtime.config import ConfigError, default_registry_path
    from knhk_otel.runtime.providers import load_registry
    from knhk_otel.validate.server import LiveCheck, LiveCheckOptions

    path = os.environ.get("KNHK_OTEL_REGISTRY") or default_registry_path()
    try:
        registry = load_registry(path)
    except ConfigError as exc:
        raise UsageError(str(exc)) from None
    return LiveCheck(
        registry, LiveCheckOptions(address="127.0.0.1", grpc_port=0, http_port=None, admin_port=None)
    )


def run_certs(args: argparse.Namespace) -> int:
    from knhk_mesh import pki

    try:
        if args.certs_command == "init":
            cert = pki.init_ca(args.dir, days=args.days)
            print(
                f"mesh CA created: {cert} "
                f"(key {args.dir / pki.CA_KEY}, revocation list {args.dir / pki.CA_CRL})"
            )
        elif args.certs_command == "issue":
            out = args.out or args.dir
            issued = pki.issue_node(args.dir, args.node, out, days=args.days, key_path=args.key)
            how = "new identity key" if issued.new_key else "existing identity key"
            print(
                f"{issued.cert_path}: node {args.node}, agent id {issued.agent_id}, "
                f"serial {issued.serial:x}, "
                f"valid {args.days} days ({how} {issued.key_path})"
            )
        else:
            serial = pki.revoke(args.dir, args.certificate)
            print(
                f"revoked serial {serial:x} ({args.certificate}); "
                f"nodes reload {args.dir / pki.CA_CRL} within 1 s"
            )
    except pki.PkiError as exc:
        print(f"knhk-mesh: error: {exc}", file=sys.stderr)
        return EXIT_FAILED
    return EXIT_OK


def run_node(args: argparse.Namespace) -> int:
    """One node process: telemetry from OTEL_*, QUIC, admin endpoint; SIGTERM/SIGINT stop it cleanly."""
    import asyncio
    import signal

    from knhk_mesh.node import MeshNode, resume_identity
    from knhk_mesh.node_config import NodeConfigError, load_node_config
    from knhk_mesh.pki import Credentials, PkiError
    from knhk_mesh.store import StoreError
    from knhk_mesh.telemetry import MeshTelemetry, node_resource
    from knhk_otel.runtime.config import ConfigError, TelemetryConfig
    from knhk_otel.runtime.providers import build_providers
    from knhk_otel.runtime.ticks import TickClock, schema_budgets, tick_ns_from_env

    logging.getLogger("knhk_mesh").setLevel(logging.INFO)
    # a node runs for hours: its log lines carry the time (UTC, to the millisecond), so a refusal
    # can be set beside a peer's CRL reload or a rotation in another node's log
    stamped = logging.Formatter(
        "%(asctime)s.%(msecs)03dZ %(levelname)s %(name)s: %(message)s", "%Y-%m-%dT%H:%M:%S"
    )
    stamped.converter = time.gmtime
    for handler in logging.getLogger().handlers:
        handler.setFormatter(stamped)
    try:
        config = load_node_config(args.config)
        credentials = Credentials(config.pki)
        credentials.check_own()
        resume_identity(config, credentials)
        node_id = credentials.identity.hex_id
        tconfig = TelemetryConfig.from_env(
            validation=config.validation, export=config.export, service_name=config.service_name
        )
        if not tconfig.service_instance_id:
            tconfig = tconfig.with_overrides(service_instance_id=node_id)
        tconfig = tconfig.with_overrides(
            resource_attributes=(*tconfig.resource_attributes, *node_resource(node_id))
        )
        tick_ns = tick_ns_from_env(os.environ)
    except (NodeConfigError, PkiError, StoreError, ConfigError, ValueError) as exc:
        print(f"knhk-mesh: error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    providers = build_providers(tconfig)
    hub = MeshTelemetry.for_config(
        MeshConfig(peer_selection=config.peer_selection, topology=config.topology),
        providers.tracer_provider,
        providers.meter_provider,
        providers.logger_provider,
        tick_clock=TickClock(tick_ns=tick_ns, budgets=schema_budgets()),
    )
    providers.exports.listener = hub.export_failed
    node_telemetry = hub.for_node(node_id)
    served = providers.prometheus_address
    metrics_endpoint = {"prometheus": served[1]} if served is not None else None

    def ticks() -> dict[str, object]:
        out: dict[str, object] = {}
        for op in hub.ticks.budgets:
            st = hub.ticks.stats.get(op)
            if st is not None and st.count:
                out[op] = {
                    "count": st.count,
                    "overruns": st.overruns,
                    "mean_us": round(st.mean_ns() / 1000, 1),
                }
        return out

    async def main_async() -> int:
        node = MeshNode(
            config,
            credentials,
            instrumentation=lambda _id: node_telemetry,
            observer=node_telemetry,
            tick_report=ticks,
            endpoints=metrics_endpoint,
        )
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, node.request_stop)
        try:
            await node.start()
        except (OSError, ValueError) as exc:
            print(f"knhk-mesh: error: {args.config}: cannot start: {exc}", file=sys.stderr)
            await node.stop()
            return EXIT_FAILED
        await node.wait_stopped()
        await node.stop()
        return EXIT_OK

    try:
        return asyncio.run(main_async())
    except StoreError as exc:
        print(f"knhk-mesh: error: {exc}", file=sys.stderr)
        return EXIT_FAILED
    finally:
        providers.shutdown()


def run_admin_client(args: argparse.Namespace) -> int:
    import json
    import urllib.error
    import urllib.parse
    import urllib.request

    host, _, port = args.admin.rpartition(":")
    if not host or not port.isdigit():
        raise UsageError(f"--admin {args.admin!r}: expected HOST:PORT")
    base = f"http://{host}:{port}"
    if args.command == "put":
        data = json.dumps({"key": args.key, "value": args.value}).encode()
        req = urllib.request.Request(f"{base}/put", data=data, method="POST")
    elif args.command == "get":
        query = {"key": args.key} | ({"agent": args.agent} if args.agent else {})
        req = urllib.request.Request(f"{base}/get?{urllib.parse.urlencode(query)}")
    else:
        req = urllib.request.Request(f"{base}/status")
    try:
        with urllib.request.urlopen(req, timeout=30) as resp:
            doc = json.loads(resp.read())
    except urllib.error.HTTPError as exc:
        try:
            reason = json.loads(exc.read()).get("error", exc.reason)
        except (ValueError, AttributeError):
            reason = exc.reason
        print(f"knhk-mesh: error: {args.admin}: {reason}", file=sys.stderr)
        return EXIT_FAILED
    except (urllib.error.URLError, OSError) as exc:
        reason = getattr(exc, "reason", exc)
        print(f"knhk-mesh: error: {args.admin}: no node answers ({reason})", file=sys.stderr)
        return EXIT_FAILED
    if args.command == "get":
        print(doc["value"])
    elif args.command == "put":
        print(f"{doc['agent']} {doc['key']} version {doc['version']} (durable)")
    else:
        print(json.dumps(doc, indent=2, sort_keys=True))
    return EXIT_OK


def run_topology(args: argparse.Namespace) -> int:
    """Export a node's topology graph or answer a SPARQL query over it: from a running node (admin
    endpoint) or a stopped node's store. A query that does not parse is a usage error (exit 2)."""
    from knhk_mesh.topology_rdf import Answer, TopologyQueryError, TopologyStore

    if args.admin is None and args.data_dir is None:
        raise UsageError("topology: give --admin or --data-dir (which node's topology)")
    if args.data_dir is not None:
        try:
            store = TopologyStore(args.data_dir, read_only=True)
        except TopologyQueryError as exc:
            print(f"knhk-mesh: error: {exc}", file=sys.stderr)
            return EXIT_FAILED
        if args.sparql is None:
            print(store.export(args.format), end="")
            return EXIT_OK
        try:
            answer = store.query(args.sparql)
        except TopologyQueryError as exc:
            raise UsageError(str(exc)) from None
    else:
        if args.sparql is None:
            status, doc = _admin_call(args.admin, f"/topology?format={args.format}", None)
        else:
            status, doc = _admin_call(args.admin, "/topology/sparql", {"query": args.sparql})
        if status != 200:
            if doc.get("sparql"):
                raise UsageError(str(doc.get("error")))
            print(f"knhk-mesh: error: {args.admin}: {doc.get('error', status)}", file=sys.stderr)
            return EXIT_FAILED
        if args.sparql is None:
            print(doc["data"], end="")
            return EXIT_OK
        answer = Answer(
            variables=tuple(doc.get("variables", ())),
            rows=tuple(tuple(r) for r in doc.get("rows", ())),
            boolean=doc.get("boolean"),
            turtle=doc.get("turtle"),
        )
    if answer.boolean is not None:
        print("true" if answer.boolean else "false")
    elif answer.turtle is not None:
        print(answer.turtle, end="")
    else:
        print("\t".join(answer.variables))
        for row in answer.rows:
            print("\t".join("" if v is None else v for v in row))
    return EXIT_OK


def _admin_call(admin: str, path: str, body: object) -> tuple[int, dict[str, Any]]:
    """One admin request: (HTTP status, JSON answer); a node that does not answer is status 0."""
    import json
    import urllib.error
    import urllib.request

    host, _, port = admin.rpartition(":")
    if not host or not port.isdigit():
        raise UsageError(f"--admin {admin!r}: expected HOST:PORT")
    data = json.dumps(body).encode() if body is not None else None
    req = urllib.request.Request(f"http://{host}:{port}{path}", data=data, method="POST" if data else "GET")
    try:
        with urllib.request.urlopen(req, timeout=30) as resp:
            return resp.status, json.loads(resp.read())
    except urllib.error.HTTPError as exc:
        try:
            doc = json.loads(exc.read())
        except ValueError:
            doc = {"error": exc.reason}
        return exc.code, doc if isinstance(doc, dict) else {"error": exc.reason}
    except (urllib.error.URLError, OSError) as exc:
        return 0, {"error": f"no node answers ({getattr(exc, 'reason', exc)})"}


def run_simulate(args: argparse.Namespace) -> int:
    try:
        return sim_command.run(args)
    except ValueError as exc:  # raised by option checks only, before the run starts
        raise UsageError(str(exc)) from None


def _rounds(n: int) -> str:
    return f"{n} round" if n == 1 else f"{n} rounds"


def main(argv: Sequence[str] | None = None) -> int:
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    try:
        args = build_parser().parse_args(argv)
        if args.command == "up" and args.transport == "quic":
            from knhk_mesh.upquic import run_up_quic

            return run_up_quic(args, _validate, _live_check_factory)
        if args.command == "up":
            return run_up(args)
        if args.command == "certs":
            return run_certs(args)
        if args.command == "node":
            return run_node(args)
        if args.command in ("put", "get", "status"):
            return run_admin_client(args)
        if args.command == "simulate":
            return run_simulate(args)
        if args.command == "topology":
            return run_topology(args)
    except UsageError as exc:
        print(f"knhk-mesh: error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        # Ctrl-C: whatever the command started is already stopped by its own `finally` blocks
        print("knhk-mesh: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
    except BrokenPipeError:
        # the reader (e.g. `| head`) went away: stop quietly, as other command-line tools do
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return EXIT_FAILED
    return EXIT_USAGE


if __name__ == "__main__":
    sys.exit(main())
