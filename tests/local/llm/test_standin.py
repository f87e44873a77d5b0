"""The LLM stand-in over real HTTP: wire shapes (proved with the official SDKs), knobs, faults,
prompt-cache simulation, the billing ledger, the `/llm` mount and the standalone process."""

from __future__ import annotations

import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import anthropic
import anyio
import httpx
import openai
import orjson
import pytest
from httpx_sse import aconnect_sse, connect_sse
from starlette.applications import Starlette
from starlette.routing import Mount

from app.local.llm.api import StandIn, create_app
from app.local.llm.knobs import Knobs
from app.local.llm.prompt import ANSWER_TOKENS, answer_tokens
from app.local.postgres import free_port
from app.local.server import ServerThread

ANTHROPIC_HEADERS = {"x-api-key": "test-key", "anthropic-version": "2023-06-01"}
OPENAI_HEADERS = {"authorization": "Bearer test-key"}
LONG_SYSTEM = "You are a thoughtful coach who listens carefully. " * 120  # > 1024 tokens


@dataclass
class Served:
    url: str  # where the stand-in's routes start (…/llm on the gateway)
    standin: StandIn


@pytest.fixture(scope="module")
def served() -> Iterator[Served]:
    """Mounted at /llm like the local stack's gateway, so base URLs follow the SDK convention."""
    standin_app = create_app(Knobs(tokens=12))
    gateway = Starlette(routes=[Mount("/llm", standin_app)])
    with ServerThread(gateway, free_port()) as server:
        yield Served(f"{server.url}/llm", standin_app.state.standin)


def _anthropic_body(text: str = "Hi coach", **extra: object) -> dict[str, object]:
    return {
        "model": "claude-sonnet-4-6",
        "max_tokens": 256,
        "stream": True,
        "messages": [{"role": "user", "content": text}],
        **extra,
    }


def _openai_body(text: str = "Hi coach", **extra: object) -> dict[str, object]:
    return {
        "model": "gpt-4o-mini",
        "stream": True,
        "stream_options": {"include_usage": True},
        "messages": [{"role": "user", "content": text}],
        **extra,
    }


def _anthropic_events(
    served: Served, body: dict[str, object], **headers: str
) -> list[tuple[str, dict[str, Any]]]:
    with (
        httpx.Client() as client,
        connect_sse(
            client,
            "POST",
            f"{served.url}/v1/messages",
            json=body,
            headers=ANTHROPIC_HEADERS | headers,
        ) as source,
    ):
        assert source.response.status_code == 200
        return [(sse.event, orjson.loads(sse.data)) for sse in source.iter_sse()]


def _openai_chunks(served: Served, body: dict[str, object], **headers: str) -> list[str]:
    with (
        httpx.Client() as client,
        connect_sse(
            client,
            "POST",
            f"{served.url}/v1/chat/completions",
            json=body,
            headers=OPENAI_HEADERS | headers,
        ) as source,
    ):
        assert source.response.status_code == 200
        return [sse.data for sse in source.iter_sse()]


# --- wire shape ----------------------------------------------------------------------------------
def test_standin_anthropic_stream_follows_the_messages_event_sequence(served: Served) -> None:
    events = _anthropic_events(served, _anthropic_body())
    names = [name for name, _ in events]
    assert names[:3] == ["message_start", "content_block_start", "ping"]
    assert names[3:-3] == ["content_block_delta"] * 12
    assert names[-3:] == ["content_block_stop", "message_delta", "message_stop"]
    start_usage = events[0][1]["message"]["usage"]
    assert {"input_tokens", "cache_read_input_tokens", "cache_creation_input_tokens"} <= set(
        start_usage
    )
    assert events[-2][1]["delta"]["stop_reason"] == "end_turn"
    assert events[-2][1]["usage"]["output_tokens"] == 12


def test_standin_openai_stream_sends_role_content_finish_usage_then_done(served: Served) -> None:
    chunks = _openai_chunks(served, _openai_body())
    assert chunks[-1] == "[DONE]"
    objects = [orjson.loads(c) for c in chunks[:-1]]
    assert objects[0]["choices"][0]["delta"]["role"] == "assistant"
    assert all(o["object"] == "chat.completion.chunk" for o in objects)
    assert objects[-2]["choices"][0]["finish_reason"] == "stop"
    assert objects[-1]["choices"] == [] and objects[-1]["usage"]["completion_tokens"] == 12
    assert all(o["usage"] is None for o in objects[:-1])


def test_standin_openai_without_include_usage_sends_no_usage_chunk(served: Served) -> None:
    chunks = _openai_chunks(served, _openai_body(stream_options=None))
    objects = [orjson.loads(c) for c in chunks[:-1]]
    assert all("usage" not in o for o in objects)
    assert objects[-1]["choices"][0]["finish_reason"] == "stop"


@pytest.mark.anyio
async def test_standin_official_anthropic_sdk_streams_text_and_usage(served: Served) -> None:
    client = anthropic.AsyncAnthropic(base_url=served.url, api_key="test-key", max_retries=0)
    async with client.messages.stream(
        model="claude-sonnet-4-6",
        max_tokens=100,
        messages=[{"role": "user", "content": "Help me focus [[standin tokens=9]]"}],
    ) as stream:
        text = "".join([t async for t in stream.text_stream])
        final = await stream.get_final_message()
    await client.close()
    expected = "".join(
        ANSWER_TOKENS[i] for i in answer_tokens("Help me focus [[standin tokens=9]]", 9)
    )
    assert text == expected
    assert final.usage.output_tokens == 9
    assert final.usage.input_tokens == served.standin.ledger.entries()[-1].input_tokens
    assert final.stop_reason == "end_turn"


@pytest.mark.anyio
async def test_standin_official_openai_sdk_streams_text_and_usage(served: Served) -> None:
    client = openai.AsyncOpenAI(base_url=f"{served.url}/v1", api_key="test-key", max_retries=0)
    stream = await client.chat.completions.create(
        model="gpt-4o-mini",
        messages=[{"role": "user", "content": "Help me focus [[standin tokens=7 cache_read=0]]"}],
        stream=True,
        stream_options={"include_usage": True},
    )
    parts, usage = [], None
    async for chunk in stream:
        parts.extend(c.delta.content or "" for c in chunk.choices)
        usage = chunk.usage or usage
    await client.close()
    assert len("".join(parts)) > 0
    assert usage is not None and usage.completion_tokens == 7
    assert usage.prompt_tokens == served.standin.ledger.entries()[-1].input_tokens


@pytest.mark.parametrize(
    ("fault", "error"),
    [
        ("529", anthropic.InternalServerError),
        ("429", anthropic.RateLimitError),
        ("401", anthropic.AuthenticationError),
    ],
)
@pytest.mark.anyio
async def test_standin_errors_map_to_the_anthropic_sdk_exceptions(
    served: Served, fault: str, error: type[Exception]
) -> None:
    client = anthropic.AsyncAnthropic(base_url=served.url, api_key="test-key", max_retries=0)
    with pytest.raises(error) as caught:
        await client.messages.create(
            model="claude-sonnet-4-6",
            max_tokens=10,
            messages=[{"role": "user", "content": "x"}],
            extra_headers={"x-standin-fault": fault},
        )
    await client.close()
    assert caught.value.status_code == int(fault)  # type: ignore[attr-defined]


@pytest.mark.anyio
async def test_standin_error_event_surfaces_in_both_sdks(served: Served) -> None:
    a = anthropic.AsyncAnthropic(base_url=served.url, api_key="k", max_retries=0)
    with pytest.raises(anthropic.APIStatusError, match="overloaded_error"):
        async with a.messages.stream(
            model="claude-sonnet-4-6",
            max_tokens=50,
            messages=[{"role": "user", "content": "x"}],
            extra_headers={"x-standin-fault": "error", "x-standin-after": "2"},
        ) as stream:
            await stream.get_final_text()
    await a.close()
    o = openai.AsyncOpenAI(base_url=f"{served.url}/v1", api_key="k", max_retries=0)
    stream = await o.chat.completions.create(
        model="gpt-4o-mini",
        messages=[{"role": "user", "content": "x"}],
        stream=True,
        extra_headers={"x-standin-fault": "error", "x-standin-after": "2"},
    )
    with pytest.raises(openai.APIError, match="server had an error"):
        async for _ in stream:
            pass
    await o.close()


@pytest.mark.anyio
async def test_standin_non_streaming_requests_get_a_whole_message(served: Served) -> None:
    a = anthropic.AsyncAnthropic(base_url=served.url, api_key="k", max_retries=0)
    message = await a.messages.create(
        model="claude-sonnet-4-6", max_tokens=5, messages=[{"role": "user", "content": "x"}]
    )
    await a.close()
    assert message.stop_reason == "max_tokens" and message.usage.output_tokens == 5
    o = openai.AsyncOpenAI(base_url=f"{served.url}/v1", api_key="k", max_retries=0)
    completion = await o.chat.completions.create(
        model="gpt-4o-mini", messages=[{"role": "user", "content": "x"}]
    )
    await o.close()
    assert completion.choices[0].message.content and completion.usage is not None
    assert completion.usage.completion_tokens == 12


# --- validation and knobs ------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("path", "headers", "body", "status", "fragment"),
    [
        ("/v1/messages", {}, _anthropic_body(), 401, b'"authentication_error"'),
        ("/v1/messages", {"x-api-key": "k"}, _anthropic_body(), 400, b"anthropic-version"),
        ("/v1/messages", ANTHROPIC_HEADERS, {"model": "m", "messages": []}, 400, b"max_tokens"),
        ("/v1/messages", ANTHROPIC_HEADERS, _anthropic_body(temperature=1.5), 400, b"temperature"),
        ("/v1/messages", ANTHROPIC_HEADERS, _anthropic_body("[[standin speed=9]]"), 400, b"speed"),
        ("/v1/chat/completions", {}, _openai_body(), 401, b'"invalid_request_error"'),
        ("/v1/chat/completions", OPENAI_HEADERS, {"messages": []}, 400, b'"param":"model"'),
        (
            "/v1/chat/completions",
            OPENAI_HEADERS,
            _openai_body("[[standin fault=x]]"),
            400,
            b"fault",
        ),
        ("/v1/models/nope", OPENAI_HEADERS, {}, 404, b'{"error":'),
    ],
)
def test_standin_refuses_bad_requests_in_the_api_error_shape(
    served: Served,
    path: str,
    headers: dict[str, str],
    body: dict[str, object],
    status: int,
    fragment: bytes,
) -> None:
    response = httpx.post(f"{served.url}{path}", json=body, headers=headers)
    assert response.status_code == status
    assert fragment in response.content
    data = response.json()
    assert ("error" in data) and (data.get("type") == "error" or "message" in data["error"])


def test_standin_headers_beat_the_directive_which_beats_the_defaults(served: Served) -> None:
    body = _anthropic_body("Hi [[standin tokens=7]]")
    assert len([e for e in _anthropic_events(served, body) if e[0] == "content_block_delta"]) == 7
    events = _anthropic_events(served, body, **{"x-standin-tokens": "3"})
    assert len([e for e in events if e[0] == "content_block_delta"]) == 3


def test_standin_max_tokens_truncates_with_the_api_stop_reason(served: Served) -> None:
    events = _anthropic_events(served, _anthropic_body(max_tokens=4))
    assert events[-2][1]["delta"]["stop_reason"] == "max_tokens"
    chunks = _openai_chunks(served, _openai_body(max_completion_tokens=4))
    assert orjson.loads(chunks[-3])["choices"][0]["finish_reason"] == "length"


def test_standin_anthropic_cache_control_writes_then_reads_the_prefix(served: Served) -> None:
    system = [{"type": "text", "text": LONG_SYSTEM + "v1", "cache_control": {"type": "ephemeral"}}]
    first = _anthropic_events(served, _anthropic_body(system=system))[0][1]["message"]["usage"]
    second = _anthropic_events(served, _anthropic_body("Next", system=system))[0][1]["message"][
        "usage"
    ]
    assert first["cache_creation_input_tokens"] > 1024 and first["cache_read_input_tokens"] == 0
    assert second["cache_read_input_tokens"] == first["cache_creation_input_tokens"]
    assert second["cache_creation_input_tokens"] == 0


def test_standin_openai_caches_a_repeated_long_prefix_in_128_token_steps(served: Served) -> None:
    history = [{"role": "system", "content": LONG_SYSTEM + "v2"}]

    def usage(text: str) -> dict[str, object]:
        body = _openai_body(messages=[*history, {"role": "user", "content": text}])
        return orjson.loads(_openai_chunks(served, body)[-2])["usage"]

    assert usage("first")["prompt_tokens_details"] == {"cached_tokens": 0, "audio_tokens": 0}
    cached = usage("second")["prompt_tokens_details"]["cached_tokens"]
    assert cached >= 1024 and cached % 128 == 0


# --- faults and the ledger -----------------------------------------------------------------------
def test_standin_refuse_closes_the_connection_without_a_response(served: Served) -> None:
    with pytest.raises(httpx.RemoteProtocolError):
        httpx.post(
            f"{served.url}/v1/messages",
            json=_anthropic_body(),
            headers=ANTHROPIC_HEADERS | {"x-standin-fault": "refuse"},
        )
    assert served.standin.ledger.entries()[-1].outcome == "refused"


@pytest.mark.parametrize(
    ("fault", "status", "kind"),
    [("529", 529, "overloaded_error"), ("429", 429, "rate_limit_error"), ("500", 500, "api_error")],
)
def test_standin_status_faults_answer_with_real_statuses(
    served: Served, fault: str, status: int, kind: str
) -> None:
    response = httpx.post(
        f"{served.url}/v1/messages",
        json=_anthropic_body(),
        headers=ANTHROPIC_HEADERS | {"x-standin-fault": fault, "x-standin-retry-after": "3"},
    )
    assert response.status_code == status
    assert response.json()["error"]["type"] == kind
    assert response.headers.get("retry-after") == ("3" if status == 429 else None)
    assert response.headers["request-id"].startswith("req_")


@pytest.mark.anyio
async def test_standin_stall_holds_the_connection_and_bills_until_the_disconnect(
    served: Served,
) -> None:
    headers = ANTHROPIC_HEADERS | {"x-standin-fault": "stall", "x-standin-after": "4"}
    deltas = 0
    async with httpx.AsyncClient() as client:
        async with aconnect_sse(
            client, "POST", f"{served.url}/v1/messages", json=_anthropic_body(), headers=headers
        ) as source:
            with anyio.move_on_after(0.5) as scope:
                async for sse in source.aiter_sse():
                    deltas += sse.event == "content_block_delta"
            assert scope.cancelled_caught, "a stalled stream must not end by itself"
            left_at = time.monotonic()
    entry = served.standin.ledger.entries()[-1]
    with anyio.fail_after(2):
        while entry.is_open:  # noqa: ASYNC110 - the ledger lives in the server's thread
            await anyio.sleep(0.002)
    assert deltas == 4 and entry.output_tokens == 4
    assert entry.client_disconnected and entry.closed_at is not None
    assert entry.closed_at - left_at < 0.1


def test_standin_ledger_filters_since_and_clears(served: Served) -> None:
    mark = time.monotonic()
    _openai_chunks(served, _openai_body("ledger probe [[standin tokens=2]]"))
    listed = httpx.get(f"{served.url}/_ledger", params={"since": mark}).json()
    assert [(e["api"], e["output_tokens"], e["outcome"]) for e in listed] == [
        ("openai", 2, "completed")
    ]
    assert httpx.get(f"{served.url}/_ledger", params={"since": "soon"}).status_code == 400
    assert httpx.delete(f"{served.url}/_ledger").status_code == 204
    assert httpx.get(f"{served.url}/_ledger").json() == []


# --- standalone ----------------------------------------------------------------------------------
def _wait_for_port(port: int, process: subprocess.Popen[bytes], timeout: float = 15.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        assert process.poll() is None, "the stand-in process exited"
        with socket.socket() as sock:
            if sock.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.05)
    raise AssertionError("the stand-in process did not listen in time")


def test_standin_runs_standalone_with_cli_defaults() -> None:
    port = free_port()
    process = subprocess.Popen(
        [sys.executable, "-m", "app.local.llm.api", "--port", str(port), "--tokens", "5"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        _wait_for_port(port, process)
        served = Served(f"http://127.0.0.1:{port}", standin=None)  # type: ignore[arg-type]
        chunks = _openai_chunks(served, _openai_body())
        assert len(chunks) == 1 + 5 + 1 + 1 + 1  # role, tokens, finish, usage, [DONE]
    finally:
        process.terminate()
        process.wait(timeout=10)
