"""`chat-stream check` against the real local stack: healthy, then one misconfiguration each."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest
from pydantic import SecretStr

from app.config import ConfigError, Settings
from app.db.migrate import default_migrations_dir
from app.local.postgres import free_port
from app.local.server import ServerThread
from app.local.stack import LocalStack
from app.ops.check import Result, collect, expected_parameters, run_checks
from tests.deploy.serving import CLI, stack_env
from tests.support.check_project import ATTESTATION_KEY, bare_project

pytestmark = pytest.mark.slow


def results(settings: Settings, **options: object) -> dict[str, Result]:
    return {r.name: r for r in collect(settings, **options)}  # type: ignore[arg-type]


def failed(settings: Settings, **options: object) -> dict[str, str]:
    return {r.name: r.detail for r in results(settings, **options).values() if r.status == "fail"}


def change(settings: Settings, **changes: object) -> Settings:
    return settings.model_copy(update=changes)


def test_check_healthy_project_passes_every_check(
    project: Settings, local_stack: LocalStack, capsys: pytest.CaptureFixture[str]
) -> None:
    code = run_checks(project, db_url=local_stack.ctx.db_url, provider=True)

    out = capsys.readouterr().out.splitlines()
    assert code == 0
    by_name = {line.split(":")[0][5:]: line[:4].strip() for line in out}
    assert by_name == {
        "signing keys": "ok",
        "publishable key": "ok",
        "secret key": "ok",
        "issuer": "ok",
        "migrations": "ok",
        "rpc chat_begin": "ok",
        "rpc chat_finish": "ok",
        "rpc chat_renew": "ok",
        "attestation key": "ok",
        "outbox": "ok",
        "provider anthropic": "ok",
    }


def test_check_migrations_without_db_url_fail_as_not_verified(project: Settings) -> None:
    migrations = results(project)["migrations"]
    assert migrations.status == "fail"
    assert migrations.detail.startswith("not verified: DATABASE_URL is not set")
    assert "pass --db-url" in migrations.detail and "--skip-migrations" in migrations.detail


def test_check_migrations_without_db_url_skipped_on_request(project: Settings) -> None:
    migrations = results(project, skip_migrations=True)["migrations"]
    assert migrations.line() == "skip migrations: not verified (--skip-migrations)"


def test_check_cli_without_database_url_exits_one_unless_told_to_skip_migrations(
    local_stack: LocalStack, stack_server: ServerThread, tmp_path: Path
) -> None:
    # At INFO, so a library's line (httpx writes one per request) would show up among the checks.
    env = stack_env(local_stack, tmp_path, LOG_LEVEL="INFO")
    env.pop("DATABASE_URL", None)

    def check(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [CLI, "check", *args],
            cwd=tmp_path,
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
        )

    unverified, skipped = check(), check("--skip-migrations")

    assert unverified.returncode == 1
    assert [line for line in unverified.stdout.splitlines() if line.startswith("fail")] == [
        next(line for line in unverified.stdout.splitlines() if line.startswith("fail migrations"))
    ]
    assert "fail migrations: not verified" in unverified.stdout
    assert skipped.returncode == 0, skipped.stdout
    assert "skip migrations: not verified (--skip-migrations)" in skipped.stdout.splitlines()
    for run in (unverified, skipped):
        assert run.stderr == ""  # nothing but the checks: no library lines among them
        assert all(line[:5] in ("ok   ", "fail ", "skip ") for line in run.stdout.splitlines())


def test_check_provider_is_not_tried_without_the_flag(project: Settings) -> None:
    assert results(project)["provider"].line() == (
        "skip provider: not tried (pass --provider; it may cost a token)"
    )


@pytest.mark.parametrize(
    ("changes", "name", "message"),
    [
        (
            {"supabase_anon_key": SecretStr("not-the-anon-key")},
            "publishable key",
            "SUPABASE_ANON_KEY (not-th…) was refused (HTTP 401 Invalid API key)",
        ),
        (
            {"supabase_service_role_key": "<anon>"},
            "secret key",
            "SUPABASE_SERVICE_ROLE_KEY (eyJhbG…) was refused for an admin read (HTTP 403",
        ),
        (
            {"jwt_issuer": "https://another.supabase.co/auth/v1"},
            "issuer",
            "JWT_ISSUER is 'https://another.supabase.co/auth/v1' but the project's tokens carry",
        ),
        ({"jwt_issuer": ""}, "issuer", "JWT_ISSUER is not set (tokens' iss is not checked)"),
        (
            {"auth_mode": "hs256", "supabase_jwt_secret": SecretStr("s" * 40)},
            "signing keys",
            "AUTH_MODE=hs256 refuses every token signed now: set AUTH_MODE=rotation",
        ),
        (
            {"outbox_dir": "<under a file>"},
            "outbox",
            "is not writable (Not a directory)",
        ),
    ],
    ids=["anon key", "service key is the anon key", "issuer", "no issuer", "hs256", "outbox"],
)
def test_check_misconfiguration_fails_its_check_with_one_line(
    project: Settings,
    local_stack: LocalStack,
    tmp_path: Path,
    changes: dict[str, object],
    name: str,
    message: str,
) -> None:
    if changes.get("supabase_service_role_key") == "<anon>":
        changes["supabase_service_role_key"] = SecretStr(local_stack.keys.anon_key)
    if changes.get("outbox_dir") == "<under a file>":
        (tmp_path / "file").write_text("")
        changes["outbox_dir"] = tmp_path / "file" / "outbox"

    problems = failed(change(project, **changes))

    assert name in problems
    assert message in problems[name]
    assert "\n" not in problems[name]


def test_check_unreachable_project_fails_signing_keys_with_the_url(project: Settings) -> None:
    url = f"http://127.0.0.1:{free_port()}"
    problems = failed(change(project, supabase_url=url, jwt_issuer=f"{url}/auth/v1"))
    assert problems["signing keys"].startswith(f"cannot reach {url}/auth/v1/.well-known/jwks.json")
    assert set(problems) >= {"signing keys", "publishable key", "rpc chat_begin"}


def test_check_migrations_missing_from_the_database_fail_with_the_versions(
    project: Settings, local_stack: LocalStack
) -> None:
    with bare_project(local_stack) as bare:
        problems = failed(bare.settings(project), db_url=bare.db.dsn)
    count = len(list(default_migrations_dir().glob("*.sql")))
    assert problems["migrations"].startswith(f"{count} of {count} not applied (")
    assert "`supabase db push` or `chat-stream migrate --db-url <DSN>`" in problems["migrations"]
    assert problems["rpc chat_begin"].startswith("public.chat_begin(")
    assert "not found by the Data API (PGRST202): migrations missing?" in problems["rpc chat_begin"]


def test_check_migrations_wrong_database_password_is_one_line(
    project: Settings, local_stack: LocalStack
) -> None:
    dsn = local_stack.pg.dsn("postgres", "wrong-password", "postgres")
    problems = failed(project, db_url=dsn)
    assert "refused user 'postgres': password authentication failed" in problems["migrations"]
    assert "--db-url" in problems["migrations"] and "wrong-password" not in problems["migrations"]


def test_check_attestation_key_the_database_holds_passes_and_another_fails(
    project: Settings, local_stack: LocalStack
) -> None:
    with bare_project(local_stack, attestation=True) as bare:
        right = results(bare.settings(project, billing_attestation_key=SecretStr(ATTESTATION_KEY)))
        wrong = results(bare.settings(project, billing_attestation_key=SecretStr("x" * 40)))
    assert right["attestation key"].line() == (
        "ok   attestation key: the database accepts BILLING_ATTESTATION_KEY"
    )
    assert wrong["attestation key"].status == "fail"
    assert wrong["attestation key"].detail.startswith(
        "the database does not hold BILLING_ATTESTATION_KEY"
    )


def test_check_attestation_without_the_function_is_skipped_as_not_configured(
    project: Settings, local_stack: LocalStack
) -> None:
    with bare_project(local_stack) as bare:
        keyed = bare.settings(project, billing_attestation_key=SecretStr(ATTESTATION_KEY))
        attestation = results(keyed)["attestation key"]
    assert attestation.line() == (
        "skip attestation key: not configured (no public.chat_attestation_check)"
    )


def test_check_provider_at_a_wrong_base_url_fails_naming_the_setting(
    project: Settings, stack_server: ServerThread
) -> None:
    wrong = change(project, anthropic_base_url=stack_server.url)  # the gateway, not /llm
    problems = failed(wrong, provider=True)
    assert problems["provider anthropic"].endswith("is not the API: check ANTHROPIC_BASE_URL")


def test_check_setting_serve_needs_is_a_config_error_before_any_probe(project: Settings) -> None:
    with pytest.raises(ConfigError, match="SUPABASE_SECRET_KEY is not set"):
        list(collect(change(project, supabase_service_role_key=SecretStr(""))))


def test_expected_parameters_are_read_from_the_last_definition_in_the_migrations() -> None:
    names = [name for name, _ in expected_parameters(default_migrations_dir(), "chat_finish")]
    assert names[:1] and all(name.startswith("p_") for name in names)


def test_check_cli_exit_status_zero_when_healthy_one_on_a_failure(
    local_stack: LocalStack, stack_server: ServerThread, tmp_path: Path
) -> None:
    env = stack_env(local_stack, tmp_path, DATABASE_URL=local_stack.ctx.db_url)
    healthy = subprocess.run(
        [CLI, "check"], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120
    )
    broken = subprocess.run(
        [CLI, "check"],
        cwd=tmp_path,
        env=env | {"JWT_ISSUER": "https://another.supabase.co/auth/v1"},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert healthy.returncode == 0, healthy.stdout + healthy.stderr
    assert len(healthy.stdout.splitlines()) == 11 and "Traceback" not in healthy.stderr
    assert broken.returncode == 1
    assert [line for line in broken.stdout.splitlines() if line.startswith("fail")] == [
        "fail issuer: JWT_ISSUER is 'https://another.supabase.co/auth/v1' but the project's"
        f" tokens carry iss '{local_stack.ctx.jwt_issuer}' (from SUPABASE_URL): every token"
        " would be refused"
    ]
