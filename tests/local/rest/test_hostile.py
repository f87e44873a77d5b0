"""Property tests: hostile query strings, headers and bodies against the PostgREST stand-in.

Whatever `select`, `order`, filter names and values, `columns`, `on_conflict`, Prefer, Range or
RPC argument names an attacker sends: no 5xx, no error text from the stand-in's own SQL, and no
row owned by another user ever comes back or changes.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote, unquote

import httpx
import psycopg
import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from app.local.stack import LocalStack
from tests.local.rest_support import FIXTURE_SQL, ServedDatabase, User, make_user, served_database

pytestmark = pytest.mark.slow

COLUMNS = ["id", "owner", "sku", "name", "qty", "price", "tags", "meta", "note", "doc"]
FUNCTIONS = ["add_them", "my_items", "first_item", "squares", "series", "echo", "touch",
             "request_info", "overloaded", "fail"]  # fmt: skip
OPERATORS = ["eq", "neq", "gt", "gte", "lt", "lte", "like", "ilike", "match", "imatch", "in",
             "is", "isdistinct", "fts", "plfts", "phfts", "wfts", "cs", "cd", "ov", "sl", "sr",
             "nxr", "nxl", "adj", "not.eq", "not.in", "eq(any)", "like(all)", "fts(english)",
             "fts(nope)"]  # fmt: skip
# Error codes that would mean the stand-in built broken SQL, not that the input was refused.
BROKEN_SQL = {"42601", "42P02", "42P08", "42P18", "42725", "42702", "08P01", "XX000", "PGRSTX00"}
# Names only the stand-in's own SQL and code contain (echoed input is fine: PostgREST does it).
LEAKS = ("pgrst_", "_postgrest_t", "traceback", "psycopg", "json_populate", "json_to_record",
         "pg_catalog")  # fmt: skip
SETTINGS = settings(
    max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow],
    derandomize=os.environ.get("HYPOTHESIS_RANDOM") is None,
)  # fmt: skip


def mostly(
    valid: st.SearchStrategy[str], hostile: st.SearchStrategy[str]
) -> st.SearchStrategy[str]:
    """Four parts input the grammar accepts (so the request reaches SQL), one part anything."""
    return st.one_of(valid, valid, valid, valid, hostile)


special = st.sampled_from([*",.:()\"\\*!->{}[]% '\x00;$-_", "->>", "::", "not.", "%00"])
words = st.text(alphabet=st.characters(codec="utf-8", exclude_categories=("Cs",)), max_size=12)
garbage = st.lists(st.one_of(special, words), max_size=6).map("".join)
column = st.sampled_from(COLUMNS)
name = mostly(column, st.one_of(words, garbage))
value = st.one_of(
    words, garbage, st.integers().map(str),
    st.sampled_from(["null", "true", "not_null", "(1,2)", "{a,b}", '("x,y",z)', "[1,5)", "%",
                     "'; drop table public.items;--", '{"k": 1}', "*", "", "\\", '"']),
)  # fmt: skip
header_text = st.text(alphabet=st.characters(min_codepoint=32, max_codepoint=126), max_size=40).map(
    str.strip
)
# Each structured parameter is mostly well-formed (so it reaches SQL with hostile parts in
# names and values) and sometimes free-form garbage (so the parser sees everything).
names_list = mostly(st.lists(column, min_size=1, max_size=3).map(",".join), garbage)
# Starlette's Mount does not match a path holding a newline (its regex `.*`), so the gateway
# answers those itself; function names here stay free of control characters.
path_name = name.map(lambda n: "".join(ch for ch in n if ch.isprintable()))
json_key = st.one_of(
    st.sampled_from(["k", "0", "-1", "", "a b"]),
    words.map(lambda w: '"' + w.replace("\\", "\\\\").replace('"', '\\"') + '"'),
)
cast = st.sampled_from(["text", "int", "jsonb", "numeric", "nope", "text drop", "double precision"])
select_item = st.one_of(
    column, column, st.just("*"),
    st.tuples(st.sampled_from(["a", "b_1", "x y", '"q,r"']), column).map(":".join),
    st.tuples(column, cast).map("::".join),
    st.tuples(column, json_key).map("->".join),
    st.tuples(column, json_key).map("->>".join),
    st.tuples(column, column).map(lambda t: f"{t[0]}({t[1]})"),
)  # fmt: skip
select_param = mostly(
    st.lists(select_item, min_size=1, max_size=4).map(",".join),
    st.lists(st.one_of(select_item, garbage), max_size=4).map(",".join),
)
order_term = st.tuples(
    column, st.sampled_from(["", ".asc", ".desc", ".desc.nullslast", ".nullsfirst"])
).map("".join)
order_param = mostly(st.lists(order_term, min_size=1, max_size=3).map(",".join), garbage)
condition = st.tuples(name, st.sampled_from(OPERATORS), value).map(".".join)


@st.composite
def filter_pair(draw: st.DrawFn) -> tuple[str, str]:
    key = draw(st.one_of(name, name, name, st.sampled_from(["or", "and", "not.or", "not.and"])))
    if key in ("or", "and", "not.or", "not.and"):
        inner = draw(st.lists(condition, min_size=1, max_size=3))
        if draw(st.booleans()):
            inner.append(f"and({draw(condition)},{draw(condition)})")
        return key, f"({','.join(inner)})"
    op = draw(mostly(st.sampled_from(OPERATORS), garbage))
    if op.endswith("in"):
        return key, f"{op}.({','.join(draw(st.lists(value, max_size=3)))})"
    return key, f"{op}.{draw(value)}"


@dataclass(frozen=True, repr=False)
class Scene:
    db: ServedDatabase
    attacker: User
    victim: User
    apikey: str


@pytest.fixture(scope="module")
def scene(local_stack: LocalStack) -> Iterator[Scene]:
    with served_database(local_stack, FIXTURE_SQL) as db:
        attacker = make_user(local_stack, db.superuser_dsn)
        victim = make_user(local_stack, db.superuser_dsn)
        with psycopg.connect(db.dsn, autocommit=True) as conn:
            for i in range(3):
                conn.execute(
                    "insert into public.items (owner, sku, name, note, meta, tags)"
                    " values (%s, %s, %s, 'secret', '{\"k\": 1}', '{a,b}')",
                    [victim.id, f"V-{i}", f"SECRET-{victim.id}"],
                )
            conn.execute(
                "insert into public.items (owner, sku, name) values (%s, 'A-1', 'mine')",
                [attacker.id],
            )
        yield Scene(db, attacker, victim, local_stack.keys.anon_key)
        with psycopg.connect(db.dsn) as conn:
            rows = conn.execute(
                "select count(*) from public.items where owner = %s and name = %s",
                [victim.id, f"SECRET-{victim.id}"],
            ).fetchone()
        assert rows == (3,), "the victim's rows changed"


@pytest.fixture(scope="module")
def client(scene: Scene) -> Iterator[httpx.Client]:
    headers = {"apikey": scene.apikey} | scene.attacker.bearer
    with httpx.Client(base_url=f"{scene.db.url}/rest/v1", headers=headers, timeout=30) as c:
        yield c


def _check(res: httpx.Response, scene: Scene) -> None:
    assert res.status_code < 500, res.text
    text = res.text
    assert scene.victim.id not in text
    if res.status_code >= 400 and text:
        body = res.json()
        assert set(body) == {"code", "message", "details", "hint"}
        assert body["code"] not in BROKEN_SQL, body
        blob = json.dumps(body, ensure_ascii=False).lower()
        sent = unquote(str(res.request.url)) + res.request.content.decode(errors="replace")
        sent = sent.lower()
        assert not any(leak in blob and leak not in sent for leak in LEAKS), body
    elif res.headers.get("content-type", "").startswith("text/csv"):
        pass  # CSV: the victim's id is not in the text (checked above)
    elif text:
        data = res.json()
        for row in data if isinstance(data, list) else [data]:
            if isinstance(row, dict) and row.get("owner") is not None:  # echo() may echo null
                assert row["owner"] == scene.attacker.id


@SETTINGS
@given(
    select=st.one_of(st.none(), select_param),
    order=st.one_of(st.none(), order_param),
    filters=st.lists(filter_pair(), max_size=3),
    limit=st.one_of(st.none(), mostly(st.integers(-1, 2000).map(str), words)),
    offset=st.one_of(st.none(), mostly(st.integers(-1, 50).map(str), words)),
    range_header=st.one_of(
        st.none(), header_text,
        st.tuples(st.integers(0, 9), st.integers(0, 9)).map(lambda t: f"{t[0]}-{t[1]}"),
    ),
    prefer=st.one_of(st.none(), mostly(st.sampled_from(
        ["count=exact", "count=planned,handling=strict", "return=representation"]), header_text)),
    accept=mostly(st.sampled_from([None, "*/*", "application/vnd.pgrst.object+json"]),
                  st.sampled_from(["text/csv", "application/json;nulls=stripped"])),
)  # fmt: skip
def test_hostile_reads_never_5xx_leak_or_cross_users(
    client: httpx.Client,
    scene: Scene,
    select: str | None,
    order: str | None,
    filters: list[tuple[str, str]],
    limit: str | None,
    offset: str | None,
    range_header: str | None,
    prefer: str | None,
    accept: str | None,
) -> None:
    params = [
        (k, v)
        for k, v in (("select", select), ("order", order), ("limit", limit), ("offset", offset))
        if v is not None
    ] + filters
    headers = {
        k: v
        for k, v in (("Range", range_header), ("Prefer", prefer), ("Accept", accept))
        if v is not None
    }
    _check(client.get("/items", params=params, headers=headers), scene)


@SETTINGS
@given(
    method=st.sampled_from(["POST", "PATCH", "DELETE"]),
    body=st.one_of(
        st.dictionaries(
            name, st.one_of(st.none(), st.integers(), words, st.booleans()), max_size=4
        ),
        st.lists(st.dictionaries(st.sampled_from(COLUMNS), words, max_size=3), max_size=3),
        words,
    ),
    columns=st.one_of(st.none(), names_list),
    on_conflict=st.one_of(st.none(), names_list),
    filters=st.lists(filter_pair(), max_size=2),
    prefer=st.one_of(
        st.none(),
        st.sampled_from(
            [
                "return=representation",
                "return=representation,resolution=merge-duplicates",
                "resolution=ignore-duplicates,missing=default",
                "return=headers-only",
                "count=exact",
            ]
        ),
        header_text,
    ),
    select=st.one_of(st.none(), select_param),
)
def test_hostile_writes_never_5xx_leak_or_touch_other_users(
    client: httpx.Client,
    scene: Scene,
    method: str,
    body: object,
    columns: str | None,
    on_conflict: str | None,
    filters: list[tuple[str, str]],
    prefer: str | None,
    select: str | None,
) -> None:
    params = [
        (k, v)
        for k, v in (("columns", columns), ("on_conflict", on_conflict), ("select", select))
        if v is not None
    ] + filters
    headers = {"Prefer": prefer} if prefer is not None else {}
    content = json.dumps(body) if not isinstance(body, str) else body
    res = client.request(method, "/items", params=params, content=content, headers=headers)
    _check(res, scene)


@SETTINGS
@given(
    fn=st.one_of(st.sampled_from(FUNCTIONS), st.sampled_from(FUNCTIONS), path_name),
    args=st.dictionaries(
        st.one_of(st.sampled_from(["a", "b", "n", "msg", "note"]), name),
        st.one_of(st.none(), st.integers(), words, st.booleans()),
        max_size=3,
    ),
    get=st.booleans(),
    filters=st.lists(filter_pair(), max_size=2),
    select=st.one_of(st.none(), select_param),
)
def test_hostile_rpc_calls_never_5xx_or_leak(
    client: httpx.Client,
    scene: Scene,
    fn: str,
    args: dict[str, object],
    get: bool,
    filters: list[tuple[str, str]],
    select: str | None,
) -> None:
    extra = ([("select", select)] if select is not None else []) + filters
    if get:
        params = [(k, "" if v is None else str(v)) for k, v in args.items()] + extra
        res = client.get(f"/rpc/{quote(fn, safe='')}", params=params)
    else:
        res = client.post(f"/rpc/{quote(fn, safe='')}", params=extra, json=args)
    _check(res, scene)


# --- embedding syntax and deep nesting ----------------------------------------------------------
EMBED_FIXTURE = (Path(__file__).parent / "embedding.sql").read_text()
RELATIONS = ["users", "messages", "channels", "notes", "collections", "parent_id", "best_friends",
             "channel_details", "channel_members", "recent_messages", "active_users",
             "user_profiles", "nope", "first_user", "best_friends_first_user_fkey"]  # fmt: skip
EMBED_COLUMNS = ["id", "username", "body", "owner", "status", "message", "slug", "name",
                 "channel_id", "parent_id", "count", "author", "age", "x"]  # fmt: skip
hints = st.sampled_from(["", "!inner", "!left", "!username", "!best_friends_first_user_fkey",
                         "!channel_members", "!inner!username", "!nope",
                         "!left!inner"])  # fmt: skip
valid_leaf = st.one_of(
    st.sampled_from(EMBED_COLUMNS), st.just("*"), st.just("count()"),
    st.tuples(st.sampled_from(EMBED_COLUMNS),
              st.sampled_from(["sum", "avg", "count", "max", "min"])).map(
        lambda t: f"{t[0]}.{t[1]}()"),
    st.tuples(st.sampled_from(["a", "n"]), st.sampled_from(EMBED_COLUMNS)).map(":".join),
)  # fmt: skip
plain_leaf = st.one_of(*[st.sampled_from(["id", "username", "*", "body", "slug"])] * 4,
                       valid_leaf, valid_leaf)  # fmt: skip
leaf = st.one_of(plain_leaf, plain_leaf, plain_leaf, garbage)
common = st.sampled_from(["users", "messages", "channels", "notes", "collections", "parent_id"])


def _embed(children: st.SearchStrategy[str]) -> st.SearchStrategy[str]:
    return st.tuples(
        st.sampled_from(["", "", "", "...", "al:", "x y:"]),
        st.one_of(common, common, st.sampled_from(RELATIONS)),
        st.one_of(st.just(""), st.just(""), hints),
        st.lists(children, max_size=3).map(",".join),
    ).map(lambda t: f"{t[0]}{t[1]}{t[2]}({t[3]})")


embed_select = st.lists(st.recursive(leaf, _embed, max_leaves=8), min_size=1, max_size=4).map(
    ",".join
)
deep_select = st.integers(1, 120).map(lambda n: "username," + "messages(" * n + "id" + ")" * n)
deep_logic = st.tuples(st.integers(1, 400), st.sampled_from(["or", "and", "not.or"])).map(
    lambda t: "(" + f"{t[1]}(" * t[0] + "id.eq.1" + ")" * (t[0] + 1)
)
embed_path = st.lists(st.sampled_from(RELATIONS[:6] + ["al"]), min_size=1, max_size=3).map(".".join)
embed_param = st.one_of(
    st.tuples(embed_path, st.sampled_from(EMBED_COLUMNS), st.sampled_from(OPERATORS), value).map(
        lambda t: (f"{t[0]}.{t[1]}", f"{t[2]}.{t[3]}")
    ),
    st.tuples(embed_path, order_param).map(lambda t: (f"{t[0]}.order", t[1])),
    st.tuples(embed_path, st.sampled_from(["limit", "offset"]), st.integers(-1, 5)).map(
        lambda t: (f"{t[0]}.{t[1]}", str(t[2]))
    ),
    st.tuples(embed_path, st.sampled_from(["or", "not.and"]), st.lists(condition, max_size=2)).map(
        lambda t: (f"{t[0]}.{t[1]}", "(" + ",".join(t[2]) + ")")
    ),
    st.tuples(st.sampled_from(RELATIONS), st.sampled_from(["is.null", "not.is.null", "eq.1"])),
    st.tuples(st.just("order"), st.tuples(st.sampled_from(RELATIONS), st.sampled_from(
        EMBED_COLUMNS)).map(lambda t: f"{t[0]}({t[1]}).desc")),
    st.tuples(st.sampled_from(["or", "and"]), deep_logic),
)  # fmt: skip
embed_params = st.lists(embed_param, max_size=4).filter(
    lambda ps: sum(k in ("or", "and") for k, _ in ps) <= 1
)


@dataclass(frozen=True, repr=False)
class EmbedScene:
    db: ServedDatabase
    attacker: User
    victim: User
    secret: str
    apikey: str


@pytest.fixture(scope="module")
def embed_scene(local_stack: LocalStack) -> Iterator[EmbedScene]:
    with served_database(local_stack, EMBED_FIXTURE, migrate=False) as db:
        attacker = make_user(local_stack, db.superuser_dsn)
        victim = make_user(local_stack, db.superuser_dsn)
        secret = f"SECRET-{victim.id}"
        with psycopg.connect(db.superuser_dsn, autocommit=True) as conn:
            conn.execute(
                "insert into public.notes (username, owner, body) values"
                " ('supabot', %s, %s), ('kiwicopple', %s, %s), ('supabot', %s, 'mine')",
                [victim.id, secret, victim.id, secret, attacker.id],
            )
            conn.execute(  # reach the aggregate paths too
                f'alter role authenticator in database "{db.name}"'
                " set pgrst.db_aggregates_enabled = 'true'"
            )
        yield EmbedScene(db, attacker, victim, secret, local_stack.keys.anon_key)
        with psycopg.connect(db.superuser_dsn) as conn:
            rows = conn.execute(
                "select count(*) from public.notes where body = %s", [secret]
            ).fetchone()
        assert rows == (2,), "the victim's rows changed"


@pytest.fixture(scope="module")
def embed_client(embed_scene: EmbedScene) -> Iterator[httpx.Client]:
    headers = {"apikey": embed_scene.apikey} | embed_scene.attacker.bearer
    with httpx.Client(
        base_url=f"{embed_scene.db.url}/rest/v1", headers=headers, timeout=60
    ) as client:
        yield client


def _check_embed(res: httpx.Response, scene: EmbedScene) -> None:
    assert res.status_code < 500, res.text
    assert scene.secret not in res.text
    assert scene.victim.id not in res.text
    if res.status_code >= 400 and res.text:
        body = res.json()
        assert set(body) == {"code", "message", "details", "hint"}
        assert body["code"] not in BROKEN_SQL, body
        blob = json.dumps(body, ensure_ascii=False).lower()
        sent = unquote(str(res.request.url)).lower()
        assert not any(leak in blob and leak not in sent for leak in LEAKS), body


@settings(SETTINGS, max_examples=400)
@given(
    table=st.sampled_from(["users", "messages", "channels", "notes", "collections",
                           "best_friends", "recent_messages", "active_users"]),
    select=st.one_of(embed_select, embed_select, embed_select, embed_select, deep_select),
    params=st.one_of(st.just([]), embed_params),
    prefer=st.sampled_from([None, "count=exact", "count=planned", "count=estimated"]),
    accept=st.sampled_from([None, "text/csv", "application/vnd.pgrst.object+json"]),
)  # fmt: skip
def test_hostile_embeds_never_5xx_leak_or_show_foreign_rows(
    embed_client: httpx.Client,
    embed_scene: EmbedScene,
    table: str,
    select: str,
    params: list[tuple[str, str]],
    prefer: str | None,
    accept: str | None,
) -> None:
    headers = {k: v for k, v in (("Prefer", prefer), ("Accept", accept)) if v is not None}
    res = embed_client.get(f"/{table}", params=[("select", select), *params], headers=headers)
    event(f"status {res.status_code} {res.json().get('code') if res.status_code >= 400 else ''}")
    _check_embed(res, embed_scene)


@SETTINGS
@given(
    select=st.one_of(st.none(), embed_select),
    body=st.one_of(
        st.integers(1, 2500).map(lambda n: "[" * n + "]" * n),
        st.integers(1, 2500).map(lambda n: '{"a":' * n + "1" + "}" * n),
        st.just('{"username": "supabot", "body": "x"}'),
    ),
)
def test_hostile_deep_bodies_and_embedded_writes_never_5xx(
    embed_client: httpx.Client, embed_scene: EmbedScene, select: str | None, body: str
) -> None:
    params = [("select", select)] if select is not None else []
    headers = {"Prefer": "return=representation, tx=rollback", "Content-Type": "application/json"}
    res = embed_client.post("/notes", params=params, content=body, headers=headers)
    _check_embed(res, embed_scene)
    rpc = embed_client.post("/rpc/get_status", content=body, headers=headers)
    _check_embed(rpc, embed_scene)
