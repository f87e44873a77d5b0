"""Resume a turn after a dropped connection: its numbered events after the client's last one.

Only the turn's own user may resume it: anyone else, and any id that is not a turn, get
`TurnNotFound`. On the worker producing the turn its feed is followed live; elsewhere the
checkpoints in the database are, until the turn ends. A finished turn replays from the stored
answer and the token boundaries `chat_finish` stored; one older than the retention, or whose
events cannot be rebuilt, ends with `Expired`, carrying the stored answer, if any.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncGenerator

from app.chat.feed import FeedRegistry
from app.chat.policy import ChatPolicy
from app.core.domain import Caller, Expired, ResumeEvent, TextDelta, TurnProgress
from app.core.ports import ChatStore
from app.errors import TurnNotFound

Numbered = tuple[int, ResumeEvent]


class Resumer:
    def __init__(self, feeds: FeedRegistry, store: ChatStore, policy: ChatPolicy) -> None:
        self._feeds, self._store = feeds, store
        self._poll, self._retention = policy.checkpoint_seconds, policy.retention_seconds

    async def resume(
        self, caller: Caller, turn_id: str, after: int
    ) -> AsyncGenerator[Numbered, None]:
        """The events after seq `after` (0: from the start); `TurnNotFound` before any event."""
        feed = self._feeds.get(turn_id)
        if feed is not None and feed.caller.user_id == caller.user_id:
            return feed.follow(after)
        progress = await self._store.progress(caller, turn_id, after)
        if progress is None:
            raise TurnNotFound("no such turn for this user")
        return self._from_database(caller, turn_id, after, progress)

    async def _from_database(
        self, caller: Caller, turn_id: str, after: int, progress: TurnProgress
    ) -> AsyncGenerator[Numbered, None]:
        """Follow a turn another worker produces, from its checkpoints, then its stored answer."""
        seq = after
        while progress.state == "streaming":
            for text in progress.parts:
                seq += 1
                yield seq, TextDelta(text)
            await asyncio.sleep(self._poll)
            # A read: the first call marked the turn followed (its producer then runs it to its
            # end), so following writes nothing.
            latest = await self._store.progress(caller, turn_id, seq, follow=False)
            if latest is None:
                return
            progress = latest
        lengths, content = progress.token_lengths, progress.content or ""
        fresh = progress.age_seconds <= self._retention
        if fresh and lengths is not None and sum(lengths) == len(content):
            tokens, start = [], 0
            for length in lengths:
                tokens.append(content[start : start + length])
                start += length
            for index in range(seq, len(tokens)):
                yield index + 1, TextDelta(tokens[index])
            seq = max(seq, len(tokens))
            if progress.final is not None:
                yield len(tokens) + 1, progress.final
                return
        yield seq + 1, Expired(progress.message_id, progress.content)
