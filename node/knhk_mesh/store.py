"""A node's durable memory: its own signed entries and version counter, in SQLite (WAL, synchronous=FULL).

Only the node's own writes are kept: everything else is other agents' and comes back by gossip.
A write is committed before any frame carrying it leaves the node, so a version that anyone has
seen is on disk, and a restarted node never signs a second entry for it (which would read as
equivocation).
"""

from __future__ import annotations

import sqlite3
from pathlib import Path

from knhk_mesh.core.messages import AgentId, Entry

_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (name TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS entries (
    version INTEGER PRIMARY KEY,
    key TEXT NOT NULL,
    value BLOB NOT NULL,
    signature BLOB NOT NULL
);
"""


class StoreError(Exception):
    """The data folder cannot be used; the message names it."""


class EntryStore:
    """Own entries by version, and the highest version ever signed."""

    def __init__(self, folder: Path, agent: AgentId) -> None:
        self.path = folder / "entries.sqlite3"
        try:
            folder.mkdir(parents=True, exist_ok=True)
            self._db = sqlite3.connect(self.path, isolation_level=None)
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA synchronous=FULL")
            self._db.executescript(_SCHEMA)
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

    def load(self) -> list[Entry]:
        """Every own entry, oldest first (signatures as written; the caller may verify them)."""
        rows = self._db.execute("SELECT version, key, value, signature FROM entries ORDER BY version")
        return [Entry(self.agent, v, k, bytes(val), bytes(sig)) for v, k, val, sig in rows]

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
                "INSERT INTO entries VALUES (?, ?, ?, ?)",
                (entry.version, entry.key, entry.value, entry.signature),
            )
            self._db.execute(
                "INSERT INTO meta VALUES ('version', ?) "
                "ON CONFLICT(name) DO UPDATE SET value = excluded.value",
                (str(entry.version),),
            )

    def count(self) -> int:
        return int(self._db.execute("SELECT COUNT(*) FROM entries").fetchone()[0])

    def close(self) -> None:
        self._db.close()
