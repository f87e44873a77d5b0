"""What operators read: `serve` writes JSON lines only; `make run` writes plain, readable lines."""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from app.auth import REFUSAL_REASONS
from app.ops.logs import REFUSAL_WORDS, REQUEST_LOGGER, configure_logging, logging_config
from tests.api.test_guards import serve, stop
from tests.support.chat_stack import ChatStack

LIBRARY_LOGGERS = ("httpx", "httpcore", "hpack", "aiohttp", "urllib3")


@pytest.fixture
def restore_logging() -> Iterator[None]:
    """`configure_logging` changes process-wide state: put pytest's back afterwards."""
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    levels = {name: logging.getLogger(name).level for name in LIBRARY_LOGGERS}
    yield
    root.handlers[:] = handlers
    root.setLevel(level)
    for name, old in levels.items():
        logging.getLogger(name).setLevel(old)


@pytest.mark.slow
def test_serve_with_two_workers_writes_only_json_lines(
    chat_stack: ChatStack, tmp_path: Path
) -> None:
    user = chat_stack.new_user()
    conv = user.conversation()
    log = tmp_path / "serve.log"
    with log.open("wb") as out:
        proc, url = serve(chat_stack, workers=2, extra={"LOG_LEVEL": "INFO"}, output=out)
        try:
            turn = httpx.post(
                f"{url}/functions/v1/chat-stream",
                json={"message": "hi [[standin tokens=3]]", "conversationId": conv},
                headers=user.headers(),
                timeout=30,
            )
            refused = httpx.post(
                f"{url}/functions/v1/chat-stream",
                json={"message": "hi", "conversationId": conv},
                headers=user.headers() | {"Authorization": "Bearer not.a.jwt"},
                timeout=30,
            )
        finally:
            stop(proc)
    assert turn.status_code == 200 and refused.status_code == 401

    lines = [line for line in log.read_text().splitlines() if line.strip()]
    records = [json.loads(line) for line in lines]  # every line parses

    assert all({"ts", "level", "logger", "msg"} <= set(r) for r in records)
    loggers = {r["logger"] for r in records}
    assert {"uvicorn.error", "chat_stream", REQUEST_LOGGER} <= loggers  # uvicorn's lines too
    assert any("parent process" in r["msg"] for r in records)  # before the workers start
    assert not loggers & set(LIBRARY_LOGGERS)  # no httpx INFO line per request
    requests = [r for r in records if r["logger"] == REQUEST_LOGGER]
    assert sorted(r["status"] for r in requests) == [200, 401]
    assert [r["reason"] for r in requests if r["status"] == 401] == ["malformed"]
    assert not any("color_message" in r for r in records)  # uvicorn's ANSI copy stays out
    assert "uvicorn.access" not in loggers  # one line per request: ours


def test_configure_logging_keeps_library_loggers_at_warning(restore_logging: None) -> None:
    configure_logging("DEBUG", json_lines=True)
    for name in LIBRARY_LOGGERS:
        assert logging.getLogger(name).getEffectiveLevel() == logging.WARNING
    assert logging.getLogger("app.chat.relay").getEffectiveLevel() == logging.DEBUG


def test_logging_config_sends_uvicorns_loggers_through_ours() -> None:
    config = logging_config("INFO", json_lines=True)
    for name in ("uvicorn", "uvicorn.error", "uvicorn.access"):
        assert config["loggers"][name]["handlers"] == []
    assert config["loggers"]["uvicorn.error"]["propagate"] is True
    assert config["loggers"]["uvicorn.access"]["propagate"] is False  # our request line instead
    assert config["formatters"]["default"]["()"] == "app.ops.logs.JsonFormatter"


def test_plain_request_line_says_why_a_token_was_refused(restore_logging: None) -> None:
    out = io.StringIO()
    configure_logging("INFO", json_lines=False, stream=out)
    fields = {"outcome": "unauthorized", "status": 401, "reason": "expired", "duration_ms": 3}

    logging.getLogger(REQUEST_LOGGER).info("chat-stream unauthorized", extra=fields)

    line = out.getvalue()
    assert line.count("\n") == 1
    assert "401 unauthorized" in line
    assert "the access token has expired" in line
    assert "3 ms" in line


def test_plain_request_line_of_a_turn_names_its_ids_model_and_cost(
    restore_logging: None,
) -> None:
    out = io.StringIO()
    configure_logging("INFO", json_lines=False, stream=out)
    fields = {
        "outcome": "completed",
        "status": 200,
        "turn_id": "t-1",
        "user_id": "u-1",
        "model": "claude-sonnet-4-6",
        "tokens_in": 120,
        "tokens_out": 40,
        "cost_usd": "0.000960",
        "ttft_ms": 210,
        "duration_ms": 900,
    }

    logging.getLogger(REQUEST_LOGGER).info("chat-stream completed", extra=fields)

    line = out.getvalue()
    for part in ("200 completed", "turn t-1", "claude-sonnet-4-6", "120→40 tokens", "$0.000960"):
        assert part in line


def test_refusal_words_cover_every_refusal_reason() -> None:
    assert set(REFUSAL_WORDS) == set(REFUSAL_REASONS)
