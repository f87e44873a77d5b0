"""The bench's arithmetic: nearest-rank percentiles, what the service adds, ratios."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from bench.stats import added, per_thousand, percentile, ratio, summarize_ms


@pytest.mark.parametrize(
    ("values", "p", "expected"),
    [
        ([5.0], 50, 5.0),
        ([1.0, 2.0, 3.0, 4.0], 50, 2.0),
        ([1.0, 2.0, 3.0, 4.0], 75, 3.0),
        ([4.0, 3.0, 2.0, 1.0], 100, 4.0),
        ([float(i) for i in range(1, 101)], 99, 99.0),
        ([float(i) for i in range(1, 101)], 50, 50.0),
        ([float(i) for i in range(1, 11)], 99, 10.0),
    ],
)
def test_percentile_nearest_rank_returns_an_observed_value(
    values: list[float], p: float, expected: float
) -> None:
    assert percentile(values, p) == expected


def test_percentile_of_nothing_is_none() -> None:
    assert percentile([], 50) is None


@pytest.mark.parametrize("p", [0, -1, 101])
def test_percentile_out_of_range_is_refused(p: float) -> None:
    with pytest.raises(ValueError, match="percentile"):
        percentile([1.0], p)


@given(st.lists(st.floats(0, 1e6, allow_nan=False), min_size=1), st.floats(0.1, 100))
def test_percentile_lies_within_the_samples(values: list[float], p: float) -> None:
    result = percentile(values, p)
    assert result in values
    assert sum(v <= result for v in values) >= p / 100 * len(values)


def test_summarize_ms_converts_seconds_and_skips_missing_samples() -> None:
    summary = summarize_ms([0.001, None, 0.003, 0.002])

    assert summary.n == 3
    assert (summary.p50, summary.max) == (2.0, 3.0)
    assert summary.as_json()["p99"] == 3.0


def test_summarize_ms_of_nothing_has_no_percentiles() -> None:
    assert summarize_ms([None]).as_json() == {
        "n": 0,
        "p50": None,
        "p90": None,
        "p99": None,
        "max": None,
    }


@pytest.mark.parametrize(
    ("service", "direct", "expected_added", "expected_ratio"),
    [
        (12.0, 10.0, 2.0, 1.2),
        (10.0, 10.0, 0.0, 1.0),
        (None, 10.0, None, None),
        (10.0, None, None, None),
        (5.0, 0.0, 5.0, None),
    ],
)
def test_added_and_ratio_compare_service_with_direct(
    service: float | None,
    direct: float | None,
    expected_added: float | None,
    expected_ratio: float | None,
) -> None:
    assert added(service, direct) == expected_added
    assert ratio(service, direct) == expected_ratio


def test_per_thousand_scales_and_refuses_an_empty_count() -> None:
    assert per_thousand(30.0, 600) == 50.0
    assert per_thousand(30.0, 0) is None
