"""A Supabase stub for the relay-only benchmark: the RPCs the service calls, answered at once.

    python -m bench.supabase_stub --port 8791 --keys-dir /tmp/keys

Serves the JWKS of the `LocalKeys` in `--keys-dir` (the benchmark mints user tokens with the same
keys) and answers `POST /rest/v1/rpc/<name>` without a database: `chat_begin` echoes the user's
message back as the history, `chat_finish` stores nothing, the lease and checkpoint calls say yes.
A bare ASGI app (no framework), so it costs the core it shares with the load generator little.
"""

from __future__ import annotations

import argparse
import sys
import uuid
from collections.abc import Awaitable, Callable, Sequence
from pathlib import Path
from typing import Any

import orjson
import uvicorn

from app.local.keys import LocalKeys

Scope = dict[str, Any]
Message = dict[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]

RPC_PREFIX = "/rest/v1/rpc/"
JWKS_PATH = "/auth/v1/.well-known/jwks.json"
FIXED: dict[str, object] = {
    "chat_finish": {"message_id": None, "usage_ids": []},
    "chat_renew": True,
    "chat_checkpoint": True,
    "chat_sweep": 0,
    "chat_ping": True,
}


def answer(name: str, params: dict[str, Any]) -> object:
    """What the stub answers for the RPC `name` called with `params` (unknown RPCs: null)."""
    if name == "chat_begin":
        turn = orjson.loads(params.get("p_turn") or "{}")
        history = [{"role": "user", "content": turn.get("content", "")}]
        return {"user_message_id": str(uuid.uuid4()), "history": history}
    return FIXED.get(name)


class Stub:
    """The ASGI app: the JWKS, the RPCs, and 200 `{}` for /health-style probes."""

    def __init__(self, keys: LocalKeys) -> None:
        self._jwks = orjson.dumps(keys.jwks())

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            while (await receive())["type"] != "lifespan.shutdown":
                await send({"type": "lifespan.startup.complete"})
            await send({"type": "lifespan.shutdown.complete"})
            return
        body = b""
        more = True
        while more:
            message = await receive()
            body += message.get("body", b"")
            more = message.get("more_body", False)
        path: str = scope["path"]
        if path == JWKS_PATH:
            await _reply(send, 200, self._jwks)
        elif path.startswith(RPC_PREFIX):
            params = orjson.loads(body) if body else {}
            await _reply(send, 200, orjson.dumps(answer(path[len(RPC_PREFIX) :], params)))
        else:
            await _reply(send, 200, b"{}")


async def _reply(send: Send, status: int, body: bytes) -> None:
    headers = [(b"content-type", b"application/json"), (b"content-length", b"%d" % len(body))]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.supabase_stub", description=__doc__)
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--keys-dir", type=Path, required=True)
    args = parser.parse_args(argv)
    app = Stub(LocalKeys.load_or_create(args.keys_dir))
    uvicorn.run(app, host="127.0.0.1", port=args.port, log_level="warning", loop="uvloop")
    return 0


if __name__ == "__main__":
    sys.exit(main())
