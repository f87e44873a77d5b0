"""The Supabase stub answers what the seed asks as PostgREST and Auth would, and counts calls."""

from __future__ import annotations

import base64
from pathlib import Path

import httpx
import orjson
import pytest

from app.local.keys import LocalKeys
from bench.supabase_stub import Stub, Tables, answer, user_of


def token(claims: dict[str, object]) -> str:
    body = base64.urlsafe_b64encode(orjson.dumps(claims)).rstrip(b"=").decode()
    return f"eyJhbGciOiJFUzI1NiJ9.{body}.c2ln"


def test_user_of_names_the_tokens_subject() -> None:
    user = user_of("Bearer " + token({"sub": "u-1", "email": "a@example.com"}))
    assert user is not None
    assert (user["id"], user["aud"], user["email"]) == ("u-1", "authenticated", "a@example.com")


def test_user_of_refuses_what_is_not_a_token_with_a_subject() -> None:
    assert user_of("Bearer not-a-jwt") is None
    assert user_of("Bearer " + token({"role": "anon"})) is None
    assert user_of("Bearer a.!!!.c") is None


def test_tables_give_a_conversation_its_last_user_message_as_history() -> None:
    tables = Tables()
    tables.insert("messages", [{"conversation_id": "c1", "role": "user", "content": "first"}])
    tables.insert("messages", [{"conversation_id": "c1", "role": "user", "content": "second"}])
    tables.insert("messages", [{"conversation_id": "c1", "role": "assistant", "content": "hi"}])
    query = "select=role%2Ccontent&conversation_id=eq.c1&order=created_at.asc&limit=20"
    assert tables.history(query) == [{"role": "user", "content": "second"}]
    assert tables.history("conversation_id=eq.other") == []


def test_tables_forget_the_oldest_conversation_past_their_size() -> None:
    tables = Tables(size=2)
    for name in ("a", "b", "c"):
        tables.insert("messages", [{"conversation_id": name, "role": "user", "content": name}])
    assert tables.history("conversation_id=eq.a") == []
    assert tables.history("conversation_id=eq.c") == [{"role": "user", "content": "c"}]


def test_inserted_rows_come_back_with_an_id() -> None:
    (saved,) = Tables().insert("usage_logs", [{"tokens_out": 5}])
    assert saved["tokens_out"] == 5
    assert isinstance(saved["id"], str)


def test_chat_begin_echoes_the_message_as_the_history() -> None:
    begun = answer("chat_begin", {"p_turn": orjson.dumps({"content": "hello"}).decode()})
    assert isinstance(begun, dict)
    assert begun["history"] == [{"role": "user", "content": "hello"}]


@pytest.mark.anyio
async def test_the_stub_answers_supabase_js_calls_and_counts_them(tmp_path: Path) -> None:
    stub = Stub(LocalKeys.load_or_create(tmp_path))
    headers = {"authorization": "Bearer " + token({"sub": "u-1"})}
    async with httpx.AsyncClient(transport=httpx.ASGITransport(stub), base_url="http://s") as c:
        assert (await c.get("/auth/v1/user", headers=headers)).json()["id"] == "u-1"
        assert (await c.get("/auth/v1/user")).status_code == 401
        row = {"conversation_id": "c1", "role": "user", "content": "hey"}
        minimal = await c.post("/rest/v1/messages", json=row)
        assert (minimal.status_code, minimal.content) == (201, b"")
        one = await c.post(
            "/rest/v1/messages",
            json={**row, "role": "assistant"},
            headers={
                "prefer": "return=representation",
                "accept": "application/vnd.pgrst.object+json",
            },
        )
        assert one.status_code == 201
        assert one.json()["role"] == "assistant"
        history = await c.get("/rest/v1/messages", params={"conversation_id": "eq.c1"})
        assert history.json() == [{"role": "user", "content": "hey"}]
        await c.post("/rest/v1/rpc/chat_finish", json={})
        counts = (await c.get("/_counts")).json()
    assert counts == {
        "auth:user": 2,
        "insert:messages": 2,
        "select:messages": 1,
        "rpc:chat_finish": 1,
    }
