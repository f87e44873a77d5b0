"""`/rest/v1/rpc/<fn>`: POST (named arguments in the body, or one unnamed json argument) and
GET/HEAD (arguments in the query string, the rest filters), resolved by name and argument names,
with PostgREST's statuses for void, scalar and set-returning functions."""

from __future__ import annotations

import orjson
from starlette.requests import Request
from starlette.responses import Response

from app.local.rest import errors
from app.local.rest.body import Body, parse_body
from app.local.rest.embed import check_aggregates
from app.local.rest.headers import GEOJSON_MEDIA, parse_accept
from app.local.rest.limits import read_body
from app.local.rest.query import RESERVED, looks_like_filter, parse_query, parse_range_header
from app.local.rest.request import (
    explain_options,
    preferences,
    query_pairs,
    request_info,
    rolls_back,
)
from app.local.rest.response import (
    page_bounds,
    plan_response,
    read_response,
    scalar_response,
    with_gucs,
)
from app.local.rest.rpc import Call, resolve, rpc_statement
from app.local.rest.schema import Catalogue
from app.local.rest.settings import RestSettings
from app.local.rest.tx import Plan, RequestRole, Transactor


async def rpc_request(
    tx: Transactor,
    settings: RestSettings,
    request: Request,
    caller: RequestRole,
    name: str,
    headers: dict[str, str],
    extra: dict[str, str],
    schema: str,
) -> Response:
    method = request.method
    plan_enabled = await tx.plan_enabled(headers.get("accept"), schema)
    accept = parse_accept(headers.get("accept"), plan_enabled=plan_enabled)
    prefs = preferences(request, settings)
    pairs = query_pairs(request)
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
            fn = resolve(cat, name, arg_names, post=True)
            if fn.single_unnamed is not None:
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
            fn = resolve(cat, name, set(args), post=False)
            args_json = orjson.dumps(args).decode()
            call = Call(fn, args_json, tuple(sorted(args)))
        offset, limit = page_bounds(query.offset, query.limit, rng, settings.max_rows)
        if accept.geojson and not fn.returns_set:  # the stand-in builds it for sets only
            raise errors.unacceptable(GEOJSON_MEDIA)
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
            geojson=accept.geojson,
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
            rollback=rolls_back(prefs, settings),
            count=prefs.count,
            explain=explain_options(accept),
        )

    plan, outcome = await tx.run(request_info(request, prefs), caller, planner, schema)
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
