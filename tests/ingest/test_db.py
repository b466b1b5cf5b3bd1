"""Database resolution: DATABASE_URL, the embedded default, and secrets kept out of output."""

from __future__ import annotations

import os
import signal
import subprocess
from pathlib import Path
from typing import Any

import pytest

from autopicker.errors import UserError
from ingest import db
from tests.support.cli import run_cli


def test_database_url_must_be_postgres(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DATABASE_URL", "mysql://root@localhost/x")
    with pytest.raises(UserError, match="postgresql://"):
        db.resolve()


def test_password_is_masked() -> None:
    database = db.Database(url="postgresql://bi:s3cret@db.example:6543/wh", embedded=False)
    assert "s3cret" not in database.redacted()
    assert database.redacted() == "postgresql://bi:***@db.example:6543/wh"
    assert database.libpq_env()["PGPASSWORD"] == "s3cret"
    assert database.libpq_env()["PGPORT"] == "6543"


def test_with_dbname_keeps_socket_host() -> None:
    database = db.Database(url="postgresql://postgres:@/postgres?host=/tmp/sock", embedded=True)
    other = database.with_dbname("other")
    assert other.params["host"] == "/tmp/sock"
    assert other.params["dbname"] == "other"


def test_cli_prints_masked_url_of_a_server_that_answers(database: db.Database) -> None:
    # the test servers trust local logins, so the password is carried but not checked
    url = db._url_from_params(database.params | {"password": "topsecret"})
    result = run_cli("db", "url", env={"PATH": "/usr/bin:/bin", "DATABASE_URL": url})
    assert result.returncode == 0, result.stderr
    assert "topsecret" not in result.stdout + result.stderr
    assert result.stdout.strip() == db.Database(url=url, embedded=False).redacted()


def test_cli_url_of_a_server_that_does_not_answer_fails_with_the_cause() -> None:
    env = {"PATH": "/usr/bin:/bin", "DATABASE_URL": "postgresql://u:topsecret@127.0.0.1:1/x"}
    result = run_cli("db", "url", env=env)
    assert result.returncode == 1
    assert result.stdout == ""
    assert result.stderr.strip() == (
        "error: Cannot connect to the database at postgresql://u:***@127.0.0.1:1/x: Connection refused"
        " (is the server running on that host and accepting TCP/IP connections?)"
    )


def test_unreachable_server_is_one_sentence() -> None:
    env = {"PATH": "/usr/bin:/bin", "DATABASE_URL": "postgresql://u:topsecret@127.0.0.1:1/x"}
    result = run_cli("build", env=env)
    assert result.returncode == 1
    assert result.stderr.startswith("error: Cannot connect to the database")
    assert "Connection refused" in result.stderr
    assert "Traceback" not in result.stderr
    assert "topsecret" not in result.stderr


def test_embedded_server_is_created_reused_and_stopped(tmp_path: Path) -> None:
    env = {"PATH": "/usr/bin:/bin", "AUTOPICKER_HOME": str(tmp_path / "home")}
    first = run_cli("db", "url", env=env)
    assert first.returncode == 0, first.stderr
    assert (tmp_path / "home" / "pgdata" / "PG_VERSION").exists()
    url = first.stdout.strip()
    assert url.startswith("postgresql://")
    try:
        with db.Database(url=url, embedded=True).connect() as conn:
            assert conn.execute("select 1").fetchone() == (1,)
        second = run_cli("db", "url", env=env)
        assert second.stdout.strip() == url
        _only_the_owner_logs_in_without_a_password(url, env)
        _url_after_the_postmaster_died(tmp_path / "home" / "pgdata", env)
    finally:
        stopped = run_cli("db", "stop", env=env)
    assert stopped.returncode == 0, stopped.stderr
    assert "stopped" in stopped.stdout
    assert not (tmp_path / "home" / "pgdata" / "postmaster.pid").exists()


def _only_the_owner_logs_in_without_a_password(url: str, env: dict[str, str]) -> None:
    owner = db.Database(url=url, embedded=True)
    with owner.connect(autocommit=True) as conn:
        conn.execute("create role reader login password 'right-pw'")
    try:
        for password in ("wrong-pw", None):
            login = owner.params | {"user": "reader"} | ({"password": password} if password else {})
            result = run_cli("show", env=env | {"DATABASE_URL": db._url_from_params(login)})
            assert result.returncode == 1
            assert result.stderr.startswith("error: Cannot connect to the database at")
            refused = 'password authentication failed for user "reader"' if password else "no password"
            assert refused in result.stderr
            assert "wrong-pw" not in result.stderr + result.stdout
        right = db._url_from_params(owner.params | {"user": "reader", "password": "right-pw"})
        with db.Database(url=right, embedded=True).connect() as conn:
            assert conn.execute("select current_user").fetchone() == ("reader",)
    finally:
        with owner.connect(autocommit=True) as conn:
            conn.execute("drop role reader")


def _url_after_the_postmaster_died(pgdata: Path, env: dict[str, str]) -> None:
    """Killed, the server must not be reported up: `db url` either brings it back (and it answers) or
    fails, never prints the URL of a server that is gone."""
    pid = int((pgdata / "postmaster.pid").read_text().splitlines()[0])
    os.kill(pid, signal.SIGKILL)
    result = run_cli("db", "url", env=env)
    if result.returncode == 0:
        with db.Database(url=result.stdout.strip(), embedded=True).connect() as conn:
            assert conn.execute("select 1").fetchone() == (1,)
    else:
        assert result.returncode == 1
        assert result.stderr.startswith("error: ") and "Traceback" not in result.stderr
        assert result.stdout == ""


@pytest.mark.filterwarnings("ignore:XDG_RUNTIME_DIR")
def test_a_start_slower_than_pgservers_own_limit_is_waited_for(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """pgserver gives pg_ctl 10 seconds to start the server, which a busy machine can exceed (a fresh initdb,
    every core taken); the server comes up anyway, and is taken over instead of the start failing (the test
    server of an xdist worker once failed so, and every test of that worker errored)."""
    import pgserver.postgres_server as postgres_server

    real = postgres_server.pg_ctl

    def slow_start(args: list[str], **kwargs: Any) -> str:
        if "start" not in args:
            return real(args, **kwargs)
        real(args, **kwargs)  # the server starts, a moment after pgserver stopped waiting for it
        raise subprocess.TimeoutExpired(["pg_ctl", *args], kwargs.get("timeout", 10))

    monkeypatch.setattr(postgres_server, "pg_ctl", slow_start)
    server = db.embedded_server(tmp_path / "pgdata", cleanup_mode="delete")
    try:
        with db.Database(url=server.get_uri(), embedded=True).connect() as conn:
            assert conn.execute("select 1").fetchone() == (1,)
    finally:
        server.cleanup()
