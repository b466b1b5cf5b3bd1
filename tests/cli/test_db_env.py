"""``autopicker db env``: the libpq variables as shell exports, never the password."""

from __future__ import annotations

import pytest
from typer.testing import CliRunner

from autopicker.cli.app import app


def test_db_env_prints_exports_without_the_password(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DATABASE_URL", "postgresql://reader:s3cret@127.0.0.1:6543/warehouse")
    result = CliRunner().invoke(app, ["db", "env"])
    assert result.exit_code == 0
    assert result.stdout.splitlines() == [
        "export PGHOST=127.0.0.1",
        "export PGPORT=6543",
        "export PGUSER=reader",
        "export PGDATABASE=warehouse",
    ]
    assert "s3cret" not in result.stdout + result.stderr
    assert "PGPASSWORD is not printed" in result.stderr
