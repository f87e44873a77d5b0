"""What a provider says a request cost, where it says so on the wire.

OpenRouter (and gateways that copy it) put the charge in the usage object of the last chunk of an
OpenAI-compatible stream: `usage.cost` is what the account was charged, in credits (1 credit is
1 USD); `usage.cost_details.upstream_inference_cost` is what the upstream provider charged. With
a bring-your-own-key request (`usage.is_byok: true`) the upstream bills the key's owner directly
and `cost` is only OpenRouter's fee, so the two are added: the total the request cost us.

Anything else (a missing field, a string, a bool, a negative or non-finite number) is "not
reported" (`None`), never zero: a turn without a reported cost is not a turn that cost nothing.
"""

from __future__ import annotations

from collections.abc import Mapping
from decimal import Decimal, InvalidOperation
from typing import Any


def _usd(value: object) -> Decimal | None:
    if isinstance(value, bool) or not isinstance(value, int | float | Decimal):
        return None
    try:
        amount = Decimal(str(value))  # str: the float's shortest repr, not its binary expansion
    except InvalidOperation:
        return None
    return amount if amount.is_finite() and amount >= 0 else None


def reported_cost(usage: Mapping[str, Any]) -> Decimal | None:
    """The request's cost in USD as the provider reported it in `usage`, or None."""
    cost = _usd(usage.get("cost"))
    if cost is None:
        return None
    if usage.get("is_byok") is True:
        details = usage.get("cost_details")
        upstream = None
        if isinstance(details, Mapping):
            upstream = _usd(details.get("upstream_inference_cost"))
        if upstream is not None:
            cost += upstream
    return cost
