"""Database resolution: DATABASE_URL, the embedded default, and secrets kept out of output."""

from __future__ import annotations

from pathlib import Path

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


def test_cli_prints_masked_url(monkeypatch: pytest.MonkeyPatch) -> None:
    env = {"PATH": "/usr/bin:/bin", "DATABASE_URL": "postgresql://u:topsecret@127.0.0.1:1/x"}
    result = run_cli("db", "url", env=env)
    assert result.returncode == 0, result.stderr
    assert "topsecret" not in result.stdout + result.stderr
    assert "***" in result.stdout


def test_unreachable_server_is_one_sentence() -> None:
    env = {"PATH": "/usr/bin:/bin", "DATABASE_URL": "postgresql://u:topsecret@127.0.0.1:1/x"}
    result = run_cli("build", env=env)
    assert result.returncode == 1
    assert result.stderr.startswith("error: Cannot connect to the database")
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
    finally:
        stopped = run_cli("db", "stop", env=env)
    assert stopped.returncode == 0, stopped.stderr
    assert "stopped" in stopped.stdout
    assert not (tmp_path / "home" / "pgdata" / "postmaster.pid").exists()
