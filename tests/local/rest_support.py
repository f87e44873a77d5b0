"""Helpers for the REST stand-in tests: users with tokens, supabase-py clients, a second stack.

Users are inserted into `auth.users` directly (the trigger creates `public.users`) and tokens are
minted with the stack's keys, so these tests do not depend on the Auth stand-in.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

import httpx
import psycopg
from psycopg import sql

from app.local.migrate import apply_migrations, ensure_bootstrap
from app.local.postgres import LOCAL_PASSWORD, free_port
from app.local.server import ServerThread
from app.local.stack import LocalStack, StackContext, build_app
from supabase import AsyncClient, AsyncClientOptions, Client, ClientOptions, acreate_client
from supabase import create_client as create_sync_client
from tests.conftest import MIGRATIONS


@dataclass(frozen=True)
class User:
    id: str
    token: str

    @property
    def bearer(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"}


def make_user(local_stack: LocalStack, superuser_dsn: str | None = None) -> User:
    """A confirmed auth user (and its `public.users` profile) plus an access token."""
    user_id = str(uuid.uuid4())
    with psycopg.connect(superuser_dsn or local_stack.pg.superuser_dsn, autocommit=True) as conn:
        conn.execute(
            "insert into auth.users (id, aud, role, email, email_confirmed_at, created_at)"
            " values (%s, 'authenticated', 'authenticated', %s, now(), now())",
            [user_id, f"{user_id}@example.com"],
        )
    token = local_stack.keys.user_access_token(
        user_id=user_id, issuer=local_stack.ctx.jwt_issuer, email=f"{user_id}@example.com"
    )
    return User(user_id, token)


async def async_client(
    url: str,
    local_stack: LocalStack,
    http: httpx.AsyncClient,
    *,
    token: str | None = None,
    key: str | None = None,
) -> AsyncClient:
    """supabase-py's async client as a server uses it: no session, no refresh timer."""
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    options = AsyncClientOptions(
        headers=headers,
        auto_refresh_token=False,
        persist_session=False,
        httpx_client=http,
        postgrest_client_retry=False,
    )
    return await acreate_client(url, key or local_stack.keys.anon_key, options=options)


def sync_client(
    url: str,
    local_stack: LocalStack,
    http: httpx.Client,
    *,
    token: str | None = None,
    key: str | None = None,
) -> Client:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    options = ClientOptions(
        headers=headers,
        auto_refresh_token=False,
        persist_session=False,
        httpx_client=http,
        postgrest_client_retry=False,
    )
    return create_sync_client(url, key or local_stack.keys.anon_key, options=options)


@dataclass
class StatusLog:
    """httpx response hook: the statuses the client saw, to assert on what supabase-py hides."""

    statuses: list[int] = field(default_factory=list)

    async def __call__(self, response: httpx.Response) -> None:
        self.statuses.append(response.status_code)


@dataclass(frozen=True)
class ServedDatabase:
    name: str
    superuser_dsn: str
    dsn: str  # as `postgres`, the owner of user objects
    url: str
    ctx: StackContext


@contextmanager
def served_database(local_stack: LocalStack, setup_sql: str) -> Iterator[ServedDatabase]:
    """A migrated database on the session cluster with extra test objects, behind its own
    gateway on a free port. Keeps fixtures out of the session database's `public` schema."""
    name = f"t_{uuid.uuid4().hex[:12]}"
    admin = local_stack.pg.superuser_dsn
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(sql.SQL("create database {}").format(sql.Identifier(name)))
    superuser_dsn = local_stack.pg.dsn(dbname=name)
    dsn = local_stack.pg.dsn("postgres", LOCAL_PASSWORD, name)
    server = None
    try:
        ensure_bootstrap(superuser_dsn)
        apply_migrations(dsn, MIGRATIONS)
        with psycopg.connect(dsn, autocommit=True) as conn:
            conn.execute(setup_sql)  # type: ignore[arg-type]
        port = free_port()
        ctx = StackContext(
            keys=local_stack.keys,
            api_url=f"http://127.0.0.1:{port}",
            db_port=local_stack.db_port,
            db_name=name,
        )
        server = ServerThread(build_app(ctx), port).start()
        yield ServedDatabase(name, superuser_dsn, dsn, server.url, ctx)
    finally:
        if server is not None:
            server.stop()
        with psycopg.connect(admin, autocommit=True) as conn:
            conn.execute(sql.SQL("drop database {} with (force)").format(sql.Identifier(name)))


# Objects the RPC, wire and property tests need, created in a served_database (never in the
# session database, whose `public` tables other tests enumerate).
FIXTURE_SQL = """
create table public.items (
  id bigint generated by default as identity primary key,
  owner uuid not null default auth.uid(),
  sku text unique,
  name text not null default 'unnamed',
  qty integer not null default 0,
  price numeric(12, 4),
  tags text[] not null default '{}',
  meta jsonb,
  note text,
  doc tsvector generated always as (to_tsvector('english', coalesce(note, ''))) stored,
  created_at timestamptz not null default now()
);
alter table public.items enable row level security;
create policy "items: own rows" on public.items for all to authenticated
  using ((select auth.uid()) = owner) with check ((select auth.uid()) = owner);
grant select, insert, update, delete on public.items to authenticated, service_role;
grant usage, select on all sequences in schema public to authenticated, service_role;

create function public.add_them(a integer, b integer default 10) returns integer
  language sql immutable as $$ select a + b $$;
create function public.my_items() returns setof public.items
  language sql stable as $$ select * from public.items order by id $$;
create function public.first_item() returns public.items
  language sql stable as $$ select * from public.items order by id limit 1 $$;
create function public.squares(n integer) returns table (x integer, sq integer)
  language sql immutable as $$ select g, g * g from generate_series(1, n) g $$;
create function public.series(n integer) returns setof integer
  language sql immutable as $$ select generate_series(1, n) $$;
create function public.touch(note text) returns void
  language plpgsql as $$
  begin insert into public.items (name, note) values ('touched', note); end $$;
create function public.echo(jsonb) returns jsonb language sql immutable as $$ select $1 $$;
create function public.request_info() returns json language sql stable as $$
  select json_build_object(
    'claims', current_setting('request.jwt.claims', true)::json,
    'method', current_setting('request.method', true),
    'path', current_setting('request.path', true),
    'headers', current_setting('request.headers', true)::json,
    'role', current_user,
    'search_path', current_setting('search_path'),
    'read_only', current_setting('transaction_read_only'),
    'statement_timeout', current_setting('statement_timeout'))
$$;
-- STABLE, yet it calls a writer: only a READ ONLY transaction stops it.
create function public.sneaky_write() returns integer language plpgsql stable as $$
  begin perform public.touch('sneaky'); return 1; end $$;
create function public.fail(msg text) returns integer language plpgsql as $$
  begin raise exception '%', msg using detail = 'from fail()', hint = 'try again'; end $$;
create function public.teapot() returns integer language plpgsql as $$
  begin raise sqlstate 'PT418' using message = 'I am a teapot'; end $$;
create function public.overloaded(a integer) returns text language sql as $$ select 'int' $$;
create function public.overloaded(a text) returns text language sql as $$ select 'text' $$;
"""
