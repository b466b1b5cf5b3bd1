"""Run ``autopicker ingest files`` in process and read back what it stored."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from psycopg.rows import dict_row
from typer.testing import CliRunner

from autopicker.cli.app import app
from autopicker.errors import UserError
from ingest.db import Database

#: Columns that say what was loaded (lineage columns left out), as the tests compare them.
CONTENT = (
    "id, trace_id, project_id, parent_observation_id, type, name, level, status_message, environment, model, "
    "model_parameters, usage_details, cost_details, total_cost, start_time, end_time, completion_start_time, "
    "created_at, updated_at, latency, time_to_first_token, metadata, input, output"
)


@dataclass
class Run:
    exit_code: int
    stdout: str
    stderr: str

    @property
    def summary(self) -> dict[str, Any]:
        """The ``--json`` summary."""
        return json.loads(self.stdout)


def run_ingest(*args: str | Path) -> Run:
    """``autopicker ingest files ARGS`` in this process; a UserError ends as main() ends it."""
    result = CliRunner().invoke(app, ["ingest", "files", *map(str, args)])
    if isinstance(result.exception, UserError):
        return Run(result.exception.exit_code, result.stdout, result.stderr + f"error: {result.exception}\n")
    if result.exception is not None and not isinstance(result.exception, SystemExit):
        raise result.exception
    return Run(result.exit_code, result.stdout, result.stderr)


def stored(database: Database) -> dict[str, dict[str, Any]]:
    """The stored observations by id (content columns only)."""
    with database.connect() as conn, conn.cursor(row_factory=dict_row) as cur:
        rows = cur.execute(f"SELECT {CONTENT} FROM langfuse_raw.observations ORDER BY id").fetchall()
    return {r["id"]: r for r in rows}


def query(database: Database, sql: str, params: tuple[Any, ...] = ()) -> list[dict[str, Any]]:
    with database.connect() as conn, conn.cursor(row_factory=dict_row) as cur:
        return cur.execute(sql, params).fetchall()
