"""A wire-faithful stand-in for the Anthropic Messages and OpenAI Chat Completions APIs.

    POST /v1/messages           Anthropic (x-api-key, anthropic-version), streaming or not
    POST /v1/chat/completions   OpenAI (Authorization: Bearer), streaming or not
    GET  /_ledger[?since=t]     what each request was billed (JSON list: tokens by kind, cache
                                reads and writes included, and `cost_usd` priced as the
                                provider bills them), DELETE clears it

On the local stack it is mounted at `/llm`: ANTHROPIC_BASE_URL=<api_url>/llm and
OPENAI_BASE_URL=<api_url>/llm/v1. Standalone (the benchmark's "direct" upstream):

    python -m app.local.llm.api --port 8790 --tokens 200 --delay-ms 20

Speed and faults are knobs (see `app.local.llm.knobs`): per request through `x-standin-<knob>`
headers or a `[[standin fault=drop after=5]]` directive in the last user message, else the
defaults given here, by CLI flags or by `LLM_STANDIN_<KNOB>` variables. Any non-empty API key is
accepted; a missing one gets the API's 401.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import orjson
import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route
from starlette.types import ASGIApp, Receive, Scope, Send

from app.config import Settings
from app.core.domain import Usage
from app.core.pricing import Pricer
from app.local.llm.cache import PrefixCache
from app.local.llm.knobs import KnobError, Knobs, from_env, resolve
from app.local.llm.ledger import Ledger, LedgerEntry
from app.local.llm.play import ScriptedResponse, error_response
from app.local.llm.prompt import (
    answer_tokens,
    anthropic_segments,
    forced,
    last_user_text,
    openai_segments,
)
from app.local.llm.wire import AnthropicWire, OpenAIWire

OPENAI_DEFAULT_MAX_TOKENS = 4096


class _Refusal(Exception):
    """A request the real API would refuse: answered with its error status and shape."""

    def __init__(self, status: int, message: str, param: str | None = None) -> None:
        super().__init__(message)
        self.status, self.message, self.param = status, message, param


def _raw(status: int, headers: list[tuple[bytes, bytes]], body: bytes) -> Response:
    response = Response(body, status_code=status)
    response.raw_headers = [*headers, (b"content-length", str(len(body)).encode())]
    return response


def _bearer(request: Request) -> str:
    scheme, _, token = request.headers.get("authorization", "").partition(" ")
    return token.strip() if scheme.lower() == "bearer" else ""


async def _json_body(request: Request) -> dict[str, Any]:
    try:
        body = orjson.loads(await request.body())
    except orjson.JSONDecodeError:
        raise _Refusal(400, "There was an error parsing the body of your request.") from None
    if not isinstance(body, dict):
        raise _Refusal(400, "The request body must be a JSON object.")
    return body


def _number(body: dict[str, Any], name: str, low: float, high: float) -> None:
    value = body.get(name)
    if value is None:
        return
    if isinstance(value, bool) or not isinstance(value, int | float) or not low <= value <= high:
        raise _Refusal(400, f"{name}: Input should be a number between {low} and {high}", name)


@dataclass
class StandIn:
    """The stand-in's state: default knobs, the billing ledger, the prompt-cache memory and the
    price table the ledger is priced with (the service's own `Pricer`, default settings)."""

    defaults: Knobs = field(default_factory=Knobs)
    ledger: Ledger = field(default_factory=Ledger)
    cache: PrefixCache = field(default_factory=PrefixCache)
    pricer: Pricer = field(default_factory=lambda: Pricer(Settings.model_construct()))

    # --- Anthropic -------------------------------------------------------------------------------
    async def messages(self, request: Request) -> ASGIApp:
        if not (request.headers.get("x-api-key") or _bearer(request)):
            raise _Refusal(401, "x-api-key header is required")
        if not request.headers.get("anthropic-version"):
            raise _Refusal(400, "anthropic-version: header is required")
        body = await _json_body(request)
        for name in ("model", "max_tokens", "messages"):
            if name not in body:
                raise _Refusal(400, f"{name}: Field required")
        model, max_tokens, messages = body["model"], body["max_tokens"], body["messages"]
        if not isinstance(model, str) or not model:
            raise _Refusal(400, "model: Input should be a valid string")
        if isinstance(max_tokens, bool) or not isinstance(max_tokens, int) or max_tokens < 1:
            raise _Refusal(400, "max_tokens: Input should be greater than or equal to 1")
        if not isinstance(messages, list) or not messages:
            raise _Refusal(400, "messages: at least one message is required")
        _number(body, "temperature", 0, 1)
        knobs = self._knobs(request, messages)
        segments = anthropic_segments(body)
        usage = self.cache.anthropic(model, segments)
        wire = AnthropicWire(model, forced(usage, knobs.cache_read, knobs.cache_write))
        return self._respond(request, wire, knobs, body, messages, max_tokens)

    # --- OpenAI ----------------------------------------------------------------------------------
    async def chat_completions(self, request: Request) -> ASGIApp:
        if not _bearer(request):
            raise _Refusal(
                401,
                "You didn't provide an API key. You need to provide your API key in an "
                "Authorization header using Bearer auth (i.e. Authorization: Bearer YOUR_KEY).",
            )
        body = await _json_body(request)
        model, messages = body.get("model"), body.get("messages")
        if not isinstance(model, str) or not model:
            raise _Refusal(400, "you must provide a model parameter", "model")
        if not isinstance(messages, list) or not messages:
            raise _Refusal(400, "Missing required parameter: 'messages'.", "messages")
        _number(body, "temperature", 0, 2)
        max_tokens = body.get("max_completion_tokens") or body.get("max_tokens")
        if max_tokens is not None and (not isinstance(max_tokens, int) or max_tokens < 1):
            raise _Refusal(400, "max_tokens must be at least 1", "max_tokens")
        knobs = self._knobs(request, messages)
        segments = openai_segments(body)
        key = body.get("prompt_cache_key")
        usage = self.cache.openai(model, segments, key if isinstance(key, str) else "")
        options = body.get("stream_options") or {}
        wire = OpenAIWire(
            model,
            forced(usage, knobs.cache_read, None),
            include_usage=bool(isinstance(options, dict) and options.get("include_usage")),
            cost=knobs.cost,
        )
        limit = max_tokens or OPENAI_DEFAULT_MAX_TOKENS
        return self._respond(request, wire, knobs, body, messages, limit)

    # --- shared ----------------------------------------------------------------------------------
    def _knobs(self, request: Request, messages: list[Any]) -> Knobs:
        try:
            return resolve(self.defaults, request.headers, last_user_text(messages))
        except KnobError as exc:
            raise _Refusal(400, str(exc)) from None

    def _respond(
        self,
        request: Request,
        wire: AnthropicWire | OpenAIWire,
        knobs: Knobs,
        body: dict[str, Any],
        messages: list[Any],
        max_tokens: int,
    ) -> ASGIApp:
        count = min(knobs.tokens, max_tokens)
        entry = self.ledger.add(
            LedgerEntry(
                request_id=wire.request_id,
                api=wire.api,
                model=wire.model,
                stream=bool(body.get("stream")),
                fault=knobs.fault,
                client=f"{request.client.host}:{request.client.port}" if request.client else "",
                input_tokens=wire.usage.input_tokens,
                cache_read_tokens=wire.usage.cache_read,
                cache_write_tokens=wire.usage.cache_write,
                traceparent=request.headers.get("traceparent"),
            )
        )
        tokens = answer_tokens(last_user_text(messages), count)
        return ScriptedResponse(
            wire, knobs, tokens, entry, truncated=knobs.tokens > max_tokens, stream=entry.stream
        )

    async def ledger_get(self, request: Request) -> Response:
        since = request.query_params.get("since")
        try:
            entries = self.ledger.entries(float(since) if since else None)
        except ValueError:
            return JSONResponse({"error": "since must be a time.monotonic() value"}, 400)
        return Response(
            orjson.dumps([self.priced(e) for e in entries]), media_type="application/json"
        )

    def priced(self, entry: LedgerEntry) -> dict[str, Any]:
        """The entry with what the provider would bill for it: `cost_usd` in all and
        `input_cost_usd` for its prompt alone (cache reads and writes at their own rates)."""
        usage = Usage(
            input_tokens=entry.input_tokens,
            output_tokens=entry.output_tokens,
            cache_read_tokens=entry.cache_read_tokens,
            cache_write_tokens=entry.cache_write_tokens,
        )
        prompt = Usage(
            input_tokens=entry.input_tokens,
            cache_read_tokens=entry.cache_read_tokens,
            cache_write_tokens=entry.cache_write_tokens,
        )
        price = self.pricer.price(entry.api, entry.model, usage)
        return entry.as_json() | {
            "cost_usd": str(price.cost_usd),
            "input_cost_usd": str(self.pricer.price(entry.api, entry.model, prompt).cost_usd),
            "price_source": price.source,
        }

    async def ledger_delete(self, _: Request) -> Response:
        self.ledger.clear()
        return Response(status_code=204)


class _ApiEndpoint:
    """Runs a handler that returns an ASGI app; `_Refusal` becomes the API's error response."""

    def __init__(self, api: str, handler: Callable[[Request], Awaitable[ASGIApp]]) -> None:
        self.api, self.handler = api, handler

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        try:
            app = await self.handler(Request(scope, receive))
        except _Refusal as exc:
            app = _raw(*error_response(self.api, exc.status, exc.message, param=exc.param))
        await app(scope, receive, send)


async def _not_found(request: Request, _: Exception) -> Response:
    anthropic = "anthropic-version" in request.headers or "x-api-key" in request.headers
    api = "anthropic" if anthropic else "openai"
    message = f"Not found: {request.method} {request.url.path}"
    return _raw(*error_response(api, 404, message))


def create_app(defaults: Knobs | None = None, *, ledger: Ledger | None = None) -> Starlette:
    """The stand-in as an ASGI app. `app.state.standin` exposes its ledger to in-process tests."""
    standin = StandIn(
        defaults=defaults if defaults is not None else from_env(os.environ),
        ledger=ledger or Ledger(),
    )
    app = Starlette(
        routes=[
            Route("/v1/messages", _ApiEndpoint("anthropic", standin.messages), methods=["POST"]),
            Route(
                "/v1/chat/completions",
                _ApiEndpoint("openai", standin.chat_completions),
                methods=["POST"],
            ),
            Route("/_ledger", standin.ledger_get, methods=["GET"]),
            Route("/_ledger", standin.ledger_delete, methods=["DELETE"]),
        ],
        exception_handlers={404: _not_found, 405: _not_found},
    )
    app.state.standin = standin
    return app


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m app.local.llm.api",
        description="Anthropic/OpenAI streaming stand-in.",
        epilog="example: python -m app.local.llm.api --port 8790 --tokens 200 --delay-ms 20",
    )
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8790)
    parser.add_argument("--log-level", default="warning")
    knob_flags = (
        "tokens",
        "head_ms",
        "ttft_ms",
        "delay_ms",
        "fault",
        "after",
        "retry_after",
        "hold_s",
        "cache_read",
        "cache_write",
    )
    for name in knob_flags:
        parser.add_argument("--" + name.replace("_", "-"), dest=name, help=f"default knob {name}")
    args = parser.parse_args(argv)
    try:
        defaults = from_env(os.environ).replace(
            (name, value) for name in knob_flags if (value := getattr(args, name)) is not None
        )
    except KnobError as exc:
        parser.error(str(exc))
    uvicorn.run(
        create_app(defaults),
        host=args.host,
        port=args.port,
        log_level=args.log_level,
        access_log=False,
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
