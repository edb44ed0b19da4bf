"""`knhk-mesh node --config FILE`: the YAML file read once into one typed NodeConfig.

Errors name the file, the line and the field (`nodes/a.yaml:4: listen: ...`), one line each.
Relative paths in the file are relative to the file's folder.

Two settings exist for tests and drills, never for production: `byzantine` (this node attacks its
peers, or relays with gaps) and `faults` (fault injection: `drop: [HOST:PORT, ...]` drops every frame
to or from those peers, as a firewall DROP rule would, to split a mesh of processes without root;
the admin endpoint's `POST /faults` changes the list at run time).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from knhk_mesh.adversary import Attack
from knhk_mesh.core.messages import Address
from knhk_mesh.core.topology import Strategy, TopologyKind
from knhk_mesh.pki import PkiPaths

WITHHOLDING_RELAY = "withholding_relay"  # `byzantine:` value for a relay that leaves gaps


class NodeConfigError(Exception):
    """One bad setting: `path:line: field: what is wrong`."""


@dataclass(frozen=True)
class NodeConfig:
    pki: PkiPaths
    listen: Address
    data_dir: Path
    admin: Address = ("127.0.0.1", 0)
    seeds: tuple[Address, ...] = ()
    region: str = ""
    fanout: int = 10
    round_interval: float = 0.1
    stale_timeout: float = 30.0
    queue_limit: int = 1024
    idle_timeout: float = 30.0
    validation: str = "count"  # in-process schema validation of the node's own telemetry
    export: bool = True  # OTLP export, configured by the OTEL_* variables
    service_name: str = "knhk-mesh"
    byzantine: Attack | None = None  # for demos and tests: this node attacks its peers
    withholding_relay: bool = False  # for tests: this node relays only each owner's newest entry
    drop: frozenset[Address] = frozenset()  # fault injection: frames to or from these peers are dropped
    # written once listening: {"quic": port, "admin": port, "node_id": hex, "prometheus": port if served}
    ports_file: Path | None = None
    peer_selection: Strategy = Strategy.RANDOM  # core.topology strategies
    nearest_fraction: float = 0.2  # hybrid's share of nearest targets
    rebalance_every_rounds: int = 100
    topology: TopologyKind = TopologyKind.SINGLE_REGION
    source: Path = field(default=Path("-"), compare=False)


_FIELDS = {
    "identity",
    "listen",
    "admin",
    "seeds",
    "region",
    "fanout",
    "round_interval",
    "stale_timeout",
    "queue_limit",
    "idle_timeout",
    "data_dir",
    "telemetry",
    "byzantine",
    "ports_file",
    "peer_selection",
    "nearest_fraction",
    "rebalance_every_rounds",
    "topology",
    "faults",
}
_IDENTITY = {"key", "certificate", "ca", "crl"}
_TELEMETRY = {"validation", "export", "service_name"}


class _Reader:
    def __init__(self, path: Path, lines: dict[str, int]) -> None:
        self.path = path
        self.lines = lines

    def error(self, name: str, message: str) -> NodeConfigError:
        line = self.lines.get(name, self.lines.get(name.split(".")[0], 1))
        return NodeConfigError(f"{self.path}:{line}: {name}: {message}")

    def address(self, name: str, value: object) -> Address:
        if not isinstance(value, str) or ":" not in value:
            raise self.error(name, f"expected HOST:PORT, got {value!r}")
        host, _, port_text = value.rpartition(":")
        host = host.strip("[]")
        try:
            port = int(port_text)
        except ValueError:
            raise self.error(name, f"port {port_text!r} is not a number") from None
        if not 0 <= port < 65536 or not host:
            raise self.error(name, f"{value!r} is not a usable address")
        return (host, port)

    def path_of(self, name: str, value: object) -> Path:
        if not isinstance(value, str) or not value:
            raise self.error(name, f"expected a file path, got {value!r}")
        p = Path(value).expanduser()
        return p if p.is_absolute() else self.path.parent / p

    def number(self, name: str, value: object, *, integer: bool, minimum: float) -> float:
        if (
            isinstance(value, bool)
            or not isinstance(value, int | float)
            or (integer and not isinstance(value, int))
        ):
            raise self.error(name, f"expected {'an integer' if integer else 'a number'}, got {value!r}")
        if not math.isfinite(value):  # YAML's .nan and .inf
            raise self.error(name, f"expected a finite number, got {value}")
        if value < minimum:
            raise self.error(name, f"must be at least {minimum}, got {value}")
        return value


def _line_numbers(text: str) -> dict[str, int]:
    """1-based line of each top-level key and of `section.key` one level down."""
    out: dict[str, int] = {}
    try:
        root = yaml.compose(text)
    except yaml.YAMLError:
        return out
    if isinstance(root, yaml.MappingNode):
        for k, v in root.value:
            out[str(k.value)] = k.start_mark.line + 1
            if isinstance(v, yaml.MappingNode):
                for k2, _ in v.value:
                    out[f"{k.value}.{k2.value}"] = k2.start_mark.line + 1
    return out


def load_node_config(path: Path) -> NodeConfig:
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise NodeConfigError(f"{path}: cannot read the node configuration ({exc.strerror})") from None
    try:
        doc = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        line = mark.line + 1 if mark is not None else 1
        raise NodeConfigError(f"{path}:{line}: not valid YAML ({getattr(exc, 'problem', exc)})") from None
    r = _Reader(path, _line_numbers(text))
    if not isinstance(doc, dict):
        raise NodeConfigError(f"{path}:1: the configuration must be a mapping of settings")
    unknown = sorted(set(map(str, doc)) - _FIELDS)
    if unknown:
        raise r.error(unknown[0], f"unknown setting (known: {', '.join(sorted(_FIELDS))})")
    for required in ("identity", "listen", "data_dir"):
        if required not in doc:
            raise NodeConfigError(f"{path}:1: {required}: required setting is missing")
    ident = doc["identity"]
    if not isinstance(ident, dict):
        raise r.error("identity", "expected a mapping with key, certificate, ca (and crl)")
    bad = sorted(set(map(str, ident)) - _IDENTITY)
    if bad:
        raise r.error(f"identity.{bad[0]}", f"unknown setting (known: {', '.join(sorted(_IDENTITY))})")
    for required in ("key", "certificate", "ca"):
        if required not in ident:
            raise r.error("identity", f"{required}: required setting is missing")
    pki = PkiPaths(
        ca_cert=r.path_of("identity.ca", ident["ca"]),
        node_cert=r.path_of("identity.certificate", ident["certificate"]),
        node_key=r.path_of("identity.key", ident["key"]),
        crl=r.path_of("identity.crl", ident["crl"]) if ident.get("crl") is not None else None,
    )
    seeds_raw = doc.get("seeds") or []
    if not isinstance(seeds_raw, list):
        raise r.error("seeds", "expected a list of HOST:PORT")
    tele = doc.get("telemetry") or {}
    if not isinstance(tele, dict):
        raise r.error("telemetry", "expected a mapping (validation, export, service_name)")
    bad = sorted(set(map(str, tele)) - _TELEMETRY)
    if bad:
        raise r.error(f"telemetry.{bad[0]}", f"unknown setting (known: {', '.join(sorted(_TELEMETRY))})")
    validation = tele.get("validation", "count")
    if validation not in ("strict", "count", "off"):
        raise r.error("telemetry.validation", f"expected strict, count or off, got {validation!r}")
    export = tele.get("export", True)
    if not isinstance(export, bool):
        raise r.error("telemetry.export", f"expected true or false, got {export!r}")
    byz = doc.get("byzantine")
    attack: Attack | None = None
    if byz is not None and byz != WITHHOLDING_RELAY:
        try:
            attack = Attack(byz)
        except ValueError:
            raise r.error(
                "byzantine",
                f"expected one of {', '.join([*(a.value for a in Attack), WITHHOLDING_RELAY])}, got {byz!r}",
            ) from None
    faults = doc.get("faults") or {}
    if not isinstance(faults, dict) or set(map(str, faults)) - {"drop"}:
        raise r.error("faults", "expected a mapping with one setting, drop: [HOST:PORT, ...]")
    drop_raw = faults.get("drop") or []
    if not isinstance(drop_raw, list):
        raise r.error("faults.drop", "expected a list of HOST:PORT")
    region = doc.get("region", "")
    if not isinstance(region, str):
        raise r.error("region", f"expected a string, got {region!r}")
    choices = {}
    for name, kind, default in (
        ("peer_selection", Strategy, Strategy.RANDOM),
        ("topology", TopologyKind, TopologyKind.SINGLE_REGION),
    ):
        raw = doc.get(name, default.value)
        try:
            choices[name] = kind(raw)
        except ValueError:
            raise r.error(name, f"expected one of {', '.join(m.value for m in kind)}, got {raw!r}") from None
    fraction = r.number("nearest_fraction", doc.get("nearest_fraction", 0.2), integer=False, minimum=0.0)
    if fraction > 1.0:
        raise r.error("nearest_fraction", f"must be at most 1, got {fraction}")
    every = doc.get("rebalance_every_rounds", 100)
    return NodeConfig(
        peer_selection=Strategy(choices["peer_selection"]),
        topology=TopologyKind(choices["topology"]),
        nearest_fraction=fraction,
        rebalance_every_rounds=int(r.number("rebalance_every_rounds", every, integer=True, minimum=1)),
        pki=pki,
        listen=r.address("listen", doc["listen"]),
        admin=r.address("admin", doc.get("admin", "127.0.0.1:0")),
        data_dir=r.path_of("data_dir", doc["data_dir"]),
        seeds=tuple(r.address("seeds", s) for s in seeds_raw),
        region=region,
        fanout=int(r.number("fanout", doc.get("fanout", 10), integer=True, minimum=1)),
        round_interval=r.number(
            "round_interval", doc.get("round_interval", 0.1), integer=False, minimum=0.01
        ),
        stale_timeout=r.number("stale_timeout", doc.get("stale_timeout", 30.0), integer=False, minimum=0.1),
        queue_limit=int(r.number("queue_limit", doc.get("queue_limit", 1024), integer=True, minimum=1)),
        idle_timeout=r.number("idle_timeout", doc.get("idle_timeout", 30.0), integer=False, minimum=0.1),
        validation=validation,
        export=export,
        service_name=str(tele.get("service_name", "knhk-mesh")),
        byzantine=attack,
        withholding_relay=byz == WITHHOLDING_RELAY,
        drop=frozenset(r.address("faults.drop", a) for a in drop_raw),
        ports_file=r.path_of("ports_file", doc["ports_file"]) if doc.get("ports_file") else None,
        source=path,
    )


def dump_node_config(values: dict[str, Any]) -> str:
    """YAML text of a configuration (for `knhk-mesh up`, which writes one file per node)."""
    return yaml.safe_dump(values, sort_keys=False)
