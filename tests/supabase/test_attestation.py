"""The database's HMAC: RFC 2104 over core sha256() must equal pgcrypto and the RFC 4231 vectors."""

from __future__ import annotations

import hashlib
import hmac

import psycopg
import pytest

from app.local.stack import LocalStack

# RFC 4231 §4: (key, data, HMAC-SHA-256). Case 5 (truncated output) is left out on purpose.
RFC_4231 = [
    (b"\x0b" * 20, b"Hi There", "b0344c61d8db38535ca8afceaf0bf12b881dc200c9833da726e9376c2e32cff7"),
    (
        b"Jefe",
        b"what do ya want for nothing?",
        "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843",
    ),
    (
        b"\xaa" * 20,
        b"\xdd" * 50,
        "773ea91e36800e46854db8ebd09181a72959098b3ef8c122d9635514ced565fe",
    ),
    (
        bytes(range(1, 26)),
        b"\xcd" * 50,
        "82558a389a443c0ea4cc819899f2083a85f0faa3e578f8077a2e3ff46729665b",
    ),
    (
        b"\xaa" * 131,
        b"Test Using Larger Than Block-Size Key - Hash Key First",
        "60e431591ee0b67f0d8a26aacbf5b77f8e0bc6213728c5140546040f0ee37f54",
    ),
    (
        b"\xaa" * 131,
        b"This is a test using a larger than block-size key and a larger than block-size data. "
        b"The key needs to be hashed before being used by the HMAC algorithm.",
        "9b09ffa71b942fcb27635fbcd5b0e944bfdc63644f0713938a7f51535c3a35e2",
    ),
]


def _mac(conn: psycopg.Connection, fn: str, key: bytes, data: bytes) -> str:
    row = conn.execute(f"select encode({fn}(%s, %s), 'hex')", (data, key)).fetchone()  # noqa: S608
    assert row is not None
    return str(row[0])


@pytest.mark.parametrize(("key", "data", "expected"), RFC_4231)
def test_core_hmac_matches_rfc_4231_vectors(
    local_stack: LocalStack, key: bytes, data: bytes, expected: str
) -> None:
    with psycopg.connect(local_stack.pg.superuser_dsn) as conn:
        assert _mac(conn, "private.hmac_sha256_core", key, data) == expected
        assert _mac(conn, "private.hmac_sha256", key, data) == expected


def test_core_hmac_equals_python_hmac_for_every_key_length(local_stack: LocalStack) -> None:
    with psycopg.connect(local_stack.pg.superuser_dsn) as conn:
        for length in (0, 1, 31, 32, 63, 64, 65, 200):
            key = bytes((i * 7 + 3) % 256 for i in range(length))
            data = "turn ✓ \x01".encode() * length
            expected = hmac.new(key, data, hashlib.sha256).hexdigest()
            assert _mac(conn, "private.hmac_sha256_core", key, data) == expected


def test_attested_accepts_only_the_exact_kind_payload_and_key(local_stack: LocalStack) -> None:
    key = local_stack.keys.attestation_key
    payload = '{"turn_id":"x"}'
    good = hmac.new(key, b"chat_begin\n" + payload.encode(), hashlib.sha256).hexdigest()
    cases = [
        ("chat_begin", payload, good, True),
        ("chat_finish", payload, good, False),  # a MAC for one RPC is useless for another
        ("chat_begin", payload + " ", good, False),
        ("chat_begin", payload, good.upper(), False),
        ("chat_begin", payload, "0" * 64, False),
        ("chat_begin", payload, "", False),
        ("chat_begin", payload, None, False),
    ]
    with psycopg.connect(local_stack.pg.superuser_dsn) as conn:
        for kind, data, mac, expected in cases:
            row = conn.execute("select private.attested(%s, %s, %s)", (kind, data, mac)).fetchone()
            assert row == (expected,), (kind, data, mac)
