"""The benchmark's users: rows in `auth.users` (the signup trigger adds profiles), access tokens
signed with the local stack's key, and a pool of conversations each, created in bulk with SQL.

Requests go into fresh conversations for as long as a user's pool lasts (the first turn of a
conversation, so the direct and the service path send the upstream the same prompt); after that
the pool is reused round robin and the history grows by a turn or two.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field

import orjson
import psycopg

from app.config import DEFAULT_SYSTEM_PROMPT, Settings
from app.core.domain import ChatMessage, CompletionRequest
from app.llm.anthropic import payload
from app.local.keys import LocalKeys

# What the service sends upstream by default (it runs with LLM_MODEL etc. unset).
MODEL: str = Settings.model_fields["llm_model"].default
MAX_TOKENS: int = Settings.model_fields["llm_max_tokens"].default
TEMPERATURE: float = Settings.model_fields["llm_temperature"].default
TOKEN_LIFETIME_S = 6 * 3600


@dataclass
class BenchUser:
    id: str
    token: str
    conversations: list[str] = field(default_factory=list)
    used: int = 0

    def next_conversation(self) -> str:
        conversation = self.conversations[self.used % len(self.conversations)]
        self.used += 1
        return conversation


def message(text: str, **knobs: object) -> str:
    """A user message carrying the stand-in's directive (speed and faults ride in the prompt)."""
    directive = " ".join(f"{k}={v}" for k, v in knobs.items())
    return f"{text} [[standin {directive}]]" if directive else text


def direct_body(text: str, user_id: str) -> bytes:
    """Exactly what the service sends the upstream for the first turn of a conversation."""
    request = CompletionRequest(
        model=MODEL,
        system=DEFAULT_SYSTEM_PROMPT,
        messages=(ChatMessage("user", text),),
        max_tokens=MAX_TOKENS,
        temperature=TEMPERATURE,
        user_id=user_id,
    )
    return orjson.dumps(payload(request))


def service_body(text: str, conversation_id: str) -> bytes:
    return orjson.dumps({"message": text, "conversationId": conversation_id})


class World:
    """Creates users and conversations as the database superuser, tokens with the stack's key."""

    def __init__(self, superuser_dsn: str, keys: LocalKeys, issuer: str) -> None:
        self.dsn = superuser_dsn
        self.keys = keys
        self.issuer = issuer
        self.users: list[BenchUser] = []

    def ensure_users(self, count: int, conversations_each: int) -> list[BenchUser]:
        """At least `count` users, each with `conversations_each` conversations."""
        missing = count - len(self.users)
        if missing > 0:
            ids = [str(uuid.uuid4()) for _ in range(missing)]
            with psycopg.connect(self.dsn, autocommit=True) as conn:
                conn.execute(
                    "insert into auth.users (id, email, aud, role, created_at, updated_at)"
                    " select u, 'bench-' || u || '@example.com', 'authenticated', 'authenticated',"
                    " now(), now() from unnest(%s::uuid[]) as u",
                    (ids,),
                )
                # One live session each (the id is the user's): the service confirms it.
                conn.execute(
                    "insert into auth.sessions (id, user_id, created_at, updated_at, aal)"
                    " select u, u, now(), now(), 'aal1' from unnest(%s::uuid[]) as u",
                    (ids,),
                )
            for user_id in ids:
                self.users.append(BenchUser(user_id, self.access_token(user_id)))
        self._top_up(self.users[:count], conversations_each)
        return self.users[:count]

    def access_token(
        self,
        user_id: str,
        *,
        issued_at: float | None = None,
        expires_in: int = TOKEN_LIFETIME_S,
    ) -> str:
        """The user's access token as Supabase Auth signs it (the session's id is the user's)."""
        return self.keys.user_access_token(
            user_id=user_id,
            issuer=self.issuer,
            email=f"bench-{user_id}@example.com",
            session_id=user_id,
            expires_in=expires_in,
            now=None if issued_at is None else int(issued_at),
        )

    def _top_up(self, users: list[BenchUser], each: int) -> None:
        short = [(u, each - len(u.conversations)) for u in users if len(u.conversations) < each]
        if not short:
            return
        by_id = {u.id: u for u, _ in short}
        with psycopg.connect(self.dsn, autocommit=True) as conn:
            rows = conn.execute(
                "insert into public.conversations (user_id, title)"
                " select s.user_id, 'bench' from unnest(%s::uuid[], %s::int[]) as s(user_id, n)"
                " cross join lateral generate_series(1, s.n)"
                " returning id, user_id",
                ([u.id for u, _ in short], [n for _, n in short]),
            ).fetchall()
        for conversation_id, user_id in rows:
            by_id[str(user_id)].conversations.append(str(conversation_id))
