from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from app.db.sqlsplit import split_statements


@pytest.mark.parametrize(
    ("script", "expected"),
    [
        ("select 1; select 2;", ["select 1", "select 2"]),
        ("select 'a;b';", ["select 'a;b'"]),
        ("select 'it''s; fine';", ["select 'it''s; fine'"]),
        ('select 1 as "a;b";', ['select 1 as "a;b"']),
        (
            "create function f() returns int as $$ select 1; $$ language sql;",
            ["create function f() returns int as $$ select 1; $$ language sql"],
        ),
        ("do $body$ begin perform 1; end $body$;", ["do $body$ begin perform 1; end $body$"]),
        ("select 1; -- trailing; comment\n", ["select 1"]),
        ("/* a; /* nested; */ b; */ select 1;", ["/* a; /* nested; */ b; */ select 1"]),
        ("select E'\\';';", ["select E'\\';'"]),
        ("-- only a comment;\n", []),
    ],
)
def test_split_statements_respects_quotes_comments_and_dollar_quotes(
    script: str, expected: list[str]
) -> None:
    assert [s.sql for s in split_statements(script)] == expected


def test_split_statements_reports_the_first_code_line() -> None:
    script = "select 1;\n\n-- explain\n-- more\nselect\n  2;\n"
    stmts = split_statements(script)
    assert [s.code_line for s in stmts] == [1, 5]
    assert stmts[1].line_at(len("-- explain\n-- more\nselect\n  2")) == 6


@given(st.lists(st.text(alphabet="abc xyz019_", min_size=1, max_size=20), max_size=8))
def test_split_statements_round_trips_simple_statements(parts: list[str]) -> None:
    parts = [p.strip() for p in parts if p.strip()]
    script = ";\n".join(parts) + ";"
    assert [s.sql for s in split_statements(script)] == parts
