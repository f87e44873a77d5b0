"""The sentence the app shows for every `code` the service emits: one table, one voice.

A client shows `userMessage` (a JSON refusal) or `message` (an SSE `error` or `expired` event) as
it is, so each sentence must be true for its code: what happened, in the coach's warm first
person, and what the user can do about it. Never "try again" for what can never succeed (a
message that is too long, an app that sends the wrong thing); never "in a moment" for a budget
that resets tomorrow. The throttled codes say when the user can continue, from the same
`Retry-After` the response carries (`continue_when`).

`tests/test_user_messages.py` finds every code the service can emit in its source and checks that
it is here, and that two codes share a sentence only when they mean the same to the user.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from types import MappingProxyType

# What the seed said for everything; now only for a code this table does not know (a bug).
FALLBACK_MESSAGE = "Coach is taking a moment. Let's try again."

# `{when}` is filled by `continue_when(retry_after)`.
USER_MESSAGES: Mapping[str, str] = MappingProxyType(
    {
        # --- the request itself (the app sent something the service cannot take) -----------
        "invalid_request": "I couldn't read that message. Updating the app may help.",
        "message_empty": "I didn't catch anything there. Write me a message and send it.",
        "message_too_long": (
            "That message is longer than I can read in one go. Could you shorten it, or send it"
            " in parts?"
        ),
        "payload_too_large": "That's far more than I can take in at once. Could you send less?",
        "unsupported_media_type": (
            "Your app sent that in a form I can't read. Updating the app should fix it."
        ),
        "request_timeout": (
            "Your message took too long to reach me. Check your connection and send it again."
        ),
        "client_closed_request": "The connection closed before your message reached me.",
        "invalid_http": "That request got garbled on its way to me. Please send it again.",
        "headers_too_large": (
            "Your app sent more than I can read with that message. Signing out and in again"
            " may help."
        ),
        "route_not_found": "I don't know that address. Updating the app may help.",
        "method_not_allowed": "I can't answer that kind of request. Updating the app may help.",
        "http_error": "I couldn't handle that request. Updating the app may help.",
        # --- who is asking, and what for --------------------------------------------------------
        "unauthorized": "I had trouble remembering you. Please sign in again.",
        "auth_unavailable": "I can't check who you are right now. Please try again in a moment.",
        "not_found": "I can't find that conversation. It may have been deleted.",
        "turn_not_found": (
            "I can't find that answer. If you still need it, send your message again."
        ),
        "turn_in_flight": "I'm still answering that one. Give me a moment.",
        "client_message_id_reused": (
            "I already have a different message under that id. Send it again as new."
        ),
        "expired": "I can't pick that answer up where it stopped any more; here is what I kept.",
        # --- limits -----------------------------------------------------------------------------
        "rate_limited": "Let's take a breath. You can continue {when}.",
        "over_budget": "You've reached your coaching limit for now. You can continue {when}.",
        # --- the model --------------------------------------------------------------------------
        "provider_error": "I lost my train of thought. Let's try that again.",
        "provider_unavailable": "Coach is taking a moment. Let's try again.",
        "provider_timeout": "I'm slow to answer right now. Let's try again in a moment.",
        "provider_stream_error": (
            "I lost my train of thought partway through. Let's try that again."
        ),
        # --- the service ------------------------------------------------------------------------
        "store_unavailable": (
            "I can't reach our conversation right now. Please try again in a moment."
        ),
        "store_rejected": "I couldn't save that message as it is. Could you change it a little?",
        "shutting_down": "I'm restarting for an update. Please send that again in a few seconds.",
        "retry": "I had to stop for a quick update. Please send that again.",
        "overloaded": "Lots of people are talking with me right now. Please try again shortly.",
        "over_capacity": "I'm very busy right now. Please try again in a few seconds.",
        "internal_error": "Something went wrong on my side. Let's try that again.",
    }
)

_MONTHS = (
    "January",
    "February",
    "March",
    "April",
    "May",
    "June",
    "July",
    "August",
    "September",
    "October",
    "November",
    "December",
)


def user_message(code: str, *, retry_after: int | None = None, now: datetime | None = None) -> str:
    """The sentence for `code`; a throttled one says when, from `retry_after` seconds."""
    message = USER_MESSAGES.get(code, FALLBACK_MESSAGE)
    if "{when}" in message:
        message = message.format(when=continue_when(retry_after or 1, now))
    return message


def continue_when(retry_after: int, now: datetime | None = None) -> str:
    """`Retry-After` seconds in words: "in a moment", "in 5 minutes", "in about 3 hours",
    "tomorrow", "on 1 January". Days are UTC days, as the budgets' are (docs/design.md §13)."""
    if retry_after <= 60:
        return "in a moment"
    if retry_after < 3600:
        minutes = math.ceil(retry_after / 60)
        return f"in {minutes} minutes"
    now = (now or datetime.now(UTC)).astimezone(UTC)
    then = now + timedelta(seconds=retry_after)
    days = (then.date() - now.date()).days
    if days == 0:
        hours = round(retry_after / 3600)
        return "in about an hour" if hours == 1 else f"in about {hours} hours"
    if days == 1:
        return "tomorrow"
    return f"on {then.day} {_MONTHS[then.month - 1]}"
