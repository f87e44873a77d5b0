"""PostgREST stand-in (`/rest/v1`): tables, views and `rpc/<fn>` of the exposed schemas over HTTP.

Each request: headers and query string are parsed (`rest_headers`, `rest_query`, `rest_select`),
the body is read under a cap (`rest_limits`), names are checked against the schema cache of the
request's schema (`rest_schema`) while the SQL is built (`rest_sql`, `rest_embed` for embedded
resources, `rest_write`, `rest_rpc`), and the statement runs in one transaction on
`ctx.rest_pool` (logged in as `authenticator`) after PostgREST's `set_config` preamble
(`rest_tx`), so RLS is PostgreSQL's own, embedded rows included. Responses and errors leave in
PostgREST's shape (`rest_response`, `rest_errors`); settings come from `[api]` of
`supabase/config.toml` (`rest_settings`).
"""

from __future__ import annotations

import logging
from urllib.parse import parse_qsl

import orjson
import psycopg
from psycopg import sql
from psycopg_pool import AsyncConnectionPool, PoolTimeout
from starlette.requests import Request
from starlette.responses import Response
from starlette.types import Receive, Scope, Send

from app.local.context import StackContext
from app.local.rest import errors
from app.local.rest.embed import check_aggregates, has_embeds, project
from app.local.rest.errors import RestError
from app.local.rest.headers import (
    Accept,
    JwtVerifier,
    Preferences,
    check_profile,
    parse_accept,
    parse_prefer,
)
from app.local.rest.limits import read_body
from app.local.rest.query import RESERVED, looks_like_filter, parse_query, parse_range_header
from app.local.rest.response import (
    page_bounds,
    plan_response,
    read_response,
    scalar_response,
    with_gucs,
    write_response,
)
from app.local.rest.rpc import Call, resolve, rpc_statement
from app.local.rest.schema import Catalogue
from app.local.rest.settings import RestSettings, load_settings
from app.local.rest.sql import Binder, Statement, Target, read_statement, with_computed
from app.local.rest.tx import Caller, Plan, RequestInfo, Transactor
from app.local.rest.write import (
    Body,
    delete_statement,
    insert_statement,
    parse_body,
    put_body,
    put_keys,
    update_statement,
)

logger = logging.getLogger(__name__)

_TABLE_METHODS = {"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE"}


def create_app(ctx: StackContext) -> RestApp:
    return RestApp(ctx)


class RestApp:
    """The ASGI app mounted at /rest/v1 behind the apikey gateway."""

    def __init__(self, ctx: StackContext, settings: RestSettings | None = None) -> None:
        self.ctx = ctx
        self.settings = settings or load_settings(ctx.extra.get("rest"))
        self.tx = Transactor(self._pool, self.settings)
        self.jwt = JwtVerifier(ctx.keys)

    def _prefer(self, request: Request) -> Preferences:
        allow = self.settings.tx_override
        return parse_prefer(request.headers.getlist("prefer"), allow_tx=allow)

    def _rollback(self, prefs: Preferences) -> bool:
        if prefs.tx is not None:
            return prefs.tx == "rollback"
        return self.settings.tx_rollback_default

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
        except psycopg.OperationalError as exc:
            logger.warning("REST stand-in: database unavailable: %s", _one_line(exc))
            return errors.unavailable().response(extra)
        except RecursionError:  # a bound was missed: still the client's input, one line
            logger.warning(
                "REST stand-in: request nested too deeply on %s %s", request.method, _path(request)
            )
            return errors.too_deep().response(extra)
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
                status_code=200, headers={"Allow": "OPTIONS,GET,HEAD,POST,PUT,PATCH,DELETE"}
            )
        caller = self._caller(request)  # PostgREST authenticates before it parses anything
        headers = {k.lower(): v for k, v in request.headers.items()}
        schema, negotiated = check_profile(headers, method, self.settings.schemas)
        if negotiated:
            extra["Content-Profile"] = schema
        if not parts:
            return await self._root(schema)
        if parts[0] == "rpc" and len(parts) == 2:
            if method not in ("GET", "HEAD", "POST"):
                raise errors.rpc_method(method)
            return await self._rpc(request, caller, parts[1], headers, extra, schema)
        if len(parts) != 1:
            raise errors.invalid_path()
        if method not in _TABLE_METHODS:
            raise errors.unsupported_method(method)
        return await self._table(request, caller, parts[0], headers, extra, schema)

    async def _root(self, schema: str) -> Response:
        cat = await self.tx.catalogue(schema)
        paths: dict[str, dict[str, object]] = {f"/{name}": {} for name in sorted(cat.tables)}
        spec = {"swagger": "2.0", "info": {"title": "PostgREST stand-in"}, "paths": paths}
        return Response(orjson.dumps(spec), media_type="application/openapi+json; charset=utf-8")

    # --- tables ---------------------------------------------------------------------------------
    async def _table(
        self,
        request: Request,
        caller: Caller,
        name: str,
        headers: dict[str, str],
        extra: dict[str, str],
        schema: str,
    ) -> Response:
        method = request.method
        accept = parse_accept(headers.get("accept"), plan_enabled=self.settings.plan_enabled)
        prefs = self._prefer(request)
        query = parse_query(_query_pairs(request))
        write = method in ("POST", "PUT", "PATCH", "DELETE")
        if method in ("PATCH", "DELETE") and not query.where:
            raise errors.unsafe_write(method)
        if method == "PUT" and (query.limit is not None or query.offset is not None):
            raise errors.put_range()
        body = parse_body(await read_body(request)) if method in ("POST", "PUT", "PATCH") else None
        mode = prefs.return_ or "minimal"
        rng = parse_range_header(headers.get("range")) if method in ("GET", "HEAD") else None
        offset, limit = page_bounds(query.offset, query.limit, rng)

        def planner(cat: Catalogue) -> Plan:
            table = cat.tables.get(name)
            if table is None:
                raise errors.table_not_found(name, cat.table_hint(name), cat.schema)
            stmt: Statement | None
            check_aggregates(cat, query)
            if method in ("GET", "HEAD"):
                source = sql.Identifier(cat.schema, name)
                target = with_computed(
                    Target(name, table.columns, source if has_embeds(query.select) else None),
                    cat.computed.get(name, {}),
                    name,
                )
                bind = Binder()
                stmt = read_statement(
                    source,
                    target,
                    query,
                    limit=limit,
                    offset=offset,
                    count=prefs.count or False,
                    singular=accept.singular,
                    with_body=method == "GET",
                    binder=bind,
                    projection=project(cat, name, target, query, bind),
                    csv=accept.csv,
                )
                return Plan(
                    stmt,
                    read_only=True,
                    singular=accept.singular and not accept.plan,
                    rollback=self._rollback(prefs),
                    count=prefs.count,
                    explain=_explain(accept),
                )
            assert body is not None or method == "DELETE"
            put = method == "PUT"
            if put:
                assert body is not None
                stmt = insert_statement(
                    table,
                    query,
                    put_body(body),
                    mode=mode,
                    resolution="merge-duplicates",
                    missing_default=False,
                    singular=accept.singular,
                    cat=cat,
                    csv=accept.csv,
                    put_keys=put_keys(table, query),
                )
            elif method == "POST":
                assert body is not None
                stmt = insert_statement(
                    table,
                    query,
                    body,
                    mode=mode,
                    resolution=prefs.resolution,
                    missing_default=prefs.missing == "default",
                    singular=accept.singular,
                    cat=cat,
                    csv=accept.csv,
                )
            elif method == "PATCH":
                assert body is not None
                stmt = update_statement(
                    table,
                    query,
                    body,
                    mode=mode,
                    singular=accept.singular,
                    cat=cat,
                    csv=accept.csv,
                )
            else:
                stmt = delete_statement(
                    table, query, mode=mode, singular=accept.singular, cat=cat, csv=accept.csv
                )
            strict = prefs.handling == "strict"
            return Plan(
                stmt,
                read_only=False,
                singular=accept.singular,
                max_affected=prefs.max_affected if strict else None,
                rollback=self._rollback(prefs),
                exactly_one=put and not accept.plan,
                explain=_explain(accept),
            )

        _, outcome = await self.tx.run(_info(request, prefs), caller, planner, schema)
        applied = prefs.applied(write=write)
        if applied:
            extra["Preference-Applied"] = applied
        if accept.plan:
            return plan_response(outcome, accept, extra)
        if method in ("GET", "HEAD"):
            return with_gucs(
                read_response(outcome, offset, accept, method == "HEAD", extra), outcome
            )
        return with_gucs(write_response(method, name, outcome, accept, prefs, extra), outcome)

    # --- rpc ------------------------------------------------------------------------------------
    async def _rpc(
        self,
        request: Request,
        caller: Caller,
        name: str,
        headers: dict[str, str],
        extra: dict[str, str],
        schema: str,
    ) -> Response:
        method = request.method
        accept = parse_accept(headers.get("accept"), plan_enabled=self.settings.plan_enabled)
        prefs = self._prefer(request)
        pairs = _query_pairs(request)
        raw = await read_body(request) if method == "POST" else b""
        body: Body | None = parse_body(raw) if raw.strip() else None
        if method == "POST" and body is None:
            body = Body({}, "{}")
        rng = parse_range_header(headers.get("range")) if method != "POST" else None

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
            offset, limit = page_bounds(query.offset, query.limit, rng)
            check_aggregates(cat, query)
            stmt = rpc_statement(
                cat,
                call,
                query,
                limit=limit,
                offset=offset,
                count=prefs.count or False,
                singular=accept.singular,
                with_body=method != "HEAD",
                csv=accept.csv,
            )
            strict = prefs.handling == "strict" and prefs.max_affected is not None
            if strict and not fn.returns_set:
                raise errors.max_affected_rpc()
            return Plan(
                stmt,
                read_only=method != "POST" or fn.read_only,
                singular=accept.singular and fn.returns_set,
                function=fn,
                offset=offset,
                max_affected=prefs.max_affected if strict else None,
                rollback=self._rollback(prefs),
                count=prefs.count,
                explain=_explain(accept),
            )

        plan, outcome = await self.tx.run(_info(request, prefs), caller, planner, schema)
        fn = plan.function
        assert fn is not None
        applied = prefs.applied(write=False)
        if applied:
            extra["Preference-Applied"] = applied
        if accept.plan:
            return plan_response(outcome, accept, extra)
        if fn.returns_void:
            return with_gucs(Response(status_code=204, headers=extra), outcome)
        if not fn.returns_set:
            counted = prefs.count is not None
            scalar = scalar_response(outcome, method == "HEAD", extra, counted=counted)
            return with_gucs(scalar, outcome)
        head = method == "HEAD"
        return with_gucs(read_response(outcome, plan.offset, accept, head, extra), outcome)

    # --- per request ----------------------------------------------------------------------------
    def _pool(self) -> AsyncConnectionPool:
        if self.ctx.rest_pool is None:
            raise errors.unavailable()
        return self.ctx.rest_pool

    def _caller(self, request: Request) -> Caller:
        role, claims = self.jwt.claims(request.headers.get("authorization"))
        return Caller(role, claims)


def _explain(accept: Accept) -> tuple[str, ...] | None:
    """`EXPLAIN` options for the plan media type: the format, then the requested options."""
    return (accept.plan, *accept.plan_options) if accept.plan else None


def _one_line(exc: BaseException) -> str:
    return " ".join(str(exc).split())[:300]


def _info(request: Request, prefs: Preferences) -> RequestInfo:
    headers = {k.lower(): v for k, v in request.headers.items() if k.lower() != "cookie"}
    return RequestInfo(
        request.method, _path(request), headers, dict(request.cookies), prefs.timezone
    )


def _path(request: Request) -> str:
    path: str = request.scope["path"]
    root: str = request.scope.get("root_path", "")
    if root and path.startswith(root):
        path = path[len(root) :]
    return path or "/"


def _query_pairs(request: Request) -> list[tuple[str, str]]:
    raw = request.scope.get("query_string", b"").decode("latin-1")
    return parse_qsl(raw, keep_blank_values=True)
