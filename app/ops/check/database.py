"""Database checks: migrations applied, the chat RPCs answer, the attestation key is held.

Every probe is read-only: the RPCs get deliberately invalid arguments (the database refuses them
before the function body can change anything), and the attestation check sends a MAC the
database only compares.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
import uuid
from collections.abc import Callable
from pathlib import Path

import psycopg

from app.db.attestation_keys import describe_source, missing_key_advice
from app.db.migrate import applied_versions, discover
from app.db.problems import connect_problem
from app.ops.check.project import Project, error_code, error_message
from app.ops.check.result import Result

CHAT_RPCS = ("chat_begin", "chat_finish", "chat_renew")
_FUNCTION = re.compile(
    r"create\s+(?:or\s+replace\s+)?function\s+public\.(\w+)\s*\((.*?)\)\s*returns",
    re.IGNORECASE | re.DOTALL,
)
_INVALID_BY_TYPE = {"uuid": "not-a-uuid", "integer": "not-a-number", "int": "not-a-number"}


def check_migrations(p: Project) -> Result:
    wanted = {m.version for m in discover(p.migrations_dir)}
    if not wanted:
        return Result("migrations", "fail", f"no migration files in {p.migrations_dir}")
    if p.db_url:
        try:
            with psycopg.connect(p.db_url, connect_timeout=10) as conn:
                applied = applied_versions(conn)
        except psycopg.Error as exc:
            return Result("migrations", "fail", connect_problem(exc, p.db_url, p.db_source))
        how = "the database"
    elif p.skip_migrations:
        return Result("migrations", "skip", "not verified (--skip-migrations)")
    else:
        response = p.http.get(
            f"{p.base}/rest/v1/schema_migrations",
            params={"select": "version"},
            headers=p.secret.headers() | {"Accept-Profile": "supabase_migrations"},
        )
        if response.status_code != 200:  # not verified is not passed
            return Result(
                "migrations",
                "fail",
                "not verified: DATABASE_URL is not set and the Data API does not expose"
                f" supabase_migrations ({error_message(response)}); pass --db-url (the session"
                " pooler DSN) to compare, or --skip-migrations",
            )
        applied = {str(row["version"]) for row in response.json()}
        how = "the Data API"
    missing = sorted(wanted - applied)
    if missing:
        return Result(
            "migrations",
            "fail",
            f"{len(missing)} of {len(wanted)} not applied ({', '.join(missing)}): run "
            "`supabase db push` or `chat-stream migrate --db-url <DSN>`",
        )
    return Result("migrations", "ok", f"all {len(wanted)} applied (read through {how})")


def expected_parameters(migrations_dir: Path, name: str) -> list[tuple[str, str]]:
    """`(name, type)` of the last `public.<name>` the migrations define; [] if none does."""
    found: list[tuple[str, str]] = []
    for migration in discover(migrations_dir):
        for match in _FUNCTION.finditer(migration.path.read_text()):
            if match.group(1) == name:
                found = [_parameter(part) for part in match.group(2).split(",") if part.strip()]
    return found


def _parameter(text: str) -> tuple[str, str]:
    words = text.split()
    return words[0], words[1].lower() if len(words) > 1 else ""


def rpc_probe(name: str) -> Callable[[Project], Result]:
    def probe(p: Project) -> Result:
        return _check_rpc(p, name)

    return probe


def _check_rpc(p: Project, name: str) -> Result:
    """Call the RPC with the repo's parameter names and values its types refuse (or a MAC that
    is wrong): the database refuses before the body runs, and how it refuses tells whether the
    function with this signature exists."""
    params = expected_parameters(p.migrations_dir, name)
    label = f"rpc {name}"
    if not params:
        return Result(label, "fail", f"no migration defines public.{name}")
    if not any(kind in _INVALID_BY_TYPE or _is_mac(arg) for arg, kind in params):
        return Result(label, "skip", f"public.{name} has no argument to refuse without effects")
    args = {arg: _invalid_value(arg, kind) for arg, kind in params}
    names = [arg for arg, _ in params]
    shown = ", ".join(names[:3]) + (f", … {len(names)} in all" if len(names) > 3 else "")
    signature = f"public.{name}({shown})"
    response = p.rpc(name, args)
    code = error_code(response)
    if response.status_code < 300:
        return Result(label, "fail", f"{signature} accepted invalid arguments (HTTP 2xx)")
    if code in ("PGRST202", "PGRST203") or response.status_code == 404:
        return Result(
            label, "fail", f"{signature} not found by the Data API ({code}): migrations missing?"
        )
    return Result(label, "ok", f"{signature} answers (refused the probe with {code})")


def _invalid_value(name: str, kind: str) -> object:
    if kind in _INVALID_BY_TYPE:
        return _INVALID_BY_TYPE[kind]
    if _is_mac(name):
        return "0" * 64  # a well-formed MAC no key produces
    return '{"probe": "chat-stream check"}' if kind == "text" else {"probe": "chat-stream check"}


def _is_mac(name: str) -> bool:
    return name.endswith(("attestation", "mac"))


def check_attestation(p: Project) -> Result:
    secret = p.settings.billing_attestation_key.get_secret_value()
    if not secret:
        return Result("attestation key", "skip", "not configured (BILLING_ATTESTATION_KEY)")
    probe = f"chat-stream check {uuid.uuid4()}"
    right = hmac.new(secret.encode(), b"check\n" + probe.encode(), hashlib.sha256).hexdigest()
    answer = p.rpc("chat_attestation_check", {"p_probe": probe, "p_mac": right})
    if error_code(answer) in ("PGRST202", "PGRST203") or answer.status_code == 404:
        return Result(
            "attestation key", "skip", "not configured (no public.chat_attestation_check)"
        )
    if answer.status_code != 200:
        return Result(
            "attestation key",
            "fail",
            f"the check answered HTTP {answer.status_code}: {error_message(answer)}",
        )
    wrong = p.rpc("chat_attestation_check", {"p_probe": probe, "p_mac": secrets.token_hex(32)})
    if wrong.status_code == 200 and wrong.json() is True:
        return Result("attestation key", "fail", "the database accepts any MAC")
    if answer.json() is not True:
        return Result(
            "attestation key", "fail", missing_key_advice(p.db_source if p.db_url else "")
        )
    source = p.rpc("chat_attestation_source", {"p_probe": probe, "p_mac": right})
    held = describe_source(source.json() if source.status_code == 200 else None)
    return Result(
        "attestation key",
        "ok",
        "the database accepts BILLING_ATTESTATION_KEY" + (f" ({held})" if held else ""),
    )
