"""One PostgREST transaction per request, as PostgREST opens it, on the `authenticator` pool.

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
from psycopg import AsyncConnection, sql
from psycopg_pool import AsyncConnectionPool

from app.local.rest import errors
from app.local.rest.errors import RestError
from app.local.rest.schema import Catalogue, Function, SchemaCache
from app.local.rest.settings import RestSettings
from app.local.rest.sql.target import Statement

# A lookup miss with one of these codes may only mean the cache predates the object: reload once.
# PGRST123: `pgrst.db_aggregates_enabled` may have been set since (PostgREST reloads its config
# on `NOTIFY pgrst, 'reload config'`; the stand-in reloads on the first request that needs it).
_RELOAD_CODES = {"PGRST123", "PGRST200", "PGRST202", "PGRST204", "PGRST205", "42703"}
# PostgreSQL did not know a name the cache knew: reload before the next request.
_STALE_SQLSTATES = {"42P01", "42703", "42883"}


@dataclass(frozen=True)
class RequestRole:
    """The role a request runs as (from its JWT, or anon) and the claims SQL can read."""

    role: str
    claims: dict[str, Any]


@dataclass(frozen=True)
class RequestInfo:
    """What PostgREST exposes to SQL about the HTTP request."""

    method: str
    path: str
    headers: dict[str, str]  # lower-cased names, no cookie
    cookies: dict[str, str]
    timezone: str | None = None  # `Prefer: timezone=…`


@dataclass(frozen=True)
class Plan:
    """What to run once the catalogue is known: the statement and its checks."""

    statement: Statement | None
    read_only: bool
    singular: bool = False
    max_affected: int | None = None
    function: Function | None = None  # for rpc: decides the response shape
    offset: int = 0
    rollback: bool = False  # `Prefer: tx=rollback` (or `db-tx-end = rollback*`)
    count: str | None = None  # `Prefer: count=…`; planned/estimated use the statement's explain
    exactly_one: bool = False  # PUT: the URL's key must match the payload's (else PGRST115)
    explain: tuple[str, ...] | None = None  # plan media type: (format, options…) of EXPLAIN


@dataclass(frozen=True)
class Outcome:
    total: int | None
    page_total: int
    body: str | None
    inserted: int | None = None  # rows an upsert inserted rather than updated
    response_headers: str | None = None  # `set_config('response.headers', …)` by the SQL
    response_status: str | None = None  # `set_config('response.status', …)`


Planner = Callable[[Catalogue], Plan]


_EXPLAIN_WORDS = {
    "json": "FORMAT JSON",
    "text": "FORMAT TEXT",
    "analyze": "ANALYZE",
    "verbose": "VERBOSE",
    "settings": "SETTINGS",
    "buffers": "BUFFERS",
    "wal": "WAL",
}


def _plan_rows(explained: Any) -> int | None:
    """`Plan Rows` of an `EXPLAIN (FORMAT JSON)` result, as PostgREST reads it."""
    try:
        plan = orjson.loads(explained) if isinstance(explained, (str, bytes)) else explained
        return int(plan[0]["Plan"]["Plan Rows"])
    except (TypeError, KeyError, IndexError, ValueError, orjson.JSONDecodeError):
        return None


def _preamble_sql(count: int) -> str:
    """`select set_config($1, $2, true), …`: names and values are both bound parameters."""
    return "select " + ", ".join(["set_config(%s, %s, true)"] * count)


class Transactor:
    """Runs plans against one database, keeping its schema cache."""

    def __init__(
        self, pool: Callable[[], AsyncConnectionPool], settings: RestSettings | None = None
    ) -> None:
        self._pool = pool
        self.settings = settings or RestSettings()
        self.schema = SchemaCache(self.settings.max_rows)

    async def catalogue(self, schema: str | None = None) -> Catalogue:
        async with self._pool().connection() as conn:
            return await self.schema.get(conn, schema or self.settings.default_schema)

    async def plan_enabled(self, accept: str | None, schema: str | None = None) -> bool:
        """Whether an `application/vnd.pgrst.plan` Accept may be answered: `db-plan-enabled`
        from the settings, or set in the database on the authenticator role."""
        if self.settings.plan_enabled:
            return True
        if accept is None or "vnd.pgrst.plan" not in accept.lower():
            return False
        return (await self.catalogue(schema)).plan_enabled

    async def run(
        self, info: RequestInfo, caller: RequestRole, planner: Planner, schema: str | None = None
    ) -> tuple[Plan, Outcome]:
        started = time.monotonic()
        name = schema or self.settings.default_schema
        async with self._pool().connection() as conn:
            cat = await self.schema.get(conn, name)
            try:
                plan = planner(cat)
            except RestError as err:
                if err.code not in _RELOAD_CODES or cat.loaded_at >= started:
                    raise
                cat = await self.schema.reload(conn, since=started, schema=name)
                plan = planner(cat)
            return plan, await self._transaction(conn, info, caller, cat, plan)

    async def _transaction(
        self,
        conn: AsyncConnection,
        info: RequestInfo,
        caller: RequestRole,
        cat: Catalogue,
        plan: Plan,
    ) -> Outcome:
        await conn.set_read_only(plan.read_only)
        outcome = Outcome(None, 0, "[]")
        try:
            async with conn.transaction() as tx:
                await self._preamble(conn, info, caller, cat)
                if plan.statement is not None:
                    outcome = await self._execute(conn, caller, plan, plan.statement)
                if plan.rollback:
                    raise psycopg.Rollback(tx)
            return outcome
        finally:
            await conn.set_read_only(False)

    async def _execute(
        self, conn: AsyncConnection, caller: RequestRole, plan: Plan, statement: Statement
    ) -> Outcome:
        if plan.explain is not None:
            return await self._explain(conn, caller, plan.explain, statement)
        try:
            cur = await conn.execute(statement.query, statement.params)
            row = await cur.fetchone()
            assert row is not None
            total = row[0]
            if statement.explain is not None and plan.count in ("planned", "estimated"):
                explained = await (
                    await conn.execute(statement.explain, statement.params)
                ).fetchone()
                estimate = _plan_rows(explained[0] if explained else None)
                if plan.count == "planned":
                    total = estimate
                elif total is not None and total > self.settings.max_rows and estimate is not None:
                    total = max(total, estimate)
        except psycopg.Error as exc:
            if exc.sqlstate in _STALE_SQLSTATES:
                self.schema.invalidate()
            raise errors.from_postgres(exc, caller.role) from exc
        outcome = Outcome(total, int(row[1]), row[2], *row[3:6])
        if plan.exactly_one and outcome.page_total != 1:
            raise errors.put_mismatch()
        if plan.singular and outcome.page_total != 1:
            raise errors.not_singular(outcome.page_total)
        if plan.max_affected is not None and outcome.page_total > plan.max_affected:
            raise errors.max_affected(outcome.page_total)
        return outcome

    async def _explain(
        self,
        conn: AsyncConnection,
        caller: RequestRole,
        words: tuple[str, ...],
        statement: Statement,
    ) -> Outcome:
        """The statement's plan instead of its result (the words come from `_EXPLAIN_WORDS`)."""
        options = sql.SQL(", ").join(sql.SQL(_EXPLAIN_WORDS[w]) for w in words)
        try:
            cur = await conn.execute(
                sql.SQL("EXPLAIN ({}) {}").format(options, statement.query), statement.params
            )
            rows = await cur.fetchall()
        except psycopg.Error as exc:
            raise errors.from_postgres(exc, caller.role) from exc
        if words[0] == "json":
            body = orjson.dumps(rows[0][0]).decode() if rows else "[]"
        else:
            body = "\n".join(str(r[0]) for r in rows)
        return Outcome(None, 1, body)

    async def _preamble(
        self, conn: AsyncConnection, info: RequestInfo, caller: RequestRole, cat: Catalogue
    ) -> None:
        settings = [
            ("search_path", self.settings.search_path(cat.schema)),
            *cat.role_settings.get(caller.role, {}).items(),
            ("role", caller.role),
            # Embeds nest lateral subqueries whose cost estimates on small, fresh tables pass
            # jit_above_cost; compiling then takes seconds. The stand-in does not JIT.
            ("jit", "off"),
            ("request.jwt.claims", orjson.dumps(caller.claims).decode()),
            ("request.method", info.method),
            ("request.path", info.path),
            ("request.headers", orjson.dumps(info.headers).decode()),
            ("request.cookies", orjson.dumps(info.cookies).decode()),
            *([("timezone", info.timezone)] if info.timezone else []),
        ]
        try:
            await conn.execute(_preamble_sql(len(settings)), [v for pair in settings for v in pair])
        except psycopg.Error as exc:
            err = errors.from_postgres(exc, caller.role)
            if exc.sqlstate == "22023" and "role" in str(exc):  # role "x" does not exist
                err.status, err.headers = 401, {"WWW-Authenticate": "Bearer"}
            raise err from exc
