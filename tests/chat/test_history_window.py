"""The cache-stable history window (migration 20261201000200) on real PostgreSQL, through
`chat_begin` and `chat_finish` as the service calls them (the store's `DataApi` over the REST
stand-in, attested): the prompt prefix stays byte-identical from turn to turn until a block
is dropped, and the window never exceeds the budget."""

from __future__ import annotations

import asyncio
import math
import uuid
from dataclasses import dataclass, field
from decimal import Decimal

import aiohttp
import psycopg
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pydantic import SecretStr

from app.config.keys import ApiKey
from app.core.domain import (
    Caller,
    Caps,
    ChatMessage,
    Reservation,
    TurnRecord,
    TurnStart,
    TurnTerms,
)
from app.local.server import ServerThread
from app.local.stack import LocalStack
from app.store.attestation import Attestor, key_bytes
from app.store.chat_store import SupabaseChatStore
from app.store.data_api import DataApi


def tokens(text: str) -> int:
    """As the database counts them: UTF-8 bytes (an upper bound on any provider's count)."""
    return len(text.encode())


@dataclass
class Conversation:
    """One user's conversation, driven turn by turn through the store as the service does."""

    local_stack: LocalStack
    url: str
    budget: int
    max_messages: int
    user_id: str = field(default_factory=lambda: str(uuid.uuid4()))
    id: str = ""
    token: str = ""

    def __post_init__(self) -> None:
        with psycopg.connect(self.local_stack.pg.superuser_dsn, autocommit=True) as conn:
            conn.execute(
                "insert into auth.users (id, email, aud, role, created_at, updated_at)"
                " values (%s, %s, 'authenticated', 'authenticated', now(), now())",
                (self.user_id, f"h-{self.user_id[:8]}@example.com"),
            )
            row = conn.execute(
                "insert into public.conversations (user_id, title) values (%s, 'h') returning id",
                (self.user_id,),
            ).fetchone()
        assert row is not None
        self.id = str(row[0])
        self.token = self.local_stack.keys.user_access_token(
            user_id=self.user_id, issuer=self.local_stack.ctx.jwt_issuer, email="h@example.com"
        )

    async def run(self, turns: list[tuple[str, str]]) -> list[tuple[ChatMessage, ...]]:
        """Each (question, answer): begin (the window it returns), then finish with the answer."""
        keys = self.local_stack.keys
        async with aiohttp.ClientSession() as session:
            anon = ApiKey("publishable", SecretStr(keys.anon_key), "SUPABASE_ANON_KEY")
            service = ApiKey(
                "secret", SecretStr(keys.service_role_key), "SUPABASE_SERVICE_ROLE_KEY"
            )
            return await self._turns(
                DataApi(self.url, anon, session), DataApi(self.url, service, session), turns
            )

    async def _turns(
        self,
        postgrest: DataApi,
        service: DataApi,
        turns: list[tuple[str, str]],
    ) -> list[tuple[ChatMessage, ...]]:
        keys = self.local_stack.keys
        store = SupabaseChatStore(
            postgrest, Attestor(key_bytes(keys.attestation_key.decode())), service=service
        )
        caller = Caller(self.user_id, self.token)
        terms = TurnTerms(
            reservation=Reservation(
                Decimal(0), "anthropic", "claude-sonnet-4-6", Decimal(3), 0, 60
            ),
            caps=Caps(),
            history_tokens=self.budget,
            history_messages=self.max_messages,
        )
        windows = []
        for question, answer in turns:
            start = TurnStart(self.id, question, None, str(uuid.uuid4()))
            context = await store.begin(caller, start, terms)
            windows.append(context.history)
            record = TurnRecord(
                start.turn_id, self.id, str(uuid.uuid4()), answer, "completed", usage_rows=()
            )
            await store.finish(caller, record)
        return windows


@pytest.fixture(scope="module")
def rest_url(local_stack: LocalStack, stack_server: ServerThread) -> str:
    return stack_server.url


def starts(windows: list[tuple[ChatMessage, ...]]) -> int:
    """How many turns began their prompt with other bytes than the turn before."""
    changes = 0
    for before, after in zip(windows, windows[1:], strict=False):
        if after[: len(before)] != before:
            changes += 1
    return changes


def test_history_window_worked_example_moves_its_start_only_every_block(
    local_stack: LocalStack, rest_url: str
) -> None:
    """docs/design.md §3.4: B = 6000, 200-token questions, 400-token answers."""
    turns = [(f"q{i:02d}" + "x" * 197, f"a{i:02d}" + "y" * 397) for i in range(1, 19)]
    conversation = Conversation(local_stack, rest_url, budget=6000, max_messages=50)
    windows = asyncio.run(conversation.run(turns))
    first = [w[0].content[:3] for w in windows]
    assert first == ["q01"] * 10 + ["q06"] * 5 + ["q11"] * 3
    sizes = [sum(tokens(m.content) for m in w) for w in windows]
    assert sizes[10] == 3200 and sizes[14] == 5600 and sizes[15] == 3200
    assert all(size <= 6000 for size in sizes)
    for index, window in enumerate(windows):
        assert window[-1] == ChatMessage("user", turns[index][0])  # the new message, last


def test_history_window_message_cap_drops_in_blocks_too(
    local_stack: LocalStack, rest_url: str
) -> None:
    turns = [(f"question {i}", f"answer {i}") for i in range(12)]
    conversation = Conversation(local_stack, rest_url, budget=100_000, max_messages=8)
    windows = asyncio.run(conversation.run(turns))
    assert all(len(w) <= 8 for w in windows)
    # 2 messages a turn, steps of 4: the start moves every other turn once the cap is reached.
    assert starts(windows) <= (2 * len(turns) - 8) // 4 + 1
    assert [len(w) for w in windows[4:8]] == [5, 7, 5, 7]


def test_history_window_new_message_over_the_budget_comes_alone(
    local_stack: LocalStack, rest_url: str
) -> None:
    turns = [("hello", "hi there"), ("z" * 1000, "ok")]
    conversation = Conversation(local_stack, rest_url, budget=500, max_messages=50)
    windows = asyncio.run(conversation.run(turns))
    assert windows[1] == (ChatMessage("user", "z" * 1000),)


lengths = st.integers(min_value=1, max_value=200)  # up to 200 tokens: several turns a block


@settings(
    max_examples=12,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(
    budget=st.integers(min_value=300, max_value=3000),
    max_messages=st.integers(min_value=2, max_value=24),
    sizes=st.lists(st.tuples(lengths, lengths), min_size=6, max_size=24),
)
def test_history_window_property_prefix_stable_between_blocks_and_budget_holds(
    local_stack: LocalStack,
    rest_url: str,
    budget: int,
    max_messages: int,
    sizes: list[tuple[int, int]],
) -> None:
    turns = [(f"q{i} " + "q" * qn, f"a{i} " + "a" * an) for i, (qn, an) in enumerate(sizes)]
    conversation = Conversation(local_stack, rest_url, budget=budget, max_messages=max_messages)
    windows = asyncio.run(conversation.run(turns))
    everything: list[ChatMessage] = []
    block, step = max(budget // 2, 1), max(max_messages // 2, 1)
    token_starts, count_starts = set(), set()
    for (question, answer), window in zip(turns, windows, strict=True):
        everything.append(ChatMessage("user", question))
        # A suffix of the conversation, ending with the new message.
        assert tuple(everything[len(everything) - len(window) :]) == window
        size = sum(tokens(m.content) for m in window)
        assert size <= budget or len(window) == 1
        assert len(window) <= max_messages
        # Where the policy may start this turn's window: on a block boundary of the
        # conversation's tokens and of its message count.
        total = sum(tokens(m.content) for m in everything)
        token_starts.add(max(0, math.ceil((total - budget) / block)))
        count_starts.add(max(0, math.ceil((len(everything) - max_messages) / step)))
        everything.append(ChatMessage("assistant", answer))
    # Every turn begins with the previous turn's prompt, byte for byte, unless a block dropped:
    # the start moves only when one of the two boundaries does.
    assert starts(windows) <= len(token_starts) - 1 + len(count_starts) - 1
    for before, after in zip(windows, windows[1:], strict=False):
        if after[: len(before)] != before:  # a block dropped: the window starts later
            assert everything.index(after[0]) > everything.index(before[0])
