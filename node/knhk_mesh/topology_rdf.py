"""The topology a node sees, as RDF in an embedded store (pyoxigraph): written after each rebalance,
exported as Turtle, queried with SPARQL. The vocabulary is documented in docs/topology-rdf.md.

Every resource is an IRI (no blank nodes), so two graphs of one snapshot are equal triple for triple,
and a Turtle export parses back to the same graph. The store keeps the latest snapshot only: it
answers "what does the mesh look like now", not its history (telemetry keeps that).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote

import pyoxigraph as ox

from knhk_mesh.core.topology import TopologySnapshot

NS = "urn:knhk:topology:"
PREFIXES = f"PREFIX kt: <{NS}>\nPREFIX rdf: <http://www.w3.org/1999/02/22-rdf-syntax-ns#>\n"
STORE_DIR = "topology.oxigraph"

_XSD = "http://www.w3.org/2001/XMLSchema#"
_TYPE = ox.NamedNode("http://www.w3.org/1999/02/22-rdf-syntax-ns#type")
_INT, _DOUBLE = ox.NamedNode(_XSD + "integer"), ox.NamedNode(_XSD + "double")
_G = ox.DefaultGraph()


def kt(term: str) -> ox.NamedNode:
    return ox.NamedNode(NS + term)


def agent_iri(agent: bytes) -> ox.NamedNode:
    return ox.NamedNode(f"urn:knhk:agent:{agent.hex()}")


def region_iri(region: str) -> ox.NamedNode:
    return ox.NamedNode(f"urn:knhk:region:{quote(region, safe='') or '-'}")


class TopologyQueryError(ValueError):
    """A SPARQL query the store cannot run; the message is one line."""


@dataclass(frozen=True)
class Answer:
    """A query's answer: rows for SELECT, a boolean for ASK, Turtle for CONSTRUCT/DESCRIBE."""

    variables: tuple[str, ...] = ()
    rows: tuple[tuple[str | None, ...], ...] = ()
    boolean: bool | None = None
    turtle: str | None = None

    def as_json(self) -> dict[str, object]:
        if self.boolean is not None:
            return {"boolean": self.boolean}
        if self.turtle is not None:
            return {"turtle": self.turtle}
        return {"variables": list(self.variables), "rows": [list(r) for r in self.rows]}


def snapshot_quads(snap: TopologySnapshot) -> list[ox.Quad]:
    """The snapshot as triples (see docs/topology-rdf.md for the vocabulary)."""
    out: list[ox.Quad] = []

    def add(s: ox.NamedNode, p: str, o: ox.NamedNode | ox.Literal) -> None:
        out.append(ox.Quad(s, kt(p), o, _G))

    def a(s: ox.NamedNode, cls: str) -> None:
        out.append(ox.Quad(s, _TYPE, kt(cls), _G))

    def integer(v: int) -> ox.Literal:
        return ox.Literal(str(v), datatype=_INT)

    def double(v: float) -> ox.Literal:
        return ox.Literal(repr(float(v)), datatype=_DOUBLE)

    me = agent_iri(snap.node)
    sid = ox.NamedNode(f"urn:knhk:snapshot:{snap.node.hex()}")
    a(sid, "Snapshot")
    add(sid, "observer", me)
    add(sid, "round", integer(snap.round))
    add(sid, "topology", ox.Literal(snap.topology.value))
    add(sid, "strategy", ox.Literal(snap.strategy.value))
    add(sid, "clusterCount", integer(len(snap.clusters)))
    for region in sorted(set(snap.regions.values()) | set(snap.leaders)):
        r = region_iri(region)
        a(r, "Region")
        add(r, "name", ox.Literal(region))
        if region in snap.leaders:
            add(r, "leader", agent_iri(snap.leaders[region]))
    for agent, region in sorted(snap.regions.items()):
        node = agent_iri(agent)
        a(node, "Agent")
        add(node, "agentId", ox.Literal(agent.hex()))
        add(node, "inRegion", region_iri(region))
        if agent in snap.levels:
            add(node, "level", ox.Literal(snap.levels[agent]))
    for rank, cluster in enumerate(snap.clusters):
        c = ox.NamedNode(f"urn:knhk:cluster:{snap.node.hex()}:{quote(cluster.id, safe='')}")
        a(c, "Cluster")
        add(c, "observer", me)
        add(c, "clusterId", ox.Literal(cluster.id))
        add(c, "inRegion", region_iri(cluster.region))
        add(c, "rank", integer(rank))
        add(c, "size", integer(len(cluster.members)))
        if math.isfinite(cluster.rtt):
            add(c, "medianRtt", double(cluster.rtt))
        for member in cluster.members:
            add(c, "member", agent_iri(member))
    for link in snap.links:
        lk = ox.NamedNode(f"urn:knhk:link:{snap.node.hex()}:{link.peer.hex()}")
        a(lk, "Link")
        add(lk, "source", me)
        add(lk, "target", agent_iri(link.peer))
        if link.rtt > 0.0:
            add(lk, "rtt", double(link.rtt))
    return out


class TopologyStore:
    """The node's topology graph: on disk under its data folder (or in memory without one)."""

    def __init__(self, folder: Path | None = None, *, read_only: bool = False) -> None:
        self.path = folder / STORE_DIR if folder is not None else None
        try:
            if self.path is None:
                self._store = ox.Store()
            elif read_only:
                if not self.path.is_dir():
                    raise TopologyQueryError(f"{self.path}: no topology store (has the node rebalanced?)")
                self._store = ox.Store.read_only(str(self.path))
            else:
                self._store = ox.Store(str(self.path))
        except OSError as exc:
            raise TopologyQueryError(f"{self.path}: cannot open the topology store ({exc})") from None

    def write(self, snapshot: TopologySnapshot) -> None:
        """Replace the stored topology with this snapshot's (and flush it to disk)."""
        quads = snapshot_quads(snapshot)
        self._store.clear()
        self._store.extend(quads)
        self._store.flush()

    def __len__(self) -> int:
        return len(self._store)

    def turtle(self) -> str:
        return self.export("turtle")

    def export(self, fmt: str) -> str:
        """The graph as `turtle` (with the kt: prefix) or `ntriples`."""
        if fmt == "ntriples":
            data = self._store.dump(format=ox.RdfFormat.N_TRIPLES, from_graph=_G)
        else:
            data = self._store.dump(format=ox.RdfFormat.TURTLE, from_graph=_G, prefixes={"kt": NS})
        return data.decode() if data else ""

    def query(self, sparql: str) -> Answer:
        """Run a SPARQL query (the `kt:` and `rdf:` prefixes are predeclared)."""
        try:
            result = self._store.query(sparql, prefixes={"kt": NS})
        except (SyntaxError, ValueError, OSError) as exc:
            first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            raise TopologyQueryError(f"SPARQL: {first}") from None
        if isinstance(result, ox.QueryBoolean):
            return Answer(boolean=bool(result))
        if isinstance(result, ox.QueryTriples):
            graph = ox.serialize(list(result), format=ox.RdfFormat.TURTLE, prefixes={"kt": NS})
            return Answer(turtle=graph.decode() if graph else "")
        variables = tuple(v.value for v in result.variables)
        rows = tuple(tuple(_text(sol[v]) for v in variables) for sol in result)
        return Answer(variables=variables, rows=rows)


def _text(term: object) -> str | None:
    if term is None:
        return None
    return str(getattr(term, "value", term))


def parse_turtle(text: str) -> ox.Dataset:
    """A Turtle document as a dataset (for comparing graphs)."""
    return ox.Dataset(
        ox.Quad(t.subject, t.predicate, t.object, _G) for t in ox.parse(text, ox.RdfFormat.TURTLE)
    )
