"""Status codes, headers and error bodies of the PostgREST stand-in, seen with raw httpx.

supabase-py hides most of these (statuses, Content-Range, Preference-Applied), so they are checked
on the wire against the wire reference §2.1–2.7.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from app.local.context import StackContext
from app.local.keys import LocalKeys
from app.local.rest.api import create_app as create_rest_app
from app.local.server import ServerThread
from app.local.stack import LocalStack
from tests.local.rest_support import FIXTURE_SQL, ServedDatabase, User, make_user, served_database

JSON = "application/json; charset=utf-8"
OBJECT = "application/vnd.pgrst.object+json"


@pytest.fixture
def rest(stack_server: ServerThread, local_stack: LocalStack) -> Iterator[httpx.Client]:
    with httpx.Client(
        base_url=f"{stack_server.url}/rest/v1", headers={"apikey": local_stack.keys.anon_key}
    ) as client:
        yield client


@pytest.fixture
def alice(local_stack: LocalStack, rest: httpx.Client) -> User:
    """A user with three conversations titled a, b, c."""
    user = make_user(local_stack)
    res = rest.post("/conversations", json=[{"title": t} for t in "abc"], headers=user.bearer)
    assert res.status_code == 201
    return user


def _error(res: httpx.Response, status: int, code: str) -> dict[str, object]:
    assert res.status_code == status, res.text
    assert res.headers["content-type"] == JSON
    body: dict[str, object] = res.json()
    assert set(body) == {"code", "message", "details", "hint"}
    assert body["code"] == code
    return body


def test_get_returns_json_array_with_content_range(rest: httpx.Client, alice: User) -> None:
    res = rest.get(
        "/conversations", params={"select": "title"}, headers=alice.bearer | {"Accept": "*/*"}
    )
    assert res.status_code == 200
    assert res.headers["content-type"] == JSON
    assert res.headers["content-range"] == "0-2/*"
    assert sorted(r["title"] for r in res.json()) == ["a", "b", "c"]


@pytest.mark.parametrize(
    ("params", "range_header", "status", "content_range"),
    [
        ({"limit": "2"}, None, 206, "0-1/3"),
        ({}, "1-2", 206, "1-2/3"),
        ({}, "1-", 206, "1-2/3"),
        ({}, None, 200, "0-2/3"),
        ({"offset": "3"}, None, 206, "*/3"),
        ({"title": "eq.zzz"}, None, 200, "*/0"),
    ],
)
def test_count_exact_sets_total_and_206_for_a_partial_page(
    rest: httpx.Client,
    alice: User,
    params: dict[str, str],
    range_header: str | None,
    status: int,
    content_range: str,
) -> None:
    headers = alice.bearer | {"Prefer": "count=exact"}
    if range_header:
        headers["Range"] = range_header
    res = rest.get("/conversations", params={"order": "title"} | params, headers=headers)
    assert res.status_code == status
    assert res.headers["content-range"] == content_range
    assert res.headers["preference-applied"] == "count=exact"


def test_empty_result_without_count_is_star_star(rest: httpx.Client, alice: User) -> None:
    res = rest.get("/conversations", params={"title": "eq.none"}, headers=alice.bearer)
    assert (res.status_code, res.headers["content-range"], res.json()) == (200, "*/*", [])


def test_offset_past_the_total_is_416_pgrst103(rest: httpx.Client, alice: User) -> None:
    res = rest.get(
        "/conversations", params={"offset": "10"}, headers=alice.bearer | {"Prefer": "count=exact"}
    )
    body = _error(res, 416, "PGRST103")
    assert body["details"] == "An offset of 10 was requested, but there are only 3 rows."
    _error(rest.get("/conversations", headers=alice.bearer | {"Range": "5-2"}), 416, "PGRST103")


def test_head_has_headers_and_no_body(rest: httpx.Client, alice: User) -> None:
    res = rest.head("/conversations", headers=alice.bearer | {"Prefer": "count=exact"})
    assert (res.status_code, res.headers["content-range"], res.content) == (200, "0-2/3", b"")


def test_object_accept_returns_bare_object_or_406(rest: httpx.Client, alice: User) -> None:
    one = rest.get(
        "/conversations",
        params={"select": "title", "title": "eq.b"},
        headers=alice.bearer | {"Accept": OBJECT},
    )
    assert one.status_code == 200
    assert one.headers["content-type"] == f"{OBJECT}; charset=utf-8"
    assert one.json() == {"title": "b"}
    for params, n in (({"title": "eq.none"}, 0), ({}, 3)):
        res = rest.get("/conversations", params=params, headers=alice.bearer | {"Accept": OBJECT})
        body = _error(res, 406, "PGRST116")
        assert body["details"] == f"The result contains {n} rows"


def test_object_accept_rolls_back_a_write_of_many_rows(rest: httpx.Client, alice: User) -> None:
    headers = alice.bearer | {"Accept": OBJECT, "Prefer": "return=representation"}
    _error(
        rest.post("/conversations", json=[{"title": "x"}, {"title": "y"}], headers=headers),
        406,
        "PGRST116",
    )
    _error(
        rest.patch(
            "/conversations", params={"title": "in.(a,b)"}, json={"title": "z"}, headers=headers
        ),
        406,
        "PGRST116",
    )
    titles = rest.get(
        "/conversations", params={"select": "title", "order": "title"}, headers=alice.bearer
    ).json()
    assert titles == [{"title": "a"}, {"title": "b"}, {"title": "c"}]


@pytest.mark.parametrize("method", ["PATCH", "DELETE"])
@pytest.mark.parametrize("params", [{}, {"limit": "1"}, {"select": "id", "order": "title"}])
def test_unfiltered_patch_or_delete_is_refused_like_safeupdate(
    rest: httpx.Client, alice: User, method: str, params: dict[str, str]
) -> None:
    res = rest.request(
        method, "/conversations", params=params, json={"title": "gone"}, headers=alice.bearer
    )
    body = _error(res, 400, "21000")
    verb = "UPDATE" if method == "PATCH" else "DELETE"
    assert body["message"] == f"{verb} requires a WHERE clause"
    left = rest.get("/conversations", params={"title": "in.(a,b,c)"}, headers=alice.bearer)
    assert len(left.json()) == 3


def test_patch_with_order_and_limit_changes_only_that_many_rows(
    rest: httpx.Client, alice: User
) -> None:
    res = rest.patch(
        "/conversations",
        params={"title": "in.(a,b,c)", "order": "title.desc", "limit": "1"},
        json={"title": "top"},
        headers=alice.bearer,
    )
    assert (res.status_code, res.headers["content-range"]) == (204, "0-0/*")
    titles = rest.get(
        "/conversations", params={"select": "title", "order": "title"}, headers=alice.bearer
    ).json()
    assert [t["title"] for t in titles] == ["a", "b", "top"]


def test_post_defaults_to_return_minimal(rest: httpx.Client, alice: User) -> None:
    res = rest.post("/conversations", json={"title": "m"}, headers=alice.bearer)
    assert (res.status_code, res.content, res.headers["content-range"]) == (201, b"", "*/*")
    assert "preference-applied" not in res.headers


def test_post_representation_and_headers_only(rest: httpx.Client, alice: User) -> None:
    rep = rest.post(
        "/conversations",
        json={"title": "r"},
        headers=alice.bearer | {"Prefer": "return=representation,count=exact"},
    )
    assert rep.status_code == 201
    assert rep.headers["preference-applied"] == "return=representation, count=exact"
    assert rep.headers["content-range"] == "*/1"
    assert rep.json()[0]["title"] == "r"
    loc = rest.post(
        "/conversations",
        json={"title": "h"},
        headers=alice.bearer | {"Prefer": "return=headers-only"},
    )
    assert (loc.status_code, loc.content) == (201, b"")
    assert loc.headers["location"].startswith("/conversations?id=eq.")


def test_patch_and_delete_statuses_follow_return_preference(
    rest: httpx.Client, alice: User
) -> None:
    minimal = rest.patch(
        "/conversations", params={"title": "eq.a"}, json={"title": "a2"}, headers=alice.bearer
    )
    assert (minimal.status_code, minimal.content) == (204, b"")
    rep = rest.delete(
        "/conversations",
        params={"title": "eq.a2"},
        headers=alice.bearer | {"Prefer": "return=representation,count=exact"},
    )
    assert (rep.status_code, rep.headers["content-range"]) == (200, "0-0/1")
    assert rep.json()[0]["title"] == "a2"


def test_strict_handling_refuses_unknown_preferences_and_max_affected(
    rest: httpx.Client, alice: User
) -> None:
    _error(
        rest.get("/conversations", headers=alice.bearer | {"Prefer": "handling=strict, x=y"}),
        400,
        "PGRST122",
    )
    res = rest.delete(
        "/conversations",
        params={"title": "in.(a,b)"},
        headers=alice.bearer | {"Prefer": "handling=strict, max-affected=1"},
    )
    _error(res, 400, "PGRST124")
    assert len(rest.get("/conversations", headers=alice.bearer).json()) == 3


@pytest.mark.parametrize(
    ("method", "path", "params", "body", "status", "code"),
    [
        ("GET", "/conversations", {"title": "foo.bar"}, None, 400, "PGRST100"),
        ("GET", "/conversations", {"title": "eq"}, None, 400, "PGRST100"),
        ("GET", "/conversations", {"select": "id,,title"}, None, 400, "PGRST100"),
        ("GET", "/conversations", {"order": "title.sideways"}, None, 400, "PGRST100"),
        ("GET", "/conversations", {"limit": "ten"}, None, 400, "PGRST100"),
        ("GET", "/conversations", {"or": "(title.eq.a"}, None, 400, "PGRST100"),
        ("GET", "/conversations", {"select": "nope"}, None, 400, "42703"),
        ("GET", "/conversations", {"nope": "eq.1"}, None, 400, "42703"),
        ("GET", "/conversations", {"order": "nope"}, None, 400, "42703"),
        ("GET", "/conversations", {"id": "eq.not-a-uuid"}, None, 400, "22P02"),
        ("GET", "/conversations", {"select": "id,nothing(*)"}, None, 400, "PGRST200"),
        ("GET", "/conversations", {"messages.order": "id"}, None, 400, "PGRST108"),
        ("GET", "/conversatons", {}, None, 404, "PGRST205"),
        ("GET", "/a/b", {}, None, 404, "PGRST125"),
        ("PUT", "/conversations", {}, b"{}", 405, "PGRST105"),
        ("TRACE", "/conversations", {}, None, 405, "PGRST117"),
        ("POST", "/conversations", {}, b"{not json", 400, "PGRST102"),
        ("POST", "/conversations", {}, b"", 400, "PGRST102"),
        ("POST", "/conversations", {}, b'"a string"', 400, "PGRST102"),
        ("POST", "/conversations", {"columns": "title,nope"}, b"[{}]", 400, "PGRST204"),
        ("POST", "/conversations", {}, b'{"nope": 1}', 400, "PGRST204"),
        ("POST", "/conversations", {}, b'[{"title": "a"}, {"user_id": null}]', 400, "PGRST102"),
        ("POST", "/conversations", {}, b'{"title": "' + b"x" * 600 + b'"}', 400, "23514"),
        (
            "POST",
            "/messages",
            {},
            b'{"conversation_id": "'
            + str(uuid.uuid4()).encode()
            + b'", "role": "user", "content": "hi"}',
            403,
            "42501",
        ),
    ],
)
def test_malformed_or_refused_requests_get_postgrest_errors(
    rest: httpx.Client,
    alice: User,
    method: str,
    path: str,
    params: dict[str, str],
    body: bytes | None,
    status: int,
    code: str,
) -> None:
    res = rest.request(method, path, params=params, content=body, headers=alice.bearer)
    _error(res, status, code)


def test_unknown_table_error_hints_at_a_close_name(rest: httpx.Client, alice: User) -> None:
    body = _error(rest.get("/conversatons", headers=alice.bearer), 404, "PGRST205")
    assert body["message"] == "Could not find the table 'public.conversatons' in the schema cache"
    assert body["hint"] == "Perhaps you meant the table 'public.conversations'"


def test_profiles_and_media_types(rest: httpx.Client, alice: User) -> None:
    ok = rest.get("/conversations", headers=alice.bearer | {"Accept-Profile": "public"})
    assert ok.headers["content-profile"] == "public"
    _error(
        rest.get("/conversations", headers=alice.bearer | {"Accept-Profile": "auth"}),
        406,
        "PGRST106",
    )
    _error(
        rest.post("/conversations", json={}, headers=alice.bearer | {"Content-Profile": "x"}),
        406,
        "PGRST106",
    )
    _error(
        rest.get("/conversations", headers=alice.bearer | {"Accept": "text/html"}), 406, "PGRST107"
    )


def test_service_foreign_key_and_unique_violations_are_409(
    rest: httpx.Client, local_stack: LocalStack, alice: User
) -> None:
    service = {"Authorization": f"Bearer {local_stack.keys.service_role_key}"}
    missing_conv = {
        "conversation_id": str(uuid.uuid4()),
        "user_id": alice.id,
        "role": "user",
        "content": "hi",
    }
    _error(rest.post("/messages", json=missing_conv, headers=service), 409, "23503")
    conv_id = str(uuid.uuid4())
    row = {"id": conv_id, "user_id": alice.id, "title": "dup"}
    assert rest.post("/conversations", json=row, headers=service).status_code == 201
    body = _error(rest.post("/conversations", json=row, headers=service), 409, "23505")
    assert body["details"] == f"Key (id)=({conv_id}) already exists."


def _token(local_stack: LocalStack, **claims: object) -> dict[str, str]:
    now = int(time.time())
    base = {"sub": str(uuid.uuid4()), "role": "authenticated", "iat": now, "exp": now + 60}
    return {"Authorization": f"Bearer {local_stack.keys.sign_access_token(base | claims)}"}


def test_bad_or_expired_jwt_is_401_with_www_authenticate(
    rest: httpx.Client, local_stack: LocalStack
) -> None:
    garbage = rest.get("/conversations", headers={"Authorization": "Bearer not.a.jwt"})
    body = _error(garbage, 401, "PGRST301")
    assert garbage.headers["www-authenticate"].startswith('Bearer error="invalid_token"')
    assert body["message"]
    now = int(time.time())
    expired = rest.get("/conversations", headers=_token(local_stack, iat=now - 200, exp=now - 60))
    assert _error(expired, 401, "PGRST303")["message"] == "JWT expired"
    assert 'error_description="JWT expired"' in expired.headers["www-authenticate"]
    within_leeway = rest.get("/conversations", headers=_token(local_stack, exp=now - 10))
    assert within_leeway.status_code == 200
    unknown_role = rest.get("/conversations", headers=_token(local_stack, role="nobody"))
    _error(unknown_role, 401, "22023")
    # Authentication comes before parsing, like PostgREST: a bad token wins over a bad query.
    both_bad = rest.get("/nope", params={"a": "bogus"}, headers={"Authorization": "Bearer x"})
    _error(both_bad, 401, "PGRST301")


# --- things that need their own tables ----------------------------------------------------------
@pytest.fixture(scope="module")
def fixture_db(local_stack: LocalStack) -> Iterator[ServedDatabase]:
    with served_database(local_stack, FIXTURE_SQL) as db:
        yield db


def test_reads_are_capped_at_max_rows(local_stack: LocalStack, fixture_db: ServedDatabase) -> None:
    user = make_user(local_stack, fixture_db.superuser_dsn)
    with httpx.Client(
        base_url=f"{fixture_db.url}/rest/v1",
        headers={"apikey": local_stack.keys.anon_key} | user.bearer,
    ) as rest:
        res = rest.post("/items", json=[{"name": f"n{i}"} for i in range(1001)])
        assert res.status_code == 201
        page = rest.get("/items", params={"select": "id"})
        assert (len(page.json()), page.headers["content-range"]) == (1000, "0-999/*")
        counted = rest.get("/items", params={"select": "id"}, headers={"Prefer": "count=exact"})
        assert (counted.status_code, counted.headers["content-range"]) == (206, "0-999/1001")
        asked = rest.get("/items", params={"select": "id", "limit": "5000", "offset": "990"})
        assert len(asked.json()) == 11


class _BrokenKeys(LocalKeys):
    def verify(self, token: str, **_: object) -> dict[str, Any]:
        raise RuntimeError("secret internal detail")


@pytest.mark.anyio
async def test_unexpected_internal_error_is_a_postgrest_500_without_the_detail(
    caplog: pytest.LogCaptureFixture,
) -> None:
    keys = LocalKeys.generate()
    ctx = StackContext(
        keys=_BrokenKeys(keys.kid, keys.private_jwk, keys.jwt_secret),
        api_url="http://127.0.0.1:1",
        db_port=1,
    )
    transport = httpx.ASGITransport(app=create_rest_app(ctx))
    async with httpx.AsyncClient(transport=transport, base_url="http://rest") as client:
        res = await client.get("/conversations", headers={"Authorization": "Bearer x.y.z"})
    body = _error(res, 500, "PGRSTX00")
    assert "secret" not in res.text
    assert body["message"] == "Internal server error"
    assert "secret internal detail" in caplog.text
