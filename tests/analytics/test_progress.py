"""Progress bars: counts and an ETA on a terminal, nothing when stderr is a pipe or quiet."""

from __future__ import annotations

import io

import pytest

from app.analytics.progress import progress_bar


class _Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_progress_bar_on_a_terminal_shows_counts_rate_and_eta(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    screen = _Terminal()
    monkeypatch.setattr("sys.stderr", screen)

    bar = progress_bar(50_000, "public.messages", unit="row")
    bar.update(25_000)
    bar.close()

    text = screen.getvalue()
    assert "public.messages" in text
    assert "25.0k/50.0k" in text and "row/s" in text
    assert "<" in text  # elapsed<remaining


def test_progress_bar_off_a_terminal_is_silent(monkeypatch: pytest.MonkeyPatch) -> None:
    pipe = io.StringIO()
    monkeypatch.setattr("sys.stderr", pipe)

    bar = progress_bar(10, "report", unit="step")
    bar.update(10)
    bar.close()

    assert pipe.getvalue() == ""


def test_progress_bar_quiet_is_silent_even_on_a_terminal(monkeypatch: pytest.MonkeyPatch) -> None:
    screen = _Terminal()
    monkeypatch.setattr("sys.stderr", screen)

    bar = progress_bar(10, "report", quiet=True)
    bar.update(10)
    bar.close()

    assert screen.getvalue() == ""
