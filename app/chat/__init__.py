"""The chat turn, the use case: begin → relay → account → persist, with every outcome stored.

    service.py     ChatService: the terms of a turn (from settings), `begin`, `open`
    turn.py        Turn.events(): TextDelta… then Done | Failed; the outcome, set in `finally`
    relay.py       the upstream: availability budget, fallback before the first token, deadlines
    accounting.py  what each attempt cost: reported or estimated usage, the TurnRecord
    durability.py  the final write: retries, the outbox, shielded from cancellation; the lease

It knows nothing of HTTP or SSE: the API layer encodes its events (`app/api/sse.py`).
"""
