"""Wire bytes of the Anthropic Messages and OpenAI Chat Completions streams, pre-encoded.

Token events are built once per vocabulary entry (Anthropic) or as prefix + token + suffix
(OpenAI, whose chunks carry the request's id), so streaming costs a bytes join per token and no
JSON work. Shapes follow the public API references: Anthropic's event sequence and error objects
`{"type":"error","error":{"type","message"}}`; OpenAI's `chat.completion.chunk` objects, the
usage chunk with empty `choices`, `data: [DONE]`, and errors `{"error":{"message","type",...}}`.
"""

from __future__ import annotations

import secrets
import time
import uuid
from typing import Any

import orjson

from app.local.llm.prompt import ANSWER_TOKENS, PromptUsage

Headers = list[tuple[bytes, bytes]]

SSE_HEADERS: Headers = [
    (b"content-type", b"text/event-stream; charset=utf-8"),
    (b"cache-control", b"no-cache"),
]
JSON_HEADERS: Headers = [(b"content-type", b"application/json")]

_TOKEN_JSON = tuple(orjson.dumps(t) for t in ANSWER_TOKENS)


def _event(name: str, data: dict[str, Any]) -> bytes:
    return b"event: " + name.encode() + b"\ndata: " + orjson.dumps(data) + b"\n\n"


# --- Anthropic ------------------------------------------------------------------------------------
ANTHROPIC_ERROR_TYPES = {
    400: ("invalid_request_error", "Invalid request."),
    401: ("authentication_error", "invalid x-api-key"),
    403: (
        "permission_error",
        "Your API key does not have permission to use the specified resource.",
    ),
    404: ("not_found_error", "The requested resource could not be found."),
    413: ("request_too_large", "Request exceeds the maximum allowed number of bytes."),
    429: ("rate_limit_error", "Number of requests has exceeded your rate limit."),
    500: ("api_error", "Internal server error"),
    503: ("api_error", "Service unavailable"),
    529: ("overloaded_error", "Overloaded"),
}

_ANTHROPIC_TOKEN_EVENTS = tuple(
    b'event: content_block_delta\ndata: {"type":"content_block_delta","index":0,'
    b'"delta":{"type":"text_delta","text":' + t + b"}}\n\n"
    for t in _TOKEN_JSON
)
ANTHROPIC_MALFORMED = (
    b'event: content_block_delta\ndata: {"type":"content_block_delta","index":0,"delta":{"ty\n\n'
)
ANTHROPIC_ERROR_EVENT = _event(
    "error", {"type": "error", "error": {"type": "overloaded_error", "message": "Overloaded"}}
)


class AnthropicWire:
    """One response's bytes in the Messages API format."""

    api = "anthropic"

    def __init__(self, model: str, usage: PromptUsage) -> None:
        self.model = model
        self.usage = usage
        self.message_id = "msg_" + secrets.token_hex(12)
        self.request_id = "req_" + secrets.token_hex(12)

    def head(self, base: Headers = SSE_HEADERS) -> Headers:
        return [
            *base,
            (b"request-id", self.request_id.encode()),
            (b"anthropic-organization-id", b"00000000-0000-4000-8000-00000000cafe"),
            (b"anthropic-ratelimit-requests-limit", b"4000"),
            (b"anthropic-ratelimit-requests-remaining", b"3999"),
        ]

    def _usage(self, output_tokens: int) -> dict[str, Any]:
        return {
            "input_tokens": self.usage.input_tokens,
            "cache_creation_input_tokens": self.usage.cache_write,
            "cache_read_input_tokens": self.usage.cache_read,
            "cache_creation": {
                "ephemeral_5m_input_tokens": self.usage.cache_write,
                "ephemeral_1h_input_tokens": 0,
            },
            "output_tokens": output_tokens,
            "service_tier": "standard",
        }

    def prelude(self) -> bytes:
        message: dict[str, Any] = {
            "id": self.message_id,
            "type": "message",
            "role": "assistant",
            "model": self.model,
            "content": [],
            "stop_reason": None,
            "stop_sequence": None,
            "usage": self._usage(1),
        }
        return (
            _event("message_start", {"type": "message_start", "message": message})
            + _event(
                "content_block_start",
                {
                    "type": "content_block_start",
                    "index": 0,
                    "content_block": {"type": "text", "text": ""},
                },
            )
            + b'event: ping\ndata: {"type": "ping"}\n\n'
        )

    def token(self, index: int) -> bytes:
        return _ANTHROPIC_TOKEN_EVENTS[index]

    def finale(self, output_tokens: int, *, truncated: bool) -> bytes:
        usage = self._usage(output_tokens)
        del usage["cache_creation"], usage["service_tier"]
        delta = {"stop_reason": "max_tokens" if truncated else "end_turn", "stop_sequence": None}
        return (
            b'event: content_block_stop\ndata: {"type":"content_block_stop","index":0}\n\n'
            + _event("message_delta", {"type": "message_delta", "delta": delta, "usage": usage})
            + b'event: message_stop\ndata: {"type":"message_stop"}\n\n'
        )

    malformed = ANTHROPIC_MALFORMED
    error_event = ANTHROPIC_ERROR_EVENT

    def message(self, text: str, output_tokens: int, *, truncated: bool) -> dict[str, Any]:
        """The non-streaming response body."""
        return {
            "id": self.message_id,
            "type": "message",
            "role": "assistant",
            "model": self.model,
            "content": [{"type": "text", "text": text}],
            "stop_reason": "max_tokens" if truncated else "end_turn",
            "stop_sequence": None,
            "usage": self._usage(output_tokens),
        }


def anthropic_error(status: int, message: str | None = None) -> dict[str, Any]:
    kind, default = ANTHROPIC_ERROR_TYPES.get(status, ("api_error", "Internal server error"))
    return {
        "type": "error",
        "error": {"type": kind, "message": message or default},
        "request_id": "req_" + secrets.token_hex(12),
    }


# --- OpenAI ---------------------------------------------------------------------------------------
OPENAI_ERRORS = {
    400: ("invalid_request_error", None, "Invalid request."),
    401: ("invalid_request_error", "invalid_api_key", "Incorrect API key provided."),
    403: ("invalid_request_error", "unsupported_country_region_territory", "Forbidden."),
    404: ("invalid_request_error", "model_not_found", "The model does not exist."),
    413: ("invalid_request_error", None, "Request too large."),
    429: ("requests", "rate_limit_exceeded", "Rate limit reached for requests."),
    500: ("server_error", None, "The server had an error while processing your request."),
    503: ("server_error", None, "The server is overloaded or not ready yet."),
}
OPENAI_STATUS = {529: 503}  # OpenAI has no 529; its overload answer is a 503


def openai_error(
    status: int, message: str | None = None, param: str | None = None
) -> dict[str, Any]:
    kind, code, default = OPENAI_ERRORS.get(status, ("server_error", None, "Server error."))
    return {"error": {"message": message or default, "type": kind, "param": param, "code": code}}


OPENAI_ERROR_EVENT = b"data: " + orjson.dumps(openai_error(500)) + b"\n\n"


class OpenAIWire:
    """One response's bytes in the Chat Completions format."""

    api = "openai"

    def __init__(
        self, model: str, usage: PromptUsage, *, include_usage: bool, cost: float | None = None
    ) -> None:
        self.model = model
        self.usage = usage
        self.include_usage = include_usage
        self.cost = cost  # reported in the usage object as OpenRouter does, when set
        self.completion_id = "chatcmpl-" + secrets.token_urlsafe(21)
        self.request_id = "req_" + uuid.uuid4().hex
        self.created = int(time.time())
        tail = b',"usage":null}\n\n' if include_usage else b"}\n\n"
        common = orjson.dumps(
            {
                "id": self.completion_id,
                "object": "chat.completion.chunk",
                "created": self.created,
                "model": model,
                "service_tier": "default",
                "system_fingerprint": "fp_standin01",
            }
        )[:-1]
        self._common = common
        self._token_prefix = b"data: " + common + b',"choices":[{"index":0,"delta":{"content":'
        self._token_suffix = b'},"logprobs":null,"finish_reason":null}]' + tail
        self._tail = tail

    def head(self, base: Headers = SSE_HEADERS) -> Headers:
        return [
            *base,
            (b"x-request-id", self.request_id.encode()),
            (b"openai-version", b"2020-10-01"),
            (b"openai-processing-ms", b"12"),
            (b"x-ratelimit-limit-requests", b"10000"),
            (b"x-ratelimit-remaining-requests", b"9999"),
        ]

    def _chunk(self, choices: bytes) -> bytes:
        return b"data: " + self._common + b',"choices":' + choices + self._tail

    def prelude(self) -> bytes:
        return self._chunk(
            b'[{"index":0,"delta":{"role":"assistant","content":"","refusal":null},'
            b'"logprobs":null,"finish_reason":null}]'
        )

    def token(self, index: int) -> bytes:
        return b"".join((self._token_prefix, _TOKEN_JSON[index], self._token_suffix))

    def usage_object(self, output_tokens: int) -> dict[str, Any]:
        cached = self.usage.cache_read
        return {
            "prompt_tokens": self.usage.prompt_tokens,
            "completion_tokens": output_tokens,
            "total_tokens": self.usage.prompt_tokens + output_tokens,
            "prompt_tokens_details": {"cached_tokens": cached, "audio_tokens": 0},
            "completion_tokens_details": {
                "reasoning_tokens": 0,
                "audio_tokens": 0,
                "accepted_prediction_tokens": 0,
                "rejected_prediction_tokens": 0,
            },
        } | self._openrouter_cost()

    def _openrouter_cost(self) -> dict[str, Any]:
        if self.cost is None:
            return {}
        return {
            "cost": self.cost,
            "is_byok": False,
            "cost_details": {"upstream_inference_cost": None},
        }

    def finale(self, output_tokens: int, *, truncated: bool) -> bytes:
        reason = b'"length"' if truncated else b'"stop"'
        out = self._chunk(
            b'[{"index":0,"delta":{},"logprobs":null,"finish_reason":' + reason + b"}]"
        )
        if self.include_usage:
            usage = orjson.dumps(self.usage_object(output_tokens))
            out += b"data: " + self._common + b',"choices":[],"usage":' + usage + b"}\n\n"
        return out + b"data: [DONE]\n\n"

    @property
    def malformed(self) -> bytes:
        return b"data: " + self._common + b',"choices":[{"index":0,"delta":{"cont\n\n'

    error_event = OPENAI_ERROR_EVENT

    def message(self, text: str, output_tokens: int, *, truncated: bool) -> dict[str, Any]:
        return {
            "id": self.completion_id,
            "object": "chat.completion",
            "created": self.created,
            "model": self.model,
            "choices": [
                {
                    "index": 0,
                    "message": {
                        "role": "assistant",
                        "content": text,
                        "refusal": None,
                        "annotations": [],
                    },
                    "logprobs": None,
                    "finish_reason": "length" if truncated else "stop",
                }
            ],
            "usage": self.usage_object(output_tokens),
            "service_tier": "default",
            "system_fingerprint": "fp_standin01",
        }


Wire = AnthropicWire | OpenAIWire
