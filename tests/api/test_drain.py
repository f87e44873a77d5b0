"""SIGTERM mid-stream: open turns finish within the grace, the rest end with `retry`, every turn's
usage is stored, new turns get 503, and the process exits in bounded time — with 1 or 2 workers."""

from __future__ import annotations

import json
import signal
import threading
import time

import httpx
import pytest

from app.user_messages import user_message
from tests.api.test_guards import serve
from tests.support.chat_stack import ChatStack, User

pytestmark = pytest.mark.slow

GRACE = 2.0


def _stream(
    url: str, user: User, message: str, conv: str, out: dict, started: threading.Event
) -> None:
    events = []
    with httpx.Client(timeout=60) as client:
        with client.stream(
            "POST",
            f"{url}/functions/v1/chat-stream",
            json={"message": message, "conversationId": conv},
            headers=user.headers(),
        ) as response:
            out["turn_id"] = response.headers.get("x-turn-id")
            for line in response.iter_lines():
                if line.startswith("data: "):
                    events.append(json.loads(line[6:]))
                    if len(events) == 1:
                        started.set()
    out["events"] = events


@pytest.mark.parametrize("workers", [1, 2])
def test_sigterm_drains_open_turns_and_exits_in_bounded_time(
    chat_stack: ChatStack, workers: int
) -> None:
    proc, url = serve(
        chat_stack,
        workers=workers,
        extra={"SHUTDOWN_GRACE_SECONDS": str(GRACE), "DISCONNECT_GRACE_SECONDS": "0"},
    )
    try:
        user = chat_stack.new_user()
        short, long_ = {}, {}
        short_started, long_started = threading.Event(), threading.Event()
        threads = [
            threading.Thread(
                target=_stream,
                args=(
                    url,
                    user,
                    "quick [[standin tokens=8 delay_ms=100]]",
                    user.conversation(),
                    short,
                    short_started,
                ),
            ),
            threading.Thread(
                target=_stream,
                args=(
                    url,
                    user,
                    "long [[standin tokens=300 delay_ms=100]]",
                    user.conversation(),
                    long_,
                    long_started,
                ),
            ),
        ]
        for thread in threads:
            thread.start()
        assert short_started.wait(30) and long_started.wait(30)

        signalled = time.monotonic()
        proc.send_signal(signal.SIGTERM)
        # Each worker gets the signal a moment apart: a turn that lands on one not yet draining
        # is served (and must be stored like any other); once draining, every one is refused.
        refused, ready, accepted = None, None, []
        while refused is None or ready is None:
            assert time.monotonic() - signalled < GRACE, "no worker refused within the grace"
            answer = httpx.post(
                f"{url}/functions/v1/chat-stream",
                json={
                    "message": "late [[standin tokens=1]]",
                    "conversationId": user.conversation(),
                },
                headers=user.headers(),
                timeout=10,
            )
            if answer.status_code == 503:
                refused = answer
            else:
                accepted.append(answer.headers["x-turn-id"])
            probe = httpx.get(f"{url}/readyz", timeout=10)
            ready = probe if probe.status_code == 503 else ready
        proc.wait(30)
        exited_after = time.monotonic() - signalled
        for thread in threads:
            thread.join(30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()

    assert refused.status_code == 503 and refused.headers["retry-after"]
    assert refused.json()["code"] == "shutting_down"
    assert ready.status_code == 503
    assert short["events"][-1]["type"] == "done"  # it could finish, so it finished
    assert long_["events"][-1] == {
        "type": "error",
        "message": user_message("retry"),
        "code": "retry",
    }
    rows = dict(
        chat_stack.rows(
            "select turn_id::text, status from public.usage_logs where user_id = %s", user.id
        )
    )
    assert rows == {short["turn_id"]: "completed", long_["turn_id"]: "partial"} | dict.fromkeys(
        accepted, "completed"
    )
    assert exited_after < GRACE + 3.0, exited_after  # grace + a second, with room for a slow box
