"""A Supabase stub for the relay-only benchmark: what either relay calls, answered at once.

    python -m bench.supabase_stub --port 8791 --keys-dir /tmp/keys

Serves the JWKS of the `LocalKeys` in `--keys-dir` (the benchmark mints user tokens with the same
keys) and answers without a database. For chat-stream, `POST /rest/v1/rpc/<name>`: `chat_begin`
echoes the user's message back as the history, `chat_finish` stores nothing, the lease and
checkpoint calls say yes. For the seed (`bench/seed/`, supabase-js): `GET /auth/v1/user` names the
token's `sub` (read, not verified: the stub is instant, not a judge), `POST /rest/v1/<table>`
inserts (answered as PostgREST would: 201, the row back when `Prefer: return=representation`)
and `GET /rest/v1/messages` returns the conversation's last user message as its history.
`GET /_counts` says how often each was called (`rpc:chat_finish`, `insert:usage_logs`, …): the
benchmark reads it before and after a run to tell what the run wrote (usage: money).
A bare ASGI app (no framework), so it costs the core it shares with the load generator little.
"""

from __future__ import annotations

import argparse
import base64
import sys
import uuid
from collections import Counter, OrderedDict
from collections.abc import Awaitable, Callable, Sequence
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs

import orjson
import uvicorn

from app.local.keys import LocalKeys

Scope = dict[str, Any]
Message = dict[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]

RPC_PREFIX = "/rest/v1/rpc/"
REST_PREFIX = "/rest/v1/"
JWKS_PATH = "/auth/v1/.well-known/jwks.json"
USER_PATH = "/auth/v1/user"
COUNTS_PATH = "/_counts"
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


def user_of(authorization: str) -> dict[str, Any] | None:
    """What Auth's `GET /user` answers for a Bearer token: the user its `sub` names (the
    signature is not checked here; the relay under test checks it, or asks this)."""
    token = authorization.removeprefix("Bearer ").strip()
    parts = token.split(".")
    if len(parts) != 3:
        return None
    try:
        claims = orjson.loads(base64.urlsafe_b64decode(parts[1] + "=" * (-len(parts[1]) % 4)))
    except (ValueError, orjson.JSONDecodeError):
        return None
    if not isinstance(claims, dict) or not claims.get("sub"):
        return None
    return {
        "id": claims["sub"],
        "aud": claims.get("aud", "authenticated"),
        "role": claims.get("role", "authenticated"),
        "email": claims.get("email", ""),
        "app_metadata": {"provider": "email"},
        "user_metadata": {},
        "created_at": "2026-01-01T00:00:00Z",
    }


class Tables:
    """The few rows the seed reads back: each conversation's last user message (bounded)."""

    def __init__(self, size: int = 100_000) -> None:
        self._last: OrderedDict[str, str] = OrderedDict()
        self._size = size

    def insert(self, table: str, rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
        """The rows as PostgREST returns them (with an `id`); user messages are remembered."""
        out = []
        for row in rows:
            if table == "messages" and row.get("role") == "user":
                conversation = str(row.get("conversation_id"))
                self._last[conversation] = str(row.get("content", ""))
                self._last.move_to_end(conversation)
                if len(self._last) > self._size:
                    self._last.popitem(last=False)
            out.append({"id": str(uuid.uuid4()), **row})
        return out

    def history(self, query: str) -> list[dict[str, str]]:
        """`select=role,content&conversation_id=eq.<id>…`: the last user message, if any."""
        params = parse_qs(query)
        conversation = params.get("conversation_id", [""])[0].removeprefix("eq.")
        content = self._last.get(conversation)
        return [] if content is None else [{"role": "user", "content": content}]


class Stub:
    """The ASGI app: the JWKS, the RPCs, Auth's `/user`, table inserts and selects, the call
    counts, and 200 `{}` for /health-style probes."""

    def __init__(self, keys: LocalKeys) -> None:
        self._jwks = orjson.dumps(keys.jwks())
        self.tables = Tables()
        self.counts: Counter[str] = Counter()

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
        headers = {k.decode("latin-1"): v.decode("latin-1") for k, v in scope["headers"]}
        if path == JWKS_PATH:
            await _reply(send, 200, self._jwks)
        elif path.startswith(RPC_PREFIX):
            name = path[len(RPC_PREFIX) :]
            self.counts[f"rpc:{name}"] += 1
            params = orjson.loads(body) if body else {}
            await _reply(send, 200, orjson.dumps(answer(name, params)))
        elif path == USER_PATH:
            self.counts["auth:user"] += 1
            user = user_of(headers.get("authorization", ""))
            if user is None:
                await _reply(send, 401, orjson.dumps({"code": 401, "msg": "invalid JWT"}))
            else:
                await _reply(send, 200, orjson.dumps(user))
        elif path.startswith(REST_PREFIX):
            await self._table(send, scope, path[len(REST_PREFIX) :], headers, body)
        elif path == COUNTS_PATH:
            await _reply(send, 200, orjson.dumps(dict(self.counts)))
        else:
            await _reply(send, 200, b"{}")

    async def _table(
        self, send: Send, scope: Scope, table: str, headers: dict[str, str], body: bytes
    ) -> None:
        if scope["method"] == "GET":
            self.counts[f"select:{table}"] += 1
            query = scope["query_string"].decode()
            rows = self.tables.history(query) if table == "messages" else []
            await _reply(send, 200, orjson.dumps(rows))
            return
        self.counts[f"insert:{table}"] += 1
        sent = orjson.loads(body) if body else {}
        saved = self.tables.insert(table, sent if isinstance(sent, list) else [sent])
        if "return=representation" not in headers.get("prefer", ""):
            await _reply(send, 201, b"")
        elif "vnd.pgrst.object" in headers.get("accept", ""):
            await _reply(send, 201, orjson.dumps(saved[0]))
        else:
            await _reply(send, 201, orjson.dumps(saved))


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
