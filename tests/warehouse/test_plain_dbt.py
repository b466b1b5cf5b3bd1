"""Plain dbt, as docs/warehouse.md tells it: `eval "$(autopicker db env)"`, then `.venv/bin/dbt build` from
the repository, on a database no ingest has reached yet."""

from __future__ import annotations

import os
import shlex
import subprocess
import sys
from pathlib import Path

import pytest
from sqlalchemy.dialects import postgresql
from typer.testing import CliRunner

from autopicker.cli.app import app
from ingest.db import Database
from ingest.schema import RAW_SCHEMA, observations
from tests.support.cli import HANG_TIMEOUT, REPO

pytestmark = [pytest.mark.dbt, pytest.mark.xdist_group("dbt_plain")]


def _exports(text: str) -> dict[str, str]:
    env = {}
    for line in text.splitlines():
        words = shlex.split(line)
        assert words[0] == "export" and len(words) == 2, line
        name, _, value = words[1].partition("=")
        env[name] = value
    return env


def test_plain_dbt_build_works_on_a_fresh_database(cli_env: Database, tmp_path: Path) -> None:
    printed = CliRunner().invoke(app, ["db", "env"])
    assert printed.exit_code == 0, printed.output
    exports = _exports(printed.stdout)
    assert set(exports) == {"PGHOST", "PGPORT", "PGUSER", "PGDATABASE"}
    assert exports["PGDATABASE"] == cli_env.params["dbname"]

    env = {k: v for k, v in os.environ.items() if not k.startswith("PG") and k != "DATABASE_URL"}
    env |= exports | {
        "DBT_SEND_ANONYMOUS_USAGE_STATS": "false",
        "DBT_TARGET_PATH": str(tmp_path / "target"),
        "DBT_LOG_PATH": str(tmp_path / "logs"),
    }
    dbt = Path(sys.executable).with_name("dbt")
    command = [str(dbt), "build"]
    build = subprocess.run(command, cwd=REPO, env=env, capture_output=True, text=True, timeout=HANG_TIMEOUT)
    assert build.returncode == 0, build.stdout[-3000:]

    # The raw table the build created is the one the ingest declares.
    with cli_env.connect() as conn:
        columns = conn.execute(
            "select column_name, data_type, is_nullable, collation_name from information_schema.columns "
            "where table_schema = %s and table_name = 'observations' order by ordinal_position",
            (RAW_SCHEMA,),
        ).fetchall()
        views = conn.execute("select count(*) from pg_views where schemaname = 'analytics'").fetchone()
    declared = [
        (
            c.name,
            c.type.compile(dialect=postgresql.dialect()).lower().split(" collate ")[0],
            "YES" if c.nullable else "NO",
            getattr(c.type, "collation", None),
        )
        for c in observations.columns
    ]
    assert columns == declared
    assert views is not None and views[0] > 0
