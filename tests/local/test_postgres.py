"""Both PostgreSQL sources start, take the bootstrap and the migrations, and stop cleanly."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import psycopg
import pytest

from app.db.migrate import apply_migrations
from app.local.cluster import ensure_bootstrap, prepare_local_cluster
from app.local.pg_install import PgInstall, PostgresError, machine_install, wheel_install
from app.local.postgres import EmbeddedPostgres, free_port
from tests.support.database import MIGRATIONS

INSTALLS = {"machine": machine_install, "wheel": wheel_install}


@pytest.mark.parametrize("source", ["machine", "wheel"])
def test_embedded_postgres_runs_bootstrap_and_migrations(source: str, tmp_path: Path) -> None:
    install = INSTALLS[source]()
    if install is None:
        pytest.skip(f"no {source} PostgreSQL on this machine")
    pg = EmbeddedPostgres(tmp_path / "pgdata", free_port(), install, durable=False)
    with pg:
        assert pg.startup_seconds is not None
        assert prepare_local_cluster(pg.superuser_dsn) is True
        assert apply_migrations(pg.dsn("postgres"), MIGRATIONS)
        with psycopg.connect(pg.dsn("postgres")) as conn:
            has_pgcrypto = conn.execute(
                "select exists (select 1 from pg_extension where extname = 'pgcrypto')"
            ).fetchone()
            uid = conn.execute("select gen_random_uuid()").fetchone()
        assert uid is not None
        assert has_pgcrypto == (install.has_pgcrypto,)
        assert ensure_bootstrap(pg.superuser_dsn) is False  # already shaped like Supabase
    assert not pg.running


def test_machine_binaries_are_exercised_when_present() -> None:
    """The suite must cover the machine path where it exists; CI's image has PostgreSQL 15."""
    install = machine_install()
    if Path("/usr/lib/postgresql").exists():
        assert install is not None and install.source == "machine"
        assert install.has_pgcrypto


def test_wheel_binaries_are_always_available() -> None:
    install = wheel_install()
    assert install is not None and install.source == "wheel"
    assert not install.has_pgcrypto
    assert "16" in install.version


def test_restart_keeps_data(tmp_path: Path) -> None:
    install = wheel_install()
    assert install is not None
    port = free_port()
    with EmbeddedPostgres(tmp_path / "pgdata", port, install) as pg:
        with psycopg.connect(pg.superuser_dsn, autocommit=True) as conn:
            conn.execute("create table kept (v int); insert into kept values (42)")
    with EmbeddedPostgres(tmp_path / "pgdata", port, install) as pg:
        with psycopg.connect(pg.superuser_dsn) as conn:
            assert conn.execute("select v from kept").fetchone() == (42,)


def test_data_dir_from_another_major_version_is_refused(tmp_path: Path) -> None:
    machine, wheel = machine_install(), wheel_install()
    if machine is None or wheel is None or machine.version.split()[-1][:2] == "16":
        pytest.skip("needs two different PostgreSQL majors")
    with EmbeddedPostgres(tmp_path / "pgdata", free_port(), machine):
        pass
    with pytest.raises(PostgresError, match="PG_BIN"):
        EmbeddedPostgres(tmp_path / "pgdata", free_port(), wheel).start()


@pytest.mark.skipif(os.geteuid() != 0, reason="only root hands the server to another user")
def test_wheel_binaries_inside_a_private_folder_still_start_as_root(tmp_path: Path) -> None:
    """A `mktemp -d` clone is 0700: its venv, and the wheel's binaries in it, must be reachable
    by the unprivileged user the server runs as."""
    wheel = wheel_install()
    assert wheel is not None
    private = tmp_path / "clone"
    private.mkdir(mode=0o700)
    site = wheel.bin_dir.parents[2]  # site-packages: pgserver/ and pgserver.libs (its RPATH)
    for name in ("pgserver", "pgserver.libs"):
        shutil.copytree(site / name, private / name, ignore=shutil.ignore_patterns("include"))
    install = PgInstall(private / "pgserver" / "pginstall" / "bin", "wheel")

    with EmbeddedPostgres(tmp_path / "data" / "pgdata", free_port(), install, durable=False) as pg:
        with psycopg.connect(pg.superuser_dsn) as conn:
            assert conn.execute("select 1").fetchone() == (1,)
