"""Functions as PostgREST's schema cache holds them, over raw HTTP: which `/rpc` may call and
how `findProc` picks one, computed fields on results, `SETOF … ROWS 1` relationships.

Shaped like postgrest-js's own suite: overloads by unnamed argument, a computed field that
`/rpc` may not call, and the exact PGRST202/203 wording its snapshots hold.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from app.local.stack import LocalStack
from tests.local.rest_support import ServedDatabase, StatusLog, served_database

pytestmark = pytest.mark.anyio

SQL = """
create function public.poly(bool) returns int language sql as 'select 1';
create function public.poly(int) returns int language sql as 'select 2';
create function public.poly(text) returns text language sql as $$ select 'text:' || $1 $$;
create function public.unnamed_default() returns int language sql as 'select 1';
create function public.unnamed_default(text default 'd') returns text language sql as 'select $1';
create function public.function_with_unnamed_integer(int) returns int language sql as 'select 1';
create function public.function_with_unnamed_text(text) returns int language sql as 'select 1';
create function public.pick(a text) returns text language sql as $$ select 'text' $$;
create function public.pick(a int) returns text language sql as $$ select 'int' $$;
create table public.notes (id int primary key, body text not null);
insert into public.notes values (1, 'Hello'), (2, 'World');
grant select on public.notes to anon;
create function public.head3(public.notes) returns text language sql stable
  as $$ select substring($1.body, 1, 3) $$;
create function public.all_notes() returns setof public.notes language sql stable
  as $$ select * from public.notes order by id $$;
create table public.profiles (id int primary key, note_id int not null);
insert into public.profiles values (10, 1);
grant select on public.profiles to anon;
create function public.profile_of(public.notes) returns setof public.profiles rows 1
  language sql stable as $$ select * from public.profiles where note_id = $1.id $$;
"""


@pytest.fixture(scope="module")
def functions_db(local_stack: LocalStack) -> Iterator[ServedDatabase]:
    with served_database(local_stack, SQL, migrate=False) as db:
        yield db


@pytest.fixture
def call(
    local_stack: LocalStack, functions_db: ServedDatabase, http: tuple[httpx.AsyncClient, StatusLog]
) -> Any:
    client = http[0]
    headers = {"apikey": local_stack.keys.publishable_key}

    async def _call(method: str, path: str, body: bytes | None = None) -> httpx.Response:
        sent = headers | ({"Content-Type": "application/json"} if body is not None else {})
        return await client.request(
            method, f"{functions_db.url}/rest/v1/{path}", content=body, headers=sent
        )

    return _call


async def test_rpc_unnamed_text_overload_takes_the_whole_body(call: Any) -> None:
    """Overloads of one unnamed bool or int are not in PostgREST's schema cache; the text one
    matches the key "" and gets the body itself."""
    res = await call("POST", "rpc/poly", b'{"":"x"}')
    assert (res.status_code, res.json()) == (200, 'text:{"":"x"}')


async def test_rpc_unnamed_int_function_is_not_found_and_hints_the_text_one(call: Any) -> None:
    res = await call("POST", "rpc/function_with_unnamed_integer", b'{"":1}')
    assert res.status_code == 404
    assert res.json() == {
        "code": "PGRST202",
        "message": "Could not find the function public.function_with_unnamed_integer() in the "
        "schema cache",
        "details": "Searched for the function public.function_with_unnamed_integer with "
        "parameter  or with a single unnamed json/jsonb parameter, but no matches were found "
        "in the schema cache.",
        "hint": "Perhaps you meant to call the function public.function_with_unnamed_text",
    }


async def test_rpc_no_args_and_an_optional_unnamed_one_are_ambiguous_in_argument_order(
    call: Any,
) -> None:
    res = await call("POST", "rpc/unnamed_default", b"{}")
    assert res.status_code == 300
    assert res.json()["code"] == "PGRST203"
    assert res.json()["message"] == (
        "Could not choose the best candidate function between: public.unnamed_default(), "
        "public.unnamed_default( => text)"
    )


async def test_rpc_ambiguous_named_overloads_are_listed_by_argument_type(call: Any) -> None:
    res = await call("GET", "rpc/pick?a=1")
    assert res.status_code == 300
    assert res.json()["message"] == (
        "Could not choose the best candidate function between: public.pick(a => integer), "
        "public.pick(a => text)"
    )


async def test_rpc_computed_field_function_is_not_callable_and_get_has_no_json_clause(
    call: Any,
) -> None:
    res = await call("GET", "rpc/head3")
    assert res.status_code == 404
    assert res.json() == {
        "code": "PGRST202",
        "message": "Could not find the function public.head3 without parameters in the schema "
        "cache",
        "details": "Searched for the function public.head3 without parameters, but no matches "
        "were found in the schema cache.",
        "hint": None,  # no name is 0.75-similar, PostgREST's bar for a hint
    }


async def test_rpc_result_rows_have_their_tables_computed_fields(call: Any) -> None:
    res = await call("GET", "rpc/all_notes?select=id,head3")
    assert (res.status_code, res.json()) == (
        200,
        [{"id": 1, "head3": "Hel"}, {"id": 2, "head3": "Wor"}],
    )


async def test_setof_rows_one_computed_relationship_embeds_one_row(call: Any) -> None:
    res = await call("GET", "notes?select=id,profile_of(id)&order=id")
    assert res.json() == [{"id": 1, "profile_of": {"id": 10}}, {"id": 2, "profile_of": None}]
