"""The node's admin endpoint on loopback: health, status, peers, digest, put/get, entries, faults, stop.

JSON over HTTP/1.1, minimal on purpose (one request per connection, bodies up to 1 MiB): it serves `knhk-mesh
put/get/status`, `knhk-mesh up` and tests on the same machine, never the network.
"""

from __future__ import annotations

import asyncio
import ipaddress
import json
import logging
from typing import Any, Protocol
from urllib.parse import parse_qs, urlsplit

from knhk_mesh.core.engine import MeshEngine
from knhk_mesh.core.errors import PartitionedError
from knhk_mesh.core.messages import Address, Entry
from knhk_mesh.topology_rdf import TopologyQueryError, TopologyStore

log = logging.getLogger(__name__)
MAX_BODY = 1 << 20
MAX_KEY_CHARS = 256
MAX_VALUE_BYTES = 16 * 1024  # an entry must fit a 64 KiB frame with room for others beside it


class AdminTarget(Protocol):
    """What the endpoint serves (a MeshNode); kept abstract so the node imports the endpoint, not back."""

    @property
    def node_id(self) -> str: ...

    @property
    def engine(self) -> MeshEngine | None: ...

    def put(self, key: str, value: bytes) -> Entry: ...

    def status(self) -> dict[str, object]: ...

    def request_stop(self) -> None: ...

    def arrival(self, agent: bytes, version: int) -> float | None: ...

    @property
    def topology_store(self) -> TopologyStore | None: ...

    def set_faults(self, drop: frozenset[Address]) -> None: ...

    def peers(self) -> list[dict[str, object]]: ...


def _address(text: object) -> Address | None:
    if not isinstance(text, str):
        return None
    host, _, port = text.rpartition(":")
    host = host.strip("[]")
    if not host or not port.isdigit() or not 0 < int(port) < 65536:
        return None
    return (host, int(port))


class AdminServer:
    def __init__(self, node: AdminTarget) -> None:
        self.node = node
        self._server: asyncio.Server | None = None

    async def start(self, address: Address) -> Address:
        host, port = address
        if not ipaddress.ip_address(host).is_loopback:
            raise ValueError(f"admin endpoint {host}:{port}: only a loopback address is allowed")
        self._server = await asyncio.start_server(self._handle, host, port)
        sock = self._server.sockets[0].getsockname()
        return (host, int(sock[1]))

    async def close(self) -> None:
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            status, doc = await asyncio.wait_for(self._request(reader), timeout=10)
        except (TimeoutError, asyncio.IncompleteReadError, ConnectionError, ValueError) as exc:
            status, doc = 400, {"error": f"bad request: {exc}"}
        body = json.dumps(doc).encode()
        head = (
            f"HTTP/1.1 {status} {'OK' if status == 200 else 'Error'}\r\nContent-Type: application/json\r\n"
            f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n"
        )
        try:
            writer.write(head.encode() + body)
            await writer.drain()
            writer.close()
        except ConnectionError:
            pass

    async def _request(self, reader: asyncio.StreamReader) -> tuple[int, Any]:
        line = (await reader.readline()).decode("latin-1").strip()
        parts = line.split()
        if len(parts) != 3:
            return 400, {"error": f"bad request line {line!r}"}
        method, target = parts[0], parts[1]
        length = 0
        while True:
            header = (await reader.readline()).decode("latin-1").strip()
            if not header:
                break
            name, _, value = header.partition(":")
            if name.strip().lower() == "content-length":
                length = int(value.strip())
        if length > MAX_BODY:
            return 413, {"error": f"body of {length} bytes exceeds {MAX_BODY}"}
        body = await reader.readexactly(length) if length else b""
        url = urlsplit(target)
        query = {k: v[-1] for k, v in parse_qs(url.query).items()}
        return self._route(method, url.path, query, body)

    def _route(self, method: str, path: str, query: dict[str, str], body: bytes) -> tuple[int, Any]:
        node = self.node
        engine = node.engine
        if engine is None:
            return 503, {"error": "node is starting"}
        if method == "GET" and path == "/health":
            return 200, {"status": "ok", "node_id": node.node_id, "round": engine.round_no}
        if method == "GET" and path == "/status":
            return 200, node.status()
        if method == "GET" and path == "/peers":
            return 200, {"peers": node.peers()}
        if method == "GET" and path == "/digest":
            return 200, {"digest": engine.state.digest.hex(), "entries": len(engine.state)}
        if method == "GET" and path == "/entries":
            rows = [[e.agent.hex(), e.key, e.version] for e in engine.state.entries()]
            return 200, {"entries": sorted(rows)}
        if method == "GET" and path == "/get":
            key = query.get("key")
            if not key:
                return 400, {"error": "missing ?key="}
            agent_hex = query.get("agent", node.node_id)
            try:
                agent = bytes.fromhex(agent_hex)
            except ValueError:
                return 400, {"error": f"agent {agent_hex!r} is not hex"}
            entry = engine.state.get(agent, key)
            if entry is None:
                return 404, {"error": f"no entry {key!r} of agent {agent_hex}"}
            return 200, {
                "agent": agent_hex,
                "key": key,
                "version": entry.version,
                "value": entry.value.decode("utf-8", "replace"),
            }
        if method == "GET" and path == "/arrival":
            try:
                agent, version = bytes.fromhex(query.get("agent", "")), int(query.get("version", ""))
            except ValueError:
                return 400, {"error": "expected ?agent=HEX&version=N"}
            at = node.arrival(agent, version)
            if at is None:
                return 404, {"error": f"version {version} of {agent.hex()} has not arrived"}
            return 200, {"agent": agent.hex(), "version": version, "monotonic": at}
        if method == "POST" and path == "/put":
            try:
                doc = json.loads(body or b"{}")
            except json.JSONDecodeError as exc:
                return 400, {"error": f"body is not JSON ({exc.msg})"}
            key, value = (
                doc.get("key") if isinstance(doc, dict) else None,
                doc.get("value") if isinstance(doc, dict) else None,
            )
            if not isinstance(key, str) or not key or len(key) > MAX_KEY_CHARS or not isinstance(value, str):
                return 400, {"error": f'expected {{"key": str (1..{MAX_KEY_CHARS} chars), "value": str}}'}
            if len(value.encode()) > MAX_VALUE_BYTES:
                return 413, {"error": f"value of {len(value.encode())} bytes exceeds {MAX_VALUE_BYTES}"}
            try:
                entry = node.put(key, value.encode())
            except PartitionedError as exc:  # read-only until the partition heals: refused, not failed
                return 503, {"error": str(exc)}
            except Exception as exc:  # the store failed: the caller must know the write is not accepted
                log.error("node %s: put %r failed: %s", node.node_id, key, exc)
                return 500, {"error": f"write not durable: {exc}"}
            return 200, {"agent": node.node_id, "key": key, "version": entry.version, "durable": True}
        if method == "POST" and path == "/faults":
            return self._faults(body)
        if path in ("/topology", "/topology/sparql"):
            return self._topology(method, path, query, body)
        if method == "POST" and path == "/stop":
            node.request_stop()
            return 200, {"stopping": True}
        return 404, {"error": f"no route {method} {path}"}

    def _topology(self, method: str, path: str, query: dict[str, str], body: bytes) -> tuple[int, Any]:
        """The node's topology graph (docs/topology-rdf.md): a Turtle/N-Triples export, or a SPARQL query."""
        store = self.node.topology_store
        if store is None:
            return 503, {"error": "the topology store is closed"}
        if method == "GET" and path == "/topology":
            fmt = query.get("format", "turtle")
            if fmt not in ("turtle", "ntriples"):
                return 400, {"error": f"format {fmt!r}: expected turtle or ntriples"}
            return 200, {"format": fmt, "data": store.export(fmt), "triples": len(store)}
        if method == "POST" and path == "/topology/sparql":
            try:
                doc = json.loads(body or b"{}")
            except json.JSONDecodeError as exc:
                return 400, {"error": f"body is not JSON ({exc.msg})"}
            sparql = doc.get("query") if isinstance(doc, dict) else None
            if not isinstance(sparql, str) or not sparql.strip():
                return 400, {"error": 'expected {"query": "SPARQL text"}'}
            try:
                return 200, store.query(sparql).as_json()
            except TopologyQueryError as exc:
                return 400, {"error": str(exc), "sparql": True}
        return 405, {"error": f"{method} {path}: use GET /topology or POST /topology/sparql"}

    def _faults(self, body: bytes) -> tuple[int, Any]:
        """`{"drop": ["HOST:PORT", ...]}`: frames to and from those peers are dropped; `[]` heals."""
        try:
            doc = json.loads(body or b"{}")
        except json.JSONDecodeError as exc:
            return 400, {"error": f"body is not JSON ({exc.msg})"}
        drop = doc.get("drop") if isinstance(doc, dict) else None
        if not isinstance(drop, list):
            return 400, {"error": 'expected {"drop": ["HOST:PORT", ...]}'}
        addresses = [_address(a) for a in drop]
        bad = [a for a, parsed in zip(drop, addresses, strict=True) if parsed is None]
        if bad:
            return 400, {"error": f"{bad[0]!r} is not HOST:PORT"}
        self.node.set_faults(frozenset(a for a in addresses if a is not None))
        return 200, {"drop": sorted(str(a) for a in drop)}
