"""Peer registry: O(1) lookup by id and address, uniform sampling, pruning, reputation, compactness."""

from __future__ import annotations

import random
import tracemalloc

import pytest

from knhk_mesh.core.registry import PeerRegistry


def _id(i: int) -> bytes:
    return i.to_bytes(8, "big")


def _key(i: int) -> bytes:
    return i.to_bytes(32, "big")


def _fill(n: int) -> PeerRegistry:
    reg = PeerRegistry()
    for i in range(n):
        reg.register(
            _id(i),
            (f"10.{i >> 16 & 255}.{i >> 8 & 255}.{i & 255}", 4000 + i % 1000),
            _key(i),
            region=("us", "eu")[i % 2],
            now=float(i),
        )
    return reg


def test_lookup_by_id_and_by_address_after_many_inserts_and_removals() -> None:
    reg = _fill(2000)
    rng = random.Random(3)
    removed = set(rng.sample(range(2000), 700))
    for i in removed:
        assert reg.remove(_id(i))
    assert len(reg) == 1300
    for i in range(2000):
        info = reg.get(_id(i))
        if i in removed:
            assert info is None and _id(i) not in reg
        else:
            assert info is not None
            assert info.public_key == _key(i)
            assert info.region == ("us", "eu")[i % 2]
            assert reg.agent_at(info.address) == _id(i)


def test_hostnames_and_ipv6_addresses_round_trip() -> None:
    reg = PeerRegistry()
    reg.register(_id(1), ("::1", 9), _key(1))
    reg.register(_id(2), ("node-2.mesh.local", 10), _key(2))
    reg.register(_id(3), ("127.0.0.1", 11), _key(3))
    assert reg.address_of(_id(1)) == ("::1", 9)
    assert reg.agent_at(("node-2.mesh.local", 10)) == _id(2)
    assert reg.agent_at(("127.0.0.1", 11)) == _id(3)
    reg.register(_id(3), ("127.0.0.2", 12), _key(3))  # moved
    assert reg.agent_at(("127.0.0.1", 11)) is None
    assert reg.agent_at(("127.0.0.2", 12)) == _id(3)


def test_random_peers_are_distinct_eligible_and_roughly_uniform() -> None:
    reg = _fill(50)
    for i in range(0, 50, 5):
        reg.update_reputation(_id(i), -0.8)  # ten peers ignored
    rng = random.Random(7)
    counts = dict.fromkeys(range(50), 0)
    for _ in range(2000):
        picked = reg.random_peers(10, rng, exclude=_id(1), min_reputation=0.5)
        assert len(picked) == 10 and len(set(picked)) == 10
        for p in picked:
            counts[int.from_bytes(p, "big")] += 1
    assert all(counts[i] == 0 for i in range(0, 50, 5)) and counts[1] == 0
    eligible = [c for i, c in counts.items() if i % 5 and i != 1]
    assert min(eligible) > 0.6 * max(eligible)


def test_random_peers_returns_what_exists_in_a_small_registry() -> None:
    reg = _fill(3)
    assert sorted(reg.random_peers(10, random.Random(1))) == [_id(0), _id(1), _id(2)]
    assert PeerRegistry().random_peers(10, random.Random(1)) == []


def test_nearest_peers_orders_by_measured_rtt() -> None:
    reg = _fill(20)
    for i in range(20):
        reg.set_rtt(_id(i), 0.001 * (20 - i))
    assert reg.nearest_peers(3) == [_id(19), _id(18), _id(17)]


def test_prune_stale_removes_silent_peers_only() -> None:
    reg = _fill(100)  # last_seen = i
    reg.touch(_id(3), 200.0)
    pruned = reg.prune_stale(now=200.0, timeout=120.0)
    assert sorted(pruned) == sorted(_id(i) for i in range(80) if i != 3)
    assert _id(3) in reg and len(reg) == 21


def test_reputation_is_clamped_and_reports_previous_and_current() -> None:
    reg = _fill(1)
    assert reg.update_reputation(_id(0), -0.3) == (1.0, 0.7)
    assert reg.update_reputation(_id(0), -2.0) == (0.7, 0.0)
    assert reg.update_reputation(_id(0), 5.0) == (0.0, 1.0)
    assert reg.update_reputation(_id(99), -1.0) == (0.0, 0.0)


def test_register_rejects_wrong_sizes() -> None:
    with pytest.raises(ValueError):
        PeerRegistry().register(b"short", ("127.0.0.1", 1), _key(1))


def test_a_peer_costs_well_under_256_bytes() -> None:
    n = 10_000
    tracemalloc.start()
    before = tracemalloc.get_traced_memory()[0]
    reg = _fill(n)
    after = tracemalloc.get_traced_memory()[0]
    tracemalloc.stop()
    assert len(reg) == n
    assert (after - before) / n < 256


def test_a_copy_is_independent_of_its_original() -> None:
    reg = _fill(100)
    twin = reg.copy()
    twin.remove(_id(5))
    twin.update_reputation(_id(6), -0.5)
    twin.register(_id(500), ("10.9.9.9", 1), _key(500))
    assert _id(5) in reg and _id(500) not in reg and reg.reputation(_id(6)) == 1.0
    assert _id(5) not in twin and twin.agent_at(("10.9.9.9", 1)) == _id(500)
    assert all(twin.get(_id(i)) == reg.get(_id(i)) for i in range(100) if i not in (5, 6))


def test_random_peers_keep_eligibility_through_removals_and_recovery_at_large_n() -> None:
    """Penalised peers stay out of samples when removals move them to other slots, come back once fully
    recovered, and every eligible peer is still drawn about equally often."""
    n = 20_000
    reg = _fill(n)
    rng = random.Random(11)
    low = set(rng.sample(range(n), 400))
    for i in low:
        reg.update_reputation(_id(i), -0.6)  # under 0.5: ignored
    partly = set(rng.sample(sorted(set(range(n)) - low), 300))
    for i in partly:
        reg.update_reputation(_id(i), -0.2)  # 0.8: eligible at 0.5, not at 1.0
    removed = set(rng.sample(range(n), 5000))  # swap-removal moves the last slots into the holes
    for i in removed:
        assert reg.remove(_id(i))
    recovered = set(rng.sample(sorted(low - removed), 50))
    for i in recovered:
        reg.update_reputation(_id(i), 1.0)
    me = next(i for i in range(n) if i not in removed and i not in low and i not in partly)
    ignored = (low - recovered) | removed | {me}
    counts: dict[int, int] = {}
    for _ in range(3000):
        picked = reg.random_peers(10, rng, exclude=_id(me), min_reputation=0.5)
        assert len(picked) == 10 and len(set(picked)) == 10
        for p in picked:
            i = int.from_bytes(p, "big")
            assert i not in ignored, i
            counts[i] = counts.get(i, 0) + 1
    assert recovered & set(counts)  # recovered peers are drawn again
    eligible = n - len(ignored)
    # 30,000 draws over ~14,650 eligible peers: about 2 each; no peer far above what chance gives
    assert len(counts) > 0.8 * eligible and max(counts.values()) < 15
    for _ in range(500):
        strict = reg.random_peers(10, rng, min_reputation=1.0)
        assert all(reg.reputation(p) == 1.0 for p in strict)
    assert reg.random_peers(10, rng, min_reputation=1.5) == []


def test_a_copy_samples_by_its_own_reputations() -> None:
    reg = _fill(20)
    reg.update_reputation(_id(3), -0.9)
    reg.update_reputation(_id(7), -0.9)
    twin = reg.copy()
    twin.update_reputation(_id(4), -0.9)
    twin.update_reputation(_id(3), 1.0)
    rng = random.Random(5)
    seen_reg: set[bytes] = set()
    seen_twin: set[bytes] = set()
    for _ in range(200):
        seen_reg.update(reg.random_peers(10, rng, min_reputation=0.5))
        seen_twin.update(twin.random_peers(10, rng, min_reputation=0.5))
    assert seen_reg == {_id(i) for i in range(20)} - {_id(3), _id(7)}
    assert seen_twin == {_id(i) for i in range(20)} - {_id(4), _id(7)}
