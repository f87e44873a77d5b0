"""Auth checks: the two API keys and the issuer (the signing keys: `app.ops.check.signing`).

Keys are sent as the service sends them (`apikey` only, unless a legacy JWT key) and shown by
their first 6 characters at most.
"""

from __future__ import annotations

from app.ops.check.project import Project, error_message
from app.ops.check.result import Result


def check_publishable_key(p: Project) -> Result:
    key = p.publishable
    response = p.http.get(f"{p.base}/auth/v1/settings", headers=key.headers())
    if response.status_code == 200:
        return Result(
            "publishable key",
            "ok",
            f"{key.setting} ({key.shown}) accepted by the project's API gateway",
        )
    return Result(
        "publishable key",
        "fail",
        f"{key.setting} ({key.shown}) was refused "
        f"(HTTP {response.status_code} {error_message(response)})",
    )


def check_secret_key(p: Project) -> Result:
    key = p.secret
    response = p.http.get(
        f"{p.base}/auth/v1/admin/users", params={"per_page": 1}, headers=key.headers()
    )
    if response.status_code == 200:
        return Result("secret key", "ok", f"{key.setting} ({key.shown}) accepted for an admin read")
    return Result(
        "secret key",
        "fail",
        f"{key.setting} ({key.shown}) was refused for an admin read "
        f"(HTTP {response.status_code} {error_message(response)}); is it the publishable key?",
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
