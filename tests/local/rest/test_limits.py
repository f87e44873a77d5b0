"""Hardening of the REST stand-in: nesting bounds, the body cap, and one-line logs.

Each case was a 500 (RecursionError, ~144 KB of traceback) or an unbounded read before.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from app.local.rest import table_route as rest_api
from app.local.rest.api import RestApp
from app.local.rest.limits import MAX_BODY_BYTES
from app.local.stack import LocalStack
from tests.local.rest_support import FIXTURE_SQL, ServedDatabase, served_database


@pytest.fixture(scope="module")
def db(local_stack: LocalStack) -> Iterator[ServedDatabase]:
    with served_database(local_stack, FIXTURE_SQL) as served:
        yield served


@pytest.fixture
def rest(local_stack: LocalStack, db: ServedDatabase) -> Iterator[httpx.Client]:
    headers = {"apikey": local_stack.keys.anon_key}
    with httpx.Client(base_url=f"{db.url}/rest/v1", headers=headers, timeout=60) as client:
        yield client


def _quiet(caplog: pytest.LogCaptureFixture) -> None:
    """No traceback, and no record longer than one line."""
    for record in caplog.records:
        assert record.exc_info is None, record.getMessage()
        assert "\n" not in record.getMessage()


def test_limits_logic_tree_300_deep_is_a_400(
    rest: httpx.Client, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    deep = "(" + "or(" * 300 + "qty.eq.1" + ")" * 301
    res = rest.get("/items", params={"or": deep})
    assert res.status_code == 400
    body = res.json()
    assert body["code"] == "PGRST100"
    assert set(body) == {"code", "message", "details", "hint"}
    embedded = rest.get("/items", params={"select": "id," + "a(" * 300 + "b" + ")" * 300})
    assert (embedded.status_code, embedded.json()["code"]) == (400, "PGRST100")
    _quiet(caplog)


def test_limits_rpc_json_body_2000_deep_is_a_400(
    rest: httpx.Client, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    deep = "[" * 2000 + "]" * 2000
    res = rest.post("/rpc/echo", content=deep, headers={"Content-Type": "application/json"})
    assert res.status_code == 400
    assert res.json()["code"] == "PGRST102"
    named = '{"a":' * 2000 + "1" + "}" * 2000
    res = rest.post("/items", content=named, headers={"Content-Type": "application/json"})
    assert (res.status_code, res.json()["code"]) == (400, "PGRST102")
    # Just inside orjson's bound: PostgreSQL parses it, nothing breaks.
    inside = "[" * 1000 + "]" * 1000
    ok = rest.post("/rpc/echo", content=inside, headers={"Content-Type": "application/json"})
    assert ok.status_code < 500, ok.text
    _quiet(caplog)


def test_limits_body_over_the_cap_is_413_in_postgrest_shape(rest: httpx.Client) -> None:
    big = b'{"name": "' + b"x" * (MAX_BODY_BYTES + 10) + b'"}'
    res = rest.post("/items", content=big, headers={"Content-Type": "application/json"})
    assert res.status_code == 413
    body = res.json()
    assert set(body) == {"code", "message", "details", "hint"}
    assert body["code"] == "PGRST413"
    rpc = rest.post("/rpc/echo", content=big, headers={"Content-Type": "application/json"})
    assert rpc.status_code == 413
    small = rest.post("/rpc/echo", json={"k": "x" * 1000})
    assert small.status_code == 200


@pytest.mark.anyio
async def test_limits_body_cap_stops_reading_a_stream_early(db: ServedDatabase) -> None:
    """A body without Content-Length, 1 MiB per chunk, endless: the app stops at the cap."""
    app = RestApp(db.ctx)
    chunk = b"x" * (1024 * 1024)
    pulled = 0
    sent: list[dict[str, Any]] = []

    async def receive() -> dict[str, Any]:
        nonlocal pulled
        pulled += 1
        assert pulled < 1000, "the app kept reading"
        return {"type": "http.request", "body": chunk, "more_body": True}

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    scope = {
        "type": "http",
        "method": "POST",
        "path": "/items",
        "root_path": "",
        "query_string": b"",
        "headers": [(b"content-type", b"application/json")],
    }
    await app(scope, receive, send)
    assert sent[0]["status"] == 413
    assert pulled <= MAX_BODY_BYTES // len(chunk) + 1


def test_limits_unexpected_recursion_is_one_line_and_a_400(
    rest: httpx.Client, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    def explode(*_: object) -> None:
        raise RecursionError("maximum recursion depth exceeded")

    monkeypatch.setattr(rest_api, "parse_query", explode)
    caplog.set_level(logging.INFO)
    res = rest.get("/items")
    assert res.status_code == 400
    assert res.json()["code"] == "PGRST100"
    _quiet(caplog)
    assert any("nested too deeply" in r.getMessage() for r in caplog.records)
