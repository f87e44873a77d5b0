"""PostgREST's error body and status mapping (its `PGRST…` codes), for the REST stand-in.

Every failure leaves the stand-in as `{"code", "message", "details", "hint"}` with PostgREST's
status: PGRSTnnn errors raised by the stand-in itself, and PostgreSQL errors mapped from their
SQLSTATE (`mapSQLtoHTTP`), where 42501 is 401 for the anonymous role and 403 for everyone else.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import orjson
import psycopg
from starlette.responses import Response

JSON_TYPE = "application/json; charset=utf-8"
ANON_ROLE = "anon"


@dataclass
class RestError(Exception):
    """A response-ready error: status, PostgREST body fields and extra headers."""

    status: int
    code: str
    message: str
    details: str | list[dict[str, str]] | None = None  # PGRST201 sends a list
    hint: str | None = None
    headers: dict[str, str] = field(default_factory=dict)

    def __str__(self) -> str:
        return f"{self.status} {self.code}: {self.message}"

    def response(self, extra_headers: dict[str, str] | None = None) -> Response:
        body = {
            "code": self.code,
            "details": self.details,
            "hint": self.hint,
            "message": self.message,
        }
        headers = {"Proxy-Status": f"PostgREST; error={self.code}"} | self.headers
        return Response(
            orjson.dumps(body),
            status_code=self.status,
            headers=headers | (extra_headers or {}),
            media_type=JSON_TYPE,
        )


# --- errors the stand-in raises itself ---
def parse_error(what: str, text: str, reason: str, column: int = 1) -> RestError:
    """PGRST100, shaped like PostgREST's parsec messages."""
    return RestError(
        400, "PGRST100", f'"failed to parse {what} ({text})" (line 1, column {column})', reason
    )


def invalid_body(details: str | None = None) -> RestError:
    return RestError(400, "PGRST102", "Empty or invalid json", details)


def invalid_range(details: str) -> RestError:
    return RestError(416, "PGRST103", "Requested range not satisfiable", details)


def invalid_schema(schema: str, exposed: tuple[str, ...] = ("public",)) -> RestError:
    return RestError(
        406,
        "PGRST106",
        f"Invalid schema: {schema}",
        None,
        "Only the following schemas are exposed: " + ", ".join(exposed),
    )


def unacceptable(media: str) -> RestError:
    return RestError(406, "PGRST107", f"None of these media types are available: {media}")


def not_embedded(name: str) -> RestError:
    return RestError(
        400,
        "PGRST108",
        f"'{name}' is not an embedded resource in this request",
        None,
        f"Verify that '{name}' is included in the 'select' query parameter.",
    )


def not_singular(rows: int) -> RestError:
    return RestError(
        406,
        "PGRST116",
        "Cannot coerce the result to a single JSON object",
        f"The result contains {rows} rows",
    )


def unsupported_method(method: str) -> RestError:
    return RestError(405, "PGRST117", f"Unsupported HTTP method: {method}")


def rpc_method(method: str) -> RestError:
    return RestError(405, "PGRST101", f"Cannot use the {method} method on RPC")


def strict_preferences(invalid: list[str]) -> RestError:
    return RestError(
        400,
        "PGRST122",
        "Invalid preferences given with handling=strict",
        "Invalid preferences: " + ", ".join(invalid),
    )


def max_affected(rows: int) -> RestError:
    return RestError(
        400,
        "PGRST124",
        "Query result exceeds max-affected preference constraint",
        f"The query affects {rows} rows",
    )


def invalid_put_filters() -> RestError:
    return RestError(
        405,
        "PGRST105",
        "Filters must include all and only primary key columns with 'eq' operators",
    )


def put_range() -> RestError:
    return RestError(400, "PGRST114", "limit/offset querystring parameters are not allowed for PUT")


def put_mismatch() -> RestError:
    return RestError(400, "PGRST115", "Payload values do not match URL in primary key column(s)")


def max_affected_rpc() -> RestError:
    return RestError(
        400,
        "PGRST128",
        "Function must return SETOF or TABLE when max-affected preference is used with "
        "handling=strict",
    )


def invalid_path() -> RestError:
    return RestError(404, "PGRST125", "Invalid path specified in request URL")


def no_relationship(table: str, other: str, schema: str = "public") -> RestError:
    return RestError(
        400,
        "PGRST200",
        f"Could not find a relationship between '{table}' and '{other}' in the schema cache",
        f"Searched for a foreign key relationship between '{table}' and '{other}' in the "
        f"schema '{schema}', but no matches were found.",
    )


def function_not_found(
    name: str, args: list[str], hint: str | None, schema: str = "public", *, post: bool = True
) -> RestError:
    """PGRST202 worded as PostgREST's `NoRpc` (a JSON body: "or with a single unnamed
    json/jsonb parameter"; one key: "parameter")."""
    listed = ", ".join(sorted(args))
    if not args:
        called, searched = " without parameters", " without parameters"
    else:
        plural = "s" if len(args) > 1 else ""
        called, searched = f"({listed})", f" with parameter{plural} {listed}"
    if post:
        searched += " or with a single unnamed json/jsonb parameter"
    return RestError(
        404,
        "PGRST202",
        f"Could not find the function {schema}.{name}{called} in the schema cache",
        f"Searched for the function {schema}.{name}{searched}, but no matches were found in "
        "the schema cache.",
        hint,
    )


def ambiguous_function(candidates: list[str]) -> RestError:
    return RestError(
        300,
        "PGRST203",
        "Could not choose the best candidate function between: " + ", ".join(candidates),
        None,
        "Try renaming the parameters or the function itself in the database so function "
        "overloading can be resolved",
    )


def column_not_found(table: str, column: str) -> RestError:
    """PGRST204: a `columns=`/body key that the table does not have."""
    return RestError(
        400, "PGRST204", f"Could not find the '{column}' column of '{table}' in the schema cache"
    )


def undefined_column(table: str, column: str) -> RestError:
    """42703 as PostgreSQL words it for a qualified reference (select, filters, order)."""
    return RestError(400, "42703", f"column {table}.{column} does not exist")


def table_not_found(name: str, hint: str | None, schema: str = "public") -> RestError:
    return RestError(
        404,
        "PGRST205",
        f"Could not find the table '{schema}.{name}' in the schema cache",
        None,
        hint,
    )


def unsafe_write(method: str) -> RestError:
    """What pg-safeupdate answers for an UPDATE/DELETE without a WHERE clause."""
    verb = "UPDATE" if method == "PATCH" else "DELETE"
    return RestError(400, "21000", f"{verb} requires a WHERE clause")


def jwt_error(message: str) -> RestError:
    """PGRST301 (cannot decode/verify) or PGRST303 (claims invalid), with WWW-Authenticate."""
    claims = message.startswith(("JWT expired", "JWT not yet valid", "JWT issued", "JWT claims"))
    escaped = message.replace('"', "'")
    return RestError(
        401,
        "PGRST303" if claims else "PGRST301",
        message,
        headers={
            "WWW-Authenticate": f'Bearer error="invalid_token", error_description="{escaped}"'
        },
    )


def too_deep() -> RestError:
    return RestError(400, "PGRST100", "Request nested too deeply", None, None)


def internal() -> RestError:
    return RestError(500, "PGRSTX00", "Internal server error")


def unavailable() -> RestError:
    return RestError(503, "PGRST000", "Database connection error. Retrying the connection.")


def pool_timeout() -> RestError:
    return RestError(504, "PGRST003", "Timed out acquiring connection from connection pool.")


# --- PostgreSQL errors ---------------------------------------------------------------------------
_BY_CODE = {
    "23503": 409,
    "23505": 409,
    "25006": 405,
    "42883": 404,
    "42P01": 404,
    "42P17": 500,
    "P0001": 400,
    "53400": 500,
    "57P01": 503,
}
_BY_CLASS = {
    "08": 503,
    "09": 500,
    "0L": 403,
    "0P": 403,
    "25": 500,
    "28": 403,
    "2D": 500,
    "38": 500,
    "39": 500,
    "3B": 500,
    "40": 500,
    "53": 503,
    "54": 500,
    "55": 500,
    "57": 500,
    "58": 500,
    "F0": 500,
    "HV": 500,
    "P0": 500,
    "XX": 500,
}


def status_for(sqlstate: str, role: str) -> int:
    """`mapSQLtoHTTP`: the HTTP status PostgREST gives a PostgreSQL error."""
    if sqlstate == "42501":
        return 401 if role == ANON_ROLE else 403
    if sqlstate.startswith("PT") and sqlstate[2:].isdigit():
        return int(sqlstate[2:])
    return _BY_CODE.get(sqlstate) or _BY_CLASS.get(sqlstate[:2], 400)


def from_postgres(exc: psycopg.Error, role: str) -> RestError:
    """The PostgREST body for a server-side error; client-side ones have no SQLSTATE."""
    diag = exc.diag
    sqlstate = exc.sqlstate or ""
    if not sqlstate:
        # psycopg refused the value before sending it (e.g. a NUL byte in a string).
        if isinstance(exc, psycopg.DataError):
            return RestError(400, "22021", 'invalid byte sequence for encoding "UTF8": 0x00')
        return unavailable()
    status = status_for(sqlstate, role)
    headers = {"WWW-Authenticate": "Bearer"} if status == 401 else {}
    return RestError(
        status,
        sqlstate,
        diag.message_primary or "",
        diag.message_detail,
        diag.message_hint,
        headers,
    )
