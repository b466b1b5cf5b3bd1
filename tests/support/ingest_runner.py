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
from autopicker.export_row import LOADED
from ingest.db import Database

#: Columns that say what was loaded (lineage columns left out), as the tests compare them.
CONTENT = ", ".join(f.column for f in LOADED if f.column is not None)


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
