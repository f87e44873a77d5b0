"""Every request's log line and metrics, observed in one place from its outcome."""

from __future__ import annotations

import logging
from typing import Any

from app.auth import TokenRefused
from app.chat.accounting import TurnOutcome
from app.errors import AppError, OverBudget, RateLimited
from app.ops.logs import REQUEST_LOGGER
from app.ops.metrics import ChatMetrics
from app.ops.tracing import current_trace_id

request_log = logging.getLogger(REQUEST_LOGGER)


def observe_refusal(
    metrics: ChatMetrics, fields: dict[str, Any], exc: AppError, started: float, now: float
) -> None:
    """A request answered with a JSON error before any stream started."""
    if isinstance(exc, OverBudget | RateLimited):
        metrics.refusals.labels(exc.code).inc()
    if isinstance(exc, TokenRefused):  # why, for operators only
        metrics.auth_refusals.labels(exc.reason).inc()
        fields = fields | {"reason": exc.reason}
    metrics.requests.labels(exc.code).inc()
    _log(fields | {"outcome": exc.code, "status": exc.status}, started, now)


def observe_turn(
    metrics: ChatMetrics, fields: dict[str, Any], outcome: TurnOutcome, started: float, now: float
) -> None:
    """A streamed turn, however it ended."""
    record = outcome.record
    rows = record.usage_rows
    for row in rows:
        metrics.cost.labels(row.model).inc(float(row.price.cost_usd))
    for kind in outcome.upstream_failures:
        metrics.upstream_errors.labels(kind).inc()
    metrics.requests.labels(outcome.label).inc()
    metrics.tokens.inc(outcome.tokens_relayed)
    if outcome.ttft_ms is not None:
        metrics.ttft.observe(outcome.ttft_ms / 1000)
    metrics.duration.observe(now - started)
    _log(
        fields
        | {
            "outcome": outcome.label,
            "status": 200,
            "model": rows[-1].model if rows else None,
            "provider": rows[-1].provider if rows else None,
            "attempt_ids": [row.attempt_id for row in rows],
            "tokens_in": sum(r.usage.prompt_tokens for r in rows),
            "tokens_out": sum(r.usage.output_tokens for r in rows),
            "cost_usd": str(record.cost_usd),
            "ttft_ms": outcome.ttft_ms,
            "error": outcome.error.code if outcome.error else None,
            # What each failed upstream attempt said (`overloaded_error`, `provider_timeout`).
            "upstream_errors": outcome.upstream_failures,
            "spooled": outcome.spooled,
        },
        started,
        now,
    )


def _log(fields: dict[str, Any], started: float, now: float) -> None:
    fields["duration_ms"] = round((now - started) * 1000)
    fields["trace_id"] = current_trace_id()  # the client's W3C trace (or our span's), if any
    request_log.info("chat-stream %s", fields.get("outcome"), extra=fields)
