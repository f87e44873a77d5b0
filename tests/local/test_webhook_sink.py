"""The local webhook sink answers every request with JSON and the right status, never a 500."""

from __future__ import annotations

import asyncio

import pytest
from starlette.testclient import TestClient

from app.local.webhooks.sink import MAX_BODY_BYTES, create_webhook_app


@pytest.mark.parametrize("seconds", ["nan", "inf", "-inf", "1e400", "abc", "", "0x10"])
def test_the_sink_refuses_a_down_time_that_is_not_a_finite_number_with_400(seconds: str) -> None:
    client = TestClient(create_webhook_app(), raise_server_exceptions=False)

    answer = client.post("/api/v1/down", params={"seconds": seconds})

    assert answer.status_code == 400
    assert answer.json() == {"error": "seconds must be a finite number"}
    assert client.post("/alerts", content=b"{}").status_code == 200  # still up


def test_the_sink_goes_down_for_a_finite_number_of_seconds_and_comes_back() -> None:
    client = TestClient(create_webhook_app())

    assert client.post("/api/v1/down", params={"seconds": "30"}).json() == {"down_for": 30.0}
    assert client.post("/alerts", content=b"{}").status_code == 503
    assert client.post("/api/v1/down", params={"seconds": "0"}).json() == {"down_for": 0.0}
    assert client.post("/alerts", content=b"{}").status_code == 200


def test_the_sink_stops_reading_a_body_as_soon_as_it_passes_the_cap() -> None:
    chunk = b"x" * 65536
    sent = 0
    answer: list[dict[str, object]] = []

    async def receive() -> dict[str, object]:
        nonlocal sent
        sent += 1
        return {"type": "http.request", "body": chunk, "more_body": sent < 100_000}  # 6.5 GB

    async def send(message: dict[str, object]) -> None:
        answer.append(message)

    scope = {
        "type": "http",
        "method": "POST",
        "path": "/alerts",
        "headers": [],
        "query_string": b"",
        "root_path": "",
        "scheme": "http",
        "server": ("x", 80),
    }
    asyncio.run(create_webhook_app()(scope, receive, send))  # type: ignore[arg-type]

    assert answer[0]["status"] == 413
    assert sent * len(chunk) <= MAX_BODY_BYTES + len(chunk)  # not the 6.5 GB it was offered
