"""The replicated state is a CRDT: merge is commutative, associative and idempotent, deltas suffice."""

from __future__ import annotations

import random

from hypothesis import given, settings
from hypothesis import strategies as st

from knhk_mesh.core.messages import Entry
from knhk_mesh.core.security import Identity
from knhk_mesh.core.state import Applied, State

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
    return a.snapshot() == b.snapshot() and a.digest == b.digest and a.versions() == b.versions()


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
def test_delta_exchanges_make_replicas_identical(a: State, b: State) -> None:
    """One exchange each way suffices with unique versions; an equivocation may need a second,
    which the per-agent digests trigger (same version, different digest: whole history)."""
    left, right = a.copy(), b.copy()
    for _ in range(2):
        to_right = left.missing_for(right.versions())
        to_left = right.missing_for(left.versions())
        for e in to_right:
            right.apply(e)
        for e in to_left:
            left.apply(e)
    assert _same(left, right)
    assert _same(left, a.merge(b))


@settings(max_examples=100, deadline=None)
@given(
    st.lists(st.tuples(st.integers(0, 2), st.sampled_from("abc")), max_size=10),
    st.integers(0, 10),
    st.integers(0, 10),
)
def test_without_equivocation_one_exchange_suffices(
    writes: list[tuple[int, str]], cut: int, cut2: int
) -> None:
    """Honest replicas hold a prefix of each agent's history (deltas are sent oldest first)."""
    versions = [0, 0, 0]
    entries = []
    for agent, key in writes:
        versions[agent] += 1
        entries.append(Entry(AGENTS[agent].agent_id, versions[agent], key, b"", bytes(64)))
    left, right = _build(entries[:cut]), _build(entries[:cut2])
    to_right, to_left = left.missing_for(right.versions()), right.missing_for(left.versions())
    for e in to_right:
        right.apply(e)
    for e in to_left:
        left.apply(e)
    assert _same(left, right)


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


def test_a_gap_is_repaired_by_sending_the_agents_whole_history() -> None:
    me = AGENTS[2]
    full, gappy = State(), State()
    e1, e2 = me.sign_entry(1, "x", b"1"), me.sign_entry(2, "y", b"2")
    full.apply(e1)
    full.apply(e2)
    gappy.apply(e2)  # a Byzantine relay withheld e1
    assert gappy.lacks_from(full.versions())
    for e in full.missing_for(gappy.versions()):
        gappy.apply(e)
    assert gappy.digest == full.digest
