"""A database error that ends a file's load is told for what it is: a lost connection only when the connection
is really gone (the server ended the session), and anything else (a cancelled statement, a full disk) by its
own cause. Each case is made by PostgreSQL itself, in a trigger on the table the load writes."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from ingest.db import Database
from tests.support.ingest_runner import query, run_ingest, stored

#: Each body runs in the ingest's own session as it writes the file's first row.
FAILURES = {
    "cancelled": "PERFORM pg_cancel_backend(pg_backend_pid()); PERFORM pg_sleep(30);",
    "terminated": "PERFORM pg_terminate_backend(pg_backend_pid()); PERFORM pg_sleep(30);",
    "disk full": "RAISE 'could not extend file: No space left on device' USING ERRCODE = 'disk_full';",
}


def _export(path: Path, oid: str) -> Path:
    row = {"id": oid, "trace_id": "t", "type": "EVENT", "start_time": "2026-11-24 10:00:00.000000"}
    path.write_text(json.dumps(row) + "\n", encoding="utf-8")
    return path


@pytest.mark.parametrize(
    ("failure", "message"),
    [
        (
            "cancelled",
            "Loading {path} failed in the database: the statement was cancelled (canceling statement due to "
            "user request); nothing from it was stored.",
        ),
        (
            "disk full",
            "Loading {path} failed in the database: the database server is out of disk space (could not "
            "extend file: No space left on device); nothing from it was stored.",
        ),
        (
            "terminated",
            "Lost the database connection while loading {path}: terminating connection due to administrator "
            "command",
        ),
    ],
    ids=["cancelled", "disk full", "terminated"],
)
def test_only_a_lost_connection_is_called_one(
    cli_env: Database, tmp_path: Path, failure: str, message: str
) -> None:
    # Every OperationalError, a cancelled statement or a full disk too, was once "Lost the database
    # connection".
    assert run_ingest(_export(tmp_path / "first.jsonl", "a1")).exit_code == 0
    with cli_env.connect(autocommit=True) as conn:
        conn.execute(
            "CREATE FUNCTION fail_the_load() RETURNS trigger LANGUAGE plpgsql "
            f"AS $$ BEGIN {FAILURES[failure]} RETURN NEW; END $$"
        )
        conn.execute(
            "CREATE TRIGGER fail BEFORE INSERT ON langfuse_raw.observations "
            "FOR EACH ROW EXECUTE FUNCTION fail_the_load()"
        )
    path = _export(tmp_path / "second.jsonl", "b1")
    run = run_ingest(path)
    assert run.exit_code == 1
    errors = [line for line in run.stderr.splitlines() if line.startswith("error: ")]
    assert len(errors) == 1
    assert errors[0].removeprefix("error: ").startswith(message.format(path=path)), errors
    assert "Traceback" not in run.stderr
    assert set(stored(cli_env)) == {"a1"}
    assert query(cli_env, "SELECT count(*) AS n FROM langfuse_raw.loaded_files")[0]["n"] == 1
