"""PostgREST's "Perhaps you meant …" hints: the closest name, if it is close enough.

PostgREST ranks names with the `fuzzyset` package, whose final score is Levenshtein's:
1 - distance / length of the longer name, and hints only at 0.75 or more (`getFuzzyHint`).
"""

from __future__ import annotations

from collections.abc import Iterable

MIN_SCORE = 0.75


def closest(name: str, choices: Iterable[str], min_score: float = MIN_SCORE) -> str | None:
    best, best_score = None, min_score
    for choice in choices:
        score = _similarity(name, choice)
        if score >= best_score and (best is None or score > best_score):
            best, best_score = choice, score
    return best


def _similarity(a: str, b: str) -> float:
    longest = max(len(a), len(b))
    return 1.0 if longest == 0 else 1.0 - _levenshtein(a, b) / longest


def _levenshtein(a: str, b: str) -> int:
    previous = list(range(len(b) + 1))
    for i, ca in enumerate(a, 1):
        current = [i]
        for j, cb in enumerate(b, 1):
            current.append(min(previous[j] + 1, current[j - 1] + 1, previous[j - 1] + (ca != cb)))
        previous = current
    return previous[-1]
