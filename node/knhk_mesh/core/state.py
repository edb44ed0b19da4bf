"""Delta-state CRDT: per-(agent, key) registers ordered by (version, fingerprint), with an O(1) digest.

Each agent owns and signs its entries; the state is the join of one last-writer register per
(agent, key), where the order is (version, entry fingerprint). That order is total, so merge is
commutative, associative and idempotent even when an agent equivocates (two different entries for
one version): every replica keeps the same winner. Equivocation is reported as a side result so
the engine can keep and gossip the evidence.

The digest is a multiset hash (sum of entry fingerprints mod 2**128), updated in O(1) per applied
entry; per-agent digests make the version vector able to notice gaps and repair them.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from enum import Enum

from knhk_mesh.core.messages import AGENT_DIGEST_BYTES, DIGEST_BYTES, AgentId, Entry, VersionItem

_MOD = 1 << (8 * DIGEST_BYTES)
_AGENT_MOD = 1 << (8 * AGENT_DIGEST_BYTES)


class Applied(Enum):
    NEW = "new"  # the entry became the register's value
    DUPLICATE = "duplicate"  # identical to what the register holds
    STALE = "stale"  # older than what the register holds


@dataclass(frozen=True, slots=True)
class ApplyResult:
    outcome: Applied
    conflict: Entry | None = None  # a different entry already held for the same (agent, version)


class State:
    """A replica of the mesh's replicated key-value state."""

    __slots__ = ("_agent_digest", "_by_agent", "_by_version", "_digest", "_vv")

    def __init__(self) -> None:
        self._by_agent: dict[AgentId, dict[str, Entry]] = {}
        self._by_version: dict[tuple[AgentId, int], Entry] = {}
        self._vv: dict[AgentId, int] = {}
        self._agent_digest: dict[AgentId, int] = {}
        self._digest = 0

    # --- reading ----------------------------------------------------------------------------------

    @property
    def digest(self) -> bytes:
        return self._digest.to_bytes(DIGEST_BYTES, "big")

    def __len__(self) -> int:
        return sum(len(m) for m in self._by_agent.values())

    def get(self, agent: AgentId, key: str) -> Entry | None:
        regs = self._by_agent.get(agent)
        return None if regs is None else regs.get(key)

    def entries(self) -> Iterator[Entry]:
        for regs in self._by_agent.values():
            yield from regs.values()

    def entries_of(self, agent: AgentId) -> Iterator[Entry]:
        regs = self._by_agent.get(agent)
        if regs is not None:
            yield from regs.values()

    def snapshot(self) -> dict[tuple[AgentId, str], Entry]:
        return {(e.agent, e.key): e for e in self.entries()}

    def version_of(self, agent: AgentId) -> int:
        return self._vv.get(agent, 0)

    def versions(self) -> tuple[VersionItem, ...]:
        """The version vector with per-agent digests, in a deterministic order."""
        return tuple(
            VersionItem(a, self._vv[a], self._agent_digest[a].to_bytes(AGENT_DIGEST_BYTES, "big"))
            for a in sorted(self._vv)
        )

    def held_for(self, agent: AgentId, version: int) -> Entry | None:
        return self._by_version.get((agent, version))

    # --- writing ----------------------------------------------------------------------------------

    def apply(self, entry: Entry) -> ApplyResult:
        """Join one (already validated) entry into the state."""
        held_same_version = self._by_version.get((entry.agent, entry.version))
        conflict = held_same_version if held_same_version is not None and held_same_version != entry else None
        regs = self._by_agent.get(entry.agent)
        if regs is None:
            regs = self._by_agent[entry.agent] = {}
            self._agent_digest[entry.agent] = 0
            self._vv[entry.agent] = 0
        current = regs.get(entry.key)
        if current is not None:
            if current == entry:
                return ApplyResult(Applied.DUPLICATE)
            if (current.version, current.fingerprint) > (entry.version, entry.fingerprint):
                return ApplyResult(Applied.STALE, conflict)
            self._drop(current)
        regs[entry.key] = entry
        fp = entry.fingerprint
        self._digest = (self._digest + fp) % _MOD
        self._agent_digest[entry.agent] = (self._agent_digest[entry.agent] + fp) % _AGENT_MOD
        self._by_version.setdefault((entry.agent, entry.version), entry)
        if entry.version > self._vv[entry.agent]:
            self._vv[entry.agent] = entry.version
        return ApplyResult(Applied.NEW, conflict)

    def _drop(self, old: Entry) -> None:
        fp = old.fingerprint
        self._digest = (self._digest - fp) % _MOD
        self._agent_digest[old.agent] = (self._agent_digest[old.agent] - fp) % _AGENT_MOD
        if self._by_version.get((old.agent, old.version)) == old:
            del self._by_version[(old.agent, old.version)]

    def merge(self, other: State) -> State:
        """A new state, the join of self and other (for reasoning and tests; the engine applies deltas)."""
        out = self.copy()
        for e in other.entries():
            out.apply(e)
        return out

    def copy(self) -> State:
        out = State()
        for e in self.entries():
            out.apply(e)
        return out

    # --- deltas -----------------------------------------------------------------------------------

    def missing_for(self, theirs: Iterable[VersionItem]) -> list[Entry]:
        """Entries a peer with version vector `theirs` lacks, oldest first per agent.

        For an agent the peer is behind on: every entry newer than its version. For an agent at the
        same version but with a different digest (a gap or an equivocation): all of the agent's entries.
        """
        known: Mapping[AgentId, VersionItem] = {v.agent: v for v in theirs}
        out: list[Entry] = []
        for agent in sorted(self._by_agent):
            regs = self._by_agent[agent]
            mine = self._vv[agent]
            peer = known.get(agent)
            if peer is None:
                chosen = list(regs.values())
            elif mine > peer.version:
                chosen = [e for e in regs.values() if e.version > peer.version]
            elif mine == peer.version and self._agent_digest_bytes(agent) != peer.digest:
                chosen = list(regs.values())
            else:
                continue
            chosen.sort(key=lambda e: e.version)
            out.extend(chosen)
        return out

    def lacks_from(self, theirs: Iterable[VersionItem]) -> bool:
        """True when a peer with version vector `theirs` holds something this state does not."""
        for v in theirs:
            mine = self._vv.get(v.agent, 0)
            if v.version > mine:
                return True
            if v.version == mine and mine and self._agent_digest_bytes(v.agent) != v.digest:
                return True
        return False

    def _agent_digest_bytes(self, agent: AgentId) -> bytes:
        return self._agent_digest.get(agent, 0).to_bytes(AGENT_DIGEST_BYTES, "big")
