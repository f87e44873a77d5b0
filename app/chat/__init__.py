"""The chat turn, the use case: begin → relay → account → persist, with every outcome stored.

    policy.py      ChatPolicy: the settings the use case decides with (built in app.main)
    service.py     ChatService: the terms of a turn (from the policy), `begin`, `open`
    turn.py        Turn.events(): TextDelta… then Done | Failed; the outcome, set in `finally`
    relay.py       the upstream: availability budget, fallback before the first token, deadlines
    accounting.py  what each attempt cost: reported or estimated usage, the TurnRecord
    durability.py  the final write: retries, the outbox, shielded from cancellation; the lease
    feed.py        TurnFeed: runs a live turn, keeps its events, the disconnect grace, checkpoints
    resume.py      Resumer: a dropped client's missing events, from the feed or the database

It knows nothing of HTTP or SSE: the API layer encodes its events (`app/api/sse.py`).
"""
