"""Pure pieces of the Auth stand-in: GoTrue's input checks and its JSON formatting."""

from __future__ import annotations

import datetime as dt

import pytest
from starlette.requests import Request

from app.local.auth.errors import AuthApiError, requested_version
from app.local.auth.params import parse_ban_duration, validate_email
from app.local.auth.users import merge_metadata, rfc3339


@pytest.mark.parametrize(
    ("text", "seconds"),
    [("1h", 3600), ("1h30m", 5400), ("1.5s", 1.5), ("250ms", 0.25), ("0", 0), ("-2m", -120)],
)
def test_parse_ban_duration_reads_go_durations(text: str, seconds: float) -> None:
    assert parse_ban_duration(text) == dt.timedelta(seconds=seconds)


def test_parse_ban_duration_none_lifts_the_ban() -> None:
    assert parse_ban_duration("none") is None


@pytest.mark.parametrize("text", ["", "1", "h", "1d", "1h ", "forever", "1h-2m"])
def test_parse_ban_duration_rejects_what_go_rejects(text: str) -> None:
    with pytest.raises(AuthApiError) as err:
        parse_ban_duration(text)

    assert (err.value.status, err.value.code) == (400, "validation_failed")


def test_validate_email_trims_and_lower_cases() -> None:
    assert validate_email("  Ada@Example.COM ") == "ada@example.com"


@pytest.mark.parametrize(
    "email", ["", "no-at-sign", "a@b@c", "a@-b.com", "a b@c.com", "x" * 251 + "@a.io"]
)
def test_validate_email_refuses_malformed_addresses(email: str) -> None:
    with pytest.raises(AuthApiError) as err:
        validate_email(email)

    assert err.value.code == "validation_failed"


def test_rfc3339_is_utc_with_trimmed_fraction_like_go() -> None:
    plus_two = dt.timezone(dt.timedelta(hours=2))

    assert rfc3339(dt.datetime(2026, 1, 2, 5, 4, 5, 120000, tzinfo=plus_two)) == (
        "2026-01-02T03:04:05.12Z"
    )
    assert rfc3339(dt.datetime(2026, 1, 2, 3, 4, 5, tzinfo=dt.UTC)) == "2026-01-02T03:04:05Z"


def test_merge_metadata_sets_keys_and_null_removes_them() -> None:
    assert merge_metadata({"a": 1, "b": 2}, {"b": None, "c": {"d": 1}}) == {"a": 1, "c": {"d": 1}}


@pytest.mark.parametrize(
    ("header", "expected"),
    [
        (None, None),
        ("2024-01-01", dt.date(2024, 1, 1)),
        ("2030-06-01", dt.date(2024, 1, 1)),
        ("2023-12-31", None),
        ("not-a-date", None),
    ],
)
def test_requested_version_picks_the_closest_known_version(
    header: str | None, expected: dt.date | None
) -> None:
    headers = [(b"x-supabase-api-version", header.encode())] if header else []
    request = Request({"type": "http", "method": "GET", "path": "/", "headers": headers})

    assert requested_version(request) == expected
