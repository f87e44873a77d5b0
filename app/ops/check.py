"""`chat-stream check`: a pre-flight against the configured project, one line per check.

Every probe is read-only: the JWKS, Auth's public settings, the Data API with deliberately
invalid RPC arguments (the database refuses them before the function body can change anything),
a MAC the database only compares, a scratch file in the outbox. The provider is tried only with
`--provider` (one token at most). Exit status: 0 when nothing failed, 1 otherwise; a setting the
service cannot start without is a `ConfigError` (exit 2) before any probe runs.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import re
import secrets
import sys
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, TextIO

import httpx
import psycopg

from app.config import Settings, require_service
from app.db.attestation_keys import describe_source, missing_key_advice
from app.db.migrate import applied_versions, default_migrations_dir, discover
from app.db.problems import connect_problem

Status = Literal["ok", "fail", "skip"]
ASYMMETRIC_KTY = frozenset({"EC", "RSA", "OKP"})
CHAT_RPCS = ("chat_begin", "chat_finish", "chat_renew")
_FUNCTION = re.compile(
    r"create\s+(?:or\s+replace\s+)?function\s+public\.(\w+)\s*\((.*?)\)\s*returns",
    re.IGNORECASE | re.DOTALL,
)
_INVALID_BY_TYPE = {"uuid": "not-a-uuid", "integer": "not-a-number", "int": "not-a-number"}


@dataclass(frozen=True)
class Result:
    name: str
    status: Status
    detail: str

    def line(self) -> str:
        return f"{self.status:<4} {self.name}: {self.detail}"


@dataclass
class _Project:
    settings: Settings
    http: httpx.Client
    db_url: str
    db_source: str
    migrations_dir: Path

    @property
    def base(self) -> str:
        return self.settings.supabase_url.rstrip("/")

    def headers(self, key: str) -> dict[str, str]:
        return {"apikey": key, "Authorization": f"Bearer {key}"}

    @property
    def service_key(self) -> str:
        return self.settings.supabase_service_role_key.get_secret_value()

    def rpc(self, name: str, args: dict[str, Any]) -> httpx.Response:
        return self.http.post(
            f"{self.base}/rest/v1/rpc/{name}", json=args, headers=self.headers(self.service_key)
        )


def run_checks(
    settings: Settings,
    *,
    db_url: str | None = None,
    provider: bool = False,
    migrations_dir: Path | None = None,
    out: TextIO | None = None,
) -> int:
    """Print one line per check (to stdout unless `out`); 1 if any failed."""
    results = list(
        collect(settings, db_url=db_url, provider=provider, migrations_dir=migrations_dir)
    )
    for result in results:
        print(result.line(), file=out or sys.stdout)
    return 1 if any(r.status == "fail" for r in results) else 0


def collect(
    settings: Settings,
    *,
    db_url: str | None = None,
    provider: bool = False,
    migrations_dir: Path | None = None,
) -> Iterator[Result]:
    require_service(settings)
    timeout = httpx.Timeout(max(settings.db_timeout_seconds, 5.0))
    with httpx.Client(timeout=timeout) as http:
        project = _Project(
            settings=settings,
            http=http,
            db_url=db_url or settings.database_url,
            db_source="--db-url" if db_url else "DATABASE_URL",
            migrations_dir=migrations_dir or default_migrations_dir(),
        )
        probes: list[tuple[str, Callable[[_Project], Result]]] = [
            ("jwks", _check_jwks),
            ("anon key", _check_anon_key),
            ("service role key", _check_service_key),
            ("issuer", _check_issuer),
            ("migrations", _check_migrations),
            *[(f"rpc {name}", _rpc_probe(name)) for name in CHAT_RPCS],
            ("attestation key", _check_attestation),
            ("outbox", _check_outbox),
        ]
        for name, probe in probes:
            yield _guarded(name, probe, project)
        if provider:
            yield from _check_providers(project)
        else:
            yield Result("provider", "skip", "not tried (pass --provider; it may cost a token)")


def _guarded(name: str, probe: Callable[[_Project], Result], project: _Project) -> Result:
    """A probe whose upstream cannot be reached fails with that reason instead of a traceback."""
    try:
        return probe(project)
    except httpx.HTTPError as exc:
        return Result(name, "fail", f"cannot reach {project.base}: {exc!r}")


# --- Auth ---------------------------------------------------------------------------------------
def _check_jwks(p: _Project) -> Result:
    url = f"{p.base}/auth/v1/.well-known/jwks.json"
    anon = p.settings.supabase_anon_key.get_secret_value()
    try:
        response = p.http.get(url, headers={"apikey": anon})
    except httpx.HTTPError as exc:
        return Result("jwks", "fail", f"cannot reach {url}: {exc!r}")
    if response.status_code != 200:
        return Result("jwks", "fail", f"{url} answered HTTP {response.status_code}")
    try:
        keys = [k for k in response.json().get("keys", []) if isinstance(k, dict)]
    except (ValueError, AttributeError):
        return Result("jwks", "fail", f"{url} is not a JWKS document")
    asymmetric = [k for k in keys if k.get("kty") in ASYMMETRIC_KTY]
    described = ", ".join(f"{k.get('alg', k.get('kty'))} kid={k.get('kid')}" for k in asymmetric)
    mode = p.settings.auth_mode
    if mode == "jwks" and not asymmetric:
        return Result(
            "jwks",
            "fail",
            "the project publishes no asymmetric signing keys (a legacy HS256 project): "
            "set AUTH_MODE=hs256 and SUPABASE_JWT_SECRET, or migrate the project to signing keys",
        )
    if mode == "hs256" and asymmetric:
        return Result(
            "jwks",
            "fail",
            f"the project signs with asymmetric keys ({described}): "
            "AUTH_MODE=hs256 would refuse its tokens; set AUTH_MODE=jwks",
        )
    found = described or "no asymmetric keys"
    return Result("jwks", "ok", f"AUTH_MODE={mode} matches the project's keys ({found})")


def _gateway_accepts(p: _Project, key: str) -> httpx.Response:
    return p.http.get(f"{p.base}/auth/v1/settings", headers={"apikey": key})


def _check_anon_key(p: _Project) -> Result:
    response = _gateway_accepts(p, p.settings.supabase_anon_key.get_secret_value())
    if response.status_code == 200:
        return Result("anon key", "ok", "accepted by the project's API gateway")
    return Result(
        "anon key",
        "fail",
        f"SUPABASE_ANON_KEY was refused (HTTP {response.status_code} {_message(response)})",
    )


def _check_service_key(p: _Project) -> Result:
    response = p.http.get(
        f"{p.base}/auth/v1/admin/users", params={"per_page": 1}, headers=p.headers(p.service_key)
    )
    if response.status_code == 200:
        return Result("service role key", "ok", "accepted with the service role")
    return Result(
        "service role key",
        "fail",
        f"SUPABASE_SERVICE_ROLE_KEY was refused for an admin read "
        f"(HTTP {response.status_code} {_message(response)}); is it the anon key?",
    )


def _check_issuer(p: _Project) -> Result:
    expected = f"{p.base}/auth/v1"
    source = "from SUPABASE_URL"
    discovery = p.http.get(f"{p.base}/auth/v1/.well-known/openid-configuration")
    if discovery.status_code == 200:
        try:
            expected, source = str(discovery.json()["issuer"]), "from Auth's discovery document"
        except (ValueError, KeyError, TypeError):
            pass
    configured = p.settings.jwt_issuer
    if not configured:
        return Result(
            "issuer", "fail", f"JWT_ISSUER is not set (tokens' iss is not checked): set {expected}"
        )
    if configured.rstrip("/") != expected.rstrip("/"):
        return Result(
            "issuer",
            "fail",
            f"JWT_ISSUER is {configured!r} but the project's tokens carry iss {expected!r} "
            f"({source}): every token would be refused",
        )
    return Result("issuer", "ok", f"JWT_ISSUER matches the project ({configured})")


# --- Database -----------------------------------------------------------------------------------
def _check_migrations(p: _Project) -> Result:
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
    else:
        response = p.http.get(
            f"{p.base}/rest/v1/schema_migrations",
            params={"select": "version"},
            headers=p.headers(p.service_key) | {"Accept-Profile": "supabase_migrations"},
        )
        if response.status_code != 200:
            return Result(
                "migrations",
                "skip",
                "the Data API does not expose supabase_migrations "
                f"({_message(response)}): pass --db-url (the session pooler DSN) to compare",
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


def _rpc_probe(name: str) -> Callable[[_Project], Result]:
    def probe(p: _Project) -> Result:
        return _check_rpc(p, name)

    return probe


def _check_rpc(p: _Project, name: str) -> Result:
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
    code = _code(response)
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


def _check_attestation(p: _Project) -> Result:
    secret = p.settings.billing_attestation_key.get_secret_value()
    if not secret:
        return Result("attestation key", "skip", "not configured (BILLING_ATTESTATION_KEY)")
    probe = f"chat-stream check {uuid.uuid4()}"
    right = hmac.new(secret.encode(), b"check\n" + probe.encode(), hashlib.sha256).hexdigest()
    answer = p.rpc("chat_attestation_check", {"p_probe": probe, "p_mac": right})
    if _code(answer) in ("PGRST202", "PGRST203") or answer.status_code == 404:
        return Result(
            "attestation key", "skip", "not configured (no public.chat_attestation_check)"
        )
    if answer.status_code != 200:
        return Result(
            "attestation key",
            "fail",
            f"the check answered HTTP {answer.status_code}: {_message(answer)}",
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


# --- This host ----------------------------------------------------------------------------------
def _check_outbox(p: _Project) -> Result:
    folder = p.settings.outbox_dir
    scratch = folder / f".check-{uuid.uuid4().hex}.tmp"
    try:
        folder.mkdir(parents=True, exist_ok=True)
        fd = os.open(scratch, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        try:
            os.write(fd, b"{}")
            os.fsync(fd)
        finally:
            os.close(fd)
        scratch.unlink()
    except OSError as exc:
        return Result("outbox", "fail", f"OUTBOX_DIR {folder} is not writable ({exc.strerror})")
    waiting = len(list(folder.glob("*.json")))
    return Result("outbox", "ok", f"OUTBOX_DIR {folder} is writable ({waiting} spooled turn(s))")


def _check_providers(p: _Project) -> Iterator[Result]:
    s = p.settings
    named = [(s.llm_provider, s.llm_model)]
    if s.llm_fallback_provider:
        named.append((s.llm_fallback_provider, s.llm_fallback_model or s.llm_model))
    for provider, model in named:
        label = f"provider {provider}"
        try:
            response = _one_token(p.http, s, provider, model)
        except httpx.HTTPError as exc:
            yield Result(label, "fail", f"cannot reach the provider: {exc!r}")
            continue
        key, base = (
            ("ANTHROPIC_API_KEY", "ANTHROPIC_BASE_URL")
            if provider == "anthropic"
            else ("OPENAI_API_KEY", "OPENAI_BASE_URL")
        )
        if response.status_code == 200:
            yield Result(label, "ok", f"{key} accepted (model {model})")
        elif response.status_code in (401, 403):
            yield Result(label, "fail", f"{key} was refused ({_message(response)})")
        elif response.status_code == 404 and "model" not in _message(response).lower():
            yield Result(label, "fail", f"{response.request.url} is not the API: check {base}")
        else:
            yield Result(
                label,
                "fail",
                f"model {model!r} answered HTTP {response.status_code} ({_message(response)})",
            )


def _one_token(http: httpx.Client, s: Settings, provider: str, model: str) -> httpx.Response:
    messages = [{"role": "user", "content": "ping"}]
    if provider == "anthropic":
        return http.post(
            f"{s.anthropic_base_url.rstrip('/')}/v1/messages",
            json={"model": model, "max_tokens": 1, "messages": messages},
            headers={
                "x-api-key": s.anthropic_api_key.get_secret_value(),
                "anthropic-version": s.anthropic_version,
            },
        )
    return http.post(
        f"{s.openai_base_url.rstrip('/')}/chat/completions",
        json={"model": model, "max_tokens": 1, "messages": messages},
        headers={"Authorization": f"Bearer {s.openai_api_key.get_secret_value()}"},
    )


# --- answers ------------------------------------------------------------------------------------
def _json(response: httpx.Response) -> dict[str, Any]:
    try:
        body = response.json()
    except ValueError:
        return {}
    return body if isinstance(body, dict) else {}


def _code(response: httpx.Response) -> str:
    return str(_json(response).get("code") or f"HTTP {response.status_code}")


def _message(response: httpx.Response) -> str:
    body = _json(response)
    error = body.get("error")
    if isinstance(error, dict):  # Anthropic/OpenAI: {"error": {"message": ...}}
        return str(error.get("message", ""))[:160]
    return str(body.get("message") or body.get("msg") or error or response.reason_phrase)[:160]
