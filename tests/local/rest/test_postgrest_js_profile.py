"""What postgrest-js's suite needs of the stand-in beyond the filter grammar, over raw HTTP:
in-database `pgrst.db_plan_enabled`."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx
import psycopg
import pytest

from app.local.stack import LocalStack
from tests.local.rest_support import ServedDatabase, StatusLog, served_database

pytestmark = pytest.mark.anyio

SQL = """
create table public.notes (id int primary key, body text not null);
insert into public.notes values (1, 'Hello'), (2, 'World');
grant select on public.notes to anon;
"""
PLAN_ON = """
do $$ begin
  execute format('alter role authenticator in database %I set pgrst.db_plan_enabled = true',
                 current_database());
end $$;
"""


@pytest.fixture(scope="module")
def profile_db(local_stack: LocalStack) -> Iterator[ServedDatabase]:
    with served_database(local_stack, SQL, migrate=False) as db:
        yield db


@pytest.fixture
def call(
    local_stack: LocalStack, profile_db: ServedDatabase, http: tuple[httpx.AsyncClient, StatusLog]
) -> Any:
    async def _call(
        method: str, path: str, body: str | None = None, **headers: str
    ) -> httpx.Response:
        sent = {"apikey": local_stack.keys.publishable_key}
        sent |= {k.replace("_", "-"): v for k, v in headers.items()}
        url = f"{profile_db.url}/rest/v1/{path}"
        return await http[0].request(method, url, headers=sent, content=body)

    return _call


async def test_plan_enabled_on_the_authenticator_role_answers_explain(
    local_stack: LocalStack, call: Any, http: tuple[httpx.AsyncClient, StatusLog]
) -> None:
    """As the suite's schema file sets it (`alter role authenticator set …`), not a setting."""
    accept = {"Accept": "application/vnd.pgrst.plan+json"}
    assert (await call("GET", "notes", **accept)).status_code == 406
    with served_database(local_stack, SQL, migrate=False) as db:
        with psycopg.connect(db.superuser_dsn, autocommit=True) as conn:
            conn.execute(PLAN_ON)
        res = await http[0].get(
            f"{db.url}/rest/v1/notes", headers=accept | {"apikey": local_stack.keys.publishable_key}
        )
    assert res.status_code == 200
    assert "Plan" in res.json()[0]
