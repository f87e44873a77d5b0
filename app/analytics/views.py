"""The questions an LLM-cost analyst asks first, each one function over the loaded aggregates.

Pure pandas on the frames of `app.analytics.load` (money in `Decimal`, exact); the report turns
them into float frames for display (`app.analytics.money`). Definitions:

- **Cache savings** (`cache_savings`): per model, what the cache-read tokens would have cost as
  ordinary input tokens minus what they cost as cache reads (`read_savings_usd`), the premium
  paid for writing the cache over plain input (`write_premium_usd`, Anthropic charges more for
  cache writes), and the net (`net_savings_usd` = savings - premium). Priced with the project's
  `Pricer` at each day's prices, exactly.
- **Model mix** (`model_mix`): per provider and model, shares of requests, tokens and cost.
- **Weekly trend** (`weekly_trend`): per ISO week (Monday to Sunday, UTC), the days of it the
  window holds (days without usage count), requests, active users, cost, cost per day, and the
  change against the week before, only when both weeks are complete; weeks the window (or a
  partial day) cuts are marked `complete = False`.
- **Unit costs** (`unit_costs`): cost per active user (a user with at least one request) and
  per message (one request answers one user message; retries count as messages too).
- **Wasted spend** (`wasted_spend`): spend by outcome; every status other than `completed`
  (error, partial = the client disconnected and the answer was cut, abandoned = a dead
  worker's reservation, estimated) is spend that delivered no complete answer.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, time
from decimal import Decimal

import pandas as pd

from app.core.domain import Price, Usage

ZERO = Decimal(0)
_EIGHT = Decimal("0.00000001")
PriceFn = Callable[..., Price]  # `Pricer.price(provider, model, usage, when=...)`
OUTCOMES = {
    "completed": "completed",
    "partial": "partial (client disconnected, answer cut)",
    "error": "error (provider or stream failed)",
    "abandoned": "abandoned (worker died, estimated)",
}


def _share(part: Decimal | int, whole: Decimal | int) -> float:
    return float(Decimal(part) / Decimal(whole)) if whole else 0.0


def _money(values: list[Decimal]) -> pd.Series:
    return pd.Series(values, dtype=object)


def cache_savings(per_day_model: pd.DataFrame, price: PriceFn) -> pd.DataFrame:
    """Per provider and model: cache tokens, read savings, write premium, net (exact USD)."""
    rows: dict[tuple[str, str], list[Decimal | int]] = {}
    for r in per_day_model.itertuples(index=False):
        provider, model = str(r.provider), str(r.model)
        when = datetime.combine(pd.Timestamp(str(r.day)).date(), time(12), UTC)

        def cost(usage: Usage, provider: str = provider, model: str = model,
                 when: datetime = when) -> Decimal:  # fmt: skip
            if not (usage.input_tokens or usage.cache_read_tokens or usage.cache_write_tokens):
                return ZERO
            return price(provider, model, usage, when=when).cost_usd

        read, write = int(r.cache_read_tokens), int(r.cache_write_tokens)
        as_input_read, as_read = cost(Usage(input_tokens=read)), cost(Usage(cache_read_tokens=read))
        as_input_write = cost(Usage(input_tokens=write))
        as_write = cost(Usage(cache_write_tokens=write))
        acc = rows.setdefault((provider, model), [0, 0, ZERO, ZERO, ZERO])
        acc[0] += read
        acc[1] += write
        acc[2] += as_read
        acc[3] += as_input_read - as_read
        acc[4] += as_write - as_input_write
    table = pd.DataFrame(
        [(p, m, *v) for (p, m), v in sorted(rows.items())],
        columns=["provider", "model", "cache_read_tokens", "cache_write_tokens",
                 "read_cost_usd", "read_savings_usd", "write_premium_usd"],
    )  # fmt: skip
    for name in ("read_cost_usd", "read_savings_usd", "write_premium_usd"):
        table[name] = _money(list(table[name]))
    table["net_savings_usd"] = _money(
        [s - p for s, p in zip(table["read_savings_usd"], table["write_premium_usd"], strict=True)]
    )
    for name in ("cache_read_tokens", "cache_write_tokens"):
        table[name] = table[name].astype("int64")
    order = [-float(v) for v in table["net_savings_usd"]]
    return (
        table.assign(_o=order)
        .sort_values(["_o", "model"])
        .drop(columns="_o")
        .reset_index(drop=True)
    )


NOT_PRICED = (
    "not priced: build_report(..., price=Pricer(settings).price), or analytics.cost_report(...), "
    "which prices from the settings"
)


def unpriced_cache_savings(per_day_model: pd.DataFrame) -> pd.DataFrame:
    """`cache_savings`' rows without prices: the cache tokens per model, empty amounts, and a
    `note` that says why (a table that is silently empty reads as "the cache saved nothing")."""
    tokens = ["cache_read_tokens", "cache_write_tokens"]
    table = per_day_model.groupby(["provider", "model"], as_index=False)[tokens].sum()
    for name in ("read_cost_usd", "read_savings_usd", "write_premium_usd", "net_savings_usd"):
        table[name] = pd.Series([None] * len(table), index=table.index, dtype=object)
    table["note"] = NOT_PRICED
    for name in tokens:
        table[name] = table[name].astype("int64")
    return table


def model_mix(per_day_model: pd.DataFrame) -> pd.DataFrame:
    """Per provider and model: requests, tokens, cost, and each one's share (fractions)."""
    tokens = ["tokens_in", "tokens_out", "cache_read_tokens", "cache_write_tokens"]
    mix = per_day_model.groupby(["provider", "model"], as_index=False)[["requests", *tokens]].sum()
    costs = per_day_model.groupby(["provider", "model"])["cost_usd"].sum()
    mix["cost_usd"] = _money(
        [Decimal(costs[(p, m)]) for p, m in zip(mix["provider"], mix["model"], strict=True)]
    )
    mix["tokens_total"] = mix[tokens].sum(axis=1).astype("int64")
    total_cost = sum(mix["cost_usd"], ZERO)
    mix["share_of_requests"] = [_share(v, int(mix["requests"].sum())) for v in mix["requests"]]
    mix["share_of_tokens"] = [
        _share(v, int(mix["tokens_total"].sum())) for v in mix["tokens_total"]
    ]
    mix["share_of_cost"] = [_share(v, total_cost) for v in mix["cost_usd"]]
    order = [-float(v) for v in mix["cost_usd"]]
    return (
        mix.assign(_o=order).sort_values(["_o", "model"]).drop(columns="_o").reset_index(drop=True)
    )


def _week_of(days: pd.Series) -> pd.Series:
    """The Monday (00:00) starting each day's ISO week."""
    monday: pd.Series = (days - pd.to_timedelta(days.dt.day_of_week, unit="D")).dt.normalize()
    return monday


def weekly_trend(
    per_day_model: pd.DataFrame,
    user_days: pd.DataFrame,
    partial: set[pd.Timestamp],
    days: pd.DatetimeIndex,
) -> pd.DataFrame:
    """Per ISO week of `days` (the window's observed days): how many of its days the window
    holds, complete or not, requests, active users, cost, cost per day and the change.

    `change_vs_previous` compares a complete week with the complete week before it and is
    empty otherwise (a 3-day week against a 7-day one is not a fall of 57 %); `cost_per_day_usd`
    compares any two weeks.
    """
    columns = ["week", "days", "complete", "requests", "active_users", "cost_usd",
               "cost_per_day_usd", "change_vs_previous"]  # fmt: skip
    if not len(days):
        return pd.DataFrame(columns=columns)
    calendar = pd.DataFrame({"day": days})
    calendar["week"] = _week_of(calendar["day"])
    table = calendar.groupby("week").agg(
        days=("day", "size"), partial_days=("day", lambda d: len(set(d) & partial))
    )
    usage = per_day_model[per_day_model["day"].isin(days)]
    usage = usage.assign(week=_week_of(usage["day"]))
    grouped = usage.groupby("week")
    table["requests"] = grouped["requests"].sum().reindex(table.index).fillna(0).astype("int64")
    spent = {week: sum(g, ZERO) for week, g in grouped["cost_usd"]}
    table["cost_usd"] = pd.Series(
        [spent.get(w, ZERO) for w in table.index], index=table.index, dtype=object
    )
    active = user_days[(user_days["requests"] > 0) & user_days["day"].isin(days)]
    active = active.assign(week=_week_of(active["day"]))
    table["active_users"] = (
        active.groupby("week")["user_id"].nunique().reindex(table.index).fillna(0).astype("int64")
    )
    table["complete"] = (table["days"] == 7) & (table["partial_days"] == 0)
    table["cost_per_day_usd"] = pd.Series(
        [(c / n).quantize(_EIGHT) for c, n in zip(table["cost_usd"], table["days"], strict=True)],
        index=table.index,
        dtype=object,
    )
    previous = [(None, False), *zip(table["cost_usd"].iloc[:-1], table["complete"].iloc[:-1],
                                     strict=True)]  # fmt: skip
    table["change_vs_previous"] = [
        float((c - p) / p) if done and was_done and p else float("nan")
        for c, done, (p, was_done) in zip(table["cost_usd"], table["complete"], previous,
                                          strict=True)
    ]  # fmt: skip
    table = table.reset_index()
    return table[columns]


def unit_costs(per_user: pd.DataFrame) -> pd.DataFrame:
    """One row: active users, messages (requests), cost, cost per active user and per message."""
    active = per_user[per_user["requests"] > 0]
    users, requests = len(active), int(active["requests"].sum())
    cost = sum(active["cost_usd"], ZERO)
    eight = Decimal("0.00000001")
    per_user_cost = (cost / users).quantize(eight) if users else ZERO
    per_request = (cost / requests).quantize(eight) if requests else ZERO
    return pd.DataFrame(
        {"active_users": [users], "messages": [requests], "cost_usd": _money([cost]),
         "cost_per_active_user": _money([per_user_cost]),
         "cost_per_request": _money([per_request])}
    )  # fmt: skip


def wasted_spend(per_day_status: pd.DataFrame) -> pd.DataFrame:
    """Spend by outcome, wasted outcomes first: requests, estimated, cost, share of spend."""
    columns = ["status", "outcome", "wasted", "requests", "estimated_requests", "cost_usd",
               "share_of_cost"]  # fmt: skip
    if per_day_status.empty:
        return pd.DataFrame(columns=columns)
    grouped = per_day_status.groupby("status")
    table = pd.DataFrame({
        "requests": grouped["requests"].sum(),
        "estimated_requests": grouped["estimated_requests"].sum(),
    }).reset_index()  # fmt: skip
    table["cost_usd"] = _money(
        [sum(grouped.get_group(s)["cost_usd"], ZERO) for s in table["status"]]
    )
    total = sum(table["cost_usd"], ZERO)
    table["share_of_cost"] = [_share(c, total) for c in table["cost_usd"]]
    table["wasted"] = table["status"] != "completed"
    table["outcome"] = [OUTCOMES.get(s, s) for s in table["status"]]
    order = [(not w, -float(c)) for w, c in zip(table["wasted"], table["cost_usd"], strict=True)]
    table = table.iloc[sorted(range(len(table)), key=lambda i: order[i])].reset_index(drop=True)
    return table[columns]
