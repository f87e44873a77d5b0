"""The local webhook sink, like the mail sink: every POST under `/webhooks/` is kept.

Point `ALERT_WEBHOOK_URL` at `http://127.0.0.1:54321/webhooks/alerts` and read what arrived at
`GET /webhooks/api/v1/messages` (oldest first: `path`, `headers` lowercased, `body` as text,
`received_at`); `DELETE` there empties it. `POST /webhooks/api/v1/down?seconds=N` makes the sink
answer 503 for N seconds (0: back up at once), so delivery retries can be tested.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

MAX_BODY_BYTES = 1024 * 1024
MAX_KEPT = 10_000


@dataclass
class WebhookSink:
    received: list[dict[str, Any]] = field(default_factory=list)
    down_until: float = 0.0
    refused: int = 0

    async def receive(self, request: Request) -> Response:
        if time.monotonic() < self.down_until:
            self.refused += 1
            return JSONResponse({"error": "the sink is down"}, status_code=503)
        body = bytearray()  # read up to the cap, no further: a 5 GB POST is refused at 1 MiB
        async for chunk in request.stream():
            body += chunk
            if len(body) > MAX_BODY_BYTES:
                return JSONResponse({"error": "body too large"}, status_code=413)
        del self.received[: max(0, len(self.received) - MAX_KEPT + 1)]
        self.received.append(
            {
                "path": request.url.path,
                "headers": {k.lower(): v for k, v in request.headers.items()},
                "body": body.decode("utf-8", errors="replace"),
                "received_at": time.time(),
            }
        )
        return JSONResponse({"ok": True})

    async def messages(self, request: Request) -> Response:
        if request.method == "DELETE":
            self.received.clear()
            return Response(status_code=204)
        return JSONResponse({"messages": self.received, "refused": self.refused})

    async def down(self, request: Request) -> Response:
        try:
            seconds = float(request.query_params.get("seconds", "0"))
        except ValueError:
            seconds = math.nan
        if not math.isfinite(seconds):  # nan and inf would reach JSON (a 500) and the clock
            return JSONResponse({"error": "seconds must be a finite number"}, status_code=400)
        self.down_until = time.monotonic() + max(seconds, 0.0)
        return JSONResponse({"down_for": max(seconds, 0.0)})


def create_webhook_app(sink: WebhookSink | None = None) -> Starlette:
    sink = sink or WebhookSink()
    return Starlette(
        routes=[
            Route("/api/v1/messages", sink.messages, methods=["GET", "DELETE"]),
            Route("/api/v1/down", sink.down, methods=["POST"]),
            Route("/{path:path}", sink.receive, methods=["POST"]),
        ]
    )
