"""PostgREST stand-in (`/rest/v1`): tables, views and `rpc/<fn>` of `public` over HTTP.

Each request: headers and query string are parsed (`rest_http`, `rest_query`), names are checked
against the schema cache (`rest_schema`) while the SQL is built (`rest_sql`, `rest_write`,
`rest_rpc`), and the statement runs in one transaction on `ctx.rest_pool` (logged in as
`authenticator`) after PostgREST's `set_config` preamble (§2.8): search_path, the role's
settings, `role`, `request.jwt.claims`, `request.method`, `request.path`, `request.headers`,
`request.cookies`. RLS is therefore PostgreSQL's own. Errors leave as PostgREST bodies.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from urllib.parse import parse_qsl, quote

import orjson
import psycopg
from psycopg import AsyncConnection, sql
from psycopg_pool import AsyncConnectionPool, PoolTimeout
from starlette.requests import Request
from starlette.responses import Response
from starlette.types import Receive, Scope, Send

from app.local import rest_errors as errors
from app.local.rest_errors import RestError
from app.local.rest_http import (
    OBJECT_MEDIA,
    Accept,
    JwtVerifier,
    Preferences,
    check_profile,
    parse_accept,
    parse_prefer,
)
from app.local.rest_query import (
    RESERVED,
    ApiQuery,
    looks_like_filter,
    parse_query,
    parse_range_header,
)
from app.local.rest_rpc import Call, resolve, rpc_statement
from app.local.rest_schema import Catalogue, Function, SchemaCache
from app.local.rest_sql import Statement, Target, read_statement
from app.local.rest_write import (
    Body,
    delete_statement,
    insert_statement,
    parse_body,
    update_statement,
)
from app.local.stack import StackContext

logger = logging.getLogger(__name__)

MAX_ROWS = 1000  # Supabase's [api] max_rows default
SEARCH_PATH = "public, extensions"
_RELOAD_CODES = {"PGRST202", "PGRST204", "PGRST205", "42703"}
_STALE_SQLSTATES = {"42P01", "42703", "42883"}
_TABLE_METHODS = {"GET", "HEAD", "POST", "PATCH", "DELETE"}


def _preamble_sql(count: int) -> str:
    """`select set_config($1, $2, true), …`: names and values are both bound parameters."""
    return "select " + ", ".join(["set_config(%s, %s, true)"] * count)


@dataclass(frozen=True)
class Outcome:
    total: int | None
    page_total: int
    body: str | None


@dataclass(frozen=True)
class Caller:
    role: str
    claims: dict[str, object]


@dataclass(frozen=True)
class Plan:
    """What to run once the catalogue is known: the statement and its checks."""

    statement: Statement | None
    read_only: bool
    singular: bool = False
    max_affected: int | None = None
    function: Function | None = None  # for rpc: decides the response shape
    offset: int = 0


Planner = Callable[[Catalogue], Plan]


def create_app(ctx: StackContext) -> RestApp:
    return RestApp(ctx)


class RestApp:
    """The ASGI app mounted at /rest/v1 behind the apikey gateway."""

    def __init__(self, ctx: StackContext) -> None:
        self.ctx = ctx
        self.schema = SchemaCache()
        self.jwt = JwtVerifier(ctx.keys)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return
        request = Request(scope, receive)
        response = await self._respond(request)
        await response(scope, receive, send)

    async def _respond(self, request: Request) -> Response:
        extra: dict[str, str] = {}
        try:
            return await self._dispatch(request, extra)
        except RestError as err:
            return err.response(extra)
        except PoolTimeout:
            return errors.pool_timeout().response(extra)
        except psycopg.OperationalError:
            logger.warning("REST stand-in: database unavailable", exc_info=True)
            return errors.unavailable().response(extra)
        except Exception:  # the edge: log the detail, answer PostgREST's 500 shape
            logger.exception(
                "REST stand-in: unexpected error on %s %s", request.method, _path(request)
            )
            return errors.internal().response(extra)

    # --- routing --------------------------------------------------------------------------------
    async def _dispatch(self, request: Request, extra: dict[str, str]) -> Response:
        method = request.method
        path = _path(request)
        parts = path.strip("/").split("/") if path.strip("/") else []
        if method == "OPTIONS":
            return Response(
                status_code=200, headers={"Allow": "OPTIONS,GET,HEAD,POST,PATCH,DELETE"}
            )
        headers = {k.lower(): v for k, v in request.headers.items()}
        if check_profile(headers, method):
            extra["Content-Profile"] = "public"
        if not parts:
            return await self._root(request)
        if parts[0] == "rpc" and len(parts) == 2:
            if method not in ("GET", "HEAD", "POST"):
                raise errors.rpc_method(method)
            return await self._rpc(request, parts[1], headers, extra)
        if len(parts) != 1:
            raise errors.invalid_path()
        if method not in _TABLE_METHODS:
            raise errors.unsupported_method(method)
        return await self._table(request, parts[0], headers, extra)

    async def _root(self, request: Request) -> Response:
        self._caller(request)
        async with self._pool().connection() as conn:
            cat = await self.schema.get(conn)
        paths: dict[str, dict[str, object]] = {f"/{name}": {} for name in sorted(cat.tables)}
        spec = {"swagger": "2.0", "info": {"title": "PostgREST stand-in"}, "paths": paths}
        return Response(orjson.dumps(spec), media_type="application/openapi+json; charset=utf-8")

    # --- tables ---------------------------------------------------------------------------------
    async def _table(
        self, request: Request, name: str, headers: dict[str, str], extra: dict[str, str]
    ) -> Response:
        method = request.method
        accept = parse_accept(headers.get("accept"))
        prefs = parse_prefer(request.headers.getlist("prefer"))
        caller = self._caller(request)
        query = parse_query(_query_pairs(request))
        write = method in ("POST", "PATCH", "DELETE")
        if method in ("PATCH", "DELETE") and not query.where:
            raise errors.unsafe_write(method)
        body = parse_body(await request.body()) if method in ("POST", "PATCH") else None
        mode = prefs.return_ or "minimal"
        offset, limit = _page(
            query, headers.get("range") if method == "GET" or method == "HEAD" else None
        )

        def planner(cat: Catalogue) -> Plan:
            table = cat.tables.get(name)
            if table is None:
                raise errors.table_not_found(name, cat.table_hint(name))
            stmt: Statement | None
            if method in ("GET", "HEAD"):
                stmt = read_statement(
                    sql.Identifier("public", name),
                    Target(name, table.columns, None),
                    query,
                    limit=limit,
                    offset=offset,
                    count=prefs.count is not None,
                    singular=accept.singular,
                    with_body=method == "GET",
                )
                return Plan(stmt, read_only=True, singular=accept.singular)
            assert body is not None or method == "DELETE"
            if method == "POST":
                assert body is not None
                stmt = insert_statement(
                    table,
                    query,
                    body,
                    mode=mode,
                    resolution=prefs.resolution,
                    missing_default=prefs.missing == "default",
                    singular=accept.singular,
                )
            elif method == "PATCH":
                assert body is not None
                stmt = update_statement(table, query, body, mode=mode, singular=accept.singular)
            else:
                stmt = delete_statement(table, query, mode=mode, singular=accept.singular)
            strict = prefs.handling == "strict"
            return Plan(
                stmt,
                read_only=False,
                singular=accept.singular,
                max_affected=prefs.max_affected if strict else None,
            )

        _, outcome = await self._run(request, caller, planner)
        applied = prefs.applied(write=write)
        if applied:
            extra["Preference-Applied"] = applied
        if method in ("GET", "HEAD"):
            return _read_response(outcome, offset, accept, method == "HEAD", extra)
        return _write_response(method, name, outcome, mode, accept, prefs, extra)

    # --- rpc ------------------------------------------------------------------------------------
    async def _rpc(
        self, request: Request, name: str, headers: dict[str, str], extra: dict[str, str]
    ) -> Response:
        method = request.method
        accept = parse_accept(headers.get("accept"))
        prefs = parse_prefer(request.headers.getlist("prefer"))
        caller = self._caller(request)
        pairs = _query_pairs(request)
        raw = await request.body() if method == "POST" else b""
        body: Body | None = parse_body(raw) if raw.strip() else None
        if method == "POST" and body is None:
            body = Body({}, "{}")
        rng = parse_range_header(headers.get("range")) if method != "POST" else None
        lower, length = rng if rng else (0, None)

        def planner(cat: Catalogue) -> Plan:
            if method == "POST":
                assert body is not None
                arg_names = set(body.value) if isinstance(body.value, dict) else set()
                query = parse_query(pairs)
                fn = resolve(cat, name, arg_names, whole_body=True)
                if fn.single_unnamed_json:
                    call = Call(fn, body.text, ())
                else:
                    if not isinstance(body.value, dict):
                        raise errors.invalid_body()
                    call = Call(fn, body.text, tuple(sorted(arg_names)))
            else:
                known = {a.name for fn in cat.functions.get(name, []) for a in fn.inputs}
                args = {
                    k: v
                    for k, v in pairs
                    if k not in RESERVED and (k in known or not looks_like_filter(v))
                }
                query = parse_query([(k, v) for k, v in pairs if k not in args])
                fn = resolve(cat, name, set(args), whole_body=False)
                args_json = orjson.dumps(args).decode()
                call = Call(fn, args_json, tuple(sorted(args)))
            offset, limit = _combine(query.offset, query.limit, lower, length)
            stmt = rpc_statement(
                call,
                query,
                limit=limit,
                offset=offset,
                count=prefs.count is not None,
                singular=accept.singular,
                with_body=method != "HEAD",
            )
            return Plan(
                stmt,
                read_only=method != "POST" or fn.read_only,
                singular=accept.singular and fn.returns_set,
                function=fn,
                offset=offset,
            )

        plan, outcome = await self._run(request, caller, planner)
        fn = plan.function
        assert fn is not None
        applied = prefs.applied(write=False)
        if applied:
            extra["Preference-Applied"] = applied
        if fn.returns_void:
            return Response(status_code=204, headers=extra)
        if not fn.returns_set:
            ctype = errors.JSON_TYPE
            return Response(
                (outcome.body or "null").encode() if method != "HEAD" else b"",
                status_code=200,
                headers={"Content-Range": "0-0/*"} | extra,
                media_type=ctype,
            )
        return _read_response(outcome, plan.offset, accept, method == "HEAD", extra)

    # --- the transaction ------------------------------------------------------------------------
    def _pool(self) -> AsyncConnectionPool:
        if self.ctx.rest_pool is None:
            raise errors.unavailable()
        return self.ctx.rest_pool

    def _caller(self, request: Request) -> Caller:
        role, claims = self.jwt.claims(request.headers.get("authorization"))
        return Caller(role, claims)

    async def _run(
        self, request: Request, caller: Caller, planner: Planner
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
            return plan, await self._transaction(conn, request, caller, cat, plan)

    async def _transaction(
        self, conn: AsyncConnection, request: Request, caller: Caller, cat: Catalogue, plan: Plan
    ) -> Outcome:
        await conn.set_read_only(plan.read_only)
        try:
            async with conn.transaction():
                await self._preamble(conn, request, caller, cat)
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
        self, conn: AsyncConnection, request: Request, caller: Caller, cat: Catalogue
    ) -> None:
        headers = {k.lower(): v for k, v in request.headers.items() if k.lower() != "cookie"}
        settings = [
            ("search_path", SEARCH_PATH),
            *cat.role_settings.get(caller.role, {}).items(),
            ("role", caller.role),
            ("request.jwt.claims", orjson.dumps(caller.claims).decode()),
            ("request.method", request.method),
            ("request.path", _path(request)),
            ("request.headers", orjson.dumps(headers).decode()),
            ("request.cookies", orjson.dumps(dict(request.cookies)).decode()),
        ]
        try:
            await conn.execute(_preamble_sql(len(settings)), [v for pair in settings for v in pair])
        except psycopg.Error as exc:
            err = errors.from_postgres(exc, caller.role)
            if exc.sqlstate == "22023":  # role "x" does not exist
                err.status, err.headers = 401, {"WWW-Authenticate": "Bearer"}
            raise err from exc


# --- helpers -------------------------------------------------------------------------------------
def _path(request: Request) -> str:
    path: str = request.scope["path"]
    root: str = request.scope.get("root_path", "")
    if root and path.startswith(root):
        path = path[len(root) :]
    return path or "/"


def _query_pairs(request: Request) -> list[tuple[str, str]]:
    raw = request.scope.get("query_string", b"").decode("latin-1")
    return parse_qsl(raw, keep_blank_values=True)


def _page(query: ApiQuery, range_header: str | None) -> tuple[int, int]:
    rng = parse_range_header(range_header)
    lower, length = rng if rng else (0, None)
    return _combine(query.offset, query.limit, lower, length)


def _combine(
    q_offset: int | None, q_limit: int | None, lower: int, length: int | None
) -> tuple[int, int]:
    """Intersect `offset/limit` with the Range header, then cap at max-rows."""
    start = max(q_offset or 0, lower)
    ends = [
        e
        for e in (
            (q_offset or 0) + q_limit if q_limit is not None else None,
            lower + length if length is not None else None,
        )
        if e is not None
    ]
    limit = max(0, min(ends) - start) if ends else MAX_ROWS
    return start, min(limit, MAX_ROWS)


def _content_range(lower: int, rows: int, total: int | None) -> str:
    total_text = "*" if total is None else str(total)
    if rows <= 0 or total == 0:
        return f"*/{total_text}"
    return f"{lower}-{lower + rows - 1}/{total_text}"


def _media(accept: Accept) -> str:
    return f"{OBJECT_MEDIA}; charset=utf-8" if accept.singular else errors.JSON_TYPE


def _read_response(
    outcome: Outcome, lower: int, accept: Accept, head: bool, extra: dict[str, str]
) -> Response:
    total = outcome.total
    status = 200
    if total is not None:
        if lower > total:
            raise errors.invalid_range(
                f"An offset of {lower} was requested, but there are only {total} rows."
            )
        if outcome.page_total < total:
            status = 206
    headers = {"Content-Range": _content_range(lower, outcome.page_total, total)} | extra
    body = b"" if head else _body_bytes(outcome.body, accept)
    return Response(body, status_code=status, headers=headers, media_type=_media(accept))


def _body_bytes(body: str | None, accept: Accept) -> bytes:
    text = body if body is not None else "[]"
    if accept.strip_nulls:
        return _strip_nulls(orjson.loads(text))
    return text.encode()


def _strip_nulls(value: object) -> bytes:
    def strip(v: object) -> object:
        if isinstance(v, dict):
            return {k: strip(x) for k, x in v.items() if x is not None}
        if isinstance(v, list):
            return [strip(x) for x in v]
        return v

    return orjson.dumps(strip(value))


def _write_response(
    method: str,
    table: str,
    outcome: Outcome,
    mode: str,
    accept: Accept,
    prefs: Preferences,
    extra: dict[str, str],
) -> Response:
    n = outcome.page_total
    counted = n if prefs.count is not None else None
    if method == "POST":
        headers = {"Content-Range": f"*/{'*' if counted is None else counted}"} | extra
        status = 201
    else:
        headers = {"Content-Range": _content_range(0, n, counted)} | extra
        status = 200 if mode == "representation" else 204
    if mode == "headers-only" and method == "POST" and outcome.body not in (None, "null"):
        pk = orjson.loads(outcome.body or "{}")
        query = "&".join(f"{quote(str(k))}=eq.{quote(str(v))}" for k, v in pk.items())
        headers["Location"] = f"/{quote(table)}?{query}"
    if mode != "representation":
        return Response(status_code=status, headers=headers)
    return Response(
        _body_bytes(outcome.body, accept),
        status_code=status,
        headers=headers,
        media_type=_media(accept),
    )
