"""`/rest/v1/<table>`: GET and HEAD (reads with embeds, counts, CSV and plans), POST (insert and
upsert), PUT (single-row upsert), PATCH and DELETE, each planned against the schema cache inside
the request's transaction and answered in PostgREST's shape."""

from __future__ import annotations

from psycopg import sql
from starlette.requests import Request
from starlette.responses import Response

from app.local.rest import errors
from app.local.rest.body import parse_body, put_body
from app.local.rest.embed import check_aggregates, has_embeds, project
from app.local.rest.headers import GEOJSON_MEDIA, parse_accept
from app.local.rest.limits import read_body
from app.local.rest.query import parse_query, parse_range_header
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
    with_gucs,
    write_response,
)
from app.local.rest.schema import Catalogue
from app.local.rest.settings import RestSettings
from app.local.rest.sql.statement import read_statement
from app.local.rest.sql.target import Binder, Statement, Target, with_computed
from app.local.rest.tx import Plan, RequestRole, Transactor
from app.local.rest.write import delete_statement, insert_statement, put_keys, update_statement


async def table_request(
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
    query = parse_query(query_pairs(request))
    write = method in ("POST", "PUT", "PATCH", "DELETE")
    if method in ("PATCH", "DELETE") and not query.where:
        raise errors.unsafe_write(method)
    if method == "PUT" and (query.limit is not None or query.offset is not None):
        raise errors.put_range()
    body = parse_body(await read_body(request)) if method in ("POST", "PUT", "PATCH") else None
    mode = prefs.return_ or "minimal"
    rng = parse_range_header(headers.get("range")) if method in ("GET", "HEAD") else None
    offset, limit = page_bounds(query.offset, query.limit, rng, settings.max_rows)

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
                geojson=accept.geojson,
                max_rows=cat.max_rows,
            )
            return Plan(
                stmt,
                read_only=True,
                singular=accept.singular and not accept.plan,
                rollback=rolls_back(prefs, settings),
                count=prefs.count,
                explain=explain_options(accept),
            )
        assert body is not None or method == "DELETE"
        if accept.geojson:  # the stand-in builds GeoJSON for reads only
            raise errors.unacceptable(GEOJSON_MEDIA)
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
            rollback=rolls_back(prefs, settings),
            exactly_one=put and not accept.plan,
            explain=explain_options(accept),
        )

    _, outcome = await tx.run(request_info(request, prefs), caller, planner, schema)
    applied = prefs.applied(write=write)
    if applied:
        extra["Preference-Applied"] = applied
    if accept.plan:
        return plan_response(outcome, accept, extra)
    if method in ("GET", "HEAD"):
        return with_gucs(read_response(outcome, offset, accept, method == "HEAD", extra), outcome)
    return with_gucs(write_response(method, name, outcome, accept, prefs, extra), outcome)
