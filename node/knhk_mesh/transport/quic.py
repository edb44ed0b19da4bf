"""The QUIC shell: moves the engine's frames between processes over aioquic (TLS 1.3), mutually authenticated.

The engine stays sans-I/O; this module only owns sockets. One QUIC connection per peer address is
reused in both directions. aioquic verifies the server against the mesh CA; the client is
authenticated inside the encrypted connection (aioquic has no supported client-certificate
check and no TLS exporter): the server sends a fresh nonce, the client answers with its CA-signed
node certificate and an ed25519 signature, by its identity key, over the nonce, the fingerprint of
the server certificate it saw and the listen address it claims. Nothing else is accepted before.

Records on the connection's one bidirectional stream: `u32 length || u8 kind || payload`.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import socket
import struct
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from enum import IntEnum
from typing import Any

import msgpack
from aioquic.asyncio.protocol import QuicConnectionProtocol
from aioquic.asyncio.server import QuicServer, serve
from aioquic.quic.configuration import QuicConfiguration
from aioquic.quic.connection import QuicConnection
from aioquic.quic.events import ConnectionTerminated, HandshakeCompleted, QuicEvent, StreamDataReceived
from cryptography import x509
from cryptography.hazmat.primitives import serialization

from knhk_mesh.core.messages import Address
from knhk_mesh.core.security import verify
from knhk_mesh.pki import (
    MESH_SERVER_NAME,
    CertificateRefused,
    Credentials,
    Refusal,
    fingerprint,
    public_key_bytes,
    random_nonce,
)

log = logging.getLogger(__name__)

ALPN = "knhk-mesh/1"
AUTH_DOMAIN = b"knhk-mesh/quic-auth/1\x00"
_HEADER = struct.Struct("!IB")
_MAX_HANDSHAKE_RECORD = 16 * 1024
UDP_RECEIVE_BUFFER = 4 << 20  # the kernel caps it at net.core.rmem_max


class Kind(IntEnum):
    HELLO = 1  # client -> server: [protocol version]
    CHALLENGE = 2  # server -> client: [nonce]
    PROOF = 3  # client -> server: [cert_der, host, port, nonce, server_fingerprint, signature]
    ACCEPT = 4  # server -> client: []
    REFUSE = 5  # server -> client: [reason, detail]
    FRAME = 6  # either way, after ACCEPT: one engine frame


class HandshakeReason:
    """Refusal reasons besides the certificate's (pki.Refusal); values are schema rejection reasons."""

    IMPERSONATION = "impersonation"
    REPLAY = "replay"
    MALFORMED = "malformed"
    RETIRED_KEY = "retired_key"


@dataclass(frozen=True)
class TransportLimits:
    max_frame_bytes: int = 65_536  # the engine's frame limit; a larger record closes the connection
    queue_limit: int = 1024  # frames waiting per peer; beyond it the oldest is dropped (counted)
    stream_buffer_bytes: int = 1 << 20  # stop writing into QUIC while this much is unsent (backpressure)
    idle_timeout: float = 30.0  # QUIC idle timeout: a silent connection is closed
    handshake_timeout: float = 15.0  # a starved peer (a loaded machine) may take seconds per round trip
    backoff_initial: float = 0.2  # reconnect backoff doubles per failure up to backoff_max (jittered)
    backoff_max: float = 10.0


def proof_message(nonce: bytes, server_fp: bytes, host: str, port: int) -> bytes:
    address: bytes = msgpack.packb([host, port], use_bin_type=True)
    return AUTH_DOMAIN + nonce + server_fp + address


def record(kind: Kind, payload: bytes) -> bytes:
    return _HEADER.pack(len(payload) + 1, kind) + payload


class ConnectionClosed(Exception):
    """A record broke the protocol; the connection is closed with this reason."""


@dataclass(frozen=True)
class Refused:
    """A handshake the server refused (or a client's view of being refused)."""

    reason: str
    detail: str
    address: Address  # the claimed listen address, else the UDP source
    peer_key: bytes | None  # the identity key the certificate named, when it parsed


@dataclass
class Stats:
    frames_sent: int = 0
    frames_received: int = 0
    dropped_queue_full: int = 0
    dropped_oversized: int = 0
    connects: int = 0
    connect_failures: int = 0
    refused: int = 0
    accepted: int = 0
    closed_revoked: int = 0
    closed_retired: int = 0  # connections under a retired key whose certificate stopped being accepted
    dropped_fault: int = 0  # frames dropped to or from a peer listed by fault injection


def _key_or_none(cert: Any) -> bytes | None:
    try:
        return public_key_bytes(cert)
    except CertificateRefused:
        return None


def _key_or_none_der(cert_der: bytes) -> bytes | None:
    try:
        return _key_or_none(x509.load_der_x509_certificate(cert_der))
    except ValueError:
        return None


def _retired_detail(key: bytes) -> str:
    return f"key {key.hex()[:16]}… was retired by its node's rotation (key epochs only move forward)"


def _widen_receive_buffer(transport: Any) -> None:
    """A busy node drops datagrams when the kernel's default UDP buffer fills; a lost first Initial
    makes aioquic's server refuse the client's next one ("no CRYPTO frame") and the handshake fail."""
    sock = transport.get_extra_info("socket") if transport is not None else None
    if sock is not None:
        with contextlib.suppress(OSError):
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, UDP_RECEIVE_BUFFER)


def _retrieve(future: asyncio.Future[None]) -> None:
    if not future.cancelled():
        future.exception()


class _Conn(QuicConnectionProtocol):
    """One QUIC connection and its mesh handshake state, either side."""

    def __init__(self, quic: QuicConnection, *, transport: QuicTransport, outbound: Address | None) -> None:
        super().__init__(quic)
        self.mesh = transport
        self.outbound = outbound  # the address we dialled (client side)
        self.peer_address: Address | None = outbound  # whom frames on this connection come from
        self.peer_key: bytes | None = None
        self.peer_cert_der: bytes | None = None
        self.authenticated = False
        self.closed = False
        self.stream_id: int | None = None
        self._buf = bytearray()
        self._nonce: bytes | None = None
        self.ready: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self.ready.add_done_callback(_retrieve)  # a failure nobody awaits any more is not an error
        self.last_activity = time.monotonic()

    # --- aioquic events ---------------------------------------------------------------------------

    def quic_event_received(self, event: QuicEvent) -> None:
        if isinstance(event, StreamDataReceived):
            if self.stream_id is None:
                self.stream_id = event.stream_id
            if event.stream_id != self.stream_id:
                self._close("a second stream")
                return
            self._buf += event.data
            self.last_activity = time.monotonic()
            try:
                self._drain_records()
            except ConnectionClosed as exc:
                self._close(str(exc))
        elif isinstance(event, HandshakeCompleted) and self.outbound is not None:
            self._client_hello()
        elif isinstance(event, ConnectionTerminated):
            self._terminated(event.reason_phrase or f"error {event.error_code}")

    def connection_lost(self, exc: Exception | None) -> None:
        super().connection_lost(exc)
        self._terminated("connection lost")

    # --- records ----------------------------------------------------------------------------------

    def _drain_records(self) -> None:
        limit = self.mesh.limits.max_frame_bytes + 1 if self.authenticated else _MAX_HANDSHAKE_RECORD
        while len(self._buf) >= _HEADER.size:
            length, kind = _HEADER.unpack_from(self._buf)
            if length < 1 or length > limit:
                if self.authenticated:
                    self.mesh.stats.dropped_oversized += 1
                raise ConnectionClosed(f"record of {length} bytes exceeds {limit}")
            if len(self._buf) < 4 + length:
                return
            payload = bytes(self._buf[_HEADER.size : 4 + length])
            del self._buf[: 4 + length]
            self._on_record(kind, payload)
            if self.closed:
                return

    def _on_record(self, kind: int, payload: bytes) -> None:
        if kind == Kind.FRAME:
            if not self.authenticated or self.peer_address is None:
                raise ConnectionClosed("frame before the mesh handshake")
            if self.peer_address in self.mesh.dropped:
                self.mesh.stats.dropped_fault += 1
                return
            self.mesh.stats.frames_received += 1
            self.mesh.on_frame(self.peer_address, payload)
            return
        try:
            body = msgpack.unpackb(payload, raw=False)
        except Exception as exc:  # msgpack raises several unrelated types on garbage
            raise ConnectionClosed(f"undecodable handshake record ({type(exc).__name__})") from None
        if not isinstance(body, list):
            raise ConnectionClosed("handshake record is not a list")
        if self.outbound is None:
            self._server_record(kind, body)
        else:
            self._client_record(kind, body)

    def write_record(self, kind: Kind, payload: bytes) -> None:
        if self.closed:
            return
        if self.stream_id is None:
            self.stream_id = self._quic.get_next_available_stream_id()
        self._quic.send_stream_data(self.stream_id, record(kind, payload))

    def unsent_bytes(self) -> int:
        """Bytes written into QUIC but not sent yet (aioquic keeps no public counter)."""
        if self.stream_id is None:
            return 0
        stream = getattr(self._quic, "_streams", {}).get(self.stream_id)
        buffer = getattr(getattr(stream, "sender", None), "_buffer", b"")
        return len(buffer)

    # --- server side ------------------------------------------------------------------------------

    def _server_record(self, kind: int, body: list[object]) -> None:
        if self.authenticated:
            raise ConnectionClosed(f"handshake record {kind} after the handshake")
        if kind == Kind.HELLO and self._nonce is None:
            self._nonce = random_nonce()
            self.write_record(Kind.CHALLENGE, msgpack.packb([self._nonce], use_bin_type=True))
            self.transmit()
        elif kind == Kind.PROOF and self._nonce is not None:
            self._check_proof(body)
        else:
            raise ConnectionClosed(f"unexpected handshake record {kind}")

    def _check_proof(self, body: list[object]) -> None:
        mesh = self.mesh
        source = self._source_address()
        if len(body) != 6 or not all(isinstance(b, bytes) for b in (body[0], body[3], body[4], body[5])):
            self._refuse(HandshakeReason.MALFORMED, "proof has the wrong shape", source, None)
            return
        cert_der, host, port, nonce, server_fp, signature = body
        assert isinstance(cert_der, bytes) and isinstance(nonce, bytes)
        assert isinstance(server_fp, bytes) and isinstance(signature, bytes)
        if not isinstance(host, str) or not isinstance(port, int) or not 0 < port < 65536:
            self._refuse(HandshakeReason.MALFORMED, "bad listen address", source, None)
            return
        claimed: Address = (host, port)
        try:
            key = mesh.credentials.verify_peer(cert_der)
        except CertificateRefused as exc:
            # the key a CA-signed but revoked or expired certificate names (None for a foreign CA's)
            named = _key_or_none_der(cert_der) if exc.reason is not Refusal.UNTRUSTED else None
            self._refuse(exc.reason.value, exc.detail, claimed, named)
            return
        if nonce != self._nonce or server_fp != fingerprint(mesh.credentials.node_cert_der):
            self._refuse(HandshakeReason.REPLAY, "proof answers another challenge", claimed, key)
            return
        if not verify(key, proof_message(nonce, server_fp, host, port), signature):
            self._refuse(
                HandshakeReason.IMPERSONATION, "proof not signed by the certificate's key", claimed, key
            )
            return
        if mesh.retired(key):
            self._refuse(HandshakeReason.RETIRED_KEY, _retired_detail(key), claimed, key)
            return
        holder = mesh.holder_of(claimed)
        if holder is not None and holder != key and not mesh.successor(holder, key):
            self._refuse(
                HandshakeReason.IMPERSONATION, f"{host}:{port} belongs to another node", claimed, key
            )
            return
        self.peer_address, self.peer_key, self.peer_cert_der = claimed, key, cert_der
        self.authenticated = True
        self.write_record(Kind.ACCEPT, msgpack.packb([], use_bin_type=True))
        mesh.stats.accepted += 1
        mesh.attach(self)
        self.transmit()

    def _source_address(self) -> Address:
        network = getattr(self._quic, "_network_paths", None)
        if network:
            addr = network[0].addr
            return (str(addr[0]), int(addr[1]))
        return ("", 0)

    def _refuse(self, reason: str, detail: str, address: Address, key: bytes | None) -> None:
        self.mesh.stats.refused += 1
        self.mesh.on_refused(Refused(reason, detail, address, key))
        self.write_record(Kind.REFUSE, msgpack.packb([reason, detail], use_bin_type=True))
        self._close(f"refused: {reason}")

    # --- client side ------------------------------------------------------------------------------

    def _client_hello(self) -> None:
        mesh = self.mesh
        tls = getattr(self._quic, "tls", None)
        cert = getattr(tls, "_peer_certificate", None)
        if cert is None:
            self._fail("server presented no certificate")
            return
        self.peer_cert_der = cert.public_bytes(serialization.Encoding.DER)
        try:
            self.peer_key = mesh.credentials.verify_peer(
                self.peer_cert_der
            )  # adds the CRL to aioquic's check
        except CertificateRefused as exc:
            assert self.outbound is not None
            mesh.on_refused(Refused(exc.reason.value, exc.detail, self.outbound, _key_or_none(cert)))
            self._fail(f"server certificate refused: {exc}")
            return
        if mesh.retired(self.peer_key):
            assert self.outbound is not None
            detail = _retired_detail(self.peer_key)
            mesh.on_refused(Refused(HandshakeReason.RETIRED_KEY, detail, self.outbound, self.peer_key))
            self._fail(f"server certificate refused: {detail}")
            return
        self.write_record(Kind.HELLO, msgpack.packb([1], use_bin_type=True))
        self.transmit()

    def _client_record(self, kind: int, body: list[object]) -> None:
        mesh = self.mesh
        if (
            kind == Kind.CHALLENGE
            and not self.authenticated
            and len(body) == 1
            and isinstance(body[0], bytes)
        ):
            assert self.peer_cert_der is not None
            nonce, server_fp = body[0], fingerprint(self.peer_cert_der)
            host, port = mesh.listen_address
            signature = mesh.credentials.identity.sign(proof_message(nonce, server_fp, host, port))
            proof = [mesh.credentials.node_cert_der, host, port, nonce, server_fp, signature]
            self.write_record(Kind.PROOF, msgpack.packb(proof, use_bin_type=True))
            self.transmit()
        elif kind == Kind.ACCEPT and not self.authenticated:
            self.authenticated = True
            mesh.attach(self)
            if not self.ready.done():
                self.ready.set_result(None)
        elif kind == Kind.REFUSE:
            detail = " ".join(str(b) for b in body)
            self._fail(f"refused by the server: {detail}")
        else:
            raise ConnectionClosed(f"unexpected handshake record {kind}")

    def _fail(self, reason: str) -> None:
        if not self.ready.done():
            self.ready.set_exception(ConnectionError(reason))
        self._close(reason)

    # --- closing ----------------------------------------------------------------------------------

    def _close(self, reason: str) -> None:
        if self.closed:
            return
        log.debug("closing connection to %s: %s", self.peer_address, reason)
        try:
            self._quic.close(error_code=0x100, reason_phrase=reason[:200])
            self.transmit()
        finally:
            self._terminated(reason)

    def _terminated(self, reason: str) -> None:
        if self.closed:
            return
        self.closed = True
        if not self.ready.done():
            self.ready.set_exception(ConnectionError(reason))
        self.mesh.detach(self)
        if self.outbound is not None and self._transport is not None:
            self._transport.close()

    def close_now(self, reason: str) -> None:
        self._close(reason)


@dataclass
class _Peer:
    """Everything kept for one peer address: its send queue, its connection, its reconnect backoff."""

    queue: deque[bytes] = field(default_factory=deque)
    conn: _Conn | None = None
    connecting: bool = False
    failures: int = 0
    retry_at: float = 0.0


class QuicTransport:
    """Sends and receives engine frames over QUIC; calls `on_frame(address, data)` for each frame heard."""

    def __init__(
        self,
        credentials: Credentials,
        listen: Address,
        *,
        on_frame: Callable[[Address, bytes], None],
        on_refused: Callable[[Refused], None] = lambda r: None,
        on_queue: Callable[[int], None] = lambda delta: None,
        successor: Callable[[bytes, bytes], bool] = lambda old, new: False,
        retired: Callable[[bytes], bool] = lambda key: False,
        limits: TransportLimits | None = None,
        rng: random.Random | None = None,
    ) -> None:
        self.credentials = credentials
        self.listen_address = listen
        self.on_frame = on_frame
        self.on_refused = on_refused
        self.on_queue = on_queue
        # (old key, new key) -> True when the new key is a rotation of the same member: it may take
        # over the address the old key's connection holds (the mesh knows key chains, TLS does not)
        self.successor = successor
        # key -> True when its member has rotated past it: the revocation of such a key's certificate
        # is how a rotation ends, so it closes that key's connections without refusing the member;
        # a new handshake under such a key is refused (retired_key): key epochs only move forward
        self.retired = retired
        self.limits = limits or TransportLimits()
        self.rng = rng or random.Random()
        self.stats = Stats()
        self._peers: dict[Address, _Peer] = {}
        self._server: QuicServer | None = None
        self._server_config: QuicConfiguration | None = None
        self._inbound: set[_Conn] = set()
        self._tasks: set[asyncio.Task[None]] = set()
        self._closing = False
        # fault injection (tests, drills): every frame to or from these peer addresses is dropped, as a
        # firewall DROP rule would, so a mesh of processes can be split and healed without root
        self.dropped: frozenset[Address] = frozenset()

    # --- lifecycle --------------------------------------------------------------------------------

    async def start(self) -> Address:
        """Listen; returns the bound address (port 0 picks a free one)."""
        config = QuicConfiguration(
            is_client=False,
            alpn_protocols=[ALPN],
            idle_timeout=self.limits.idle_timeout,
            max_datagram_frame_size=None,
        )
        self._apply_credentials(config)
        self._server_config = config
        host, port = self.listen_address
        self._server = await serve(
            host,
            port,
            configuration=config,
            create_protocol=lambda quic, **kw: _Conn(quic, transport=self, outbound=None),
        )
        _widen_receive_buffer(self._server._transport)
        sock = self._server._transport.get_extra_info("sockname")  # type: ignore[union-attr]
        self.listen_address = (host, int(sock[1]))
        return self.listen_address

    def _apply_credentials(self, config: QuicConfiguration) -> None:
        config.certificate = self.credentials.node_cert
        config.private_key = self.credentials.node_key

    def credentials_reloaded(self) -> None:
        """New connections use the new certificate; connections of peers now refused are closed."""
        if self._server_config is not None:
            self._apply_credentials(self._server_config)
        for conn in self._connections():
            if conn.peer_cert_der is None:
                continue
            try:
                self.credentials.verify_peer(conn.peer_cert_der)
            except CertificateRefused as exc:
                assert conn.peer_address is not None
                if conn.peer_key is not None and self.retired(conn.peer_key):
                    # made before the peer's rotation, which we have accepted: the peer is still
                    # trusted under its new key, and its next frames open a connection under it
                    self.stats.closed_retired += 1
                    conn.close_now(f"certificate of a retired key no longer accepted: {exc}")
                    continue
                self.stats.closed_revoked += 1
                self.on_refused(Refused(exc.reason.value, exc.detail, conn.peer_address, conn.peer_key))
                conn.close_now(f"certificate no longer accepted: {exc}")

    def reconnect_all(self, reason: str) -> None:
        """Close every connection; queued and later frames open new ones (under the current credentials)."""
        for conn in list(self._connections()):
            conn.close_now(reason)

    async def close(self) -> None:
        """Close every connection and the listening socket (queued frames are dropped)."""
        self._closing = True
        for task in list(self._tasks):
            task.cancel()
        for conn in list(self._connections()):
            conn.close_now("shutting down")
        for peer in self._peers.values():
            if peer.queue:
                self.on_queue(-len(peer.queue))
                peer.queue.clear()
        if self._server is not None:
            self._server.close()
        await asyncio.sleep(0)

    def _connections(self) -> list[_Conn]:
        out = [p.conn for p in self._peers.values() if p.conn is not None]
        return out + [c for c in self._inbound if c not in out]

    # --- routing ----------------------------------------------------------------------------------

    def holder_of(self, address: Address) -> bytes | None:
        """The identity key of a live authenticated connection at `address`, if any."""
        peer = self._peers.get(address)
        if peer is not None and peer.conn is not None and not peer.conn.closed and peer.conn.authenticated:
            return peer.conn.peer_key
        return None

    def attach(self, conn: _Conn) -> None:
        """An authenticated connection becomes the route to its peer's address."""
        assert conn.peer_address is not None
        if conn.outbound is None:
            self._inbound.add(conn)
        peer = self._peers.setdefault(conn.peer_address, _Peer())
        # the newest authenticated connection wins: after a peer restarts at the same address, the
        # old connection is dead (its packets reach a process that forgot it) until its idle timeout
        peer.conn = conn
        peer.failures = 0
        self._flush(conn.peer_address, peer)

    def detach(self, conn: _Conn) -> None:
        self._inbound.discard(conn)
        if conn.peer_address is None:
            return
        peer = self._peers.get(conn.peer_address)
        if peer is not None and peer.conn is conn:
            peer.conn = None
            # another live connection to the same address can take over
            for other in self._inbound:
                if other.peer_address == conn.peer_address and other.authenticated and not other.closed:
                    peer.conn = other
                    break

    def drop_traffic(self, addresses: frozenset[Address]) -> None:
        """Fault injection: from now on drop every frame to or from `addresses` (empty: heal)."""
        self.dropped = addresses
        for address in addresses:
            peer = self._peers.get(address)
            if peer is not None and peer.queue:
                self.stats.dropped_fault += len(peer.queue)
                self.on_queue(-len(peer.queue))
                peer.queue.clear()

    def queued(self) -> int:
        return sum(len(p.queue) for p in self._peers.values())

    def connected_peers(self) -> int:
        return sum(1 for p in self._peers.values() if p.conn is not None and p.conn.authenticated)

    # --- sending ----------------------------------------------------------------------------------

    def send(self, address: Address, data: bytes) -> None:
        """Queue one frame for `address` (connecting if needed); never blocks."""
        if self._closing:
            return
        if address in self.dropped:
            self.stats.dropped_fault += 1
            return
        if len(data) > self.limits.max_frame_bytes:
            self.stats.dropped_oversized += 1
            return
        peer = self._peers.setdefault(address, _Peer())
        if len(peer.queue) >= self.limits.queue_limit:
            peer.queue.popleft()
            self.stats.dropped_queue_full += 1
            self.on_queue(-1)
        peer.queue.append(data)
        self.on_queue(1)
        if peer.conn is not None and peer.conn.authenticated and not peer.conn.closed:
            self._flush(address, peer)
        elif not peer.connecting and time.monotonic() >= peer.retry_at:
            self._retry(address)

    def flush_all(self) -> None:
        """Write queued frames into connections that drained (called after each batch of events)."""
        for address, peer in self._peers.items():
            if peer.queue and peer.conn is not None and peer.conn.authenticated:
                self._flush(address, peer)

    def _flush(self, address: Address, peer: _Peer) -> None:
        conn = peer.conn
        if conn is None or conn.closed:
            return
        sent = 0
        while peer.queue and conn.unsent_bytes() < self.limits.stream_buffer_bytes:
            conn.write_record(Kind.FRAME, peer.queue.popleft())
            sent += 1
        if sent:
            self.stats.frames_sent += sent
            self.on_queue(-sent)
            conn.transmit()

    async def _connect(self, address: Address, peer: _Peer) -> None:
        loop = asyncio.get_running_loop()
        conn: _Conn | None = None
        try:
            config = QuicConfiguration(
                is_client=True,
                alpn_protocols=[ALPN],
                idle_timeout=self.limits.idle_timeout,
                server_name=MESH_SERVER_NAME,
                cadata=self.credentials.ca_pem,
            )
            quic = QuicConnection(configuration=config)
            _, conn = await loop.create_datagram_endpoint(
                lambda: _Conn(quic, transport=self, outbound=address),
                local_addr=(self.listen_address[0], 0),
            )
            assert conn is not None
            _widen_receive_buffer(conn._transport)
            self.stats.connects += 1
            conn.connect(address)
            await asyncio.wait_for(asyncio.shield(conn.ready), self.limits.handshake_timeout)
        except (OSError, ConnectionError, TimeoutError) as exc:
            self.stats.connect_failures += 1
            peer.failures += 1
            delay = min(self.limits.backoff_initial * 2 ** (peer.failures - 1), self.limits.backoff_max)
            peer.retry_at = time.monotonic() + delay * (0.5 + 0.5 * self.rng.random())
            log.debug("connect to %s:%d failed (%s); retry in %.2f s", *address, exc, delay)
            if conn is not None:
                conn.close_now(f"connect failed: {exc}")
            # frames for an unreachable peer wait (bounded) for the next attempt, which comes by itself:
            # a node whose only frame is its join to a seed would otherwise never try again
            if not self._closing:
                loop.call_later(max(0.0, peer.retry_at - time.monotonic()), self._retry, address)
        finally:
            peer.connecting = False

    def _retry(self, address: Address) -> None:
        peer = self._peers.get(address)
        if self._closing or peer is None or not peer.queue or peer.connecting:
            return
        if peer.conn is not None and not peer.conn.closed:
            return
        peer.connecting = True
        task = asyncio.get_running_loop().create_task(self._connect(address, peer))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
