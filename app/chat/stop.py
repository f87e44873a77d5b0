"""Stop a turn at its user's request: the upstream closed at once, the answer so far stored.

On the worker producing the turn the feed ends it directly. Anywhere else the request is a flag
on the turn in the database (`chat_stop`), which the producer sees at its next checkpoint: while
its client listens every `stop_poll_seconds`, once it left every `checkpoint_seconds`. Either
way there is no disconnect grace: the turn is stored as partial, billed for what was generated,
and its stream (live or resumed) ends with `Done(stopped=True)`.
"""

from __future__ import annotations

from app.chat.feed import FeedRegistry
from app.core.domain import Caller
from app.core.ports import ChatStore
from app.errors import TurnNotFound


async def stop_turn(feeds: FeedRegistry, store: ChatStore, caller: Caller, turn_id: str) -> bool:
    """True when the turn was streaming and is now told to stop; False when it had already
    ended (nothing to stop). `TurnNotFound` when it is not a turn of the caller's."""
    feed = feeds.get(turn_id)
    if feed is not None and feed.caller.user_id == caller.user_id and feed.stop():
        return True
    state = await store.stop(caller, turn_id)
    if state is None:
        raise TurnNotFound("no such turn for this user")
    return state == "streaming"
