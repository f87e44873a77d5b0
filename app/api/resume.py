"""GET /functions/v1/chat-stream/turns/<turn_id> — resume a turn after a dropped connection.

`Last-Event-ID: <turn_id>:<seq>` (what EventSource sends by itself) resumes after that event; none
replays from the start. Only the turn's own user may resume it: anyone else, and any id that is not
a turn, get 404. On the worker producing the turn the feed is followed live; elsewhere the
checkpoints in the database are, until the turn ends. A finished turn replays from the stored
answer; one older than `RESUME_RETENTION_SECONDS`, or whose events cannot be rebuilt, ends with an
`expired` event carrying the stored answer, if any.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

from fastapi import APIRouter, Request
from starlette.responses import Response

from app.api.body import authorization_header
from app.api.deps import Services
from app.api.errors import error_response
from app.api.headers import canonical_uuid, last_event_seq
from app.api.sse import Emit, encode_event, encode_expired
from app.api.stream import EventStreamResponse
from app.core.domain import Caller, TextDelta, TurnProgress
from app.core.ports import ChatStore
from app.errors import AppError, NotFound

router = APIRouter()


@router.get("/functions/v1/chat-stream/turns/{turn_id}")
async def resume(request: Request, turn_id: str) -> Response:
    services: Services = request.app.state.services
    settings = services.settings
    canonical = canonical_uuid(turn_id)
    if canonical is None:
        return error_response(NotFound("not a turn id"))
    turn_id = canonical
    try:
        after = last_event_seq(request.headers.get("last-event-id"), turn_id)
        caller = await services.verifier.verify(authorization_header(request))
        feed = services.feeds.get(turn_id)
        if feed is not None and feed.caller.user_id == caller.user_id:
            chunks = feed.follow(after)
        else:
            progress = await services.store.progress(caller, turn_id, after)
            if progress is None:
                raise NotFound("no such turn for this user")
            chunks = _from_database(
                services.store,
                caller,
                turn_id,
                after,
                progress,
                poll_seconds=settings.checkpoint_seconds,
                retention_seconds=settings.resume_retention_seconds,
            )
    except AppError as exc:
        return error_response(exc)

    async def produce(emit: Emit) -> None:
        async for chunk in chunks:
            await emit(chunk)

    return EventStreamResponse(
        produce, heartbeat_seconds=settings.heartbeat_seconds, headers={"x-turn-id": turn_id}
    )


async def _from_database(
    store: ChatStore,
    caller: Caller,
    turn_id: str,
    after: int,
    progress: TurnProgress,
    *,
    poll_seconds: float,
    retention_seconds: float,
) -> AsyncIterator[bytes]:
    """Follow a turn another worker produces, from its checkpoints, then its stored answer."""
    seq = after
    while progress.state == "streaming":
        for text in progress.parts:
            seq += 1
            yield encode_event(TextDelta(text), turn_id, seq)
        await asyncio.sleep(poll_seconds)
        latest = await store.progress(caller, turn_id, seq)
        if latest is None:
            return
        progress = latest
    lengths, content = progress.token_lengths, progress.content or ""
    fresh = progress.age_seconds <= retention_seconds
    if fresh and lengths is not None and sum(lengths) == len(content):
        tokens, start = [], 0
        for length in lengths:
            tokens.append(content[start : start + length])
            start += length
        for index in range(seq, len(tokens)):
            yield encode_event(TextDelta(tokens[index]), turn_id, index + 1)
        seq = max(seq, len(tokens))
        if progress.final is not None:
            yield encode_event(progress.final, turn_id, len(tokens) + 1)
            return
    yield encode_expired(turn_id, seq + 1, progress.message_id, progress.content)
