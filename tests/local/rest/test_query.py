"""The PostgREST query-string grammar, as a pure parser (no database)."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from app.local.rest.errors import RestError
from app.local.rest.headers import parse_accept, parse_prefer
from app.local.rest.query import (
    parse_filter,
    parse_logic,
    parse_names,
    parse_order,
    parse_query,
    parse_range_header,
    parse_select,
)
from app.local.rest.syntax import (
    Field,
    Filter,
    JsonStep,
    Logic,
    OrderTerm,
    SelectEmbed,
    SelectField,
    SelectStar,
)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("", (SelectStar(),)),
        ("*", (SelectStar(),)),
        ("id, title", (SelectField(Field("id")), SelectField(Field("title")))),
        ("t:title", (SelectField(Field("title"), alias="t"),)),
        ("n:tokens::text", (SelectField(Field("tokens"), alias="n", cast="text"),)),
        (
            "meta->a->>b",
            (SelectField(Field("meta", (JsonStep("->", "a"), JsonStep("->>", "b")))),),
        ),
        ('"we,ird"', (SelectField(Field("we,ird")),)),
        ("first-name", (SelectField(Field("first-name")),)),
        (
            "id,author:users!fk(name,x:y)",
            (
                SelectField(Field("id")),
                SelectEmbed(
                    "users",
                    "author",
                    "fk",
                    items=(SelectField(Field("name")), SelectField(Field("y"), alias="x")),
                ),
            ),
        ),
        (
            "users!inner!fk(*)",
            (SelectEmbed("users", None, "fk", "inner", items=(SelectStar(),)),),
        ),
        ("...users(id)", (SelectEmbed("users", spread=True, items=(SelectField(Field("id")),)),)),
        ("messages()", (SelectEmbed("messages"),)),
        ("c:count()", (SelectField(Field("*"), alias="c", aggregate="count"),)),
        (
            "total:qty.sum()::text,status",
            (
                SelectField(Field("qty"), alias="total", aggregate="sum", agg_cast="text"),
                SelectField(Field("status")),
            ),
        ),
    ],
)
def test_parse_select_accepts_postgrest_forms(text: str, expected: tuple[object, ...]) -> None:
    assert parse_select(text) == expected


@pytest.mark.parametrize(
    ("key", "value", "expected"),
    [
        ("a", "eq.1", Filter(Field("a"), "eq", "1")),
        ("a", "eq.with.dots", Filter(Field("a"), "eq", "with.dots")),
        ("a", 'eq."quoted"', Filter(Field("a"), "eq", '"quoted"')),  # kept at the top level
        ("a", "not.eq.1", Filter(Field("a"), "eq", "1", negate=True)),
        ("a", 'in.(1,"a,b","q\\"x")', Filter(Field("a"), "in", ("1", "a,b", 'q"x'))),
        ("a", "in.()", Filter(Field("a"), "in", ())),
        ("a", "is.NULL", Filter(Field("a"), "is", "null")),
        ("a", "is.not_null", Filter(Field("a"), "is", "not_null")),
        ("a", "like(any).{x*,y*}", Filter(Field("a"), "like", "{x*,y*}", modifier="any")),
        ("a", "fts(english).cat", Filter(Field("a"), "fts", "cat", modifier="english")),
        ("j->>k", "eq.1", Filter(Field("j", (JsonStep("->>", "k"),)), "eq", "1")),
    ],
)
def test_parse_filter_reads_operator_and_value(key: str, value: str, expected: Filter) -> None:
    assert parse_filter(key, value) == expected


def test_parse_logic_nests_and_unquotes() -> None:
    tree = parse_logic(
        "or", '(a.eq.1,and(b.gt.1,b.lt.5),c.in.(1,"x)"),not.or(d.is.null),e.eq."q,r")'
    )
    assert tree == Logic(
        "or",
        (
            Filter(Field("a"), "eq", "1"),
            Logic("and", (Filter(Field("b"), "gt", "1"), Filter(Field("b"), "lt", "5"))),
            Filter(Field("c"), "in", ("1", "x)")),
            Logic("or", (Filter(Field("d"), "is", "null"),), negate=True),
            Filter(Field("e"), "eq", "q,r"),
        ),
    )


def test_parse_order_and_names() -> None:
    assert parse_order("created_at.desc.nullslast,id") == (
        OrderTerm(Field("created_at"), desc=True, nulls="last"),
        OrderTerm(Field("id")),
    )
    assert parse_names('"body", room_id', "columns") == ("body", "room_id")


@pytest.mark.parametrize(
    ("key", "value", "code"),
    [
        ("a", "foo.1", "PGRST100"),
        ("a", "5", "PGRST100"),
        ("a", "in.1", "PGRST100"),
        ("a", "in.(1", "PGRST100"),
        ("a", "is.maybe", "PGRST100"),
        ("a", "eq(some).1", "PGRST100"),
        ("or", "(a.eq.1", "PGRST100"),
        ("or", "a.eq.1", "PGRST100"),
        ("select", "a,,b", "PGRST100"),
        ("select", "a(", "PGRST100"),
        ("order", "a.sideways", "PGRST100"),
        ("limit", "-1", "PGRST103"),
        ("offset", "x", "PGRST100"),
        ("columns", "", "PGRST100"),
    ],
)
def test_parse_query_rejects_malformed_input(key: str, value: str, code: str) -> None:
    with pytest.raises(RestError) as err:
        parse_query([(key, value)])
    assert err.value.code == code


def test_parse_query_scopes_embedded_params_by_path() -> None:
    query = parse_query(
        [
            ("select", "id,messages(id,users(name))"),
            ("messages.status", "eq.x"),
            ("messages.users.or", "(name.eq.a,name.eq.b)"),
            ("messages.not.and", "(id.gt.1)"),
            ("messages.order", "id.desc"),
            ("messages.limit", "1"),
            ("messages.offset", "2"),
        ]
    )
    scoped = dict(query.embedded)
    assert scoped[("messages",)].where[0] == Filter(Field("status"), "eq", "x")
    assert scoped[("messages",)].where[1] == Logic(
        "and", (Filter(Field("id"), "gt", "1"),), negate=True
    )
    assert scoped[("messages",)].order == (OrderTerm(Field("id"), desc=True),)
    assert (scoped[("messages",)].limit, scoped[("messages",)].offset) == (1, 2)
    assert isinstance(scoped[("messages", "users")].where[0], Logic)
    assert parse_order("users(name).desc") == (OrderTerm(Field("name"), True, None, "users"),)


@pytest.mark.parametrize(
    ("key", "value"),
    [
        ("or", "(" + "or(" * 300 + "a.eq.1" + ")" * 301),
        ("not.and", "(" + "and(" * 2000 + "a.eq.1" + ")" * 2001),
        ("select", "a(" * 300 + "b" + ")" * 300),
    ],
)
def test_parse_query_deep_nesting_is_a_400_not_a_recursion_error(key: str, value: str) -> None:
    with pytest.raises(RestError) as err:
        parse_query([(key, value)])
    assert (err.value.status, err.value.code) == (400, "PGRST100")
    assert "nesting deeper than" in str(err.value.details)


@pytest.mark.parametrize(
    ("header", "expected"),
    [(None, None), ("0-9", (0, 10)), ("items=5-", (5, None)), ("bogus", None), ("3-3", (3, 1))],
)
def test_parse_range_header(header: str | None, expected: tuple[int, int | None] | None) -> None:
    assert parse_range_header(header) == expected


def test_range_header_lower_above_upper_is_416() -> None:
    with pytest.raises(RestError) as err:
        parse_range_header("5-2")
    assert (err.value.status, err.value.code) == (416, "PGRST103")


def test_prefer_and_accept_headers() -> None:
    prefs = parse_prefer(["return=representation, count=exact", "missing=default,unknown=1"])
    assert (prefs.return_, prefs.count, prefs.missing) == ("representation", "exact", "default")
    assert prefs.applied(write=True) == "missing=default, return=representation, count=exact"
    assert parse_prefer(["tx=rollback"]).tx is None
    assert parse_prefer(["tx=rollback"], allow_tx=True).applied(write=False) == "tx=rollback"
    with pytest.raises(RestError) as err:
        parse_prefer(["handling=strict,unknown=1"])
    assert err.value.code == "PGRST122"
    assert parse_accept("*/*").singular is False
    assert parse_accept("application/vnd.pgrst.object+json").singular is True
    assert parse_accept("text/html, */*;q=0.8").singular is False
    assert parse_accept("text/csv").csv is True
    with pytest.raises(RestError) as err:
        parse_accept("application/vnd.pgrst.plan+json")
    assert (err.value.status, err.value.code) == (406, "PGRST107")


@given(st.lists(st.tuples(st.text(max_size=20), st.text(max_size=40)), max_size=5))
def test_parse_query_only_ever_raises_rest_errors(pairs: list[tuple[str, str]]) -> None:
    status = 200
    try:
        parse_query(pairs)
    except RestError as err:
        status = err.status
    assert status in (200, 400, 416)
