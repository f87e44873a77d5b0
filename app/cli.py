"""`chat-stream` command line: dev, status, keys (rotate, revoke, restore, provision), migrate,
serve, check.

A wrong or missing setting is one line naming its environment variable, then exit 2 (no
traceback): `ConfigError` from `app.config`, or a database that refuses the DSN.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from app.config import ConfigError, Settings, load_settings, require_service
from app.ops.logs import configure_logging, logging_config

if TYPE_CHECKING:
    from app.db.migrate import Migration

logger = logging.getLogger("chat_stream")


EXIT_CONFIG = 2
NO_DATABASE = (
    "is not set: it should hold the database's PostgreSQL DSN (on Supabase the session "
    "pooler's), or pass --db-url; --local migrates the local stack"
)


def _cmd_migrate(args: argparse.Namespace, settings: Settings) -> int:
    import psycopg  # noqa: PLC0415

    from app.db.migrate import (  # noqa: PLC0415
        MigrationError,
        apply_migrations,
        default_migrations_dir,
    )
    from app.db.problems import connect_problem  # noqa: PLC0415

    migrations = Path(args.dir) if args.dir else default_migrations_dir()
    db_url = args.db_url or settings.database_url
    source = "--db-url" if args.db_url else "DATABASE_URL"
    if not db_url and not args.local:
        raise ConfigError("DATABASE_URL", NO_DATABASE)
    try:
        applied = _migrate_local(settings) if args.local else apply_migrations(db_url, migrations)
    except MigrationError as exc:
        print(f"error: migration failed: {exc.path}:{exc.line}\n{exc.error}", file=sys.stderr)
        return 1
    except psycopg.OperationalError as exc:  # could not connect (or lost the connection)
        print(f"chat-stream: {connect_problem(exc, db_url, source)}", file=sys.stderr)
        return EXIT_CONFIG
    except psycopg.ProgrammingError as exc:
        if exc.sqlstate is not None:  # connected: the server refused a statement
            raise
        print(f"chat-stream: {connect_problem(exc, db_url, source)}", file=sys.stderr)
        return EXIT_CONFIG
    if db_url and not args.local:
        _provision_key(settings, db_url)
    for m in applied:
        print(f"applied {m.version}_{m.name}")
    print(f"{len(applied)} migration(s) applied")
    return 0


def _provision_key(settings: Settings, db_url: str) -> None:
    """The billing attestation key goes into private.attestation_keys, never into a file."""
    from app.db.attestation_keys import provision_attestation_key  # noqa: PLC0415
    from app.store.attestation import key_bytes  # noqa: PLC0415

    secret = settings.billing_attestation_key.get_secret_value()
    if not secret:
        print(
            "chat-stream: BILLING_ATTESTATION_KEY is not set: add the service's key to"
            " private.attestation_keys before it serves (docs/design.md §13)",
            file=sys.stderr,
        )
        return
    added = provision_attestation_key(db_url, key_bytes(secret))
    print("attestation key added" if added else "attestation key already present")


def _cmd_keys(args: argparse.Namespace, settings: Settings) -> int:
    """`keys provision` acts on a database; the others on the local stack's signing keys."""
    if args.keys_command == "provision":
        return _cmd_keys_provision(args, settings)
    return _cmd_local_signing_keys(args)


def _cmd_keys_provision(args: argparse.Namespace, settings: Settings) -> int:
    """BILLING_ATTESTATION_KEY into private.attestation_keys; without it a new key, printed once."""
    import secrets  # noqa: PLC0415

    import psycopg  # noqa: PLC0415

    from app.db.attestation_keys import provision_attestation_key  # noqa: PLC0415
    from app.db.problems import connect_problem  # noqa: PLC0415
    from app.store.attestation import key_bytes  # noqa: PLC0415

    db_url = args.db_url or settings.database_url
    source = "--db-url" if args.db_url else "DATABASE_URL"
    if not db_url:
        raise ConfigError(
            "DATABASE_URL", NO_DATABASE.removesuffix("; --local migrates the local stack")
        )
    secret = settings.billing_attestation_key.get_secret_value()
    generated = not secret
    secret = secret or secrets.token_urlsafe(48)
    try:
        added = provision_attestation_key(db_url, key_bytes(secret))
    except psycopg.OperationalError as exc:
        print(f"chat-stream: {connect_problem(exc, db_url, source)}", file=sys.stderr)
        return EXIT_CONFIG
    except psycopg.errors.UndefinedTable:
        print(
            "chat-stream: the database has no private.attestation_keys: apply the migrations"
            " first (`supabase db push` or `chat-stream migrate`)",
            file=sys.stderr,
        )
        return 1
    if generated:
        print(f"BILLING_ATTESTATION_KEY={secret}")
        print(
            "added a new attestation key: set the line above in the service's environment"
            " (it is not shown again)",
            file=sys.stderr,
        )
    else:
        print(
            f"attestation key {secret[:6]}… {'added to' if added else 'already in'}"
            " private.attestation_keys"
        )
    return 0


def _migrate_local(settings: Settings) -> list[Migration]:
    """Migrate the local stack's database: the running one, else start it just for this."""
    from app.db.migrate import apply_migrations, default_migrations_dir  # noqa: PLC0415
    from app.local.stack import LocalStack, read_status  # noqa: PLC0415

    status = read_status(settings.local_stack_dir)
    if status:
        return apply_migrations(status["db_url"], default_migrations_dir())
    stack = LocalStack(settings)
    try:
        stack.start_database()  # bootstrap + migrations
        return stack.applied
    finally:
        stack.stop_database()


def _cmd_status(args: argparse.Namespace, settings: Settings) -> int:
    from app.local.stack import read_status  # noqa: PLC0415

    status = read_status(settings.local_stack_dir)
    if status is None:
        print("chat-stream dev is not running", file=sys.stderr)
        return 1
    if args.json:
        print(json.dumps(status, indent=2))
    else:
        deprecated = set(status.get("deprecated", ()))
        for key, value in status.items():
            if key != "deprecated":
                print(f"{key:>24}: {value}" + (" (deprecated)" if key in deprecated else ""))
    return 0


def _cmd_local_signing_keys(args: argparse.Namespace) -> int:
    from app.local.keys_cli import run  # noqa: PLC0415

    return run(args)


def _cmd_dev(args: argparse.Namespace, settings: Settings) -> int:
    from app.local.devserver import run_dev  # noqa: PLC0415

    return run_dev(settings, print_curl=not args.quiet, print_mail=args.print_mail)


def _cmd_serve(args: argparse.Namespace, settings: Settings) -> int:
    import uvicorn  # noqa: PLC0415

    from app.api.protocol import PROTOCOL_PATH  # noqa: PLC0415

    require_service(settings)
    workers = args.workers or settings.workers
    _prepare_metrics_dir(settings.prometheus_multiproc_dir, workers)
    uvicorn.run(
        "app.main:create_app_from_env",
        factory=True,
        host=args.host or settings.host,
        port=args.port or settings.port,
        workers=workers,
        log_level=settings.log_level.lower(),
        # uvicorn's loggers, in the supervisor and every worker, through our JSON formatter.
        log_config=logging_config(settings.log_level, json_lines=settings.log_json),
        proxy_headers=True,
        access_log=False,  # our JSON request line already records every request
        http=PROTOCOL_PATH,  # httptools, plus a header deadline, header cap, JSON framing errors
        loop="uvloop",  # named, not "auto": without uvloop the service fails to start, not slows
        limit_concurrency=settings.max_connections_per_worker or None,
    )
    return 0


def _prepare_metrics_dir(configured: Path | None, workers: int) -> None:
    """Prometheus multiprocess mode: an empty folder every worker writes its samples to.

    Set in the environment before any worker imports prometheus_client (which picks its mode
    then). Files of a previous run are removed: their counters would be counted again.
    """
    if configured is None and workers <= 1:
        return
    folder = configured or Path(tempfile.mkdtemp(prefix="chat-stream-metrics-"))
    folder.mkdir(parents=True, exist_ok=True)
    stale = list(folder.glob("*.db"))
    for path in stale:
        path.unlink()
    os.environ["PROMETHEUS_MULTIPROC_DIR"] = str(folder)
    logger.info("Prometheus multiprocess folder %s (%d stale file(s) removed)", folder, len(stale))


def _cmd_check(args: argparse.Namespace, settings: Settings) -> int:
    from app.ops.check import run_checks  # noqa: PLC0415

    return run_checks(
        settings,
        db_url=args.db_url,
        provider=args.provider,
        migrations_dir=Path(args.dir) if args.dir else None,
        skip_migrations=args.skip_migrations,
    )


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="chat-stream",
        description="Supabase-native LLM chat streaming service and its Docker-free local stack.",
    )
    sub = parser.add_subparsers(dest="command", required=True)

    dev = sub.add_parser("dev", help="start the local stack (database, auth, rest, LLM, service)")
    dev.add_argument("--quiet", action="store_true", help="do not print the demo curl")
    dev.add_argument(
        "--print-mail", action="store_true", help="print every auth email (link and code)"
    )

    status = sub.add_parser("status", help="describe the running local stack")
    status.add_argument("--json", action="store_true", help="machine-readable output")

    keys = sub.add_parser(
        "keys",
        help="the local stack's signing keys ([auth] signing_keys_path); the attestation key",
    )
    keys_sub = keys.add_subparsers(dest="keys_command", required=True)
    keys_sub.add_parser("list", help="each key's kid, algorithm and state")
    rotate = keys_sub.add_parser("rotate", help="the standby key (else a new one) signs")
    rotate.add_argument("--standby", action="store_true", help="only add a standby key")
    rotate.add_argument("--algorithm", choices=["ES256", "RS256"], default="ES256")
    revoke = keys_sub.add_parser("revoke", help="drop a key that no longer signs")
    revoke.add_argument("kid")
    restore = keys_sub.add_parser("restore", help="undo a revoke: the key is previously used again")
    restore.add_argument("kid")
    provision = keys_sub.add_parser(
        "provision",
        help="add BILLING_ATTESTATION_KEY (or a new key, printed once) to private.attestation_keys",
    )
    provision.add_argument("--db-url", help="PostgreSQL DSN (default: DATABASE_URL)")

    migrate = sub.add_parser("migrate", help="apply supabase/migrations to a database")
    migrate.add_argument("--db-url", help="PostgreSQL DSN (default: DATABASE_URL)")
    migrate.add_argument(
        "--dir", help="migrations folder (default: the checkout's, else ./supabase/migrations)"
    )
    migrate.add_argument(
        "--local", action="store_true", help="migrate the local stack (started if not running)"
    )

    serve = sub.add_parser("serve", help="run the chat-stream service (production)")
    serve.add_argument("--host")
    serve.add_argument("--port", type=int)
    serve.add_argument("--workers", type=int)

    check = sub.add_parser("check", help="pre-flight checks against the configured project")
    check.add_argument("--db-url", help="read the migration history here (default: DATABASE_URL)")
    check.add_argument("--dir", help="migrations folder (default: supabase/migrations)")
    check.add_argument(
        "--provider", action="store_true", help="also try the provider key (may cost a token)"
    )
    check.add_argument(
        "--skip-migrations",
        action="store_true",
        help="do not fail when the migrations cannot be verified (no DATABASE_URL or --db-url)",
    )
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    handlers = {
        "dev": _cmd_dev,
        "status": _cmd_status,
        "keys": _cmd_keys,
        "migrate": _cmd_migrate,
        "serve": _cmd_serve,
        "check": _cmd_check,
    }
    started = time.perf_counter()
    try:
        settings = load_settings()
        # JSON lines where machines read them (`serve`, LOG_JSON); readable lines elsewhere.
        json_lines = args.command == "serve" and settings.log_json
        configure_logging(settings.log_level, json_lines=json_lines)
        code = handlers[args.command](args, settings)
    except ConfigError as exc:
        print(f"chat-stream: {exc}", file=sys.stderr)
        return EXIT_CONFIG
    logger.debug("%s finished in %.2fs", args.command, time.perf_counter() - started)
    return code


if __name__ == "__main__":
    raise SystemExit(main())
