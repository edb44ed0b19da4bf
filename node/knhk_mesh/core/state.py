"""Delta-state CRDT with a Merkle tree over it: per-(agent, key) registers ordered by
(version, fingerprint), compared root first and descended to the ranges that differ.

Each agent owns and signs its entries; the state is the join of one last-writer register per
(agent, key), where the order is (version, entry fingerprint). That order is total, so merge is
commutative, associative and idempotent even when an agent equivocates (two different entries for
one version): every replica keeps the same winner. Equivocation is reported as a side result so
the engine can keep and gossip the evidence.

Registers sit in a fixed-shape tree (TREE_FANOUT children per node, leaves at TREE_DEPTH): the leaf
of a register is the top bits of a hash of (agent, key). A leaf's hash covers the sorted fingerprints
of its entries, an inner node's the hashes of its children; an empty subtree hashes to zero bytes.
Hashes are recomputed lazily, only along the paths that changed. Two replicas with equal roots hold
the same entries; with different roots, the differing leaves are found in TREE_DEPTH steps and cost
only what differs. No version number is ever read as "I hold everything below it".
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from enum import Enum

from knhk_mesh.core.messages import DIGEST_BYTES, SHORT_FINGERPRINT_BYTES, AgentId, Entry, NodeId
from knhk_mesh.core.wire import CHILD_HASHES_BYTES, TREE_DEPTH, TREE_FANOUT

LEAVES = TREE_FANOUT**TREE_DEPTH
EMPTY = bytes(DIGEST_BYTES)
_LEAF_DOMAIN = b"knhk-mesh/leaf/2\x00"
_NODE_DOMAIN = b"knhk-mesh/node/2\x00"
_LEAF_SHIFT = 64 - (LEAVES.bit_length() - 1)
_FP_SHIFT = 8 * (DIGEST_BYTES - SHORT_FINGERPRINT_BYTES)
_NO_CHILDREN = bytes(CHILD_HASHES_BYTES)
# Hashers holding their domain, copied per hash: cheaper than a constructor parsing its keywords and the
# domain again (the refresh of a frame's merge hashes ~3 nodes per entry).
_LEAF_HASHER = hashlib.blake2b(_LEAF_DOMAIN, digest_size=DIGEST_BYTES)
_NODE_HASHER = hashlib.blake2b(_NODE_DOMAIN, digest_size=DIGEST_BYTES)


def leaf_of(agent: AgentId, key: str) -> int:
    """The leaf a register lives in (the same at every replica)."""
    h = hashlib.blake2b(agent + key.encode(), digest_size=8).digest()
    leaf: int = int.from_bytes(h, "big") >> _LEAF_SHIFT
    return leaf


def short_fingerprint(entry: Entry) -> bytes:
    return (entry.fingerprint >> _FP_SHIFT).to_bytes(SHORT_FINGERPRINT_BYTES, "big")


def leaves_under(node: NodeId) -> range:
    depth, prefix = node
    span = TREE_FANOUT ** (TREE_DEPTH - depth)
    return range(prefix * span, (prefix + 1) * span)


class Applied(Enum):
    NEW = "new"  # the entry became the register's value
    DUPLICATE = "duplicate"  # identical to what the register holds
    STALE = "stale"  # older than what the register holds


@dataclass(frozen=True, slots=True)
class ApplyResult:
    outcome: Applied
    conflict: Entry | None = None  # a different entry already held for the same (agent, version)


# The results without a conflict, built once (apply runs per merged entry; the results are immutable).
_NEW = ApplyResult(Applied.NEW)
_DUPLICATE = ApplyResult(Applied.DUPLICATE)
_STALE = ApplyResult(Applied.STALE)


class State:
    """A replica of the mesh's replicated key-value state."""

    __slots__ = (
        "_by_agent",
        "_by_version",
        "_dirty",
        "_leaf",
        "_leaves",
        "_levels",
        "_root",
        "_size",
        "_top",
    )

    def __init__(self) -> None:
        self._by_agent: dict[AgentId, dict[str, Entry]] = {}
        self._by_version: dict[tuple[AgentId, int], Entry] = {}
        self._leaves: list[dict[tuple[AgentId, str], Entry] | None] = [None] * LEAVES
        self._leaf: dict[tuple[AgentId, str], int] = {}
        # _levels[d]: the hashes of depth d's nodes, DIGEST_BYTES each in prefix order (the leaves at
        # TREE_DEPTH), so a node's children are one contiguous slice of the level below
        self._levels: list[bytearray] = [
            bytearray(DIGEST_BYTES * TREE_FANOUT**d) for d in range(TREE_DEPTH + 1)
        ]
        self._root = EMPTY
        self._dirty: set[int] = set()
        self._size = 0
        self._top: dict[AgentId, int] = {}  # highest version seen per agent: a counter, never a claim

    # --- reading ----------------------------------------------------------------------------------

    @property
    def digest(self) -> bytes:
        """The Merkle root."""
        if self._dirty:
            self._refresh()
        return self._root

    def __len__(self) -> int:
        return self._size

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
        """The highest version of `agent` held (an agent's own next write goes above it)."""
        return self._top.get(agent, 0)

    def top_versions(self) -> dict[AgentId, int]:
        """Each agent's highest version held (for progress figures; no claim about versions below)."""
        return dict(self._top)

    def held_for(self, agent: AgentId, version: int) -> Entry | None:
        return self._by_version.get((agent, version))

    # --- the tree ---------------------------------------------------------------------------------

    def node_hash(self, node: NodeId) -> bytes:
        self._refresh()
        depth, prefix = node
        return bytes(self._levels[depth][prefix * DIGEST_BYTES : (prefix + 1) * DIGEST_BYTES])

    def children(self, node: NodeId) -> bytes:
        """The concatenated hashes of an inner node's children."""
        self._refresh()
        depth, prefix = node
        return bytes(self._levels[depth + 1][prefix * CHILD_HASHES_BYTES : (prefix + 1) * CHILD_HASHES_BYTES])

    def entries_under(self, node: NodeId) -> Iterator[Entry]:
        """Every entry in the subtree, leaf by leaf (a stable order, so a cut stream resumes well)."""
        for leaf in leaves_under(node):
            regs = self._leaves[leaf]
            if regs:
                yield from regs.values()

    def leaf_fingerprints(self, leaf: int) -> bytes:
        regs = self._leaves[leaf]
        return b"".join(sorted(short_fingerprint(e) for e in regs.values())) if regs else b""

    def leaf_entries_except(self, leaf: int, fingerprints: bytes) -> list[Entry]:
        """The leaf's entries whose short fingerprint is not among `fingerprints`."""
        regs = self._leaves[leaf]
        if not regs:
            return []
        step = SHORT_FINGERPRINT_BYTES
        known = {fingerprints[i : i + step] for i in range(0, len(fingerprints), step)}
        return [e for e in regs.values() if short_fingerprint(e) not in known]

    def _refresh(self) -> None:
        dirty = self._dirty
        if not dirty:
            return
        self._dirty = set()
        width = DIGEST_BYTES
        leaf_hasher, node_hasher = _LEAF_HASHER.copy, _NODE_HASHER.copy
        levels = self._levels
        leaves = levels[TREE_DEPTH]
        by_leaf = self._leaves
        for leaf in dirty:
            regs = by_leaf[leaf]
            at = leaf * width
            if not regs:
                leaves[at : at + width] = EMPTY
                continue
            h = leaf_hasher()
            if len(regs) == 1:  # the common leaf: one register
                for e in regs.values():
                    h.update(e.fingerprint.to_bytes(width, "big"))
            else:  # fingerprints in order, fixed width: the same bytes as hashing them one by one
                ordered = sorted([e.fingerprint for e in regs.values()])
                h.update(b"".join([fp.to_bytes(width, "big") for fp in ordered]))
            leaves[at : at + width] = h.digest()
        changed = dirty
        span = CHILD_HASHES_BYTES
        for depth in range(TREE_DEPTH - 1, -1, -1):
            below, level = levels[depth + 1], levels[depth]
            parents = {c // TREE_FANOUT for c in changed}
            for p in parents:
                at = p * span
                kids = below[at : at + span]
                at = p * width
                if kids == _NO_CHILDREN:
                    level[at : at + width] = EMPTY
                else:
                    h = node_hasher()
                    h.update(kids)
                    level[at : at + width] = h.digest()
            changed = parents
        self._root = bytes(levels[0])

    # --- writing ----------------------------------------------------------------------------------

    def apply(self, entry: Entry) -> ApplyResult:
        """Join one (already validated) entry into the state."""
        agent, version, key = entry.agent, entry.version, entry.key
        by_version = self._by_version
        held_same_version = by_version.get((agent, version))
        # equal entries have equal fingerprints: one int comparison settles the common unequal cases
        fingerprint = entry.fingerprint
        conflict = (
            held_same_version
            if held_same_version is not None
            and held_same_version is not entry
            and (held_same_version.fingerprint != fingerprint or held_same_version != entry)
            else None
        )
        regs = self._by_agent.get(agent)
        if regs is None:
            regs = self._by_agent[agent] = {}
        current = regs.get(key)
        register = (agent, key)
        if current is not None:
            if current is entry or (current.fingerprint == fingerprint and current == entry):
                return _DUPLICATE
            if (current.version, current.fingerprint) > (version, fingerprint):
                return _STALE if conflict is None else ApplyResult(Applied.STALE, conflict)
            superseded = (current.agent, current.version)
            held = by_version.get(superseded)
            if held is current or held == current:
                del by_version[superseded]
            leaf = self._leaf[register]
        else:
            leaf = self._leaf[register] = leaf_of(agent, key)
            self._size += 1
        regs[key] = entry
        bucket = self._leaves[leaf]
        if bucket is None:
            bucket = self._leaves[leaf] = {}
        bucket[register] = entry
        self._dirty.add(leaf)
        by_version.setdefault((agent, version), entry)
        if version > self._top.get(agent, 0):
            self._top[agent] = version
        return _NEW if conflict is None else ApplyResult(Applied.NEW, conflict)

    def apply_all(self, entries: Iterable[Entry]) -> None:
        for e in entries:
            self.apply(e)

    def merge(self, other: State) -> State:
        """A new state, the join of self and other (for reasoning and tests; the engine applies deltas)."""
        out = self.copy()
        out.apply_all(other.entries())
        return out

    def copy(self) -> State:
        out = State()
        out.apply_all(self.entries())
        return out
