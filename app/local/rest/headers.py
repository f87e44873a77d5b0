"""Request headers of the REST stand-in: `Prefer`, `Accept`, schema profiles and the Bearer JWT.

Pure functions over header values (`Prefer`, `Range`, profiles), plus a small cache of
verified tokens so a client sending the same JWT is not re-verified on every request.
"""

from __future__ import annotations

import time
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Any

from app.local.keys import InvalidToken, LocalKeys
from app.local.rest.errors import (
    ANON_ROLE,
    invalid_schema,
    jwt_error,
    strict_preferences,
    unacceptable,
)

EXPOSED_SCHEMA = "public"
OBJECT_MEDIA = "application/vnd.pgrst.object+json"
_JSON_MEDIA = {
    "*/*",
    "application/*",
    "application/json",
    "application/vnd.pgrst.array+json",
    "application/vnd.pgrst.array",
}
_OBJECT_MEDIA = {OBJECT_MEDIA, "application/vnd.pgrst.object"}
_PREFER_VALUES = {
    "return": {"minimal", "representation", "headers-only"},
    "count": {"exact", "planned", "estimated"},
    "resolution": {"merge-duplicates", "ignore-duplicates"},
    "missing": {"default", "null"},
    "handling": {"strict", "lenient"},
    "tx": {"commit", "rollback"},
}


@dataclass(frozen=True)
class Preferences:
    return_: str | None = None
    count: str | None = None
    resolution: str | None = None
    missing: str | None = None
    handling: str | None = None
    max_affected: int | None = None
    applied_order: tuple[str, ...] = ()
    tx: str | None = None  # only when the stack allows overriding (`db-tx-end`)
    timezone: str | None = None  # `timezone=America/Los_Angeles`: the transaction's TimeZone

    def applied(self, *, write: bool) -> str | None:
        """The `Preference-Applied` value: what this request honoured."""
        reads = ("count=", "tx=", "timezone=")
        honoured = [p for p in self.applied_order if write or p.startswith(reads)]
        return ", ".join(honoured) or None


def parse_prefer(values: list[str], *, allow_tx: bool = False) -> Preferences:
    """Comma-separated `key=value` items; unknown ones are ignored unless `handling=strict`.

    `tx=commit|rollback` counts only when `allow_tx` (PostgREST's `db-tx-end` set to
    `*-allow-override`); it is still a known preference otherwise."""
    found: dict[str, str] = {}
    invalid: list[str] = []
    for item in (part.strip() for value in values for part in value.split(",")):
        if not item:
            continue
        key, _, val = item.partition("=")
        key, val = key.strip(), val.strip()
        if key == "max-affected" and val.isdigit():
            found[key] = val
        elif key == "timezone" and val:
            found.setdefault(key, val)
        elif val in _PREFER_VALUES.get(key, ()):
            found.setdefault(key, val)
        else:
            invalid.append(item)
    if invalid and found.get("handling") == "strict":
        raise strict_preferences(invalid)
    max_aff = int(found["max-affected"]) if "max-affected" in found else None
    if not allow_tx:
        found.pop("tx", None)
    applied = tuple(  # PostgREST's `prefAppliedHeader` order
        f"{k}={found[k]}"
        for k in (
            "resolution",
            "missing",
            "return",
            "count",
            "tx",
            "handling",
            "timezone",
            "max-affected",
        )
        if k in found and not (k == "max-affected" and found.get("handling") != "strict")
    )
    return Preferences(
        found.get("return"),
        found.get("count"),
        found.get("resolution"),
        found.get("missing"),
        found.get("handling"),
        max_aff,
        applied,
        found.get("tx"),
        found.get("timezone"),
    )


CSV_MEDIA = "text/csv"
# Always offered, as in PostgREST (`initialMediaHandlers`): the body is PostGIS's
# `ST_AsGeoJSON` of each row, so without PostGIS PostgreSQL answers 42883 (404).
GEOJSON_MEDIA = "application/geo+json"


PLAN_MEDIA = "application/vnd.pgrst.plan"
_PLAN_FORMATS = {PLAN_MEDIA: "json", f"{PLAN_MEDIA}+json": "json", f"{PLAN_MEDIA}+text": "text"}
_PLAN_OPTIONS = ("analyze", "verbose", "settings", "buffers", "wal")


@dataclass(frozen=True)
class Accept:
    singular: bool = False
    strip_nulls: bool = False
    csv: bool = False
    geojson: bool = False
    plan: str | None = None  # "json" or "text": answer the statement's EXPLAIN instead
    plan_options: tuple[str, ...] = ()
    plan_for: str = "application/json"


def parse_accept(value: str | None, *, plan_enabled: bool = False) -> Accept:
    """JSON array (the default, also for `*/*`), single object, CSV, GeoJSON, the execution plan
    (`application/vnd.pgrst.plan[+json|+text]; options=analyze|verbose; for="…"`, only with
    `db-plan-enabled`, off as on Supabase), or 406 PGRST107."""
    if not value or not value.strip():
        return Accept()
    for media_range in value.split(","):
        media, *params = (p.strip() for p in media_range.split(";"))
        media = media.lower()
        strip = any(p.replace(" ", "").lower() == "nulls=stripped" for p in params)
        if plan_enabled and media in _PLAN_FORMATS:
            return _plan_accept(_PLAN_FORMATS[media], params)
        if media in _OBJECT_MEDIA:
            return Accept(singular=True, strip_nulls=strip)
        if media == CSV_MEDIA:
            return Accept(csv=True)
        if media == GEOJSON_MEDIA:
            return Accept(geojson=True)
        if media in _JSON_MEDIA:
            return Accept(strip_nulls=strip)
    raise unacceptable(value.strip())


def _plan_accept(fmt: str, params: list[str]) -> Accept:
    options: tuple[str, ...] = ()
    target = "application/json"
    for param in params:
        key, _, val = param.partition("=")
        key, val = key.strip().lower(), val.strip().strip('"')
        if key == "options":
            options = tuple(o for o in _PLAN_OPTIONS if o in val.lower().split("|"))
        elif key == "for" and val:
            target = val
    return Accept(plan=fmt, plan_options=options, plan_for=target)


def check_profile(
    headers: dict[str, str], method: str, schemas: tuple[str, ...] = (EXPOSED_SCHEMA,)
) -> tuple[str, bool]:
    """The request's schema (`Accept-Profile` for GET/HEAD, `Content-Profile` otherwise,
    else the first exposed one) and whether it was negotiated (a profile header was sent, or
    several schemas are exposed): then the response names it in `Content-Profile`.
    PGRST106 for a schema that is not exposed."""
    name = "accept-profile" if method in ("GET", "HEAD") else "content-profile"
    schema = headers.get(name)
    if schema is None:
        return schemas[0], len(schemas) != 1
    if schema.strip() not in schemas:
        raise invalid_schema(schema.strip(), schemas)
    return schema.strip(), True


@dataclass
class JwtVerifier:
    """`keys.verify` (ES256/RS256 by kid; HS256 over the legacy secret while it is in the JWKS;
    30 s leeway) with a bounded cache."""

    keys: LocalKeys
    max_entries: int = 1024
    leeway: int = 30
    _cache: OrderedDict[str, dict[str, Any]] = field(default_factory=OrderedDict)

    def claims(self, authorization: str | None) -> tuple[str, dict[str, Any]]:
        """(role, claims with `role` set) for the request; PGRST301/303 when the JWT is bad."""
        token = _bearer(authorization)
        if token is None:
            return ANON_ROLE, {"role": ANON_ROLE}
        if not token:
            raise jwt_error("Empty JWT is sent in Authorization header")
        claims = self._verified(token)
        role = claims.get("role", ANON_ROLE)
        if not isinstance(role, str) or not role:
            raise jwt_error("JWT claims are invalid: role must be a string")
        return role, {**claims, "role": role}

    def _verified(self, token: str) -> dict[str, Any]:
        cached = self._cache.get(token)
        if cached is not None:
            exp = cached.get("exp")
            if isinstance(exp, (int, float)) and exp + self.leeway > time.time():
                self._cache.move_to_end(token)
                return cached
            del self._cache[token]
        try:
            claims = self.keys.verify(
                token, leeway=self.leeway, accept_secret=self.keys.secret_in_jwks
            )
        except InvalidToken as exc:
            raise jwt_error(str(exc)) from exc
        if not isinstance(claims, dict):
            raise jwt_error("JWT claims are invalid")
        self._cache[token] = claims
        if len(self._cache) > self.max_entries:
            self._cache.popitem(last=False)
        return claims


def _bearer(authorization: str | None) -> str | None:
    if authorization is None:
        return None
    scheme, _, token = authorization.strip().partition(" ")
    if scheme.lower() != "bearer":
        return None
    return token.strip()
