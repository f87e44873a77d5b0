"""PostgREST stand-in (`/rest/v1`): tables, views and `rpc/<fn>` of the exposed schemas over HTTP.

Each request: headers and query string are parsed (`headers`, `query`, `select`),
the body is read under a cap (`limits`), names are checked against the schema cache of the
request's schema (`schema`) while the SQL is built (`sql`, `embed` for embedded
resources, `write`, `rpc`), and the statement runs in one transaction on
`ctx.rest_pool` (logged in as `authenticator`) after PostgREST's `set_config` preamble
(`tx`), so RLS is PostgreSQL's own, embedded rows included. Responses and errors leave in
PostgREST's shape (`response`, `errors`); settings come from `[api]` of
`supabase/config.toml` (`settings`).
"""

from __future__ import annotations

import logging

import orjson
import psycopg
from psycopg_pool import AsyncConnectionPool, PoolTimeout
from starlette.requests import Request
from starlette.responses import Response
from starlette.types import Receive, Scope, Send

from app.local.context import StackContext
from app.local.rest import errors
from app.local.rest.errors import RestError
from app.local.rest.headers import JwtVerifier, check_profile
from app.local.rest.request import route_path
from app.local.rest.rpc_route import rpc_request
from app.local.rest.settings import RestSettings, load_settings
from app.local.rest.table_route import table_request
from app.local.rest.tx import RequestRole, Transactor

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
                "REST stand-in: request nested too deeply on %s %s",
                request.method,
                route_path(request),
            )
            return errors.too_deep().response(extra)
        except Exception:  # the edge: log the detail, answer PostgREST's 500 shape
            logger.exception(
                "REST stand-in: unexpected error on %s %s", request.method, route_path(request)
            )
            return errors.internal().response(extra)

    # --- routing --------------------------------------------------------------------------------
    async def _dispatch(self, request: Request, extra: dict[str, str]) -> Response:
        method = request.method
        path = route_path(request)
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
            return await rpc_request(
                self.tx, self.settings, request, caller, parts[1], headers, extra, schema
            )
        if len(parts) != 1:
            raise errors.invalid_path()
        if method not in _TABLE_METHODS:
            raise errors.unsupported_method(method)
        return await table_request(
            self.tx, self.settings, request, caller, parts[0], headers, extra, schema
        )

    async def _root(self, schema: str) -> Response:
        cat = await self.tx.catalogue(schema)
        paths: dict[str, dict[str, object]] = {f"/{name}": {} for name in sorted(cat.tables)}
        spec = {"swagger": "2.0", "info": {"title": "PostgREST stand-in"}, "paths": paths}
        return Response(orjson.dumps(spec), media_type="application/openapi+json; charset=utf-8")

    # --- per request ----------------------------------------------------------------------------
    def _pool(self) -> AsyncConnectionPool:
        if self.ctx.rest_pool is None:
            raise errors.unavailable()
        return self.ctx.rest_pool

    def _caller(self, request: Request) -> RequestRole:
        role, claims = self.jwt.claims(request.headers.get("authorization"))
        return RequestRole(role, claims)


def _one_line(exc: BaseException) -> str:
    return " ".join(str(exc).split())[:300]
