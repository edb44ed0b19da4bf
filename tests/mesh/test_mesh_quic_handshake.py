"""The QUIC shell over real loopback sockets: frames flow only after the mesh handshake, and every
kind of bad client (foreign CA, expired or revoked certificate, wrong identity key, replayed proof)
is refused, with the refusal emitted as schema telemetry."""

from __future__ import annotations

import asyncio
import datetime as dt
import socket
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ed25519
from cryptography.x509.oid import NameOID

from knhk_mesh import pki
from knhk_mesh.core.messages import agent_id_of
from knhk_mesh.core.security import Identity
from knhk_mesh.transport import quic
from knhk_mesh.transport.quic import QuicTransport, Refused, TransportLimits

LOOPBACK = ("127.0.0.1", 0)
HANDSHAKE_REFUSED = "knhk.mesh.handshake.refused"


def _creds(folder: Path, name: str, ca: Path | None = None) -> pki.Credentials:
    ca = ca or folder
    return pki.Credentials(
        pki.PkiPaths(ca / pki.CA_CERT, folder / f"{name}.pem", folder / f"{name}.key", ca / pki.CA_CRL)
    )


@pytest.fixture
def mesh_pki(tmp_path: Path) -> Path:
    folder = tmp_path / "pki"
    pki.init_ca(folder)
    for name in ("server", "alice", "bob"):
        pki.issue_node(folder, name, folder)
    return folder


class Rig:
    """A server transport and what it heard and refused."""

    def __init__(self, creds: pki.Credentials, on_refused: Callable[[Refused], None] | None = None) -> None:
        self.frames: list[tuple[tuple[str, int], bytes]] = []
        self.refused: list[Refused] = []

        def refused(r: Refused) -> None:
            self.refused.append(r)
            if on_refused is not None:
                on_refused(r)

        self.transport = QuicTransport(
            creds,
            LOOPBACK,
            on_frame=lambda a, d: self.frames.append((a, d)),
            on_refused=refused,
            limits=TransportLimits(handshake_timeout=3.0, backoff_initial=0.05),
        )


async def _until(check: Callable[[], bool], timeout: float = 5.0) -> bool:
    for _ in range(int(timeout / 0.02)):
        if check():
            return True
        await asyncio.sleep(0.02)
    return check()


def _run(body: Callable[[], Awaitable[None]]) -> None:
    asyncio.run(asyncio.wait_for(body(), timeout=30))


async def _client_sends(server: Rig, client_creds: pki.Credentials, payload: bytes) -> QuicTransport:
    client = QuicTransport(
        client_creds, LOOPBACK, on_frame=lambda a, d: None, limits=TransportLimits(handshake_timeout=3.0)
    )
    await client.start()
    client.send(server.transport.listen_address, payload)
    return client


def test_frames_flow_both_ways_over_one_authenticated_connection(mesh_pki: Path) -> None:
    async def body() -> None:
        server = Rig(_creds(mesh_pki, "server"))
        await server.transport.start()
        heard: list[tuple[tuple[str, int], bytes]] = []
        alice = QuicTransport(_creds(mesh_pki, "alice"), LOOPBACK, on_frame=lambda a, d: heard.append((a, d)))
        alice_address = await alice.start()
        for i in range(5):
            alice.send(server.transport.listen_address, f"frame {i}".encode())
        assert await _until(lambda: len(server.frames) == 5)
        # frames are attributed to alice's authenticated listen address, in order
        assert server.frames == [(alice_address, f"frame {i}".encode()) for i in range(5)]
        # the server answers over the same connection (no second handshake)
        server.transport.send(alice_address, b"answer")
        assert await _until(lambda: heard == [(server.transport.listen_address, b"answer")])
        assert server.transport.stats.accepted == 1 and server.transport.stats.connects == 0
        assert alice.stats.connects == 1 and server.refused == []
        await alice.close()
        await server.transport.close()

    _run(body)


def _refusal_case(
    mesh_pki: Path,
    telemetry: Any,
    client: pki.Credentials,
    expected: str,
    prepare: Callable[[], None] = lambda: None,
) -> Refused:
    node = telemetry.hub.for_node("00" * 8)
    out: list[Refused] = []

    async def body() -> None:
        server = Rig(
            _creds(mesh_pki, "server"),
            on_refused=lambda r: node.handshake_refused(
                r.reason, agent_id_of(r.peer_key) if r.peer_key else None, r.address
            ),
        )
        await server.transport.start()
        prepare()
        c = await _client_sends(server, client, b"must never be accepted")
        assert await _until(lambda: bool(server.refused))
        await asyncio.sleep(0.2)
        assert server.frames == []  # nothing before (or instead of) the handshake is accepted
        out.extend(server.refused)
        await c.close()
        await server.transport.close()

    _run(body)
    # The client reconnects with backoff, so on a slow machine it may be refused again before it
    # closes: every refusal must carry the expected reason and be emitted, however many there are.
    assert out and {r.reason for r in out} == {expected}
    events = telemetry.events(HANDSHAKE_REFUSED)
    assert len(events) >= len(out)
    assert {e.attributes["knhk.mesh.rejection.reason"] for e in events} == {expected}
    points = telemetry.points("knhk.mesh.messages.rejected")
    assert any(
        p.attributes["knhk.mesh.rejection.reason"] == expected and p.value == len(events) for p in points
    )
    return out[0]


def test_a_certificate_of_another_ca_is_refused(mesh_pki: Path, tmp_path: Path, telemetry: Any) -> None:
    rogue = tmp_path / "rogue"
    pki.init_ca(rogue)
    pki.issue_node(rogue, "mallory", rogue)
    # mallory trusts the real mesh CA (so she can reach the server) but holds a rogue certificate
    client = _creds(rogue, "mallory", ca=mesh_pki)
    refused = _refusal_case(mesh_pki, telemetry, client, "untrusted_certificate")
    assert refused.peer_key is None


def _forge_expired(mesh_pki: Path, name: str) -> None:
    ca_key = pki.load_private_key(mesh_pki / pki.CA_KEY)
    ca_cert = pki.load_certificate(mesh_pki / pki.CA_CERT)
    key = ed25519.Ed25519PrivateKey.generate()
    past = dt.datetime.now(dt.UTC) - dt.timedelta(days=3)
    cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)]))
        .issuer_name(ca_cert.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(past - dt.timedelta(days=1))
        .not_valid_after(past)
        .add_extension(x509.SubjectAlternativeName([x509.DNSName(pki.MESH_SERVER_NAME)]), critical=False)
        .sign(ca_key, None)
    )
    (mesh_pki / f"{name}.key").write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
    )
    (mesh_pki / f"{name}.pem").write_bytes(cert.public_bytes(serialization.Encoding.PEM))


def test_an_expired_certificate_is_refused(mesh_pki: Path, telemetry: Any) -> None:
    _forge_expired(mesh_pki, "old")
    creds = _creds(mesh_pki, "old")
    with pytest.raises(pki.PkiError, match="expired"):
        creds.check_own()  # a node refuses to start on it, too
    _refusal_case(mesh_pki, telemetry, creds, "expired_certificate")


def test_a_revoked_certificate_is_refused_and_its_open_connection_closed(
    mesh_pki: Path, telemetry: Any
) -> None:
    async def body() -> None:
        server_creds = _creds(mesh_pki, "server")
        server = Rig(server_creds)
        await server.transport.start()
        bob = await _client_sends(server, _creds(mesh_pki, "bob"), b"before revocation")
        assert await _until(lambda: len(server.frames) == 1)
        pki.revoke(mesh_pki, mesh_pki / "bob.pem")
        assert server_creds.reload_if_changed()  # what the node's reload loop does every second
        server.transport.credentials_reloaded()
        assert [r.reason for r in server.refused] == ["revoked_certificate"]
        assert server.transport.stats.closed_revoked == 1
        # bob hears the close, reconnects and is refused at the handshake
        assert await _until(lambda: bob._peers[server.transport.listen_address].conn is None)
        bob.send(server.transport.listen_address, b"after revocation")
        assert await _until(lambda: len(server.refused) == 2)
        assert server.refused[1].reason == "revoked_certificate"
        await asyncio.sleep(0.2)
        assert [d for _, d in server.frames] == [b"before revocation"]
        await bob.close()
        await server.transport.close()

    _run(body)


def test_a_proof_signed_by_another_key_is_refused(mesh_pki: Path, telemetry: Any) -> None:
    client = _creds(mesh_pki, "alice")
    client.identity = Identity.generate(__import__("random").Random(5))  # alice's certificate, not her key
    refused = _refusal_case(mesh_pki, telemetry, client, "impersonation")
    assert refused.peer_key == _creds(mesh_pki, "alice").identity.public_key


def test_a_replayed_handshake_is_refused(
    mesh_pki: Path, telemetry: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    captured: list[bytes] = []
    original_write = quic._Conn.write_record

    def capture(self: quic._Conn, kind: quic.Kind, payload: bytes) -> None:
        if kind == quic.Kind.PROOF:
            captured.append(payload)
        original_write(self, kind, payload)

    async def record_alice() -> None:
        server = Rig(_creds(mesh_pki, "server"))
        await server.transport.start()
        alice = await _client_sends(server, _creds(mesh_pki, "alice"), b"genuine")
        assert await _until(lambda: len(server.frames) == 1)
        await alice.close()
        await server.transport.close()

    monkeypatch.setattr(quic._Conn, "write_record", capture)
    _run(record_alice)
    assert len(captured) == 1

    def replay(self: quic._Conn, kind: quic.Kind, payload: bytes) -> None:
        original_write(self, kind, captured[0] if kind == quic.Kind.PROOF else payload)

    # bob holds a valid certificate of his own but sends alice's recorded proof
    monkeypatch.setattr(quic._Conn, "write_record", replay)
    refused = _refusal_case(mesh_pki, telemetry, _creds(mesh_pki, "bob"), "replay")
    assert refused.peer_key == _creds(mesh_pki, "alice").identity.public_key


def test_frames_before_the_handshake_close_the_connection(
    mesh_pki: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    original = quic._Conn._client_hello

    def eager(self: quic._Conn) -> None:
        self.write_record(quic.Kind.FRAME, b"too early")
        original(self)

    monkeypatch.setattr(quic._Conn, "_client_hello", eager)

    async def body() -> None:
        server = Rig(_creds(mesh_pki, "server"))
        await server.transport.start()
        c = await _client_sends(server, _creds(mesh_pki, "alice"), b"queued")
        await asyncio.sleep(1.0)
        assert server.frames == [] and server.transport.stats.accepted == 0
        assert c.stats.connect_failures >= 1
        await c.close()
        await server.transport.close()

    _run(body)


def test_an_oversized_record_closes_the_connection(mesh_pki: Path) -> None:
    async def body() -> None:
        server = Rig(_creds(mesh_pki, "server"))
        server.transport.limits = TransportLimits(max_frame_bytes=1000)
        await server.transport.start()
        alice = await _client_sends(server, _creds(mesh_pki, "alice"), b"small")
        assert await _until(lambda: len(server.frames) == 1)
        conn = alice._peers[server.transport.listen_address].conn
        assert conn is not None
        conn.write_record(quic.Kind.FRAME, b"x" * 5000)  # bypasses the sender's own limit
        conn.transmit()
        assert await _until(lambda: server.transport.stats.dropped_oversized == 1)
        assert await _until(lambda: conn.closed)
        assert len(server.frames) == 1
        await alice.close()
        await server.transport.close()

    _run(body)


def test_a_full_send_queue_drops_the_oldest_and_counts_it(mesh_pki: Path) -> None:
    async def body() -> None:
        sizes: list[int] = []
        t = QuicTransport(
            _creds(mesh_pki, "alice"),
            LOOPBACK,
            on_frame=lambda a, d: None,
            on_queue=sizes.append,
            limits=TransportLimits(queue_limit=3, handshake_timeout=0.5),
        )
        await t.start()
        for i in range(5):
            t.send(("127.0.0.1", 9), f"{i}".encode())  # nobody listens there: frames wait
        assert t.queued() == 3 and t.stats.dropped_queue_full == 2
        assert sum(sizes) == 3
        assert list(t._peers[("127.0.0.1", 9)].queue) == [b"2", b"3", b"4"]
        assert await _until(lambda: t.stats.connect_failures >= 1, timeout=5)
        await t.close()
        assert sum(sizes) == 0  # the queue gauge returns to zero

    _run(body)


def test_a_frame_for_a_peer_not_up_yet_is_delivered_once_it_is(mesh_pki: Path) -> None:
    """A node's first frame is often its join to a seed: a failed connect must be retried by itself."""

    async def body() -> None:
        probe = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
        probe.close()
        alice = QuicTransport(
            _creds(mesh_pki, "alice"),
            LOOPBACK,
            on_frame=lambda a, d: None,
            limits=TransportLimits(handshake_timeout=0.5, backoff_initial=0.1, backoff_max=0.5),
        )
        await alice.start()
        alice.send(("127.0.0.1", port), b"join")
        assert await _until(lambda: alice.stats.connect_failures >= 1, timeout=10)
        server = Rig(_creds(mesh_pki, "server"))
        server.transport.listen_address = ("127.0.0.1", port)
        await server.transport.start()
        assert await _until(lambda: len(server.frames) == 1, timeout=15)  # no second send needed
        assert server.frames[0][1] == b"join"
        await alice.close()
        await server.transport.close()

    _run(body)
