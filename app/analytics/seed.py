"""Realistic usage data for analysts and benchmarks: users, conversations, messages, usage rows.

`generate()` builds the rows in memory with numpy, deterministically from `SeedSpec.seed` (same
spec, same rows); `write()` loads them with COPY in one transaction. The shape:

- **Users** get a heavy-tailed share of the requests (lognormal weights, sigma 1.3: the top 1 %
  of users make roughly a sixth of the requests) and a preferred model.
- **Time**: requests fall on weekdays more than weekends, by a diurnal curve (UTC), with a mild
  upward trend; about 1 % of users (at least one) have one runaway day holding 30 % of their
  requests, so anomaly detection has something to find.
- **Conversations** start on a user's first request, after 6 h of silence, or at random (1 in 6);
  one model per conversation (the user's preferred one 75 % of the time).
- **Tokens**: system prompt + history (capped like `HISTORY_TOKEN_BUDGET`) + message. Anthropic
  turns within 5 minutes read the previous prefix from the prompt cache and write the rest
  (cold turns write it all); OpenAI turns within 10 minutes read it cached in 128-token blocks.
  `tokens_in` excludes cache tokens, as in `usage_logs`.
- **Outcomes**: 3 % partial (client left: output cut, `estimated`), 1 % errors (`estimated`, no
  or little output; no assistant message when there was no output).
- **Costs** come from the project's `Pricer` through `app.analytics.rates` (exact per-token
  rates, vectorised; prompts here stay far below genai-prices' 200k-token tiers).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

import numpy as np
import pandas as pd

from app.analytics.rates import DatedPricer, ModelRates, cost_units, derive_rates, format_units

SEED_MARKER = "chat-stream-seed"  # raw_app_meta_data ->> 'seeded_by' of generated auth users
SYSTEM_TOKENS = 1100
HISTORY_CAP_TOKENS = 6000
MAX_DURATION_MS = 300_000

Progress = Callable[[str], None]


@dataclass(frozen=True)
class ModelShare:
    provider: str
    model: str
    share: float
    ms_per_output_token: float


MODELS: tuple[ModelShare, ...] = (
    ModelShare("anthropic", "claude-sonnet-4-5", 0.40, 15.0),
    ModelShare("anthropic", "claude-haiku-4-5", 0.25, 6.0),
    ModelShare("anthropic", "claude-opus-4-1", 0.08, 30.0),
    ModelShare("openai", "gpt-4o", 0.12, 12.0),
    ModelShare("openai", "gpt-4o-mini", 0.15, 8.0),
)


@dataclass(frozen=True)
class SeedSpec:
    users: int = 200
    days: int = 30
    requests: int = 20_000
    seed: int = 0
    end: datetime = field(
        default_factory=lambda: datetime.now(UTC).replace(second=0, microsecond=0)
    )

    def __post_init__(self) -> None:
        if min(self.users, self.days, self.requests) < 1:
            raise ValueError("users, days and requests must each be at least 1")
        if self.end.tzinfo is None:
            raise ValueError("end must be timezone-aware")

    @property
    def start(self) -> datetime:
        return self.end - timedelta(days=self.days)


def model_rates(pricer: DatedPricer, spec: SeedSpec) -> list[ModelRates]:
    """The seeded models' per-token rates, valid all through the spec's window."""
    return derive_rates(pricer, [(m.provider, m.model) for m in MODELS], spec.start, spec.end)


class SeedError(RuntimeError):
    """The seed cannot be generated or loaded as asked (non-linear prices, already loaded)."""


@dataclass
class SeedFrames:
    users: pd.DataFrame  # auth.users columns
    conversations: pd.DataFrame
    messages: pd.DataFrame
    usage: pd.DataFrame  # usage_logs columns (cost_usd as an exact decimal string)


# --- generation ----------------------------------------------------------------------------------
_HEX = np.frombuffer(b"0123456789abcdef", dtype=np.uint8)


def _uuids(rng: np.random.Generator, n: int) -> np.ndarray:
    """n random (version 4) UUID strings, vectorised."""
    raw = rng.integers(0, 256, size=(n, 16), dtype=np.uint8)
    raw[:, 6] = (raw[:, 6] & 0x0F) | 0x40
    raw[:, 8] = (raw[:, 8] & 0x3F) | 0x80
    digits = np.empty((n, 32), dtype=np.uint8)
    digits[:, 0::2] = _HEX[raw >> 4]
    digits[:, 1::2] = _HEX[raw & 0x0F]
    text = np.full((n, 36), ord("-"), dtype=np.uint8)
    for dst, src in ((0, (0, 8)), (9, (8, 12)), (14, (12, 16)), (19, (16, 20)), (24, (20, 32))):
        text[:, dst : dst + src[1] - src[0]] = digits[:, src[0] : src[1]]
    return np.ascontiguousarray(text).view("S36").ravel().astype(str).astype(object)


_DIURNAL = np.array(
    [2, 1, 1, 1, 1, 2, 4, 6, 8, 9, 9, 9, 10, 10, 9, 9, 9, 10, 11, 12, 11, 9, 6, 4], dtype=float
)
_USER_LINES = np.array(
    [
        "I keep putting off my workout. How do I start small?",
        "Can we plan my week so I have time to rest?",
        "I felt anxious before the meeting today.",
        "What is one thing I could do tonight to sleep better?",
        "I reached my goal this week!",
        "Help me think through a hard conversation with my manager.",
    ]
)
_ASSISTANT_LINES = np.array(
    [
        "That sounds like a lot. What would a five-minute version look like?",
        "Let's look at your week together. Which evening feels the most open?",
        "Thank you for telling me. What did you notice in your body?",
        "Well done! What helped you most?",
        "Let's break it down. What outcome would feel good to you?",
    ]
)


def _pick_models(rng: np.random.Generator, n: int, models: tuple[ModelShare, ...]) -> np.ndarray:
    shares = np.array([m.share for m in models])
    return rng.choice(len(models), size=n, p=shares / shares.sum())


def _stamp(us: np.ndarray) -> pd.Series:
    return pd.Series(pd.to_datetime(us, unit="us", utc=True))


@dataclass
class _Requests:
    """One entry per request, conversation by conversation (the arrays `generate` works on)."""

    user: np.ndarray  # index into the users
    ts: np.ndarray  # request start, microseconds since the epoch
    gap: np.ndarray  # microseconds since the conversation's previous turn (0 for the first)
    conv: np.ndarray  # index into the conversations
    conv_start: np.ndarray  # first request of each conversation
    turn: np.ndarray  # 0 for a conversation's first request
    model: np.ndarray  # index into MODELS


def _schedule(
    rng: np.random.Generator, spec: SeedSpec, models: tuple[ModelShare, ...]
) -> _Requests:
    """Who asks when: conversations (one model each) placed in time, turns minutes apart."""
    n_users, n_days, n_req = spec.users, spec.days, spec.requests
    weights = rng.lognormal(0.0, 1.3, n_users)
    preferred = _pick_models(rng, n_users, models)
    per_user = rng.multinomial(n_req, weights / weights.sum())
    user = np.repeat(np.arange(n_users), per_user)
    first = np.r_[True, user[1:] != user[:-1]]
    new_conv = first | (rng.random(n_req) < 1 / 6)
    conv = np.cumsum(new_conv) - 1
    conv_start = np.flatnonzero(new_conv)
    n_conv = conv_start.size
    conv_user = user[conv_start]
    turn = np.arange(n_req) - conv_start[conv]

    # Each conversation starts on a day (weekdays, upward trend) at an hour (diurnal, UTC).
    weekend = np.array([(spec.start + timedelta(days=i)).weekday() >= 5 for i in range(n_days)])
    day_w = (1.0 + 0.5 * np.arange(n_days) / n_days) * np.where(weekend, 0.6, 1.0)
    day = rng.choice(n_days, size=n_conv, p=day_w / day_w.sum())
    hour_w = _DIURNAL[(spec.start.hour + np.arange(24)) % 24]
    hour = rng.choice(24, size=n_conv, p=hour_w / hour_w.sum())
    heavy = np.flatnonzero(per_user >= 20)
    for u in rng.choice(heavy, size=min(max(1, n_users // 100), heavy.size), replace=False):
        mine = np.flatnonzero(conv_user == u)  # a runaway day: 30 % of this user's conversations
        day[rng.choice(mine, size=max(1, int(mine.size * 0.3)), replace=False)] = rng.integers(
            0, n_days
        )
    # Turns follow each other after a minute or two (the prompt cache stays warm).
    gap = np.where(turn > 0, rng.lognormal(np.log(75), 1.0, n_req) * 1_000_000, 0).astype(np.int64)
    elapsed = np.cumsum(gap)
    elapsed -= elapsed[conv_start][conv]
    length = elapsed[np.r_[conv_start[1:] - 1, n_req - 1]]
    latest = n_days * 86_400 * 1_000_000 - (MAX_DURATION_MS + 1) * 1000
    begin = (day * 86_400 + hour * 3_600) * 1_000_000 + rng.integers(0, 3_600_000_000, n_conv)
    begin = np.maximum(np.minimum(begin, latest - length), 0)
    ts = int(spec.start.timestamp() * 1_000_000) + np.minimum(begin[conv] + elapsed, latest)

    own = rng.random(n_conv) < 0.75
    conv_model = np.where(own, preferred[conv_user], _pick_models(rng, n_conv, models))
    return _Requests(user, ts, gap, conv, conv_start, turn, conv_model[conv])


@dataclass
class _Tokens:
    tokens_in: np.ndarray
    tokens_out: np.ndarray
    cache_read: np.ndarray
    cache_write: np.ndarray
    message: np.ndarray  # the user message's tokens
    status: np.ndarray
    duration_ms: np.ndarray
    ttft_ms: np.ndarray


def _tokens(rng: np.random.Generator, req: _Requests, models: tuple[ModelShare, ...]) -> _Tokens:
    """Prompt = system + capped history + message, split into uncached and cache tokens."""
    n = req.user.size
    msg = np.clip(rng.lognormal(np.log(60), 0.8, n), 3, 4000).astype(np.int64)
    out_full = np.clip(rng.lognormal(np.log(320), 0.6, n), 8, 4096).astype(np.int64)
    exchange = msg + out_full
    done = np.cumsum(exchange) - exchange  # tokens exchanged before this request, all users
    raw_history = done - done[req.conv_start][req.conv]
    history = np.minimum(raw_history, HISTORY_CAP_TOKENS)
    prev_exchange = np.r_[0, exchange[:-1]]
    prev_history = np.minimum(np.maximum(raw_history - prev_exchange, 0), HISTORY_CAP_TOKENS)
    prefix = SYSTEM_TOKENS + history
    cached = np.where(req.turn > 0, np.minimum(SYSTEM_TOKENS + prev_history, prefix), 0)

    anthropic = np.array([m.provider == "anthropic" for m in models])[req.model]
    draw = rng.random(n)
    a_warm = anthropic & (req.turn > 0) & (req.gap < 300 * 1_000_000) & (draw < 0.9)
    o_warm = ~anthropic & (req.turn > 0) & (req.gap < 600 * 1_000_000) & (draw < 0.85)
    cache_read = np.where(a_warm, cached, np.where(o_warm, (cached // 128) * 128, 0))
    cache_write = np.where(anthropic, prefix - cache_read, 0)
    tokens_in = np.where(anthropic, msg, prefix + msg - cache_read)

    outcome = rng.random(n)
    status = np.where(outcome < 0.01, "error", np.where(outcome < 0.04, "partial", "completed"))
    cut = rng.uniform(0.05, 0.7, n)
    partial_out = np.maximum(1, (out_full * cut).astype(np.int64))
    error_out = np.where(cut < 0.3, (out_full * cut * 0.1).astype(np.int64), 0)
    tokens_out = np.where(
        status == "completed", out_full, np.where(status == "partial", partial_out, error_out)
    )

    per_token_ms = np.array([m.ms_per_output_token for m in models])[req.model]
    ttft = np.clip(rng.lognormal(np.log(650), 0.4, n), 80, 20_000).astype(np.int64)
    stream_ms = (tokens_out * per_token_ms * rng.lognormal(0.0, 0.25, n)).astype(np.int64)
    duration = np.minimum(ttft + stream_ms, MAX_DURATION_MS)
    return _Tokens(tokens_in, tokens_out, cache_read, cache_write, msg, status, duration, ttft)


def generate(
    spec: SeedSpec, rates: list[ModelRates], models: tuple[ModelShare, ...] = MODELS
) -> SeedFrames:
    """All rows of a seed, deterministic for a given spec (`rates` only price them)."""
    rng = np.random.default_rng(spec.seed)
    user_ids = _uuids(rng, spec.users)
    req = _schedule(rng, spec, models)
    tok = _tokens(rng, req, models)
    n_req, n_conv = req.user.size, req.conv_start.size
    conv_ids = _uuids(rng, n_conv)
    question_ids, reply_ids, request_ids = (_uuids(rng, n_req) for _ in range(3))
    line = rng.integers(0, 1 << 30, size=n_req)
    done_at = req.ts + tok.duration_ms * 1000
    has_reply = tok.tokens_out > 0

    cost = np.zeros(n_req, dtype=np.int64)
    for i, rate in enumerate(rates):
        sel = req.model == i
        cost[sel] = cost_units(
            rate, tok.tokens_in[sel], tok.tokens_out[sel], tok.cache_read[sel], tok.cache_write[sel]
        )

    users = pd.DataFrame(
        {
            "id": user_ids,
            "aud": "authenticated",
            "role": "authenticated",
            "email": [f"seed{spec.seed}-user{i:06d}@example.test" for i in range(spec.users)],
            "email_confirmed_at": spec.start,
            "raw_app_meta_data": '{"provider": "email", "providers": ["email"], '
            f'"seeded_by": "{SEED_MARKER}"}}',
            "raw_user_meta_data": [
                f'{{"display_name": "Seed user {i}"}}' for i in range(spec.users)
            ],
            "created_at": spec.start,
            "updated_at": spec.start,
        }
    )
    conv_last = np.r_[req.conv_start[1:] - 1, n_req - 1]
    conversations = pd.DataFrame(
        {
            "id": conv_ids,
            "user_id": user_ids[req.user[req.conv_start]],
            "title": [f"Conversation {i + 1}" for i in range(n_conv)],
            "created_at": _stamp(req.ts[req.conv_start]),
            "updated_at": _stamp(done_at[conv_last]),
        }
    )
    common = {"conversation_id": conv_ids[req.conv], "user_id": user_ids[req.user]}
    question = pd.DataFrame(
        {
            "id": question_ids,
            **common,
            "role": "user",
            "content": _USER_LINES[line % _USER_LINES.size],
            "token_count": tok.message,
            "status": "completed",
            "created_at": _stamp(req.ts),
        }
    )
    answer = pd.DataFrame(
        {
            "id": reply_ids,
            **common,
            "role": "assistant",
            "content": _ASSISTANT_LINES[line % _ASSISTANT_LINES.size],
            "token_count": tok.tokens_out,
            "status": tok.status,
            "created_at": _stamp(done_at),
        }
    )
    messages = pd.concat([question, answer[has_reply]], ignore_index=True)
    usage = pd.DataFrame(
        {
            "request_id": request_ids,
            **common,
            "message_id": pd.Series(reply_ids, dtype=object).where(has_reply, None),
            "provider": np.array([m.provider for m in models])[req.model],
            "model": np.array([m.model for m in models])[req.model],
            "tokens_in": tok.tokens_in,
            "tokens_out": tok.tokens_out,
            "cache_read_tokens": tok.cache_read,
            "cache_write_tokens": tok.cache_write,
            "cost_usd": format_units(cost),
            "status": tok.status,
            "estimated": tok.status != "completed",
            "ttft_ms": pd.array(np.where(has_reply, tok.ttft_ms, 0), dtype="Int64"),
            "duration_ms": tok.duration_ms,
            "price_source": np.array([r.source for r in rates])[req.model],
            "created_at": _stamp(done_at),
        }
    )
    usage.loc[~has_reply, "ttft_ms"] = pd.NA
    in_time = {"by": "created_at", "kind": "stable", "ignore_index": True}
    return SeedFrames(
        users,
        conversations.sort_values(**in_time),  # rows arrive in time order, as in production
        messages.sort_values(**in_time),
        usage.sort_values(**in_time),
    )
