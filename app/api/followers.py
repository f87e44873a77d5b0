"""Resume followers, bounded per turn and per user on this worker (429 above), so 30 followers of
one turn cannot hold a worker; each one also counts as an open stream for admission."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager

from app.errors import RateLimited


class Followers:
    def __init__(self, *, per_turn: int, per_user: int) -> None:
        self._per_turn, self._per_user = per_turn, per_user
        self._turns: Counter[str] = Counter()
        self._users: Counter[str] = Counter()

    @contextmanager
    def hold(self, turn_id: str, user_id: str) -> Iterator[None]:
        if self._per_turn > 0 and self._turns[turn_id] >= self._per_turn:
            raise RateLimited(f"{self._turns[turn_id]} followers of turn {turn_id} already")
        if self._per_user > 0 and self._users[user_id] >= self._per_user:
            raise RateLimited(f"{self._users[user_id]} followers for user {user_id} already")
        self._turns[turn_id] += 1
        self._users[user_id] += 1
        try:
            yield
        finally:
            for counter, key in ((self._turns, turn_id), (self._users, user_id)):
                counter[key] -= 1
                if not counter[key]:
                    del counter[key]
