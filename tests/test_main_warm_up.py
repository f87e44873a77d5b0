"""The verifier's warm-up at start-up: at once, then with backoff until Auth answers."""

from __future__ import annotations

import logging

import pytest

from app import main


class Warm:
    def __init__(self, ready_after: int) -> None:
        self.calls = 0
        self.ready_after = ready_after

    async def __call__(self) -> bool:
        self.calls += 1
        return self.calls > self.ready_after


@pytest.fixture(autouse=True)
def no_pauses(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(main, "WARM_UP_BACKOFF", (0.0,) * 5)


@pytest.mark.anyio
async def test_warm_up_auth_answering_at_once_tries_once() -> None:
    warm = Warm(ready_after=0)

    await main._warm_up(warm)

    assert warm.calls == 1


@pytest.mark.anyio
async def test_warm_up_auth_not_listening_yet_retries_until_it_answers(
    caplog: pytest.LogCaptureFixture,
) -> None:
    warm = Warm(ready_after=3)

    with caplog.at_level(logging.WARNING, logger="app.main"):
        await main._warm_up(warm)

    assert warm.calls == 4
    assert caplog.records == []


@pytest.mark.anyio
async def test_warm_up_auth_never_answering_gives_up_with_one_warning(
    caplog: pytest.LogCaptureFixture,
) -> None:
    warm = Warm(ready_after=100)

    with caplog.at_level(logging.WARNING, logger="app.main"):
        await main._warm_up(warm)

    assert warm.calls == 6
    assert [r.getMessage() for r in caplog.records] == [
        "token verifier warm-up gave up: the first request will fetch the keys"
    ]
