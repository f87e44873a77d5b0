"""`examples/web` in real headless Chromium, from a page on another origin than the API, against
the local stack with the settings `make run` gives it: it streams and shows the answer, resumes
after a dropped connection with no gap and no duplicate, and stops a turn."""

from __future__ import annotations

import functools
import json
import threading
from collections.abc import Iterator
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import pytest

from app.config import Settings
from app.local.postgres import free_port
from app.local.stack import LocalStack
from tests.support.chat_stack import ChatStack, User, start_chat_stack
from tests.support.chromium import Browser
from tests.support.database import ROOT

pytestmark = pytest.mark.slow

WEB = ROOT / "examples" / "web"
# `start_chat_stack` tunes these for fast tests; `make run` leaves them at their defaults.
MAKE_RUN = (
    "disconnect_grace_seconds", "heartbeat_seconds", "llm_idle_timeout", "finish_retries",
    "finish_backoff_seconds", "outbox_replay_seconds",
)  # fmt: skip


@pytest.fixture(scope="module")
def api(local_stack: LocalStack, tmp_path_factory: pytest.TempPathFactory) -> Iterator[ChatStack]:
    defaults = {name: Settings.model_fields[name].default for name in MAKE_RUN}
    stack = start_chat_stack(local_stack, tmp_path_factory.mktemp("outbox"), **defaults)
    yield stack
    assert stack.server is not None
    stack.server.stop()


@pytest.fixture(scope="module")
def site() -> Iterator[str]:
    """examples/web served on its own port: another origin than the API's."""

    class Quiet(SimpleHTTPRequestHandler):
        def log_message(self, format: str, *args: Any) -> None:  # noqa: A002
            pass

    server = ThreadingHTTPServer(
        ("127.0.0.1", free_port()), functools.partial(Quiet, directory=str(WEB))
    )
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def open_page(site: str, api: ChatStack, user: User, profile: Path) -> Browser:
    fragment = urlencode(
        {
            "api": api.url,
            "token": user.token,
            "apikey": api.ctx.keys.anon_key,
            "conversation": user.conversation(),
        }
    )
    browser = Browser.open(f"{site}/index.html#{fragment}", profile)
    browser.wait_for("document.readyState === 'complete' && !!window.demo")
    return browser


def send_then(browser: Browser, message: str, button: str, after_tokens: int) -> dict[str, Any]:
    """Send `message`; after `after_tokens` tokens click `button`; the page's record at the end."""
    script = f"""(async () => {{
      const tick = () => new Promise(r => setTimeout(r, 10));
      const until = async (ready) => {{ while (!ready()) await tick(); }};
      const tokens = () => window.demo.events.filter(e => e.event.type === "token").length;
      document.getElementById("message").value = {json.dumps(message)};
      document.getElementById("send").click();
      await until(() => tokens() >= {after_tokens} || window.demo.error);
      document.getElementById({json.dumps(button)}).click();
      await until(() => window.demo.final || window.demo.error);
      return {{
        events: window.demo.events, final: window.demo.final, error: window.demo.error,
        turnId: window.demo.turn.turnId, resumes: window.demo.turn.resumes,
        answer: document.getElementById("answer").textContent,
        status: document.getElementById("status").textContent,
      }};
    }})()"""
    return dict(browser.evaluate(script, timeout=90))


def _tokens(record: dict[str, Any]) -> list[str]:
    return [e["event"]["content"] for e in record["events"] if e["event"]["type"] == "token"]


def test_web_example_resumes_a_dropped_stream_with_no_gap_and_no_duplicate(
    api: ChatStack, site: str, tmp_path: Path
) -> None:
    user = api.new_user()
    with open_page(site, api, user, tmp_path / "profile") as browser:
        record = send_then(browser, "resume [[standin tokens=40 delay_ms=60]]", "drop", 5)

    assert record["error"] is None
    turn_id = record["turnId"]
    assert turn_id  # X-Turn-Id is readable from another origin
    assert record["resumes"] == 1  # the connection was dropped mid-answer and resumed
    ids = [e["id"] for e in record["events"]]
    assert ids == [f"{turn_id}:{n}" for n in range(1, 42)]  # 40 tokens and done, each once
    assert record["final"]["type"] == "done" and record["final"]["turnId"] == turn_id
    ((message_id, content),) = api.rows(
        "select id::text, content from public.messages where turn_id = %s and role = 'assistant'",
        turn_id,
    )
    assert record["final"]["messageId"] == message_id
    assert record["answer"] == "".join(_tokens(record)) == content  # the page shows the answer
    assert api.rows("select status from public.usage_logs where turn_id = %s", turn_id) == [
        ("completed",)
    ]


def test_web_example_stops_a_turn_and_keeps_the_answer_so_far(
    api: ChatStack, site: str, tmp_path: Path
) -> None:
    user = api.new_user()
    with open_page(site, api, user, tmp_path / "profile") as browser:
        record = send_then(browser, "stop [[standin tokens=400 delay_ms=50]]", "stop", 5)

    assert record["error"] is None
    final = record["final"]
    assert final["type"] == "done" and final["stopped"] is True
    assert record["status"] == "stopped: the answer so far is stored"
    tokens = _tokens(record)
    assert 5 <= len(tokens) < 400
    ((content, status),) = api.rows(
        "select content, status from public.messages where turn_id = %s and role = 'assistant'",
        record["turnId"],
    )
    assert (content, status) == (record["answer"], "partial")
    assert record["answer"] == "".join(tokens)
