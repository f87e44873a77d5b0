"""AppError → `{"error", "userMessage", "code"}` JSON with the right status, never a stack trace."""

from __future__ import annotations

import logging

from fastapi import FastAPI, Request
from starlette.exceptions import HTTPException
from starlette.responses import JSONResponse

from app.errors import AppError, BodyTimeout, TooLarge
from app.user_messages import user_message

logger = logging.getLogger(__name__)

# Refused before the body was read to its end: the rest of it may still be on the way, so the
# connection cannot carry another request (RFC 9110 §15.5.14; RFC 9112 §9.6).
_BODY_LEFT_UNREAD = (TooLarge, BodyTimeout)
# Router errors get a code that names them; "not_found" stays the conversation's.
_HTTP_CODES = {404: "route_not_found", 405: "method_not_allowed"}


def error_response(exc: AppError, headers: dict[str, str] | None = None) -> JSONResponse:
    out = dict(headers or {})
    if exc.retry_after is not None:
        out["Retry-After"] = str(exc.retry_after)
    if isinstance(exc, _BODY_LEFT_UNREAD):
        out["Connection"] = "close"
    if exc.status >= 500:
        logger.warning("request failed: %s (%s)", exc.code, exc.detail)
    return JSONResponse(
        {"error": exc.public, "userMessage": exc.user_message, "code": exc.code},
        status_code=exc.status,
        headers=out,
    )


def unexpected_error_response() -> JSONResponse:
    """A bug's answer: the 500 in our shape, never a stack trace."""
    code = AppError.code
    return JSONResponse(
        {"error": "Internal error", "userMessage": user_message(code), "code": code},
        status_code=500,
    )


def install_error_handlers(app: FastAPI) -> None:
    """No `RequestValidationError` handler: no route declares typed parameters (the body is read
    and validated by `api.body`, which raises `BadRequest`), so FastAPI never raises one."""

    async def on_app_error(_: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, AppError)
        return error_response(exc)

    async def on_http_error(_: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, HTTPException)
        code = _HTTP_CODES.get(exc.status_code, "http_error")
        return JSONResponse(
            {"error": str(exc.detail), "userMessage": user_message(code), "code": code},
            status_code=exc.status_code,
            headers=dict(exc.headers or {}),
        )

    async def on_unexpected(_: Request, exc: Exception) -> JSONResponse:
        logger.error("unhandled error", exc_info=exc)
        return unexpected_error_response()

    app.add_exception_handler(AppError, on_app_error)
    app.add_exception_handler(HTTPException, on_http_error)
    app.add_exception_handler(Exception, on_unexpected)
