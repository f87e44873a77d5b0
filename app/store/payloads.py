"""What the attested chat RPCs carry and answer, as JSON: pure functions, no I/O.

`begin_payload` and `finish_params` build what `chat_begin` and `chat_finish` get (the outbox keeps
the latter on the service's own disk, unsigned, and `upgrade_spooled` reads one written by an
older release); `final_json`/`final_from_json` carry a turn's last event; `finish_result` reads
`chat_finish`'s answer.
"""

from __future__ import annotations

from typing import Any

from app.core.domain import (
    Caller,
    Done,
    Failed,
    FinishResult,
    TurnRecord,
    TurnStart,
    TurnTerms,
    Usage,
)
from app.errors import StoreError
from app.user_messages import user_message


def finish_params(user_id: str, record: TurnRecord) -> dict[str, Any]:
    """The turn's final write, unsigned (what the outbox keeps on the service's own disk)."""
    rows = record.usage_rows
    message = None
    if record.message_id is not None:
        message = {
            "id": record.message_id,
            "content": record.content.replace("\x00", ""),  # PostgreSQL text cannot hold NUL
            "status": record.status,
            "token_count": rows[-1].usage.output_tokens if rows else None,
        }
    return {
        "v": 1,
        "user_id": user_id,
        "turn_id": record.turn_id,
        "conversation_id": record.conversation_id,
        "message": message,
        "replay": {"token_lengths": list(record.token_lengths), "final": final_json(record.final)},
        "usage": [
            {
                "attempt_id": row.attempt_id,
                "provider": row.provider,
                "model": row.model,
                "tokens_in": row.usage.input_tokens,
                "tokens_out": row.usage.output_tokens,
                "cache_read_tokens": row.usage.cache_read_tokens,
                "cache_write_tokens": row.usage.cache_write_tokens,
                "cost_usd": str(row.price.cost_usd),  # a string: exact through JSON
                "status": row.status,
                "estimated": row.usage.estimated,
                "ttft_ms": row.ttft_ms,
                "duration_ms": row.duration_ms,
                "price_source": row.price.source,
                "provider_cost_usd": None
                if row.provider_cost_usd is None
                else str(row.provider_cost_usd),
            }
            for row in rows
        ],
    }


def final_json(final: Done | Failed | None) -> dict[str, Any] | None:
    if isinstance(final, Done):
        done: dict[str, Any] = {
            "type": "done",
            "message_id": final.message_id,
            "input_tokens": final.usage.input_tokens,
            "output_tokens": final.usage.output_tokens,
            "cache_read_tokens": final.usage.cache_read_tokens,
            "cache_write_tokens": final.usage.cache_write_tokens,
        }
        if final.stopped:
            done["stopped"] = True
        return done
    if isinstance(final, Failed):
        return {"type": "error", "code": final.code, "message": final.user_message}
    return None


def final_from_json(data: object) -> Done | Failed | None:
    if not isinstance(data, dict):
        return None
    if data.get("type") == "done":
        usage = Usage(
            input_tokens=int(data.get("input_tokens") or 0),
            output_tokens=int(data.get("output_tokens") or 0),
            cache_read_tokens=int(data.get("cache_read_tokens") or 0),
            cache_write_tokens=int(data.get("cache_write_tokens") or 0),
        )
        message_id = data.get("message_id")
        stopped = data.get("stopped") is True
        return Done(str(message_id) if message_id else None, usage, stopped=stopped)
    if data.get("type") == "error":
        code = str(data.get("code") or "internal_error")
        return Failed(code=code, user_message=str(data.get("message") or user_message(code)))
    return None


def upgrade_spooled(params: dict[str, Any]) -> dict[str, Any]:
    """A record spooled by the previous version (`p_user_id`, `p_request_id`, rows keyed by
    `request_id`) in today's shape; today's records pass through unchanged."""
    if "p_user_id" not in params:
        return params
    message = params.get("p_message")
    if isinstance(message, dict):
        message = {k: v for k, v in message.items() if k != "request_id"}
    return {
        "v": 1,
        "user_id": params["p_user_id"],
        "turn_id": params.get("p_request_id"),
        "conversation_id": params.get("p_conversation_id"),
        "message": message,
        "usage": [
            {k: v for k, v in row.items() if k != "request_id"} | {"attempt_id": row["request_id"]}
            for row in params.get("p_usage") or ()
            if isinstance(row, dict) and row.get("request_id")
        ],
    }


def begin_payload(caller: Caller, turn: TurnStart, terms: TurnTerms, now: float) -> dict[str, Any]:
    """The attested `chat_begin` call: the turn and every term it is decided with."""
    reservation, caps = terms.reservation, terms.caps
    return {
        "v": 1,
        "iat": int(now),
        "user_id": caller.user_id,
        "turn_id": turn.turn_id,
        "conversation_id": turn.conversation_id,
        "content": turn.content,
        "client_message_id": turn.client_message_id,
        "history_tokens": terms.history_tokens,
        "history_messages": terms.history_messages,
        "system_tokens": reservation.system_tokens,
        "lease_seconds": reservation.lease_seconds,
        "reserve": {
            "usd": str(reservation.usd),
            "provider": reservation.provider,
            "model": reservation.model,
            "input_usd_per_mtok": str(reservation.input_usd_per_mtok),
            "output_usd_per_mtok": str(reservation.output_usd_per_mtok),
        },
        "caps": {
            "daily_usd": str(caps.daily_usd),
            "monthly_usd": str(caps.monthly_usd),
            "rate_per_minute": caps.rate_per_minute,
            "max_streams": caps.max_streams,
        },
    }


def finish_result(data: object) -> FinishResult:
    if not isinstance(data, dict):
        raise StoreError(f"chat_finish: unexpected answer {type(data).__name__}")
    return FinishResult(
        message_id=data.get("message_id"),
        usage_ids=tuple(int(i) for i in data.get("usage_ids") or ()),
    )
