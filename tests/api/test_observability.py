"""Health, readiness, Prometheus metrics and the one-JSON-line-per-request log."""

from __future__ import annotations

import json
import logging
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Protocol

import httpx
import pytest
from prometheus_client.mmap_dict import MmapedDict
from prometheus_client.parser import text_string_to_metric_families
from pydantic import SecretStr

from app.errors import AUTH_MESSAGE
from app.local.server import ServerThread
from app.local.stack import LocalStack
from app.ops.logs import REQUEST_LOGGER, JsonFormatter
from tests.deploy.serving import serve
from tests.support.chat_stack import ChatStack, start_chat_stack, stream

pytestmark = pytest.mark.slow


class _Scrapable(Protocol):
    @property
    def url(self) -> str: ...


def scrape(stack: _Scrapable) -> dict[str, float]:
    """Every sample of /metrics as `name{labels}` → value, parsed by Prometheus's own parser."""
    response = httpx.get(f"{stack.url}/metrics")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain")
    samples: dict[str, float] = {}
    for family in text_string_to_metric_families(response.text):
        for sample in family.samples:
            labels = ",".join(f"{k}={v}" for k, v in sorted(sample.labels.items()))
            samples[f"{sample.name}{{{labels}}}"] = sample.value
    return samples


def test_healthz_is_alive_and_readyz_checks_database_and_providers(chat_stack: ChatStack) -> None:
    assert httpx.get(f"{chat_stack.url}/healthz").json() == {"status": "ok"}
    ready = httpx.get(f"{chat_stack.url}/readyz")
    assert ready.status_code == 200
    assert ready.json() == {"status": "ready", "checks": {"database": "ok", "providers": "ok"}}


def test_readyz_is_503_when_a_provider_is_not_configured(
    local_stack: LocalStack, tmp_path: Path
) -> None:
    stack = start_chat_stack(local_stack, tmp_path, anthropic_api_key=SecretStr(""))
    try:
        response = httpx.get(f"{stack.url}/readyz")
        assert response.status_code == 503
        assert "ANTHROPIC_API_KEY" in response.json()["checks"]["providers"]
    finally:
        assert stack.server is not None
        stack.server.stop()


@pytest.mark.parametrize("key", ["not-a-key", "ANON_OF_ANOTHER_PROJECT"])
def test_readyz_with_a_wrong_anon_key_names_the_key_not_the_database(
    local_stack: LocalStack, tmp_path: Path, key: str
) -> None:
    if key == "ANON_OF_ANOTHER_PROJECT":  # a well-formed JWT the gateway does not know
        key = "eyJhbGciOiJIUzI1NiJ9.eyJyb2xlIjoiYW5vbiJ9.c2lnbmF0dXJlLW9mLWFub3RoZXItcHJvamVjdA"
    stack = start_chat_stack(local_stack, tmp_path, supabase_anon_key=SecretStr(key))
    try:
        response = httpx.get(f"{stack.url}/readyz")
    finally:
        assert stack.server is not None
        stack.server.stop()
    assert response.status_code == 503
    assert response.json()["checks"] == {
        "api_key": "key refused: check SUPABASE_ANON_KEY",
        "providers": "ok",
    }


def test_readyz_polled_every_few_ms_costs_one_round_trip_a_second(chat_stack: ChatStack) -> None:
    with httpx.Client() as client:
        began = time.monotonic()
        answers = [client.get(f"{chat_stack.url}/readyz").status_code for _ in range(50)]
        elapsed = time.monotonic() - began
    assert answers == [200] * 50
    assert elapsed < 5.0  # generous: cached answers, not 50 database round trips


def test_metrics_move_as_requests_complete(chat_stack: ChatStack) -> None:
    user = chat_stack.new_user()
    conv = user.conversation()
    before = scrape(chat_stack)

    stream(chat_stack, user, {"message": "hi [[standin tokens=7]]", "conversationId": conv})
    stream(chat_stack, user, {"message": "hi [[standin fault=529]]", "conversationId": conv})
    httpx.post(chat_stack.endpoint, content=b"{bad", headers=user.headers())

    after = scrape(chat_stack)

    def delta(key: str) -> float:
        return after.get(key, 0.0) - before.get(key, 0.0)

    assert delta("chat_requests_total{outcome=completed}") == 1
    assert delta("chat_requests_total{outcome=error}") == 1
    assert delta("chat_requests_total{outcome=invalid_request}") == 1
    assert delta("chat_relayed_tokens_total{}") == 7
    assert delta("chat_upstream_errors_total{kind=overloaded_error}") == 1  # the upstream type
    assert delta("chat_time_to_first_token_seconds_count{}") == 1
    assert delta("chat_stream_duration_seconds_count{}") == 2
    assert delta("chat_cost_usd_total{model=claude-sonnet-4-5}") > 0
    assert after["chat_open_streams{}"] == 0
    assert after["chat_outbox_depth{}"] == 0


def test_one_json_log_line_per_request_with_ids_and_no_secrets(
    chat_stack: ChatStack, caplog: pytest.LogCaptureFixture
) -> None:
    user = chat_stack.new_user()
    conv = user.conversation()
    secret_text = "my very private worry [[standin tokens=4]]"
    caplog.set_level(logging.INFO, logger=REQUEST_LOGGER)

    result = stream(
        chat_stack,
        user,
        {"message": secret_text, "conversationId": conv},
        headers={"X-Request-Id": "client-req-42"},
    )

    assert result.headers["x-request-id"] == "client-req-42"
    records = [r for r in caplog.records if r.name == REQUEST_LOGGER]
    assert len(records) == 1
    line = JsonFormatter().format(records[0])
    entry = json.loads(line)
    assert entry["http_request_id"] == "client-req-42"
    assert entry["user_id"] == user.id and entry["conversation_id"] == conv
    assert entry["outcome"] == "completed" and entry["status"] == 200
    assert entry["model"] == "claude-sonnet-4-5" and entry["tokens_out"] == 4
    assert entry["tokens_in"] > 0 and float(entry["cost_usd"]) > 0
    assert entry["ttft_ms"] is not None and entry["duration_ms"] >= entry["ttft_ms"]
    for secret in (
        user.token,
        secret_text,
        "private worry",
        "".join(result.tokens),  # the answer (single tokens are too short to be telling)
        chat_stack.ctx.keys.anon_key,
        chat_stack.ctx.keys.service_role_key,
    ):
        assert secret not in line


def test_request_id_is_generated_when_absent_or_unsafe(chat_stack: ChatStack) -> None:
    plain = httpx.get(f"{chat_stack.url}/healthz")
    unsafe = httpx.get(f"{chat_stack.url}/healthz", headers={"X-Request-Id": "a b <script>"})
    assert len(plain.headers["x-request-id"]) == 36
    assert len(unsafe.headers["x-request-id"]) == 36  # replaced, not echoed


def test_refused_token_logs_and_counts_its_reason_and_tells_the_client_only_the_warm_message(
    chat_stack: ChatStack, caplog: pytest.LogCaptureFixture
) -> None:
    user = chat_stack.new_user()
    conv = user.conversation()
    wrong_issuer = chat_stack.ctx.keys.user_access_token(
        user_id=user.id, issuer="https://another-project.supabase.co/auth/v1", email=user.email
    )
    caplog.set_level(logging.INFO, logger=REQUEST_LOGGER)
    before = scrape(chat_stack)

    response = httpx.post(
        chat_stack.endpoint,
        json={"message": "hi", "conversationId": conv},
        headers={"Authorization": f"Bearer {wrong_issuer}", "apikey": chat_stack.ctx.keys.anon_key},
    )

    assert response.status_code == 401
    assert response.json() == {
        "error": "Unauthorized",
        "userMessage": AUTH_MESSAGE,
        "code": "unauthorized",
    }
    assert "issuer" not in response.text and "another-project" not in response.text
    [record] = [r for r in caplog.records if r.name == REQUEST_LOGGER]
    entry = json.loads(JsonFormatter().format(record))
    assert entry["outcome"] == "unauthorized" and entry["reason"] == "issuer"
    after = scrape(chat_stack)
    key = "chat_auth_refusals_total{reason=issuer}"
    assert after[key] - before.get(key, 0.0) == 1


def _requests_by_worker(folder: Path) -> dict[str, float]:
    """chat_requests_total per worker file of the multiprocess folder (file name → count)."""
    counts: dict[str, float] = {}
    for path in folder.glob("counter_*.db"):
        total = 0.0
        for key, value, *_ in MmapedDict.read_all_values_from_file(str(path)):
            if json.loads(key)[0] == "chat_requests":
                total += value
        counts[path.name] = total
    return counts


def test_metrics_with_two_workers_sum_every_worker(
    local_stack: LocalStack, stack_server: ServerThread, tmp_path: Path
) -> None:
    folder = tmp_path / "prom"
    folder.mkdir()
    (folder / "counter_999999.db").write_bytes(b"stale")  # a previous run's file: removed at start
    body = {"message": "hi", "conversationId": str(uuid.uuid4())}
    sent = 0
    with serve(local_stack, tmp_path, "--workers", "2", PROMETHEUS_MULTIPROC_DIR=str(folder)) as s:
        assert not (folder / "counter_999999.db").exists()

        def refused(_: int) -> int:
            headers = {"Authorization": "Bearer not-a-jwt"}
            return httpx.post(s.endpoint, json=body, headers=headers, timeout=10).status_code

        with ThreadPoolExecutor(8) as pool:
            # Fresh connections, concurrently, until both workers have answered some (bounded).
            while sent < 400:
                assert set(pool.map(refused, range(40))) == {401}
                sent += 40
                if sum(1 for n in _requests_by_worker(folder).values() if n > 0) >= 2:
                    break
        assert sum(1 for n in _requests_by_worker(folder).values() if n > 0) == 2

        for _ in range(6):  # any worker may answer the scrape: each sees the sum
            samples = scrape(s)
            assert samples["chat_requests_total{outcome=unauthorized}"] == sent
            assert samples["chat_auth_refusals_total{reason=malformed}"] == sent
            assert samples["chat_open_streams{}"] == 0
