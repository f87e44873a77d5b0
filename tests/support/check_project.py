"""Projects for `chat-stream check`: the local stack, or a bare database without the migrations."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import psycopg

from app.config import Settings
from app.local.context import StackContext
from app.local.postgres import free_port
from app.local.server import ServerThread
from app.local.stack import LocalStack, build_app
from tests.support.database import FreshDatabase, fresh_database


@dataclass
class BareProject:
    """The local stack's Auth and Data API over a database of its own."""

    url: str
    db: FreshDatabase

    def settings(self, project: Settings, **changes: object) -> Settings:
        return project.model_copy(
            update={"supabase_url": self.url, "jwt_issuer": f"{self.url}/auth/v1", **changes}
        )


# The contract of the billing migration's pre-flight function: true when p_mac is the hex
# HMAC-SHA256 of "check\n" || p_probe under the key the database holds (here, in the function).
ATTESTATION_KEY = "a-test-attestation-key-of-at-least-32-bytes"


ATTESTATION_CHECK_SQL = """
create function public.chat_attestation_check(p_probe text, p_mac text) returns boolean
language plpgsql stable as $$
declare
  k bytea := convert_to(%(key)s, 'UTF8') || decode(repeat('00', 64 - %(key_len)s), 'hex');
  ipad bytea := k; opad bytea := k;
begin
  for i in 0..63 loop
    ipad := set_byte(ipad, i, get_byte(k, i) # 54);
    opad := set_byte(opad, i, get_byte(k, i) # 92);
  end loop;
  return encode(sha256(opad || sha256(ipad || convert_to(E'check\\n' || p_probe, 'UTF8'))), 'hex')
    = p_mac;
end $$;
grant execute on function public.chat_attestation_check(text, text) to service_role;
"""


@contextmanager
def bare_project(local_stack: LocalStack, *, attestation: bool = False) -> Iterator[BareProject]:
    """A project whose database has no migrations (and, if asked, the attestation check only)."""
    with fresh_database(local_stack) as db:
        if attestation:
            with psycopg.connect(db.superuser_dsn, autocommit=True) as conn:
                key = ATTESTATION_KEY
                conn.execute(
                    ATTESTATION_CHECK_SQL.replace("%(key)s", f"'{key}'")
                    .replace("%(key_len)s", str(len(key)))
                    .encode()
                )
        port = free_port()
        ctx = StackContext(
            keys=local_stack.keys,
            api_url=f"http://127.0.0.1:{port}",
            db_port=local_stack.db_port,
            db_name=db.name,
        )
        with ServerThread(build_app(ctx), port):
            yield BareProject(ctx.api_url, db)
