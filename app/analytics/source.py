"""Which analytics source to read: one rule for every script and notebook (`resolve_source`).

The first of these that is given wins:

1. an explicit `db_url` (a PostgreSQL DSN) or `supabase_url` (with `service_key`, else the
   settings' secret key: `SUPABASE_SECRET_KEY`, the `SUPABASE_SECRET_KEYS` default, then the
   legacy `SUPABASE_SERVICE_ROLE_KEY`, as `app.config.keys` picks it); both at once is an error;
2. `DATABASE_URL` from the settings (the environment, then `.env`);
3. `SUPABASE_URL` with that secret key from the settings;
4. the running local stack (`make run`): its database;
5. nothing: `SourceUnreachable`, saying what to pass.

Callers skip the steps they cannot use, never reorder them: the reconciliation needs SQL
(`supabase=False`), and the demo-data seed never follows the settings to a database
(`from_settings=False`: `DATABASE_URL` is how operators point the service at production).
Empty strings count as not given (notebook parameters are strings).
"""

from __future__ import annotations

from app.analytics import project
from app.analytics.sources import PostgresSource, SourceUnreachable, SupabaseSource
from app.config import Settings
from app.config.keys import secret_key


def resolve_source(
    db_url: str | None = None,
    supabase_url: str | None = None,
    service_key: str | None = None,
    *,
    settings: Settings | None = None,
    from_settings: bool = True,
    supabase: bool = True,
) -> PostgresSource | SupabaseSource:
    """The source the rule in the module docstring picks (`settings`: `project.settings()`).

    Raises `ValueError` for contradictory or incomplete arguments, `SourceUnreachable` when
    no source is given and no local stack runs.
    """
    config = settings or project.settings()
    if db_url and supabase_url:
        raise ValueError("give a database URL or a Supabase URL, not both")
    if supabase_url and not supabase:
        raise ValueError("this needs a PostgreSQL database URL, not a Supabase URL")
    if db_url:
        return PostgresSource(db_url)
    key = service_key or secret_key(config).value.get_secret_value()
    if supabase_url:
        if not key:
            raise ValueError(
                "a Supabase URL needs the project's secret key (SUPABASE_SECRET_KEY, or the "
                "legacy service role key SUPABASE_SERVICE_ROLE_KEY)"
            )
        return SupabaseSource(supabase_url, key)
    if from_settings and config.database_url:
        return PostgresSource(config.database_url)
    if from_settings and supabase and config.supabase_url and key:
        return SupabaseSource(config.supabase_url, key)
    local = project.local_database_url(config)
    if local:
        return PostgresSource(local)
    given = "a database URL" if not supabase else "a database URL or a Supabase URL"
    raise SourceUnreachable(f"no source: give {given}, or start the local stack (make run)")
