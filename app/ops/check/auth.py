"""Auth checks: the JWKS against `AUTH_MODE`, the two API keys, and the issuer."""

from __future__ import annotations

import httpx

from app.ops.check.project import Project, error_message
from app.ops.check.result import Result

ASYMMETRIC_KTY = frozenset({"EC", "RSA", "OKP"})


def check_jwks(p: Project) -> Result:
    url = f"{p.base}/auth/v1/.well-known/jwks.json"
    anon = p.settings.supabase_anon_key.get_secret_value()
    try:
        response = p.http.get(url, headers={"apikey": anon})
    except httpx.HTTPError as exc:
        return Result("jwks", "fail", f"cannot reach {url}: {exc!r}")
    if response.status_code != 200:
        return Result("jwks", "fail", f"{url} answered HTTP {response.status_code}")
    try:
        keys = [k for k in response.json().get("keys", []) if isinstance(k, dict)]
    except (ValueError, AttributeError):
        return Result("jwks", "fail", f"{url} is not a JWKS document")
    asymmetric = [k for k in keys if k.get("kty") in ASYMMETRIC_KTY]
    described = ", ".join(f"{k.get('alg', k.get('kty'))} kid={k.get('kid')}" for k in asymmetric)
    mode = p.settings.auth_mode
    if mode == "jwks" and not asymmetric:
        return Result(
            "jwks",
            "fail",
            "the project publishes no asymmetric signing keys (a legacy HS256 project): "
            "set AUTH_MODE=hs256 and SUPABASE_JWT_SECRET, or migrate the project to signing keys",
        )
    if mode == "hs256" and asymmetric:
        return Result(
            "jwks",
            "fail",
            f"the project signs with asymmetric keys ({described}): "
            "AUTH_MODE=hs256 would refuse its tokens; set AUTH_MODE=jwks",
        )
    found = described or "no asymmetric keys"
    return Result("jwks", "ok", f"AUTH_MODE={mode} matches the project's keys ({found})")


def _gateway_accepts(p: Project, key: str) -> httpx.Response:
    return p.http.get(f"{p.base}/auth/v1/settings", headers={"apikey": key})


def check_anon_key(p: Project) -> Result:
    response = _gateway_accepts(p, p.settings.supabase_anon_key.get_secret_value())
    if response.status_code == 200:
        return Result("anon key", "ok", "accepted by the project's API gateway")
    return Result(
        "anon key",
        "fail",
        f"SUPABASE_ANON_KEY was refused (HTTP {response.status_code} {error_message(response)})",
    )


def check_service_key(p: Project) -> Result:
    response = p.http.get(
        f"{p.base}/auth/v1/admin/users", params={"per_page": 1}, headers=p.headers(p.service_key)
    )
    if response.status_code == 200:
        return Result("service role key", "ok", "accepted with the service role")
    return Result(
        "service role key",
        "fail",
        f"SUPABASE_SERVICE_ROLE_KEY was refused for an admin read "
        f"(HTTP {response.status_code} {error_message(response)}); is it the anon key?",
    )


def check_issuer(p: Project) -> Result:
    expected = f"{p.base}/auth/v1"
    source = "from SUPABASE_URL"
    discovery = p.http.get(f"{p.base}/auth/v1/.well-known/openid-configuration")
    if discovery.status_code == 200:
        try:
            expected, source = str(discovery.json()["issuer"]), "from Auth's discovery document"
        except (ValueError, KeyError, TypeError):
            pass
    configured = p.settings.jwt_issuer
    if not configured:
        return Result(
            "issuer", "fail", f"JWT_ISSUER is not set (tokens' iss is not checked): set {expected}"
        )
    if configured.rstrip("/") != expected.rstrip("/"):
        return Result(
            "issuer",
            "fail",
            f"JWT_ISSUER is {configured!r} but the project's tokens carry iss {expected!r} "
            f"({source}): every token would be refused",
        )
    return Result("issuer", "ok", f"JWT_ISSUER matches the project ({configured})")
