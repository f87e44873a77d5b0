"""Demo data never touches real data: where a seed may be loaded and what it may remove.

`scripts/seed_usage.py` writes thousands of fake users and usage rows. It loads them into the
running local stack (`make run`), never into `DATABASE_URL` (that is how operators point the
service at production). Any other database needs `--db-url` *and* `--allow-non-local`, and
even then `check_only_seeded_users` refuses one that holds a single user the seed did not
make. `remove_seeded` (`--truncate`) deletes only the seed's own rows.

The mark: every generated `auth.users` row carries `raw_app_meta_data ->> 'seeded_by' =
SEED_MARKER`, and every generated conversation, message and usage row belongs to such a user.
App metadata is written only by the service role (users can change their *user* metadata,
never their app metadata), so no real user can carry the mark.
"""

from __future__ import annotations

import psycopg
from psycopg import sql
from psycopg.conninfo import conninfo_to_dict

from app.analytics.seed import SEED_MARKER, SeedError

# Children first: each table's seeded rows are those of seeded users.
_SEEDED_TABLES = ("usage_logs", "messages", "conversations")


class SeedRefused(SeedError):
    """The seed may not write to this database (not the local stack, or it holds real users)."""


def _where(dsn: str) -> tuple[str, str, str]:
    parts = conninfo_to_dict(dsn)
    host = str(parts.get("host") or "localhost")
    host = "127.0.0.1" if host in ("localhost", "::1") else host
    return host, str(parts.get("port") or "5432"), str(parts.get("dbname") or parts.get("user"))


def same_database(dsn: str, other: str | None) -> bool:
    """Whether two DSNs name the same database (host, port and database name)."""
    return other is not None and _where(dsn) == _where(other)


def check_target(dsn: str, local_dsn: str | None, *, allow_non_local: bool) -> bool:
    """Whether `dsn` is the local stack's database; refuse any other without `allow_non_local`."""
    if same_database(dsn, local_dsn):
        return True
    if not allow_non_local:
        raise SeedRefused(
            "refusing to load demo data into a database that is not the running local stack: "
            "pass --allow-non-local as well (it must hold no users but seeded ones)"
        )
    return False


def real_users(conn: psycopg.Connection) -> int:
    """Users in `auth.users` the seed did not make."""
    row = conn.execute(
        "select count(*) from auth.users"
        " where coalesce(raw_app_meta_data ->> 'seeded_by', '') <> %(marker)s",
        {"marker": SEED_MARKER},
    ).fetchone()
    return int(row[0]) if row else 0


def check_only_seeded_users(conn: psycopg.Connection) -> None:
    """Refuse a database holding any user the seed did not make."""
    count = real_users(conn)
    if count:
        raise SeedRefused(
            f"refusing to load demo data: this database holds {count:,} user(s) the seed did not "
            "make, so it may be a real project"
        )


def remove_seeded(conn: psycopg.Connection) -> None:
    """Delete the seed's rows (its users' usage, messages, conversations, then the users).

    Nobody else's rows: every statement is limited to users carrying the seed's mark.
    """
    for table in _SEEDED_TABLES:
        statement = sql.SQL(
            "delete from {} where user_id in (select id from auth.users"
            " where raw_app_meta_data ->> 'seeded_by' = %(marker)s)"
        )
        conn.execute(statement.format(sql.Identifier("public", table)), {"marker": SEED_MARKER})
    conn.execute(
        "delete from auth.users where raw_app_meta_data ->> 'seeded_by' = %(marker)s",
        {"marker": SEED_MARKER},
    )
