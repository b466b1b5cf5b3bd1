"""`autopicker demo` run twice into one warehouse, as from cron or `make demo` (not a terminal): it replaces
its own rows instead of adding to them, says when it writes into DATABASE_URL's warehouse, and prints a few
quiet lines with no colour codes."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

from ingest.db import Database
from tests.support.cli import run_cli

pytestmark = [pytest.mark.dbt, pytest.mark.xdist_group("dbt_demo")]


def _observations(database: Database) -> tuple[int, int]:
    with database.connect() as conn:
        return conn.execute(  # type: ignore[return-value]
            "select count(*), count(*) filter (where project_id = 'other') from langfuse_raw.observations"
        ).fetchone()


def test_demo_replaces_its_rows_quietly_and_announces_the_warehouse(
    database: Database, tmp_path: Path
) -> None:
    env = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "DATABASE_URL": database.url,
        "AUTOPICKER_HOME": str(tmp_path),
    }

    def demo() -> subprocess.CompletedProcess[str]:
        done = run_cli("demo", "--requests", "40", "--days", "1", "--limit", "1", env=env)
        assert done.returncode == 0, done.stdout + done.stderr
        return done

    first = demo()
    counts = _observations(database)
    with database.connect() as conn:  # a row of another project, which the demo must leave alone
        conn.execute("create temp table other as select * from langfuse_raw.observations limit 1")
        conn.execute("update other set id = 'other-1', project_id = 'other'")
        conn.execute("insert into langfuse_raw.observations select * from other")
        conn.commit()
    second = demo()

    assert _observations(database) == (counts[0] + 1, 1)
    for done in (first, second):
        output = done.stdout + done.stderr
        assert done.stderr.startswith("note: DATABASE_URL is set, so the demo writes simulated rows")
        assert "\x1b[" not in output
        assert "Running with dbt" not in output  # dbt's own log stays quiet
        assert len(output.splitlines()) < 80, output
    assert f"replacing the {counts[0]:,} observations of the previous demo" in second.stdout
