"""Supabase Auth (GoTrue) error bodies, as the real service renders them (wire reference §3.3).

Two shapes, chosen by the request's `X-Supabase-Api-Version` header:

- `2024-01-01` or later: `{"code": "<error_code>", "message": "..."}`, and the response echoes
  `X-Supabase-Api-Version: 2024-01-01`;
- absent, older or not a date (legacy): `{"code": <status>, "error_code": "...", "msg": "..."}`.

Both carry `x-sb-error-code`. A weak password adds `"weak_password": {"reasons": [...]}`.
OAuth-style refusals (a refresh grant without a token) are `{"error", "error_description"}`.

`EXCEPTION_HANDLERS` is the app's edge: GoTrue errors rendered, Starlette's 404/405 in GoTrue's
shape, values PostgreSQL refuses as 400, a lost email race as the check's answer, any other
database error as GoTrue's 500 `unexpected_failure` (logged).
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Awaitable, Callable
from typing import Any

import orjson
import psycopg
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response

logger = logging.getLogger(__name__)

API_VERSION_HEADER = "X-Supabase-Api-Version"
API_VERSION_2024 = dt.date(2024, 1, 1)
EMAIL_EXISTS = "A user with this email address has already been registered"


class AuthApiError(Exception):
    """A GoTrue error: HTTP status, machine code, human message (and weak-password reasons)."""

    def __init__(
        self, status: int, code: str, message: str, *, reasons: list[str] | None = None
    ) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.reasons = reasons


class OAuthError(Exception):
    """GoTrue's OAuth2-shaped refusal, always 400 and never versioned."""

    def __init__(self, error: str, description: str) -> None:
        super().__init__(description)
        self.error = error
        self.description = description


def bad_request(code: str, message: str) -> AuthApiError:
    return AuthApiError(400, code, message)


def unauthorized(code: str, message: str) -> AuthApiError:
    return AuthApiError(401, code, message)


def forbidden(code: str, message: str) -> AuthApiError:
    return AuthApiError(403, code, message)


def not_found(code: str, message: str) -> AuthApiError:
    return AuthApiError(404, code, message)


def unprocessable(code: str, message: str) -> AuthApiError:
    return AuthApiError(422, code, message)


def weak_password(message: str, reasons: list[str]) -> AuthApiError:
    return AuthApiError(422, "weak_password", message, reasons=reasons)


def requested_version(request: Request) -> dt.date | None:
    """The API version the client asked for; None (legacy) when absent or not a date."""
    raw = request.headers.get(API_VERSION_HEADER, "").strip()
    try:
        asked = dt.date.fromisoformat(raw)
    except ValueError:
        return None
    return API_VERSION_2024 if asked >= API_VERSION_2024 else None


def json_response(body: Any, status: int = 200, headers: dict[str, str] | None = None) -> Response:
    return Response(
        orjson.dumps(body), status_code=status, media_type="application/json", headers=headers
    )


def render_error(request: Request, exc: AuthApiError | OAuthError) -> Response:
    """Render an error in the shape the request's API version selects."""
    version = requested_version(request)
    headers: dict[str, str] = {}
    if version is not None:
        headers[API_VERSION_HEADER] = version.isoformat()
    if isinstance(exc, OAuthError):
        return json_response(
            {"error": exc.error, "error_description": exc.description}, 400, headers
        )
    headers["x-sb-error-code"] = exc.code
    body: dict[str, Any]
    if version is not None:
        body = {"code": exc.code, "message": exc.message}
    else:
        body = {"code": exc.status, "error_code": exc.code, "msg": exc.message}
    if exc.reasons is not None:
        body["weak_password"] = {"reasons": exc.reasons}
    return json_response(body, exc.status, headers)


# --- error edges -------------------------------------------------------------------------------
async def _on_auth_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, AuthApiError | OAuthError)
    return render_error(request, exc)


async def _on_http_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)
    code = "not_found" if exc.status_code == 404 else "method_not_allowed"
    return render_error(request, AuthApiError(exc.status_code, code, str(exc.detail)))


async def _on_bad_data(request: Request, exc: Exception) -> Response:
    """Values PostgreSQL refuses (a NUL inside metadata text): the client's fault, so 400."""
    assert isinstance(exc, psycopg.DataError)
    detail = exc.diag.message_primary or "invalid input"
    return render_error(request, bad_request("validation_failed", f"Invalid input: {detail}"))


async def _on_unique_violation(request: Request, exc: Exception) -> Response:
    """An email taken between our check and our write (a race): what the check would say."""
    assert isinstance(exc, psycopg.errors.UniqueViolation)
    if exc.diag.constraint_name == "users_email_partial_key":
        return render_error(request, unprocessable("email_exists", EMAIL_EXISTS))
    return await _on_database_error(request, exc)


async def _on_database_error(request: Request, exc: Exception) -> Response:
    logger.error("auth stand-in database error on %s", request.url.path, exc_info=exc)
    return render_error(
        request, AuthApiError(500, "unexpected_failure", "Database error, please try again")
    )


EXCEPTION_HANDLERS: dict[Any, Callable[[Request, Exception], Awaitable[Response]]] = {
    AuthApiError: _on_auth_error,
    OAuthError: _on_auth_error,
    HTTPException: _on_http_error,
    psycopg.DataError: _on_bad_data,
    psycopg.errors.UniqueViolation: _on_unique_violation,
    psycopg.Error: _on_database_error,
}
