"""A TokenLog reads back exactly like the list of strings it stores, in a fraction of the memory."""

from __future__ import annotations

import tracemalloc

import pytest
from hypothesis import given
from hypothesis import strategies as st

from app.chat.token_log import BLOCK, TokenLog

tokens = st.lists(st.text(max_size=12), max_size=BLOCK * 4 + 5)


@given(tokens)
def test_it_reads_back_as_the_list_it_was_given(items: list[str]) -> None:
    log = TokenLog()
    for item in items:
        log.append(item)

    assert len(log) == len(items)
    assert list(log) == items
    assert [log[i] for i in range(len(items))] == items
    back = range(1, len(items) + 1)
    assert [log[-i] for i in back] == [items[-i] for i in back]
    assert log.text() == "".join(items)
    assert TokenLog(items).text() == "".join(items)


@given(tokens, st.integers(-300, 300), st.integers(-300, 300), st.sampled_from([None, 1, 2, -1]))
def test_slices_are_the_lists_slices(items: list[str], a: int, b: int, step: int | None) -> None:
    assert TokenLog(items)[a:b:step] == items[a:b:step]
    assert TokenLog(items)[a:] == items[a:]


@pytest.mark.parametrize("size", [0, 1, BLOCK - 1, BLOCK, BLOCK + 1, 5 * BLOCK])
def test_an_index_past_either_end_is_an_index_error(size: int) -> None:
    log = TokenLog(str(i) for i in range(size))
    with pytest.raises(IndexError):
        log[size]
    with pytest.raises(IndexError):
        log[-size - 1]


def test_iterating_while_appending_sees_the_tokens_of_that_moment() -> None:
    log = TokenLog(str(i) for i in range(BLOCK - 1))
    seen = []
    for token in log:
        seen.append(token)
        if len(seen) == 1:
            log.append("late")  # completes a block mid-iteration
    assert seen[: BLOCK - 1] == [str(i) for i in range(BLOCK - 1)]
    assert list(log)[-1] == "late"


def _bytes_held(build: object) -> int:
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        held = build()  # type: ignore[operator]
        after = tracemalloc.get_traced_memory()[0]
    finally:
        tracemalloc.stop()
    assert held is not None
    return after - before


def test_a_long_answer_takes_a_fraction_of_a_list_of_strings() -> None:
    """1,200 four-character tokens (a long answer): what a live turn holds per token log."""

    def as_list() -> list[str]:
        return [f"{i:04d}" for i in range(1200)]

    def as_log() -> TokenLog:
        return TokenLog(f"{i:04d}" for i in range(1200))

    listed, logged = _bytes_held(as_list), _bytes_held(as_log)

    assert listed > 60_000  # ~53 bytes a string plus the list's slot
    # ~4 characters + a 4-byte offset a token, and the newest (< 64) tokens still as strings
    assert logged < 16_000
