"""Logs: one JSON object per line for machines (`serve`), one readable line for people (`dev`).

`observe.py` writes each request's record to `REQUEST_LOGGER` with its fields as `extra` (ids,
counts, money, timings, the refusal `reason`); `JsonFormatter` renders any record with those
fields, `PlainFormatter` says the same in words. `configure_logging` (and `logging_config`, the
same as the dictConfig uvicorn takes, so its own loggers and its supervisor's first lines come out
the same way) sends everything through one handler and keeps the libraries' chatter (`httpx`'s
line per request) at WARNING. Message text, tokens and keys never enter a record.
"""

from __future__ import annotations

import logging
import logging.config
import re
from datetime import UTC, datetime
from typing import Any, TextIO

import orjson

REQUEST_LOGGER = "chat_stream.request"
# Loggers that say something on every request at INFO; their warnings still come through.
LIBRARY_LOGGERS = ("httpx", "httpcore", "hpack", "h2", "aiohttp", "urllib3", "multipart")
_SAFE_ID = re.compile(r"^[A-Za-z0-9._:-]{1,128}$")
_STANDARD = set(vars(logging.makeLogRecord({}))) | {"message", "asctime"}
_DROPPED = {"color_message"}  # uvicorn's ANSI-coloured copy of the message

# Why a token was refused (`app.auth.RefusalReason`), in words for `make run`'s terminal.
REFUSAL_WORDS = {
    "missing": "no Bearer token was sent",
    "malformed": "the token is not a well-formed JWT",
    "expired": "the access token has expired",
    "not_yet_valid": "the token is not valid yet (nbf/iat in the future: check the clock)",
    "audience": "the token is for another audience (aud)",
    "issuer": "the token is from another project (iss is not JWT_ISSUER)",
    "signature": "the token's signature does not verify",
    "unknown_kid": "the token is signed by a key the project's JWKS does not list",
    "algorithm": "the token's algorithm is refused",
    "role": "the token is not a signed-in user's (an anon or service key?)",
    "subject": "the token's subject is not a user id",
    "no_keys": "the project's signing keys (JWKS) could not be fetched",
    "revoked": "Supabase Auth no longer accepts the token (signed out?)",
}


def valid_request_id(value: str | None) -> str | None:
    """A client-sent X-Request-Id is echoed only when it is a plain, short token."""
    return value if value and _SAFE_ID.match(value) else None


def _fields(record: logging.LogRecord) -> dict[str, Any]:
    return {
        key: value
        for key, value in vars(record).items()
        if key not in _STANDARD and key not in _DROPPED and not key.startswith("_")
    }


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        out: dict[str, Any] = {
            "ts": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "msg": record.getMessage(),
        }
        out |= _fields(record)
        if record.exc_info:
            out["exc"] = self.formatException(record.exc_info)
        return orjson.dumps(out, default=str).decode()


class PlainFormatter(logging.Formatter):
    """`HH:MM:SS LEVEL logger: message`; a request's record as one sentence of its fields."""

    def __init__(self) -> None:
        super().__init__("%(asctime)s %(levelname)-7s %(name)s: %(message)s", "%H:%M:%S")

    def formatMessage(self, record: logging.LogRecord) -> str:  # noqa: N802 - logging's name
        if record.name == REQUEST_LOGGER:
            record.message = describe_request(_fields(record))
        return super().formatMessage(record)


def describe_request(fields: dict[str, Any]) -> str:
    """`200 completed · turn … · anthropic/claude-… · 120→40 tokens · $0.00096 · 900 ms`."""
    parts = [f"{fields.get('status', '?')} {fields.get('outcome', '?')}"]
    if reason := fields.get("reason"):
        parts[0] += f": {REFUSAL_WORDS.get(str(reason), str(reason))} (reason {reason})"
    if error := fields.get("error"):
        parts[0] += f" ({error})"
    if turn := fields.get("turn_id"):
        parts.append(f"turn {turn}")
    if user := fields.get("user_id"):
        parts.append(f"user {user}")
    if model := fields.get("model"):
        parts.append(f"{fields.get('provider') or '?'}/{model}")
    if "tokens_in" in fields:
        parts.append(f"{fields['tokens_in']}→{fields.get('tokens_out', 0)} tokens")
    if cost := fields.get("cost_usd"):
        parts.append(f"${cost}")
    if fields.get("spooled"):
        parts.append("spooled to the outbox")
    if (ttft := fields.get("ttft_ms")) is not None:
        parts.append(f"first token {ttft} ms")
    if (duration := fields.get("duration_ms")) is not None:
        parts.append(f"{duration} ms")
    return " · ".join(parts)


def logging_config(level: str, *, json_lines: bool, stream: TextIO | None = None) -> dict[str, Any]:
    """A `logging.config.dictConfig` for the process; also uvicorn's `log_config`."""
    level = level.upper()
    formatter = JsonFormatter if json_lines else PlainFormatter
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "formatters": {"default": {"()": f"{__name__}.{formatter.__name__}"}},
        "handlers": {
            "default": {
                "class": "logging.StreamHandler",
                "formatter": "default",
                "stream": stream or "ext://sys.stderr",
            }
        },
        "root": {"handlers": ["default"], "level": level},
        "loggers": {
            # uvicorn's own handlers (plain text) are replaced by ours. Its access line stays
            # off: uvicorn writes one when the logger has a handler, and our request line
            # already records every request, with its ids.
            "uvicorn": {"handlers": [], "propagate": True, "level": level},
            "uvicorn.error": {"handlers": [], "propagate": True, "level": level},
            "uvicorn.access": {"handlers": [], "propagate": False, "level": level},
            **{name: {"level": "WARNING"} for name in LIBRARY_LOGGERS},
        },
    }


def configure_logging(level: str, *, json_lines: bool, stream: TextIO | None = None) -> None:
    logging.config.dictConfig(logging_config(level, json_lines=json_lines, stream=stream))
