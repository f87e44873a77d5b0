"""A user of a 2026 project, through supabase-py created with the publishable key only: sign
up, write a conversation under RLS, stream a turn on the chat endpoint, read its usage."""

from __future__ import annotations

import uuid

import httpx

from app.local.keys import DEFAULT_PUBLISHABLE_KEY
from supabase import ClientOptions, create_client
from tests.support.chat_stack import ChatStack, stream


def test_publishable_key_user_streams_a_turn_and_reads_its_usage(chat_stack: ChatStack) -> None:
    with httpx.Client(timeout=30) as http:
        options = ClientOptions(auto_refresh_token=False, persist_session=True, httpx_client=http)
        client = create_client(chat_stack.url, DEFAULT_PUBLISHABLE_KEY, options=options)
        email = f"pub-{uuid.uuid4().hex[:10]}@example.com"
        signed = client.auth.sign_up({"email": email, "password": "correct horse battery"})
        assert signed.session is not None and signed.user is not None
        conversation = client.table("conversations").insert({"title": "2026"}).execute().data[0]

        result = stream(
            chat_stack,
            None,
            {"message": "Hello there", "conversationId": conversation["id"]},
            headers={
                "Authorization": f"Bearer {signed.session.access_token}",
                "apikey": DEFAULT_PUBLISHABLE_KEY,
            },
        )
        assert result.status == 200, result.body
        assert result.last["type"] == "done"
        turn_id = result.last["turnId"]

        usage = client.table("usage_logs").select("turn_id,user_id").execute().data

    assert usage and {row["turn_id"] for row in usage} == {turn_id}
    assert {row["user_id"] for row in usage} == {signed.user.id}
