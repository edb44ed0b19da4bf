"""A node's durable memory: its own signed entries and version counter, in SQLite (WAL, synchronous=FULL).

Only the node's own writes are kept: everything else is other agents' and comes back by gossip.
A write is committed before any frame carrying it leaves the node, so a version that anyone has
seen is on disk, and a restarted node never signs a second entry for it (which would read as
equivocation). Each entry keeps the key epoch that signed it, so entries written before a key
rotation still verify after a restart.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence
from pathlib import Path

import msgpack

from knhk_mesh.core.messages import AgentId, Entry, Rotation
from knhk_mesh.core.security import verify_entry

STORE_FILE = "entries.sqlite3"
_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (name TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS entries (
    version INTEGER PRIMARY KEY,
    key TEXT NOT NULL,
    value BLOB NOT NULL,
    signature BLOB NOT NULL,
    epoch INTEGER
);
"""


def read_key_chain(folder: Path) -> tuple[bytes, tuple[Rotation, ...]] | None:
    """The genesis key and rotations a node recorded in `folder` once it rotated its key (else None).

    Read before the store is opened: a rotated node's key file alone names another agent id."""
    path = folder / STORE_FILE
    if not path.exists():
        return None
    try:
        db = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
        try:
            row = db.execute("SELECT value FROM meta WHERE name = 'key_chain'").fetchone()
        finally:
            db.close()
        if row is None:
            return None
        genesis, rotations = msgpack.unpackb(bytes.fromhex(row[0]), raw=False)
        return bytes(genesis), tuple(Rotation(bytes(k), bytes(sig)) for k, sig in rotations)
    except (sqlite3.Error, ValueError, TypeError) as exc:
        raise StoreError(f"{path}: the recorded key chain is unreadable ({exc})") from None


class StoreError(Exception):
    """The data folder cannot be used; the message names it."""


class EntryStore:
    """Own entries by version, and the highest version ever signed."""

    def __init__(self, folder: Path, agent: AgentId) -> None:
        self.path = folder / STORE_FILE
        try:
            folder.mkdir(parents=True, exist_ok=True)
            self._db = sqlite3.connect(self.path, isolation_level=None)
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA synchronous=FULL")
            self._db.executescript(_SCHEMA)
            columns = {row[1] for row in self._db.execute("PRAGMA table_info(entries)")}
            if "epoch" not in columns:
                # a store written before epochs were kept: its rows get NULL, resolved on load
                self._db.execute("ALTER TABLE entries ADD COLUMN epoch INTEGER")
        except (OSError, sqlite3.Error) as exc:
            raise StoreError(f"{self.path}: cannot open the node's store ({exc})") from None
        self.agent = agent
        row = self._db.execute("SELECT value FROM meta WHERE name = 'agent'").fetchone()
        if row is None:
            self._db.execute("INSERT INTO meta VALUES ('agent', ?)", (agent.hex(),))
        elif row[0] != agent.hex():
            raise StoreError(
                f"{self.path}: this data folder belongs to agent {row[0]}, not {agent.hex()} "
                "(another identity key?)"
            )

    def load(self, keys: Sequence[bytes] = ()) -> list[Entry]:
        """Every own entry, oldest first (signatures as written; the caller may verify them).

        Rows from a store older than epochs have none: given the agent's keys by epoch, the epoch
        whose key verifies the row is found and written back once; without keys they read as epoch 0.
        """
        rows = self._db.execute(
            "SELECT version, key, value, signature, epoch FROM entries ORDER BY version"
        ).fetchall()
        out = []
        for version, key, value, signature, epoch in rows:
            entry = Entry(self.agent, version, key, bytes(value), bytes(signature), epoch or 0)
            if epoch is None and keys:
                entry = self._resolve_epoch(entry, keys)
            out.append(entry)
        return out

    def _resolve_epoch(self, entry: Entry, keys: Sequence[bytes]) -> Entry:
        for epoch, public_key in enumerate(keys):
            candidate = Entry(entry.agent, entry.version, entry.key, entry.value, entry.signature, epoch)
            if verify_entry(public_key, candidate):
                self._db.execute("UPDATE entries SET epoch = ? WHERE version = ?", (epoch, entry.version))
                return candidate
        return entry  # no key verifies it: the caller's check names the row

    def last_version(self) -> int:
        row = self._db.execute("SELECT value FROM meta WHERE name = 'version'").fetchone()
        top = self._db.execute("SELECT MAX(version) FROM entries").fetchone()
        return max(int(row[0]) if row else 0, int(top[0] or 0))

    def append(self, entry: Entry) -> None:
        """Commit one own entry (returns once it is on disk)."""
        if entry.agent != self.agent:
            raise ValueError(f"entry of {entry.agent.hex()} in the store of {self.agent.hex()}")
        with self._db:
            self._db.execute("BEGIN IMMEDIATE")
            self._db.execute(
                "INSERT INTO entries (version, key, value, signature, epoch) VALUES (?, ?, ?, ?, ?)",
                (entry.version, entry.key, entry.value, entry.signature, entry.epoch),
            )
            self._db.execute(
                "INSERT INTO meta VALUES ('version', ?) "
                "ON CONFLICT(name) DO UPDATE SET value = excluded.value",
                (str(entry.version),),
            )

    def save_key_chain(self, genesis_key: bytes, rotations: tuple[Rotation, ...]) -> None:
        """Commit the key chain (returns once on disk): a restart resumes the rotated identity."""
        packed = msgpack.packb([genesis_key, [[r.public_key, r.signature] for r in rotations]])
        with self._db:
            self._db.execute("BEGIN IMMEDIATE")
            self._db.execute(
                "INSERT INTO meta VALUES ('key_chain', ?) "
                "ON CONFLICT(name) DO UPDATE SET value = excluded.value",
                (packed.hex(),),
            )

    def count(self) -> int:
        return int(self._db.execute("SELECT COUNT(*) FROM entries").fetchone()[0])

    def close(self) -> None:
        self._db.close()
