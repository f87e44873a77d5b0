"""Every code the service can emit has its own true sentence, found from the source itself.

The codes are read from the modules `chat-stream serve` loads (the import graph from `app.main`
and the protocol uvicorn loads by path): `code = "…"` in an error class, `code="…"` passed to any
call, `"code": …` in a JSON body, the first argument of `Failed(…)` and of `user_message(…)`. An
expression there that is neither a literal nor a code passed through (`exc.code`, a `code`
parameter, `data.get("code")`) fails the test: a code nobody can list is a code without a
sentence.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import grimp
import pytest

from app.errors import AppError, OverBudget, RateLimited
from app.user_messages import FALLBACK_MESSAGE, USER_MESSAGES, continue_when, user_message
from tests.support.database import ROOT

SERVICE_ROOTS = ("app.main", "app.api.protocol")


def service_modules() -> list[Path]:
    graph = grimp.build_graph("app")
    names: set[str] = set(SERVICE_ROOTS)
    for root in SERVICE_ROOTS:
        names |= graph.find_upstream_modules(root)
    paths = []
    for name in sorted(names):
        base = ROOT.joinpath(*name.split("."))
        path = base / "__init__.py" if base.is_dir() else base.with_suffix(".py")
        paths.append(path)
    return paths


class _Unlisted(Exception):
    """An expression in a code's place whose value cannot be read from the source."""


def _module_dicts(tree: ast.Module) -> dict[str, ast.Dict]:
    found: dict[str, ast.Dict] = {}
    for node in tree.body:
        target = node.target if isinstance(node, ast.AnnAssign) else None
        if isinstance(node, ast.Assign) and len(node.targets) == 1:
            target = node.targets[0]
        value = getattr(node, "value", None)
        if isinstance(target, ast.Name) and isinstance(value, ast.Dict):
            found[target.id] = value
    return found


def _codes_of(node: ast.expr, dicts: dict[str, ast.Dict]) -> set[str]:
    """The codes an expression can evaluate to; passed-through codes add none."""
    if isinstance(node, ast.Constant) and isinstance(node.value, str):
        return {node.value}
    if isinstance(node, ast.Name) and node.id == "code":  # a parameter or local passed on
        return set()
    if isinstance(node, ast.Attribute) and node.attr == "code":  # another error's code
        return set()
    if isinstance(node, ast.BoolOp):
        return set().union(*(_codes_of(v, dicts) for v in node.values))
    if isinstance(node, ast.IfExp):
        return _codes_of(node.body, dicts) | _codes_of(node.orelse, dicts)
    if isinstance(node, ast.Subscript) and _is_code_key(node.slice):  # stored_json["code"]
        return set()
    if isinstance(node, ast.Call):
        func = node.func
        if isinstance(func, ast.Name) and func.id == "str" and len(node.args) == 1:
            return _codes_of(node.args[0], dicts)
        if isinstance(func, ast.Attribute) and func.attr == "get" and node.args:
            if _is_code_key(node.args[0]):  # stored_json.get("code")
                return set()
            if isinstance(func.value, ast.Name) and func.value.id in dicts:  # _CODES.get(k, d)
                table = dicts[func.value.id]
                found = set().union(*(_codes_of(v, dicts) for v in table.values))
                return found | set().union(*(_codes_of(d, dicts) for d in node.args[1:]))
    raise _Unlisted(ast.unparse(node))


def _is_code_key(node: ast.expr) -> bool:
    return isinstance(node, ast.Constant) and node.value == "code"


def _code_places(tree: ast.Module) -> Iterator[ast.expr]:
    """Every expression the source puts where a code goes."""
    for node in ast.walk(tree):
        if isinstance(node, ast.Assign):
            for target in node.targets:
                if isinstance(target, ast.Name | ast.Attribute) and _named_code(target):
                    yield node.value
                elif isinstance(target, ast.Tuple) and isinstance(node.value, ast.Tuple):
                    for name, value in zip(target.elts, node.value.elts, strict=True):
                        if _named_code(name):
                            yield value
        elif isinstance(node, ast.Call):
            yield from (k.value for k in node.keywords if k.arg == "code")
            func = node.func
            called = func.id if isinstance(func, ast.Name) else getattr(func, "attr", "")
            if called in ("Failed", "user_message") and node.args:
                yield node.args[0]
        elif isinstance(node, ast.Dict):
            yield from (v for k, v in zip(node.keys, node.values, strict=True) if _is_code_key(k))


def _named_code(node: ast.expr) -> bool:
    return (isinstance(node, ast.Name) and node.id == "code") or (
        isinstance(node, ast.Attribute) and node.attr == "code"
    )


def emitted_codes() -> tuple[dict[str, str], list[str]]:
    """code → where it is first emitted; and the places whose code cannot be read."""
    codes: dict[str, str] = {}
    unlisted: list[str] = []
    for path in service_modules():
        tree = ast.parse(path.read_text(), filename=str(path))
        dicts = _module_dicts(tree)
        for place in _code_places(tree):
            where = f"{path.relative_to(ROOT)}:{place.lineno}"
            try:
                found = _codes_of(place, dicts)
            except _Unlisted as exc:
                unlisted.append(f"{where}: {exc}")
                continue
            for code in found:
                codes.setdefault(code, where)
    return codes, unlisted


def all_error_classes(cls: type[AppError] = AppError) -> Iterator[type[AppError]]:
    yield cls
    for sub in cls.__subclasses__():
        yield from all_error_classes(sub)


def test_user_messages_every_code_the_service_emits_has_a_sentence() -> None:
    import app.api.protocol  # noqa: F401, PLC0415 - load every error class of the service
    import app.main  # noqa: F401, PLC0415

    codes, unlisted = emitted_codes()

    assert unlisted == []
    assert len(codes) > 25  # the whole service was read
    assert {c: where for c, where in codes.items() if c not in USER_MESSAGES} == {}
    assert {cls.code for cls in all_error_classes()} <= set(USER_MESSAGES)


def test_user_messages_table_holds_no_code_the_service_never_emits() -> None:
    codes, _ = emitted_codes()
    assert set(USER_MESSAGES) - set(codes) == set()


def test_user_messages_no_two_codes_share_a_sentence() -> None:
    # Every code names a different situation for the user, so none shares a sentence (when two
    # come to mean the same to the user, list the pair here with why).
    by_sentence: dict[str, list[str]] = {}
    for code, sentence in USER_MESSAGES.items():
        by_sentence.setdefault(sentence, []).append(code)
    assert [codes for codes in by_sentence.values() if len(codes) > 1] == []


@pytest.mark.parametrize("code", sorted(USER_MESSAGES))
def test_user_messages_each_sentence_is_finished_and_free_of_internals(code: str) -> None:
    sentence = user_message(code, retry_after=30)
    assert sentence[0].isupper() and sentence.endswith((".", "?"))
    assert "{" not in sentence and "_" not in sentence


@pytest.mark.parametrize(
    "code", ["route_not_found", "payload_too_large", "message_too_long", "unsupported_media_type"]
)
def test_user_messages_what_can_never_succeed_is_never_told_to_try_again(code: str) -> None:
    assert "try" not in user_message(code).lower()
    assert user_message(code) != FALLBACK_MESSAGE


def test_user_messages_an_unknown_turn_is_not_called_a_conversation() -> None:
    assert "conversation" not in user_message("turn_not_found")
    assert "answer" in user_message("turn_not_found")


NOON = datetime(2026, 12, 6, 13, 42, 49, tzinfo=UTC)


@pytest.mark.parametrize(
    ("retry_after", "now", "words"),
    [
        (1, NOON, "in a moment"),
        (60, NOON, "in a moment"),
        (61, NOON, "in 2 minutes"),
        (300, NOON, "in 5 minutes"),
        (3600, NOON, "in about an hour"),
        (3 * 3600 + 600, NOON, "in about 3 hours"),
        (37031, NOON, "tomorrow"),  # a daily budget reset at 00:00 UTC
        (86400, datetime(2026, 12, 6, 0, 0, tzinfo=UTC), "tomorrow"),
        (2_211_431, NOON, "on 1 January"),  # a monthly budget, in December
        (15 * 86400, datetime(2026, 2, 20, tzinfo=UTC), "on 7 March"),
    ],
)
def test_continue_when_says_when_from_retry_after(
    retry_after: int, now: datetime, words: str
) -> None:
    assert continue_when(retry_after, now) == words


def test_user_message_over_budget_says_tomorrow_not_in_a_moment() -> None:
    sentence = user_message("over_budget", retry_after=37031, now=NOON)
    assert sentence == "You've reached your coaching limit for now. You can continue tomorrow."


def test_throttled_errors_word_their_own_retry_after() -> None:
    assert "in a moment" in RateLimited(retry_after=3).user_message
    assert "in 10 minutes" in OverBudget(retry_after=600).user_message
