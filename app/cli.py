"""`chat-stream` command line: dev, status, migrate, serve."""

from __future__ import annotations

import argparse
import json
import logging
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from app.config import Settings, get_settings

if TYPE_CHECKING:
    from app.db.migrate import Migration

logger = logging.getLogger("chat_stream")


def _cmd_migrate(args: argparse.Namespace, settings: Settings) -> int:
    from app.db.migrate import MigrationError, apply_migrations  # noqa: PLC0415
    from app.local.stack import MIGRATIONS_DIR  # noqa: PLC0415

    migrations = Path(args.dir) if args.dir else MIGRATIONS_DIR
    db_url = args.db_url or settings.database_url
    try:
        if db_url:
            applied = apply_migrations(db_url, migrations)
        else:
            applied = _migrate_local(settings)
    except MigrationError as exc:
        print(f"error: migration failed: {exc.path}:{exc.line}\n{exc.error}", file=sys.stderr)
        return 1
    for m in applied:
        print(f"applied {m.version}_{m.name}")
    print(f"{len(applied)} migration(s) applied")
    return 0


def _migrate_local(settings: Settings) -> list[Migration]:
    """Migrate the local stack's database: the running one, else start it just for this."""
    from app.db.migrate import apply_migrations  # noqa: PLC0415
    from app.local.stack import MIGRATIONS_DIR, LocalStack, read_status  # noqa: PLC0415

    status = read_status(settings.local_stack_dir)
    if status:
        return apply_migrations(status["db_url"], MIGRATIONS_DIR)
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
        for key, value in status.items():
            print(f"{key:>24}: {value}")
    return 0


def _cmd_dev(args: argparse.Namespace, settings: Settings) -> int:
    from app.local.devserver import run_dev  # noqa: PLC0415

    return run_dev(settings, print_curl=not args.quiet, print_mail=args.print_mail)


def _cmd_serve(args: argparse.Namespace, settings: Settings) -> int:
    import uvicorn  # noqa: PLC0415

    uvicorn.run(
        "app.main:create_app_from_env",
        factory=True,
        host=args.host or settings.host,
        port=args.port or settings.port,
        workers=args.workers or settings.workers,
        log_level=settings.log_level.lower(),
        proxy_headers=True,
        access_log=False,  # our JSON request line already records every request
    )
    return 0


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

    migrate = sub.add_parser("migrate", help="apply supabase/migrations to a database")
    migrate.add_argument("--db-url", help="PostgreSQL DSN (default: DATABASE_URL, else local)")
    migrate.add_argument("--dir", help="migrations folder (default: supabase/migrations)")

    serve = sub.add_parser("serve", help="run the chat-stream service (production)")
    serve.add_argument("--host")
    serve.add_argument("--port", type=int)
    serve.add_argument("--workers", type=int)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    settings = get_settings()
    logging.basicConfig(
        level=settings.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    handlers = {
        "dev": _cmd_dev,
        "status": _cmd_status,
        "migrate": _cmd_migrate,
        "serve": _cmd_serve,
    }
    started = time.perf_counter()
    code = handlers[args.command](args, settings)
    logger.debug("%s finished in %.2fs", args.command, time.perf_counter() - started)
    return code


if __name__ == "__main__":
    raise SystemExit(main())
