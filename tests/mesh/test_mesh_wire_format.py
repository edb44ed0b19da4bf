"""Wire format: round trips, determinism, limits, and arbitrary bytes only ever raise ProtocolError."""

from __future__ import annotations

import dataclasses
import random

import msgpack
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from nacl.signing import SigningKey

from knhk_mesh.core.errors import ProtocolError
from knhk_mesh.core.messages import (
    Answer,
    Challenge,
    Evidence,
    Join,
    LeafSummary,
    Membership,
    NodeHashes,
    Ping,
    Pong,
    Push,
    SyncReply,
    SyncRequest,
)
from knhk_mesh.core.security import Identity, verify, verify_entry, verify_record
from knhk_mesh.core.wire import (
    MAX_MESSAGE_BYTES,
    PROTOCOL_VERSION,
    decode,
    encode_signed_part,
    envelope_message,
    frame,
)

ALICE = Identity.generate(random.Random(1))
BOB = Identity.generate(random.Random(2))


def _bodies() -> list[object]:
    e1 = ALICE.sign_entry(1, "k", b"v1")
    e2 = ALICE.sign_entry(1, "k", b"v2")
    alice = ALICE.record("127.0.0.1", 4000, "eu-west", 1)
    bob = BOB.rotate(SigningKey(bytes(range(32)))).record("::1", 5, "", 9)
    return [
        Push(bytes(16), (e1,)),
        SyncRequest(bytes(16), ((0, 0), (1, 15)), ((2, 255),), (LeafSummary(4095, bytes(16)),)),
        SyncReply(bytes(16), (NodeHashes(0, 0, bytes(256)),), (e1, e2), False, (alice,)),
        Join(alice),
        Membership((alice, bob)),
        Ping(7),
        Pong(7),
        Evidence(e1, e2),
        Challenge(2**63, alice),
        Answer(5, bob),
    ]


@pytest.mark.parametrize("body", _bodies(), ids=lambda b: type(b).__name__)
def test_every_message_type_round_trips_with_a_verifiable_signature(body: object) -> None:
    signed = encode_signed_part(ALICE.agent_id, BOB.agent_id, 42, body)  # type: ignore[arg-type]
    data = frame(signed, ALICE.sign(envelope_message(signed)))
    env = decode(data)
    assert env.body == body
    assert (env.sender, env.recipient, env.nonce) == (ALICE.agent_id, BOB.agent_id, 42)
    assert verify(ALICE.public_key, envelope_message(env.signed), env.signature)
    assert not verify(BOB.public_key, envelope_message(env.signed), env.signature)


def test_encoding_is_deterministic_so_signatures_cover_stable_bytes() -> None:
    for body in _bodies():
        a = encode_signed_part(ALICE.agent_id, BOB.agent_id, 1, body)  # type: ignore[arg-type]
        b = encode_signed_part(ALICE.agent_id, BOB.agent_id, 1, body)  # type: ignore[arg-type]
        assert a == b


def test_entries_survive_relay_with_their_original_signature() -> None:
    e = ALICE.sign_entry(3, "key", b"value")
    signed = encode_signed_part(BOB.agent_id, ALICE.agent_id, 1, Push(bytes(16), (e,)))
    relayed = decode(frame(signed, BOB.sign(envelope_message(signed)))).body
    assert isinstance(relayed, Push)
    assert verify_entry(ALICE.public_key, relayed.entries[0])
    assert not verify_entry(BOB.public_key, relayed.entries[0])


def test_a_decoded_entry_is_the_sent_entry_in_every_field() -> None:
    """Decoding builds entries without the dataclass __init__: every field, the signed bytes and the
    fingerprint (the Merkle leaf and tie-break) must still be the constructor's."""
    sent = [
        ALICE.sign_entry(
            v,
            f"k{v}",
            bytes(v),
        )
        for v in range(1, 6)
    ]
    sent.append(ALICE.rotate(SigningKey(bytes(range(32)))).sign_entry(9, "", b""))
    signed = encode_signed_part(ALICE.agent_id, BOB.agent_id, 1, Push(bytes(16), tuple(sent)))
    body = decode(frame(signed, ALICE.sign(envelope_message(signed)))).body
    assert isinstance(body, Push)
    for got, want in zip(body.entries, sent, strict=True):
        assert got is not want and got == want and hash(got) == hash(want) and repr(got) == repr(want)
        assert [getattr(got, f.name) for f in dataclasses.fields(got)] == [
            getattr(want, f.name) for f in dataclasses.fields(want)
        ]
        with pytest.raises(dataclasses.FrozenInstanceError):
            got.version = 0  # type: ignore[misc]


def test_oversized_frames_are_refused_before_parsing() -> None:
    with pytest.raises(ProtocolError) as info:
        decode(bytes(MAX_MESSAGE_BYTES + 1))
    assert info.value.reason == "oversized"


@pytest.mark.parametrize(
    ("payload", "reason"),
    [
        ([1, 1, bytes(8), bytes(8), 1, []], "unsupported_version"),
        ([2, 99, bytes(8), bytes(8), 1, []], "unknown_type"),
        ([2, 6, bytes(7), bytes(8), 1, [1]], "bad_field"),
        ([2, 6, bytes(8), bytes(8), -1, [1]], "bad_field"),
        ([2, 6, bytes(8), bytes(8), 1, [True]], "bad_field"),
        ([2, 6, bytes(8), bytes(8), 1], "bad_field"),
        ([2, 2, bytes(8), bytes(8), 1, [bytes(16), [[3, 0]], [], []]], "bad_field"),  # a leaf has no children
        ([2, 2, bytes(8), bytes(8), 1, [bytes(16), [[1, 16]], [], []]], "bad_field"),  # no 17th child
        ([2, 2, bytes(8), bytes(8), 1, [bytes(16), [], [], [[0, bytes(7)]]]], "bad_field"),
    ],
)
def test_structurally_wrong_frames_say_what_is_wrong(payload: list[object], reason: str) -> None:
    with pytest.raises(ProtocolError) as info:
        decode(msgpack.packb(payload, use_bin_type=True) + bytes(64))
    assert info.value.reason == reason


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=600))
def test_arbitrary_bytes_raise_only_protocol_error(data: bytes) -> None:
    try:
        decode(data)
    except ProtocolError as exc:
        assert exc.reason


_leaf = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**63), max_value=2**64 - 1),
    st.floats(),
    st.binary(max_size=40),
    st.text(max_size=20),
)
_tree = st.recursive(
    _leaf,
    lambda c: st.lists(c, max_size=6) | st.dictionaries(st.text(max_size=5), c, max_size=4),
    max_leaves=30,
)


@settings(max_examples=300, deadline=None)
@given(st.integers(min_value=1, max_value=10), _tree, st.binary(min_size=64, max_size=64))
def test_wellformed_msgpack_with_wrong_shapes_raises_only_protocol_error(
    mtype: int, body: object, sig: bytes
) -> None:
    data = msgpack.packb([PROTOCOL_VERSION, mtype, bytes(8), bytes(8), 5, body], use_bin_type=True) + sig
    try:
        decode(data)
    except ProtocolError as exc:
        assert exc.reason


def test_a_record_is_signed_by_its_member_and_a_rotation_by_the_previous_key() -> None:
    rotated = ALICE.rotate(SigningKey(bytes(32)))
    assert rotated.agent_id == ALICE.agent_id and rotated.public_key != ALICE.public_key
    record = rotated.record("10.0.0.1", 7000, "eu", 3)
    assert verify_record(record) and record.public_key == rotated.public_key
    assert record.keys == (ALICE.public_key, rotated.public_key)
    moved = dataclasses.replace(record, host="10.6.6.6")
    assert not verify_record(moved)  # another address under the member's signature
    forged_chain = BOB.rotate(SigningKey(bytes(32))).record("10.0.0.1", 7000, "eu", 3)
    stolen = dataclasses.replace(
        forged_chain, agent=ALICE.agent_id, genesis_key=ALICE.public_key, signature=forged_chain.signature
    )
    assert not verify_record(stolen)  # a rotation not signed by ALICE's genesis key
    entry = rotated.sign_entry(1, "k", b"v")
    assert entry.epoch == 1 and verify_entry(rotated.public_key, entry)
    assert not verify_entry(ALICE.public_key, entry)


def test_verify_agrees_with_pynacl_on_good_forged_and_malformed_inputs() -> None:
    """`verify` calls libsodium below PyNaCl's VerifyKey: every verdict must be VerifyKey's."""
    from nacl.exceptions import CryptoError
    from nacl.signing import VerifyKey

    def pynacl(key: object, message: object, signature: object) -> bool:
        try:
            VerifyKey(key).verify(message, signature)  # type: ignore[arg-type]
        except (CryptoError, ValueError, TypeError):
            return False
        return True

    rng = random.Random(9)
    key = SigningKey(rng.randbytes(32))
    public = bytes(key.verify_key)
    other = bytes(SigningKey(rng.randbytes(32)).verify_key)
    cases: list[tuple[object, object, object]] = []
    for size in (0, 1, 63, 64, 65, 1000, MAX_MESSAGE_BYTES):
        message = rng.randbytes(size)
        signature = key.sign(message).signature
        flipped = bytes([signature[0] ^ 1]) + signature[1:]
        cases += [
            (public, message, signature),
            (other, message, signature),
            (public, message, flipped),
            (public, message + b"x", signature),
            (public, message, signature[:63]),
            (public, message, signature + b"\0"),
            (public[:31], message, signature),
            (public, message, bytes(64)),
            (bytes(32), message, signature),
        ]
    message = b"typed"
    signature = key.sign(message).signature
    cases += [
        (public, message, bytearray(signature)),
        (bytearray(public), message, signature),
        (public, memoryview(message), signature),
        (public, "typed", signature),
        (None, message, signature),
        (public, message, None),
    ]
    verdicts = [verify(k, m, s) for k, m, s in cases]  # type: ignore[arg-type]
    assert verdicts == [pynacl(k, m, s) for k, m, s in cases]
    assert sum(verdicts) == 8  # each size's own signature, and the memoryview message


def _entry_verdict(decoder: object, fields: object) -> object:
    try:
        entry = decoder(fields)  # type: ignore[operator]
    except ProtocolError as exc:
        return (exc.reason, exc.detail)
    return (entry, entry.signed, entry.fingerprint)


def test_the_fast_entry_decoder_accepts_and_refuses_exactly_what_the_checked_one_does() -> None:
    from knhk_mesh.core.wire import MAX_KEY_CHARS, MAX_ROTATIONS, U64_MAX, _checked_entry, _entry

    good: list[object] = [b"a" * 8, 0, 1, "k", b"v", b"s" * 64]
    variants: list[object] = [good, [*good[:5]], [*good, b""], tuple(good), "entry", None]
    replacements: dict[int, list[object]] = {
        0: [b"a" * 7, b"a" * 9, bytearray(b"a" * 8), "a" * 8, None],
        1: [MAX_ROTATIONS, MAX_ROTATIONS + 1, -1, True, 1.0, None],
        2: [0, 2, U64_MAX, U64_MAX + 1, -1, False, "1"],
        3: ["", "k" * MAX_KEY_CHARS, "k" * (MAX_KEY_CHARS + 1), b"k", None],
        4: [b"", b"v" * MAX_MESSAGE_BYTES, b"v" * (MAX_MESSAGE_BYTES + 1), "v", bytearray(b"v")],
        5: [b"s" * 63, b"s" * 65, "s" * 64, None],
    }
    for i, values in replacements.items():
        for value in values:
            fields = list(good)
            fields[i] = value
            variants.append(fields)
    accepted = 0
    for fields in variants:
        fast, checked = _entry_verdict(_entry, fields), _entry_verdict(_checked_entry, fields)
        assert fast == checked, fields
        accepted += isinstance(fast, tuple) and len(fast) == 3
    assert accepted == 8  # good, and the in-range boundaries


def test_entry_signed_bytes_are_msgpack_of_the_fields_in_every_thread() -> None:
    """The per-thread Packer gives exactly `msgpack.packb`'s bytes, also after a failed pack and when
    threads pack at once."""
    import threading

    from knhk_mesh.core.messages import ENTRY_DOMAIN, entry_signed_bytes

    def check(seed: int, failures: list[BaseException]) -> None:
        rng = random.Random(seed)
        try:
            for _ in range(300):
                args = (
                    rng.randbytes(8),
                    rng.randrange(17),
                    rng.randrange(1, 2**64),
                    "k" * rng.randrange(300),
                    rng.randbytes(rng.randrange(3000)),
                )
                want = ENTRY_DOMAIN + msgpack.packb(list(args), use_bin_type=True)
                assert entry_signed_bytes(*args) == want
                with pytest.raises(TypeError):
                    entry_signed_bytes(args[0], 0, 1, "k", object())  # type: ignore[arg-type]
        except BaseException as exc:
            failures.append(exc)

    failures: list[BaseException] = []
    threads = [threading.Thread(target=check, args=(seed, failures)) for seed in range(4)]
    for t in threads:
        t.start()
    check(99, failures)
    for t in threads:
        t.join(timeout=60)
    assert not failures and not any(t.is_alive() for t in threads)
