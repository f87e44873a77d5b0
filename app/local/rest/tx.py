"""One PostgREST transaction per request (wire reference §2.8) on the `authenticator` pool.

`BEGIN` (READ ONLY when the plan says so), one `set_config` statement in PostgREST's order
(search_path, the role's own settings, `role`, `request.jwt.claims`, `request.method`,
`request.path`, `request.headers`, `request.cookies`), the planned statement, then COMMIT, or
ROLLBACK on any error, including a singular response with ≠ 1 row and `max-affected`.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import orjson
import psycopg
from psycopg import AsyncConnection
from psycopg_pool import AsyncConnectionPool

from app.local.rest import errors
from app.local.rest.errors import RestError
from app.local.rest.schema import Catalogue, Function, SchemaCache
from app.local.rest.sql import Statement

SEARCH_PATH = "public, extensions"
# A lookup miss with one of these codes may only mean the cache predates the object: reload once.
_RELOAD_CODES = {"PGRST202", "PGRST204", "PGRST205", "42703"}
# PostgreSQL did not know a name the cache knew: reload before the next request.
_STALE_SQLSTATES = {"42P01", "42703", "42883"}


@dataclass(frozen=True)
class Caller:
    role: str
    claims: dict[str, Any]


@dataclass(frozen=True)
class RequestInfo:
    """What PostgREST exposes to SQL about the HTTP request."""

    method: str
    path: str
    headers: dict[str, str]  # lower-cased names, no cookie
    cookies: dict[str, str]


@dataclass(frozen=True)
class Plan:
    """What to run once the catalogue is known: the statement and its checks."""

    statement: Statement | None
    read_only: bool
    singular: bool = False
    max_affected: int | None = None
    function: Function | None = None  # for rpc: decides the response shape
    offset: int = 0


@dataclass(frozen=True)
class Outcome:
    total: int | None
    page_total: int
    body: str | None


Planner = Callable[[Catalogue], Plan]


def _preamble_sql(count: int) -> str:
    """`select set_config($1, $2, true), …`: names and values are both bound parameters."""
    return "select " + ", ".join(["set_config(%s, %s, true)"] * count)


class Transactor:
    """Runs plans against one database, keeping its schema cache."""

    def __init__(self, pool: Callable[[], AsyncConnectionPool]) -> None:
        self._pool = pool
        self.schema = SchemaCache()

    async def catalogue(self) -> Catalogue:
        async with self._pool().connection() as conn:
            return await self.schema.get(conn)

    async def run(
        self, info: RequestInfo, caller: Caller, planner: Planner
    ) -> tuple[Plan, Outcome]:
        started = time.monotonic()
        async with self._pool().connection() as conn:
            cat = await self.schema.get(conn)
            try:
                plan = planner(cat)
            except RestError as err:
                if err.code not in _RELOAD_CODES or cat.loaded_at >= started:
                    raise
                cat = await self.schema.reload(conn, since=started)
                plan = planner(cat)
            return plan, await self._transaction(conn, info, caller, cat, plan)

    async def _transaction(
        self, conn: AsyncConnection, info: RequestInfo, caller: Caller, cat: Catalogue, plan: Plan
    ) -> Outcome:
        await conn.set_read_only(plan.read_only)
        try:
            async with conn.transaction():
                await self._preamble(conn, info, caller, cat)
                if plan.statement is None:
                    return Outcome(None, 0, "[]")
                try:
                    cur = await conn.execute(plan.statement.query, plan.statement.params)
                except psycopg.Error as exc:
                    if exc.sqlstate in _STALE_SQLSTATES:
                        self.schema.invalidate()
                    raise errors.from_postgres(exc, caller.role) from exc
                row = await cur.fetchone()
                assert row is not None
                outcome = Outcome(row[0], int(row[1]), row[2])
                if plan.singular and outcome.page_total != 1:
                    raise errors.not_singular(outcome.page_total)
                if plan.max_affected is not None and outcome.page_total > plan.max_affected:
                    raise errors.max_affected(outcome.page_total)
                return outcome
        finally:
            await conn.set_read_only(False)

    async def _preamble(
        self, conn: AsyncConnection, info: RequestInfo, caller: Caller, cat: Catalogue
    ) -> None:
        settings = [
            ("search_path", SEARCH_PATH),
            *cat.role_settings.get(caller.role, {}).items(),
            ("role", caller.role),
            ("request.jwt.claims", orjson.dumps(caller.claims).decode()),
            ("request.method", info.method),
            ("request.path", info.path),
            ("request.headers", orjson.dumps(info.headers).decode()),
            ("request.cookies", orjson.dumps(info.cookies).decode()),
        ]
        try:
            await conn.execute(_preamble_sql(len(settings)), [v for pair in settings for v in pair])
        except psycopg.Error as exc:
            err = errors.from_postgres(exc, caller.role)
            if exc.sqlstate == "22023":  # role "x" does not exist
                err.status, err.headers = 401, {"WWW-Authenticate": "Bearer"}
            raise err from exc
