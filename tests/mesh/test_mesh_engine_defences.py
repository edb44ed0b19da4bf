"""Engine defences, one frame at a time: each kind of bad frame is rejected, counted and blamed right."""

from __future__ import annotations

import random
from collections.abc import Callable
from typing import Any

from knhk_mesh.core.config import MeshConfig
from knhk_mesh.core.events import (
    ByzantineDetected,
    MessageRejected,
    Offence,
    PeerJoined,
    PeerLeft,
    Rejection,
    ReputationChanged,
)
from knhk_mesh.core.messages import Answer, Challenge, Entry, Join, Ping, Push
from knhk_mesh.core.security import Identity
from knhk_mesh.core.wire import decode, encode_signed_part, envelope_message, frame


def _frame(signer: Identity, sender: bytes, recipient: bytes, nonce: int, body: Any) -> bytes:
    signed = encode_signed_part(sender, recipient, nonce, body)
    return frame(signed, signer.sign(envelope_message(signed)))


EngineFactory = Callable[..., Any]
Drain = Callable[[Any], list[Any]]


def _of(events: list[Any], kind: type) -> list[Any]:
    return [e for e in events if isinstance(e, kind)]


def test_an_honest_ping_is_answered_and_nothing_is_rejected(
    make_engines: EngineFactory, drain: Drain
) -> None:
    a, b = make_engines(2)
    b.receive(a.address, _frame(a.identity, a.agent_id, b.agent_id, 1, Ping(5)), now=1.0)
    assert _of(drain(b), MessageRejected) == []
    ((addr, data),) = b.messages_to_send(1.0)
    assert addr == a.address
    a.receive(b.address, data, now=1.0)
    assert _of(drain(a), MessageRejected) == []


def test_an_exact_duplicate_is_dropped_without_penalty(make_engines: EngineFactory, drain: Drain) -> None:
    a, b = make_engines(2)
    data = _frame(a.identity, a.agent_id, b.agent_id, 9, Ping(1))
    b.receive(a.address, data, 1.0)
    b.receive(a.address, data, 1.1)
    events = drain(b)
    assert [r.reason for r in _of(events, MessageRejected)] == [Rejection.DUPLICATE]
    assert _of(events, ByzantineDetected) == [] and _of(events, ReputationChanged) == []
    assert b.ignored["duplicate_frame"] == 1 and b.registry.reputation(a.agent_id) == 1.0
    assert len(b.messages_to_send(1.1)) == 1  # one pong, for the one ping


def test_a_frame_overtaken_by_a_whole_window_costs_nothing(make_engines: EngineFactory, drain: Drain) -> None:
    a, b = make_engines(2, config=MeshConfig(replay_window=16))
    late = _frame(a.identity, a.agent_id, b.agent_id, 1, Ping(1))
    for n in range(2, 40):
        b.receive(a.address, _frame(a.identity, a.agent_id, b.agent_id, n, Ping(n)), 1.0)
    b.receive(a.address, late, 1.0)
    events = drain(b)
    assert [r.reason for r in _of(events, MessageRejected)] == [Rejection.DUPLICATE]
    assert b.registry.reputation(a.agent_id) == 1.0


def test_nonces_run_per_receiver_so_its_window_sees_every_frame(make_engines: EngineFactory) -> None:
    a, b, c = make_engines(3)
    for _ in range(3):
        a._send(b.agent_id, b.address, Ping(1))
        a._send(c.agent_id, c.address, Ping(1))
    nonces: dict[tuple[str, int], list[int]] = {}
    for addr, data in a.messages_to_send(1.0):
        nonces.setdefault(addr, []).append(decode(data).nonce)
    assert nonces == {b.address: [1, 2, 3], c.address: [1, 2, 3]}


def test_a_frame_addressed_to_another_agent_counts_as_replay(
    make_engines: EngineFactory, drain: Drain
) -> None:
    a, b, c = make_engines(3)
    stolen = _frame(a.identity, a.agent_id, c.agent_id, 1, Ping(1))
    b.receive(a.address, stolen, 1.0)
    assert [r.reason for r in _of(drain(b), MessageRejected)] == [Rejection.REPLAY]


def test_a_genuine_frame_resent_from_another_address_is_blamed_on_the_relay(
    make_engines: EngineFactory, drain: Drain
) -> None:
    a, b, mallory = make_engines(3)
    genuine = _frame(a.identity, a.agent_id, b.agent_id, 1, Ping(1))
    b.receive(mallory.address, genuine, 1.0)
    (det,) = _of(drain(b), ByzantineDetected)
    assert (det.peer_id, det.kind) == (mallory.agent_id, Offence.REPLAY)
    assert b.registry.reputation(a.agent_id) == 1.0


def test_impersonation_is_detected_and_blamed_on_the_impostor(
    make_engines: EngineFactory, drain: Drain
) -> None:
    a, b, mallory = make_engines(3)
    forged = _frame(mallory.identity, a.agent_id, b.agent_id, 1, Ping(1))
    b.receive(mallory.address, forged, 1.0)
    events = drain(b)
    (det,) = _of(events, ByzantineDetected)
    assert (det.peer_id, det.kind) == (mallory.agent_id, Offence.IMPERSONATION)
    assert b.registry.reputation(mallory.agent_id) < 0.5
    assert b.registry.reputation(a.agent_id) == 1.0


def test_joining_under_another_agents_id_is_impersonation(make_engines: EngineFactory, drain: Drain) -> None:
    a, b, mallory = make_engines(3)
    body = Join(mallory.record)
    b.receive(mallory.address, _frame(mallory.identity, a.agent_id, b.agent_id, 1, body), 1.0)
    assert [r.reason for r in _of(drain(b), MessageRejected)] == [Rejection.IMPERSONATION]


def test_a_forged_entry_rejects_the_whole_frame(make_engines: EngineFactory, drain: Drain) -> None:
    a, b, mallory = make_engines(3)
    good = mallory.identity.sign_entry(1, "fine", b"1")
    forged = Entry(a.agent_id, 5, "k", b"evil", bytes(64))
    push = Push(bytes(16), (good, forged))
    b.receive(mallory.address, _frame(mallory.identity, mallory.agent_id, b.agent_id, 1, push), 1.0)
    events = drain(b)
    assert [d.kind for d in _of(events, ByzantineDetected)] == [Offence.INVALID_SIGNATURE]
    assert b.state.get(mallory.agent_id, "fine") is None
    assert b.state.get(a.agent_id, "k") is None


def test_a_bad_envelope_signature_from_the_peer_itself_is_held_not_penalised(
    make_engines: EngineFactory, drain: Drain
) -> None:
    """From the peer's own address it may be signed by a key whose rotation was not announced yet:
    rejected for now and held, without penalty (a correct peer can send it)."""
    a, b = make_engines(2)
    data = bytearray(_frame(a.identity, a.agent_id, b.agent_id, 1, Ping(1)))
    data[-1] ^= 1
    b.receive(a.address, bytes(data), 1.0)
    events = drain(b)
    assert [r.reason for r in _of(events, MessageRejected)] == [Rejection.INVALID_SIGNATURE]
    assert _of(events, ByzantineDetected) == []
    assert b.registry.reputation(a.agent_id) == 1.0 and b.ignored["held_frame"] == 1


def test_garbage_bytes_are_malformed_and_blamed_on_the_sender(
    make_engines: EngineFactory, drain: Drain
) -> None:
    a, b = make_engines(2)
    b.receive(a.address, random.Random(1).randbytes(120), 1.0)
    (det,) = _of(drain(b), ByzantineDetected)
    assert (det.peer_id, det.kind) == (a.agent_id, Offence.MALFORMED)


def test_frames_from_strangers_are_unknown_senders(make_engines: EngineFactory, drain: Drain) -> None:
    (b,) = make_engines(1)
    stranger = Identity.generate(random.Random(99))
    b.receive(("127.0.0.1", 1), _frame(stranger, stranger.agent_id, b.agent_id, 1, Ping(1)), 1.0)
    events = drain(b)
    assert [r.reason for r in _of(events, MessageRejected)] == [Rejection.UNKNOWN_SENDER]
    assert [d.kind for d in _of(events, ByzantineDetected)] == [Offence.UNKNOWN_SENDER]


def test_a_stranger_is_let_in_only_once_it_answers_a_challenge_at_its_address(
    make_engines: EngineFactory, drain: Drain
) -> None:
    (b,) = make_engines(1)
    stranger = Identity.generate(random.Random(5))
    addr = ("127.0.0.1", 2)
    record = stranger.record(addr[0], addr[1], "eu", 1)
    b.receive(("10.9.9.9", 7), _frame(stranger, stranger.agent_id, bytes(8), 1, Join(record)), 1.0)
    assert _of(drain(b), PeerJoined) == [] and stranger.agent_id not in b.registry
    ((to, data),) = b.messages_to_send(1.0)
    challenge = decode(data).body
    assert to == addr and isinstance(challenge, Challenge) and challenge.record.agent == b.agent_id
    # a wrong token proves nothing
    wrong = Answer(challenge.token ^ 1, record)
    b.receive(addr, _frame(stranger, stranger.agent_id, b.agent_id, 2, wrong), 1.1)
    assert stranger.agent_id not in b.registry
    answer = Answer(challenge.token, record)
    b.receive(addr, _frame(stranger, stranger.agent_id, b.agent_id, 3, answer), 1.2)
    events = drain(b)
    assert [(j.peer_id, j.region) for j in _of(events, PeerJoined)] == [(stranger.agent_id, "eu")]
    b.receive(addr, _frame(stranger, stranger.agent_id, b.agent_id, 4, Ping(3)), 1.3)
    assert _of(drain(b), MessageRejected) == []


def test_joins_are_rate_limited_per_source(make_engines: EngineFactory, drain: Drain) -> None:
    (b,) = make_engines(1)
    source = ("10.0.0.66", 1)
    challenged = 0
    for i in range(20):
        sybil = Identity.generate(random.Random(100 + i))
        rec = sybil.record("10.0.1.1", 1000 + i, "", 1)
        b.receive(source, _frame(sybil, sybil.agent_id, bytes(8), 1, Join(rec)), 1.0 + i * 0.01)
        challenged += len(b.messages_to_send(1.0))
    assert challenged == 1
    assert b.ignored["join_limited"] == 19 and b.registry.reputation(bytes(8)) == 0.0


def test_flooding_is_rate_limited_by_the_engine_clock(make_engines: EngineFactory, drain: Drain) -> None:
    a, b = make_engines(2, config=MeshConfig(rate_per_second=100, burst=20))
    for n in range(30):
        b.receive(a.address, _frame(a.identity, a.agent_id, b.agent_id, n + 1, Ping(n)), 1.0)
    events = drain(b)
    reasons = [r.reason for r in _of(events, MessageRejected)]
    assert reasons.count(Rejection.RATE_LIMITED) == 10
    assert [d.kind for d in _of(events, ByzantineDetected)] == [Offence.RATE_LIMITED]  # once per episode
    assert b.registry.reputation(a.agent_id) == 0.0
    # after that the peer is simply ignored, even once the bucket refills
    b.receive(a.address, _frame(a.identity, a.agent_id, b.agent_id, 100, Ping(0)), 5.0)
    assert [r.reason for r in _of(drain(b), MessageRejected)] == [Rejection.LOW_REPUTATION]


def test_oversized_frames_are_rejected_unparsed(make_engines: EngineFactory, drain: Drain) -> None:
    a, b = make_engines(2, config=MeshConfig(max_message_bytes=512))
    b.receive(a.address, bytes(513), 1.0)
    assert [r.reason for r in _of(drain(b), MessageRejected)] == [Rejection.OVERSIZED]


def test_equivocation_is_proven_kept_and_gossiped(
    make_engines: EngineFactory, drain: Drain, deliver: Callable[..., int]
) -> None:
    a, b, c, mallory = make_engines(4)
    me = mallory.identity
    left, right = me.sign_entry(1, "k", b"left"), me.sign_entry(1, "k", b"right")
    b.receive(mallory.address, _frame(me, me.agent_id, b.agent_id, 1, Push(bytes(16), (left,))), 1.0)
    b.receive(mallory.address, _frame(me, me.agent_id, b.agent_id, 2, Push(bytes(16), (right,))), 1.0)
    (det,) = _of(drain(b), ByzantineDetected)
    assert (det.peer_id, det.kind) == (mallory.agent_id, Offence.EQUIVOCATION)
    assert (mallory.agent_id, 1) in b.evidence.proofs
    assert b.registry.reputation(mallory.agent_id) < 0.5
    # the next round carries the proof to the sampled peers, who verify it and blame mallory too
    b.handle_timer(10.0)
    b.handle_timer(20.0)
    deliver([a, b, c, mallory], 20.0)
    for other in (a, c):
        kinds = [(d.peer_id, d.kind) for d in _of(drain(other), ByzantineDetected)]
        assert (mallory.agent_id, Offence.EQUIVOCATION) in kinds
        assert other.registry.reputation(mallory.agent_id) < 0.5
        assert other.state.get(me.agent_id, "k") == b.state.get(me.agent_id, "k")


def test_silent_peers_are_pruned_and_reported(make_engines: EngineFactory, drain: Drain) -> None:
    a, b, c = make_engines(3, config=MeshConfig(stale_timeout=1.0, prune_every_rounds=1, round_interval=0.5))
    stranger = Identity.generate(random.Random(7))
    a.receive(("127.0.0.1", 9), _frame(stranger, stranger.agent_id, a.agent_id, 1, Ping(1)), 0.1)
    a.registry.touch(b.agent_id, 2.0)
    a.handle_timer(2.0)  # arms the timer
    a.handle_timer(3.0)
    left = [e.peer_id for e in _of(drain(a), PeerLeft)]
    assert left == [c.agent_id]
    assert b.agent_id in a.registry and c.agent_id not in a.registry
    assert ("127.0.0.1", 9) not in a._buckets
