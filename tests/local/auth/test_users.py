"""User JSON for rows written straight into `auth.users` by SQL (NULL timestamps)."""

from __future__ import annotations

import uuid

import httpx
import psycopg

from app.local.keys import DEFAULT_SECRET_KEY
from app.local.server import ServerThread
from app.local.stack import LocalStack


def test_admin_list_users_with_a_sql_inserted_user_without_timestamps_is_200(
    local_stack: LocalStack, stack_server: ServerThread
) -> None:
    user_id = uuid.uuid4()
    with psycopg.connect(local_stack.pg.superuser_dsn) as conn:
        conn.execute(
            "insert into auth.users (id, aud, role, email) values (%s, 'authenticated',"
            " 'authenticated', %s)",
            (user_id, f"sql-{user_id.hex[:10]}@example.com"),
        )

    res = httpx.get(
        f"{stack_server.url}/auth/v1/admin/users/{user_id}", headers={"apikey": DEFAULT_SECRET_KEY}
    )
    listed = httpx.get(
        f"{stack_server.url}/auth/v1/admin/users",
        params={"per_page": 1000},
        headers={"apikey": DEFAULT_SECRET_KEY},
    )

    assert res.status_code == 200
    assert res.json()["created_at"] == "0001-01-01T00:00:00Z"
    assert listed.status_code == 200
