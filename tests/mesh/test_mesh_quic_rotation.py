"""Key rotation between node processes' shells, in one event loop: the moments of a rotation are
driven one by one (no reload timer, no reconnect timer), so each race of the cluster test is
reproduced deterministically.

The race of issue 11: a peer has accepted a node's rotation, but a connection made under the node's
OLD certificate is still open when the CRL revoking that old certificate reaches the peer. The old
certificate's key is retired, not the member: the connection is closed without a refusal, the member
keeps its place and reputation, and gossip goes on over connections made under the new certificate.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from pathlib import Path

import pytest

from knhk_mesh import node as node_module
from knhk_mesh import pki
from knhk_mesh.node import MeshNode
from knhk_mesh.node_config import NodeConfig

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


async def _pair(folder: Path) -> tuple[MeshNode, MeshNode]:
    a = MeshNode(_config(folder, "a"), pki.Credentials(_config(folder, "a").pki))
    await a.start()
    assert a.transport is not None
    b_config = _config(folder, "b", seeds=(a.transport.listen_address,))
    b = MeshNode(b_config, pki.Credentials(b_config.pki))
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


def _two_nodes(tmp_path: Path, scenario: Callable[[Path, MeshNode, MeshNode], Awaitable[None]]) -> None:
    """Nodes a and b of a fresh mesh CA, b joined through a, then `scenario(pki folder, a, b)`."""
    folder = tmp_path / "pki"
    pki.init_ca(folder)
    for name in ("a", "b"):
        pki.issue_node(folder, name, folder)

    async def body() -> None:
        a, b = await _pair(folder)
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
    tmp_path: Path, no_timers: None
) -> None:
    """The other order: b refuses a's old certificate before it hears of a's rotation. Then a is a
    member the CA no longer vouches for (banned, forgotten); once its rotation arrives and its new key
    passes a handshake of its own, it is a member again. Revoking the new certificate bans it again."""
    _two_nodes(tmp_path, _late_rotation)


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
