"""Key rotation between node processes' shells, in one event loop: the moments of a rotation are
driven one by one (no reload timer, no reconnect timer), so each race of the cluster test is
reproduced deterministically.

The race of issue 11: a peer has accepted a node's rotation, but a connection made under the node's
OLD certificate is still open when the CRL revoking that old certificate reaches the peer. The old
certificate's key is retired, not the member: the connection is closed without a refusal, the member
keeps its place and reputation, and gossip goes on over connections made under the new certificate.
And key epochs only move forward: an old key is retired, never taken back (by the node itself, in a
record's chain, or at a handshake).
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest
from nacl.signing import SigningKey

from knhk_mesh import node as node_module
from knhk_mesh import pki
from knhk_mesh.core.messages import Rotation, rotation_signed_bytes
from knhk_mesh.core.security import Identity, verify_record
from knhk_mesh.node import MeshNode, TransportObserver
from knhk_mesh.node_config import NodeConfig
from knhk_mesh.transport.quic import QuicTransport

LOOPBACK = ("127.0.0.1", 0)


def _config(folder: Path, name: str, seeds: tuple[tuple[str, int], ...] = ()) -> NodeConfig:
    paths = pki.PkiPaths(
        folder / pki.CA_CERT, folder / f"{name}.pem", folder / f"{name}.key", folder / pki.CA_CRL
    )
    return NodeConfig(
        pki=paths,
        listen=LOOPBACK,
        data_dir=folder.parent / f"{name}.data",
        seeds=seeds,
        fanout=2,
        round_interval=0.05,
        stale_timeout=30.0,
        idle_timeout=30.0,
    )


async def _until(check: Callable[[], bool], timeout: float = 15.0) -> bool:
    for _ in range(int(timeout / 0.02)):  # bounded
        if check():
            return True
        await asyncio.sleep(0.02)
    return check()


def _run(body: Callable[[], Awaitable[None]]) -> None:
    asyncio.run(asyncio.wait_for(body(), timeout=60))


@pytest.fixture
def no_timers(monkeypatch: pytest.MonkeyPatch) -> None:
    """Credentials reload only when the test says so, and a rotated node never re-makes its
    connections by itself: the test decides the order of events."""
    monkeypatch.setattr(node_module, "RELOAD_EVERY_S", 3600.0)
    monkeypatch.setattr(node_module, "RECONNECT_AFTER_ROTATION_S", 3600.0)


Observer = Callable[[str], TransportObserver]


async def _pair(folder: Path, observer: Observer | None) -> tuple[MeshNode, MeshNode]:
    a = MeshNode(_config(folder, "a"), pki.Credentials(_config(folder, "a").pki))
    await a.start()
    assert a.transport is not None
    b_config = _config(folder, "b", seeds=(a.transport.listen_address,))
    b_creds = pki.Credentials(b_config.pki)
    b = MeshNode(b_config, b_creds, observer=observer(b_creds.identity.hex_id) if observer else None)
    await b.start()
    assert a.engine is not None and b.engine is not None
    ea, eb = a.engine, b.engine
    assert await _until(lambda: ea.agent_id in eb.registry and eb.agent_id in ea.registry)
    return a, b


def _rotate_files(folder: Path, name: str) -> Path:
    """What an operator does: a new key and a new CA-signed certificate dropped in place; the old
    certificate is kept aside (to be revoked once the rotation is done)."""
    old_cert = folder / f"{name}.old.pem"
    old_cert.write_bytes((folder / f"{name}.pem").read_bytes())
    new_key = folder / f"{name}.next.key"
    pki.issue_node(folder, name, folder, key_path=new_key)
    new_key.replace(folder / f"{name}.key")
    return old_cert


def _two_nodes(
    tmp_path: Path,
    scenario: Callable[[Path, MeshNode, MeshNode], Awaitable[None]],
    observer: Observer | None = None,
) -> None:
    """Nodes a and b of a fresh mesh CA, b joined through a (and reporting to `observer`), then
    `scenario(pki folder, a, b)`."""
    folder = tmp_path / "pki"
    pki.init_ca(folder)
    for name in ("a", "b"):
        pki.issue_node(folder, name, folder)

    async def body() -> None:
        a, b = await _pair(folder, observer)
        try:
            await scenario(folder, a, b)
        finally:
            for n in (a, b):
                await n.stop()

    _run(body)


def test_revoking_the_old_certificate_while_its_connection_is_open_keeps_the_rotated_member(
    tmp_path: Path, no_timers: None
) -> None:
    _two_nodes(tmp_path, _old_certificate_revoked_mid_rotation)


async def _old_certificate_revoked_mid_rotation(folder: Path, a: MeshNode, b: MeshNode) -> None:
    assert a.engine is not None and b.engine is not None and b.transport is not None
    ea, eb = a.engine, b.engine
    a.put("before-rotation", b"old key")
    assert await _until(lambda: eb.state.version_of(ea.agent_id) == 1)
    a_address = ea.address
    old_key = ea.identity.public_key
    reputation = eb.registry.reputation(ea.agent_id)

    old_cert = _rotate_files(folder, "a")
    assert a.reload_credentials()  # the new key is a rotation, announced over the open connections
    new_key = ea.identity.public_key
    assert new_key != old_key and ea.identity.epoch == 1
    assert await _until(lambda: eb.registry.public_key(ea.agent_id) == new_key)  # b accepted it
    # the race: the connection b holds to a is still the one made under a's old certificate
    assert b.transport.holder_of(a_address) == old_key

    pki.revoke(folder, old_cert)
    assert b.reload_credentials()  # b hears of the revocation before a re-made its connections
    assert a.reload_credentials()

    # the retired key's connection is closed, but nobody refused anyone: a keeps its standing
    assert not b.banned and dict(b.refusals) == {}
    assert b.transport.stats.closed_retired >= 1 and b.transport.stats.closed_revoked == 0
    assert eb.registry.public_key(ea.agent_id) == new_key
    assert eb.registry.address_of(ea.agent_id) == a_address
    assert eb.registry.reputation(ea.agent_id) == reputation

    # gossip goes on, over a connection made under the new certificate
    a.put("after-rotation", b"new key")
    assert await _until(lambda: eb.state.version_of(ea.agent_id) == 2)
    assert await _until(lambda: b.transport is not None and b.transport.holder_of(a_address) == new_key)
    assert not b.banned and dict(b.refusals) == {} and dict(a.refusals) == {}
    assert ea.agent_id in eb.registry and eb.agent_id in ea.registry


def test_a_rotation_heard_after_the_old_certificate_was_refused_lifts_the_ban_under_the_new_key(
    tmp_path: Path, no_timers: None, telemetry: Any
) -> None:
    """The other order: b refuses a's old certificate before it hears of a's rotation. Then a is a
    member the CA no longer vouches for (banned, forgotten); once its rotation arrives and its new key
    passes a handshake of its own, it is a member again. Revoking the new certificate bans it again."""
    _two_nodes(tmp_path, _late_rotation, observer=lambda node_id: telemetry.hub.for_node(node_id))
    events = telemetry.events("knhk.mesh.handshake.refused")
    # both refusals (the old certificate, then the new one under the rotated key) name agent a
    assert len({e.attributes["knhk.mesh.peer.id"] for e in events}) == 1
    assert {e.attributes["knhk.mesh.rejection.reason"] for e in events} == {"revoked_certificate"}


async def _late_rotation(folder: Path, a: MeshNode, b: MeshNode) -> None:
    assert a.engine is not None and b.engine is not None and b.transport is not None
    ea, eb = a.engine, b.engine
    a_address = ea.address
    old_cert = _rotate_files(folder, "a")  # new files in place, not read by a yet
    pki.revoke(folder, old_cert)
    assert b.reload_credentials()
    assert b.banned == {ea.agent_id: ea.identity.public_key} and b.refusals["revoked_certificate"] >= 1
    assert ea.agent_id not in eb.registry

    assert a.reload_credentials()  # now a rotates: its new certificate reaches b at a new handshake
    new_key = ea.identity.public_key
    assert await _until(lambda: not b.banned and eb.registry.public_key(ea.agent_id) == new_key)
    assert b.transport.holder_of(a_address) == new_key
    a.put("after-rotation", b"new key")
    assert await _until(lambda: eb.state.version_of(ea.agent_id) == 1)

    # the new key's own certificate revoked: that is the member itself, banned again
    pki.revoke(folder, folder / "a.pem")
    assert b.reload_credentials()
    assert b.banned == {ea.agent_id: new_key} and ea.agent_id not in eb.registry


def test_key_epochs_only_move_forward() -> None:
    """A key an agent has had is retired: rotating back to it is refused where it is made, and a
    chain that takes one back (made by hand) does not verify anywhere it is heard."""
    k0, k1 = SigningKey(bytes(range(32))), SigningKey(bytes(range(1, 33)))
    genesis = Identity(k0)
    rotated = genesis.rotate(k1)
    with pytest.raises(ValueError, match=r"epoch 0 .* retired"):
        rotated.rotate(k0)
    back = bytes(k0.verify_key)
    proof = rotated.sign(rotation_signed_bytes(rotated.agent_id, 2, back))
    swapped = Identity(
        k0, genesis_key=genesis.public_key, rotations=(*rotated.rotations, Rotation(back, proof))
    )
    assert verify_record(rotated.record("127.0.0.1", 1, "", 1))
    assert not verify_record(swapped.record("127.0.0.1", 1, "", 2))


def test_a_node_does_not_rotate_back_to_its_old_key(tmp_path: Path) -> None:
    folder = tmp_path / "pki"
    pki.init_ca(folder)
    pki.issue_node(folder, "a", folder)
    (folder / "a.old.key").write_bytes((folder / "a.key").read_bytes())
    creds = pki.Credentials(_config(folder, "a").pki)
    _rotate_files(folder, "a")
    assert creds.reload_if_changed() and creds.identity.epoch == 1
    new_key = creds.identity.public_key

    # the operator puts the old key and certificate back
    (folder / "a.key").write_bytes((folder / "a.old.key").read_bytes())
    (folder / "a.pem").write_bytes((folder / "a.old.pem").read_bytes())
    with pytest.raises(
        pki.PkiError, match=r"a\.key: the node's key of epoch 0, retired .* only move forward"
    ):
        creds.reload_if_changed()
    assert (creds.identity.epoch, creds.identity.public_key) == (1, new_key)  # the new key stays


def test_a_peer_presenting_a_retired_key_again_is_refused_and_the_refusal_emitted(
    tmp_path: Path, no_timers: None, telemetry: Any, caplog: pytest.LogCaptureFixture
) -> None:
    """After b accepted a's rotation, someone presents a's old key and certificate (not revoked) at a
    handshake, as a's old files restored elsewhere would: b refuses it as retired_key, one event and
    one log line naming the peer, and a itself keeps its place under its new key."""
    seen: dict[str, str] = {}

    async def swap_back(folder: Path, a: MeshNode, b: MeshNode) -> None:
        assert a.engine is not None and b.engine is not None and b.transport is not None
        ea, eb = a.engine, b.engine
        (folder / "a.old.key").write_bytes((folder / "a.key").read_bytes())
        _rotate_files(folder, "a")
        assert a.reload_credentials()
        new_key = ea.identity.public_key
        assert await _until(lambda: eb.registry.public_key(ea.agent_id) == new_key)

        old = pki.Credentials(
            pki.PkiPaths(
                folder / pki.CA_CERT, folder / "a.old.pem", folder / "a.old.key", folder / pki.CA_CRL
            )
        )
        ghost = QuicTransport(old, LOOPBACK, on_frame=lambda address, data: None)
        ghost_address = await ghost.start()
        caplog.clear()
        try:
            ghost.send(b.transport.listen_address, b"under a retired key")
            assert await _until(lambda: b.refusals["retired_key"] >= 1)
        finally:
            await ghost.close()
        assert set(b.refusals) == {"retired_key"} and not b.banned
        assert eb.registry.public_key(ea.agent_id) == new_key  # a is untouched
        lines = [r.getMessage() for r in caplog.records if "retired_key" in r.getMessage()]
        assert lines and all("\n" not in line and f"{ghost_address[1]}" in line for line in lines)
        seen["agent"] = ea.agent_id.hex()

    _two_nodes(tmp_path, swap_back, observer=lambda node_id: telemetry.hub.for_node(node_id))
    events = telemetry.events("knhk.mesh.handshake.refused")
    assert events and all(e.attributes["knhk.mesh.rejection.reason"] == "retired_key" for e in events)
    assert {e.attributes["knhk.mesh.peer.id"] for e in events} == {seen["agent"]}
