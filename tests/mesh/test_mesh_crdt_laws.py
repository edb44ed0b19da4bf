"""The replicated state is a CRDT (merge is commutative, associative and idempotent), and its Merkle
tree finds and repairs every difference, whatever the versions say."""

from __future__ import annotations

import random

from hypothesis import given, settings
from hypothesis import strategies as st

from knhk_mesh.core.messages import Entry, NodeId
from knhk_mesh.core.security import Identity
from knhk_mesh.core.state import EMPTY, Applied, State
from knhk_mesh.core.wire import DIGEST_BYTES, TREE_DEPTH, TREE_FANOUT

AGENTS = [Identity.generate(random.Random(i)) for i in range(3)]

# Signatures are not the state's business (the engine verifies before applying), so entries here
# carry arbitrary signature bytes; that also lets hypothesis build equivocations cheaply.
_entry = st.builds(
    lambda a, v, k, val, sig: Entry(AGENTS[a].agent_id, v, k, val, sig),
    st.integers(0, 2),
    st.integers(1, 4),
    st.sampled_from(["a", "b", "c"]),
    st.binary(max_size=3),
    st.sampled_from([bytes(64), b"\x01" * 64]),
)
_state = st.lists(_entry, max_size=8).map(lambda es: _build(es))


def _build(entries: list[Entry]) -> State:
    s = State()
    for e in entries:
        s.apply(e)
    return s


def _same(a: State, b: State) -> bool:
    return a.snapshot() == b.snapshot() and a.digest == b.digest


def _pull(dst: State, src: State) -> int:
    """What the engine's pull does, without frames: root first, down to the differing leaves, then
    only the entries `dst` lacks. Returns the entries sent."""
    sent = 0
    frontier: list[NodeId] = [(0, 0)]
    while frontier:
        nxt: list[NodeId] = []
        for node in frontier:
            theirs = src.node_hash(node)
            if theirs == EMPTY or theirs == dst.node_hash(node):
                continue
            if dst.node_hash(node) == EMPTY:
                batch = list(src.entries_under(node))
            elif node[0] == TREE_DEPTH:
                batch = src.leaf_entries_except(node[1], dst.leaf_fingerprints(node[1]))
            else:
                kids = src.children(node)
                for i in range(TREE_FANOUT):
                    child = (node[0] + 1, node[1] * TREE_FANOUT + i)
                    if kids[i * DIGEST_BYTES : (i + 1) * DIGEST_BYTES] != dst.node_hash(child):
                        nxt.append(child)
                continue
            sent += len(batch)
            dst.apply_all(batch)
        frontier = nxt
    return sent


@settings(max_examples=150, deadline=None)
@given(_state, _state)
def test_merge_is_commutative(a: State, b: State) -> None:
    assert _same(a.merge(b), b.merge(a))


@settings(max_examples=150, deadline=None)
@given(_state, _state, _state)
def test_merge_is_associative(a: State, b: State, c: State) -> None:
    assert _same(a.merge(b).merge(c), a.merge(b.merge(c)))


@settings(max_examples=150, deadline=None)
@given(_state, _state)
def test_merge_is_idempotent(a: State, b: State) -> None:
    ab = a.merge(b)
    assert _same(a.merge(a), a)
    assert _same(ab.merge(b), ab)


@settings(max_examples=150, deadline=None)
@given(_state, _state)
def test_one_pull_each_way_makes_replicas_identical(a: State, b: State) -> None:
    left, right = a.copy(), b.copy()
    _pull(left, right)
    _pull(right, left)
    assert _same(left, right)
    assert _same(left, a.merge(b))


@settings(max_examples=100, deadline=None)
@given(st.lists(_entry, min_size=1, max_size=40), st.sets(st.integers(0, 39), max_size=40))
def test_a_pull_sends_only_what_differs(entries: list[Entry], withheld: set[int]) -> None:
    """Any subset missing (gaps included, versions notwithstanding) is found and sent, and at most
    the entries of the leaves that differ."""
    full = _build(entries)
    partial = _build([e for i, e in enumerate(entries) if i not in withheld])
    differing = sum(1 for k, e in full.snapshot().items() if partial.snapshot().get(k) != e)
    assert _pull(partial, full) <= differing
    assert _same(partial, full)


@settings(max_examples=100, deadline=None)
@given(st.lists(_entry, max_size=10), st.randoms(use_true_random=False))
def test_digest_is_order_independent(entries: list[Entry], rnd: random.Random) -> None:
    shuffled = list(entries)
    rnd.shuffle(shuffled)
    assert _build(entries).digest == _build(shuffled).digest


def test_newer_versions_win_and_older_ones_are_stale() -> None:
    me = AGENTS[0]
    s = State()
    assert s.apply(me.sign_entry(2, "k", b"new")).outcome is Applied.NEW
    assert s.apply(me.sign_entry(1, "k", b"old")).outcome is Applied.STALE
    got = s.get(me.agent_id, "k")
    assert got is not None and got.value == b"new"
    assert s.version_of(me.agent_id) == 2


def test_equivocation_is_reported_and_every_replica_keeps_the_same_winner() -> None:
    me = AGENTS[1]
    left, right = me.sign_entry(1, "k", b"left"), me.sign_entry(1, "k", b"right")
    one, two = State(), State()
    assert one.apply(left).conflict is None
    assert one.apply(right).conflict == left
    two.apply(right)
    assert two.apply(left).conflict == right
    assert one.snapshot() == two.snapshot()
    assert one.digest == two.digest


def test_a_gap_below_the_newest_version_is_repaired() -> None:
    me = AGENTS[2]
    full, gappy = State(), State()
    entries = [me.sign_entry(v, f"k{v}", b"x") for v in range(1, 301)]
    full.apply_all(entries)
    gappy.apply_all(e for e in entries if e.version % 7)  # a Byzantine relay withheld every 7th
    assert gappy.version_of(me.agent_id) == full.version_of(me.agent_id) == 300
    assert gappy.digest != full.digest
    assert _pull(gappy, full) == 42  # exactly the 42 withheld entries, not the agent's history
    assert gappy.digest == full.digest
