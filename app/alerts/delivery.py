"""Budget alerts to the webhook, each once, from the `public.alerts` rows `chat_finish` raised.

The rows are the outbox: nothing is kept in memory across a restart. Every worker runs
`deliver_forever`; each pass claims due alerts with a lease (`alerts_claim`: FOR UPDATE SKIP
LOCKED, so two workers never hold the same row), posts each as JSON with its signature and
`X-Chat-Stream-Alert-Id`, then marks it delivered (any 2xx) or due again after a backoff that
doubles from `ALERT_RETRY_SECONDS` up to 5 minutes (`alerts_retry`). A worker that dies between
the post and the mark leaves a lease that runs out, and the alert is sent again: receivers dedupe
by the alert id. Delivery is otherwise exactly once.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import httpx
import orjson
from postgrest import APIError, AsyncPostgrestClient

from app.alerts.signature import ALERT_ID_HEADER, SIGNATURE_HEADER, sign

logger = logging.getLogger(__name__)

MAX_BACKOFF_SECONDS = 300.0
LEASE_SECONDS = 30
BATCH = 20


def stored_error(failure: httpx.HTTPError | int) -> str:
    """What `public.alerts.last_error` keeps: the kind of failure, never its text. The row is the
    user's to read (RLS), and an exception's text names the operator's webhook host and port; the
    whole text goes to the service's log only."""
    if isinstance(failure, int):
        return f"HTTP {failure}"
    return type(failure).__name__


def backoff(attempts: int, first: float) -> float:
    """Seconds before the next try after `attempts` failed ones (1, 2, 4, … × first, capped)."""
    return float(min(first * 2 ** max(attempts - 1, 0), MAX_BACKOFF_SECONDS))


def alert_body(row: Mapping[str, Any]) -> bytes:
    """The webhook's JSON: what crossed which limit for whom, and when."""
    return orjson.dumps(
        {
            "type": "budget_alert",
            "id": row["id"],
            "user_id": row["user_id"],
            "period": row["period"],
            "period_start": row["period_start"],
            "threshold": row["threshold"],
            "limit_usd": str(row["limit_usd"]),
            "spent_usd": str(row["spent_usd"]),
            "created_at": row["created_at"],
        }
    )


@dataclass
class AlertDelivery:
    service: AsyncPostgrestClient  # the service role's Data API client
    http: httpx.AsyncClient
    url: str
    secret: bytes
    retry_seconds: float = 2.0

    async def deliver_due(self) -> int:
        """One pass: claim what is due, post it, record the result. Returns how many arrived."""
        claimed = await self._rpc(
            "alerts_claim", {"p_limit": BATCH, "p_lease_seconds": LEASE_SECONDS}
        )
        rows = [row for row in claimed or () if isinstance(row, dict)]
        results = await asyncio.gather(*(self._post(row) for row in rows))
        delivered = [row["id"] for row, ok in zip(rows, results, strict=True) if ok]
        if delivered:
            await self._rpc("alerts_delivered", {"p_ids": delivered})
        return len(delivered)

    async def _post(self, row: dict[str, Any]) -> bool:
        body = alert_body(row)
        headers = {
            "content-type": "application/json",
            SIGNATURE_HEADER: sign(body, self.secret, int(time.time())),
            ALERT_ID_HEADER: str(row["id"]),
        }
        try:
            response = await self.http.post(self.url, content=body, headers=headers)
        except httpx.HTTPError as exc:
            detail, error = f"{type(exc).__name__}: {exc}", stored_error(exc)
        else:
            if response.is_success:
                return True
            detail = error = stored_error(response.status_code)
        delay = backoff(int(row.get("attempts") or 1), self.retry_seconds)
        logger.warning("alert %s not delivered (%s); retrying in %.0fs", row["id"], detail, delay)
        await self._rpc(
            "alerts_retry", {"p_id": row["id"], "p_retry_seconds": delay, "p_error": error}
        )
        return False

    async def _rpc(self, fn: str, params: dict[str, Any]) -> Any:
        return (await self.service.schema("public").rpc(fn, params).execute()).data


async def deliver_forever(delivery: AlertDelivery, interval: float) -> None:
    """Every `interval` seconds (and at once after a full batch), deliver what is due."""
    while True:
        try:
            sent = await delivery.deliver_due()
        except (APIError, httpx.HTTPError, ValueError) as exc:
            logger.warning("alert delivery pass failed: %r", exc)
            sent = 0
        if sent < BATCH:
            await asyncio.sleep(interval)
