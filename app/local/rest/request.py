"""What every REST route reads off the request the same way: its path below the mount, the query
string as pairs, the `Prefer` preferences (with the stand-in's transaction setting), the
`EXPLAIN` options of a plan media type, and the request facts PostgREST exposes as GUCs."""

from __future__ import annotations

from urllib.parse import parse_qsl

from starlette.requests import Request

from app.local.rest.headers import Accept, Preferences, parse_prefer
from app.local.rest.settings import RestSettings
from app.local.rest.tx import RequestInfo


def preferences(request: Request, settings: RestSettings) -> Preferences:
    return parse_prefer(request.headers.getlist("prefer"), allow_tx=settings.tx_override)


def rolls_back(prefs: Preferences, settings: RestSettings) -> bool:
    if prefs.tx is not None:
        return prefs.tx == "rollback"
    return settings.tx_rollback_default


def explain_options(accept: Accept) -> tuple[str, ...] | None:
    """`EXPLAIN` options for the plan media type: the format, then the requested options."""
    return (accept.plan, *accept.plan_options) if accept.plan else None


def request_info(request: Request, prefs: Preferences) -> RequestInfo:
    headers = {k.lower(): v for k, v in request.headers.items() if k.lower() != "cookie"}
    return RequestInfo(
        request.method, route_path(request), headers, dict(request.cookies), prefs.timezone
    )


def route_path(request: Request) -> str:
    path: str = request.scope["path"]
    root: str = request.scope.get("root_path", "")
    if root and path.startswith(root):
        path = path[len(root) :]
    return path or "/"


def query_pairs(request: Request) -> list[tuple[str, str]]:
    raw = request.scope.get("query_string", b"").decode("latin-1")
    return parse_qsl(raw, keep_blank_values=True)
