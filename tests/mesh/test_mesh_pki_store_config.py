"""The mesh PKI files, the node's durable store and its YAML configuration, without the network."""

from __future__ import annotations

import random
import sqlite3
from pathlib import Path

import pytest
from nacl.signing import SigningKey

from knhk_mesh import pki
from knhk_mesh.core.security import Identity, verify_entry, verify_record
from knhk_mesh.node_config import NodeConfigError, load_node_config
from knhk_mesh.store import EntryStore, StoreError, read_key_chain


def _paths(folder: Path, name: str) -> pki.PkiPaths:
    return pki.PkiPaths(
        folder / pki.CA_CERT, folder / f"{name}.pem", folder / f"{name}.key", folder / pki.CA_CRL
    )


def test_a_renewed_certificate_keeps_the_identity_and_reloads_without_restart(tmp_path: Path) -> None:
    pki.init_ca(tmp_path)
    first = pki.issue_node(tmp_path, "a", tmp_path, days=1)
    creds = pki.Credentials(_paths(tmp_path, "a"))
    serial = creds.node_cert.serial_number
    assert creds.identity.hex_id == first.agent_id and first.new_key
    assert not creds.reload_if_changed()
    renewed = pki.issue_node(tmp_path, "a", tmp_path, days=30)
    assert not renewed.new_key and renewed.agent_id == first.agent_id
    assert creds.reload_if_changed()
    assert creds.node_cert.serial_number != serial and creds.identity.hex_id == first.agent_id


def test_a_new_key_under_a_running_node_is_a_rotation_signed_by_the_old_key(tmp_path: Path) -> None:
    pki.init_ca(tmp_path)
    pki.issue_node(tmp_path, "a", tmp_path)
    creds = pki.Credentials(_paths(tmp_path, "a"))
    genesis = creds.identity
    (tmp_path / "a.key").unlink()
    pki.issue_node(tmp_path, "a", tmp_path)  # a new key, and a certificate for it
    assert creds.reload_if_changed()
    rotated = creds.identity
    assert rotated.agent_id == genesis.agent_id and rotated.epoch == 1
    assert rotated.public_key == pki.public_key_bytes(creds.node_cert) != genesis.public_key
    assert verify_record(rotated.record("127.0.0.1", 1, "", 1))  # the chain is signed by the old key
    # a restart resumes the chain recorded in the node's store; a key not at its end is refused
    store = EntryStore(tmp_path / "data", rotated.agent_id)
    store.save_key_chain(rotated.genesis_key, rotated.rotations)
    store.close()
    fresh = pki.Credentials(_paths(tmp_path, "a"))
    chain = read_key_chain(tmp_path / "data")
    assert chain == (genesis.public_key, rotated.rotations)
    fresh.adopt_chain(*chain)
    assert (fresh.identity.agent_id, fresh.identity.epoch) == (genesis.agent_id, 1)
    (tmp_path / "a.key").unlink()
    pki.issue_node(tmp_path, "a", tmp_path)
    with pytest.raises(pki.PkiError, match="not the newest key"):
        pki.Credentials(_paths(tmp_path, "a")).adopt_chain(*chain)


def test_revocation_is_checked_against_the_ca_signed_crl(tmp_path: Path) -> None:
    pki.init_ca(tmp_path)
    pki.issue_node(tmp_path, "a", tmp_path)
    pki.issue_node(tmp_path, "b", tmp_path)
    creds = pki.Credentials(_paths(tmp_path, "a"))
    b_der = pki.Credentials(_paths(tmp_path, "b")).node_cert_der
    assert creds.verify_peer(b_der) == pki.Credentials(_paths(tmp_path, "b")).identity.public_key
    pki.revoke(tmp_path, tmp_path / "b.pem")
    creds.reload_if_changed()
    with pytest.raises(pki.CertificateRefused) as refused:
        creds.verify_peer(b_der)
    assert refused.value.reason is pki.Refusal.REVOKED
    # a CRL not signed by the CA is not believed
    other = tmp_path / "other"
    pki.init_ca(other)
    (tmp_path / pki.CA_CRL).write_bytes((other / pki.CA_CRL).read_bytes())
    with pytest.raises(pki.PkiError, match="not signed by the mesh CA"):
        creds.reload_if_changed()


def test_a_ca_is_never_overwritten(tmp_path: Path) -> None:
    pki.init_ca(tmp_path)
    with pytest.raises(pki.PkiError, match="already exists"):
        pki.init_ca(tmp_path)


def test_the_store_reloads_own_entries_and_refuses_another_identity(tmp_path: Path) -> None:
    rng = random.Random(3)
    me, other = Identity.generate(rng), Identity.generate(rng)
    store = EntryStore(tmp_path, me.agent_id)
    written = [me.sign_entry(v, f"k{v % 2}", f"v{v}".encode()) for v in range(1, 6)]
    for e in written:
        store.append(e)
    store.close()
    again = EntryStore(tmp_path, me.agent_id)
    loaded = again.load()
    assert loaded == written and again.last_version() == 5
    assert all(verify_entry(me.public_key, e) for e in loaded)
    with pytest.raises(Exception, match="UNIQUE"):
        again.append(me.sign_entry(5, "k", b"a second entry for version 5"))  # never two for one version
    again.close()
    with pytest.raises(StoreError, match="belongs to agent"):
        EntryStore(tmp_path, other.agent_id)


def test_the_store_keeps_each_entry_s_key_epoch_across_a_rotation(tmp_path: Path) -> None:
    rng = random.Random(4)
    before = Identity.generate(rng)
    after = before.rotate(SigningKey(rng.randbytes(32)))
    store = EntryStore(tmp_path, before.agent_id)
    written = [before.sign_entry(1, "k", b"old key"), after.sign_entry(2, "k", b"new key")]
    for e in written:
        store.append(e)
    store.close()
    again = EntryStore(tmp_path, before.agent_id)
    loaded = again.load()
    again.close()
    assert loaded == written and [e.epoch for e in loaded] == [0, 1]
    assert all(verify_entry(after.keys[e.epoch], e) for e in loaded)


def test_a_store_written_before_epochs_were_kept_still_loads(tmp_path: Path) -> None:
    """The old table had no epoch column: it is added, and each row's epoch is found from the keys."""
    rng = random.Random(5)
    before = Identity.generate(rng)
    after = before.rotate(SigningKey(rng.randbytes(32)))
    written = [before.sign_entry(1, "k", b"old key"), after.sign_entry(2, "k", b"new key")]
    db = sqlite3.connect(tmp_path / "entries.sqlite3")
    db.executescript(
        "CREATE TABLE meta (name TEXT PRIMARY KEY, value TEXT NOT NULL);"
        "CREATE TABLE entries (version INTEGER PRIMARY KEY, key TEXT NOT NULL, value BLOB NOT NULL, "
        "signature BLOB NOT NULL);"
    )
    db.execute("INSERT INTO meta VALUES ('agent', ?)", (before.agent_id.hex(),))
    db.executemany(
        "INSERT INTO entries VALUES (?, ?, ?, ?)", [(e.version, e.key, e.value, e.signature) for e in written]
    )
    db.commit()
    db.close()
    old = EntryStore(tmp_path, before.agent_id)
    assert old.load(after.keys) == written
    old.append(after.sign_entry(3, "k", b"after the migration"))
    old.close()
    reopened = EntryStore(tmp_path, before.agent_id)
    assert [e.epoch for e in reopened.load()] == [0, 1, 1]  # resolved once, then kept
    reopened.close()


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("listen: 127.0.0.1:1\n", "identity: required setting is missing"),
        ("identity: {}\nlisten: x\ndata_dir: d\n", "identity: key: required setting is missing"),
        (
            "identity: {key: k, certificate: c, ca: a}\nlisten: nohost\ndata_dir: d\n",
            ":2: listen: expected HOST:PORT",
        ),
        (
            "identity: {key: k, certificate: c, ca: a}\nlisten: 127.0.0.1:1\ndata_dir: d\n"
            "round_interval: fast\n",
            ":4: round_interval: expected a number",
        ),
        (
            "identity: {key: k, certificate: c, ca: a}\nlisten: 127.0.0.1:1\ndata_dir: d\nfanotu: 3\n",
            ":4: fanotu: unknown",
        ),
        (
            "identity: {key: k, certificate: c, ca: a}\nlisten: 127.0.0.1:1\ndata_dir: d\n"
            "stale_timeout: .nan\n",
            ":4: stale_timeout: expected a finite number, got nan",
        ),
        (
            "identity: {key: k, certificate: c, ca: a}\nlisten: 127.0.0.1:1\ndata_dir: d\n"
            "round_interval: .inf\n",
            ":4: round_interval: expected a finite number, got inf",
        ),
        (
            "identity: {key: k, certificate: c, ca: a}\nlisten: 127.0.0.1:1\ndata_dir: d\nbyzantine: evil\n",
            ":4: byzantine: expected one of",
        ),
        (
            "identity: {key: k, certificate: c, ca: a}\nlisten: 127.0.0.1:1\ndata_dir: d\n"
            "faults: {drop: [x]}\n",
            ":4: faults.drop: expected HOST:PORT",
        ),
        (
            "identity: {key: k, certificate: c, ca: a}\nlisten: 127.0.0.1:1\ndata_dir: d\n"
            "faults: {cut: []}\n",
            ":4: faults: expected a mapping with one setting",
        ),
    ],
)
def test_a_bad_node_configuration_names_file_line_and_setting(
    tmp_path: Path, text: str, message: str
) -> None:
    path = tmp_path / "node.yaml"
    path.write_text(text)
    with pytest.raises(NodeConfigError, match=message) as err:
        load_node_config(path)
    assert str(err.value).startswith(str(path))


def test_relative_paths_are_relative_to_the_configuration_file(tmp_path: Path) -> None:
    path = tmp_path / "conf" / "node.yaml"
    path.parent.mkdir()
    path.write_text(
        "identity: {key: k.key, certificate: c.pem, ca: ../pki/ca.pem}\nlisten: 127.0.0.1:7400\n"
        "data_dir: data\nseeds: [127.0.0.1:7500]\n"
    )
    cfg = load_node_config(path)
    assert cfg.pki.node_key == path.parent / "k.key" and cfg.pki.ca_cert == path.parent / "../pki/ca.pem"
    assert cfg.listen == ("127.0.0.1", 7400) and cfg.seeds == (("127.0.0.1", 7500),)
    assert cfg.data_dir == path.parent / "data"
