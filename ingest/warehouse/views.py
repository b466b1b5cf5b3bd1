"""The views of schema ``analytics``, read for ``autopicker show``, the demo and the report.

The views live in schema ``analytics`` (the dbt profile's target schema) and are read in one transaction, so
every view sees the same ``now()`` and the same data. Each table shows at most ``limit`` rows, in the view's
own order, and says how many more there are.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal
from typing import Any

from psycopg import sql
from psycopg.rows import dict_row

from autopicker.errors import UserError
from ingest.db import Database

logger = logging.getLogger(__name__)

SCHEMA = "analytics"

#: (view, title) in the order of the guide's queries.
VIEWS: tuple[tuple[str, str], ...] = (
    ("fallback_rate_limit_daily", "Rate-limit fallbacks per day (the guide's Query 1)"),
    ("fallback_context_length", "Context-length fallbacks (the guide's Query 2)"),
    ("fallback_all_daily", "All fallbacks per day (the guide's Query 3)"),
    ("fallback_cost_impact", "Fallback cost impact (the guide's Query 4)"),
    ("fallback_success_rate", "Fallback success rate (the guide's Query 5)"),
)


#: The five fallback views' names.
FALLBACK_VIEWS = tuple(name for name, _ in VIEWS)


def views_json(views: dict[str, list[dict[str, Any]]]) -> str:
    """One JSON object: each view's rows as a list of objects under the view's column names. Decimals are
    JSON numbers, dates and times ISO 8601 text, whichever engine the rows came from."""

    def value(cell: object) -> object:
        if isinstance(cell, Decimal):
            return float(cell)
        if isinstance(cell, datetime | date):
            return cell.isoformat()
        return cell

    return json.dumps(
        {
            name: [{column: value(cell) for column, cell in row.items()} for row in rows]
            for name, rows in views.items()
        },
        indent=2,
    )


@dataclass(frozen=True)
class ViewRows:
    """The first rows of one view and how many it has in all."""

    name: str
    title: str
    columns: list[str]
    rows: list[tuple[object, ...]]
    total: int

    @property
    def hidden(self) -> int:
        return self.total - len(self.rows)


def fetch_views(database: Database, limit: int) -> list[ViewRows]:
    """Read the first ``limit`` rows of each view; a warehouse never built is a :class:`UserError`."""
    with database.connect() as conn, conn.cursor() as cur:
        names = [name for name, _ in VIEWS]
        cur.execute(
            "select c.relname from pg_class c join pg_namespace n on n.oid = c.relnamespace"
            " where n.nspname = %s and c.relname = any(%s)",
            (SCHEMA, names),
        )
        present = {row[0] for row in cur.fetchall()}
        missing = [name for name in names if name not in present]
        if len(missing) == len(names):
            raise UserError(f"Schema {SCHEMA} has no fallback views yet: run `autopicker build` first.")
        if missing:
            raise UserError(f"Schema {SCHEMA} lacks {', '.join(missing)}: run `autopicker build` first.")
        results = []
        for name, title in VIEWS:
            view = sql.Identifier(SCHEMA, name)
            total = cur.execute(sql.SQL("select count(*) from {}").format(view)).fetchone()[0]  # type: ignore[index]
            cur.execute(sql.SQL("select * from {} limit %s").format(view), (limit,))
            columns = [column.name for column in cur.description or ()]
            results.append(ViewRows(name, title, columns, cur.fetchall(), total))
        conn.rollback()
    logger.debug("read %d views from %s", len(results), database.redacted())
    return results


def read_views(database: Database, names: Sequence[str]) -> dict[str, list[dict[str, Any]]]:
    """Every row of each view of schema ``analytics`` named, read in one transaction (one ``now()``); a view
    that does not exist is a :class:`UserError` asking for a build."""
    with database.connect() as conn, conn.cursor(row_factory=dict_row) as cur:
        cur.execute(
            "select c.relname from pg_class c join pg_namespace n on n.oid = c.relnamespace"
            " where n.nspname = %s and c.relname = any(%s)",
            (SCHEMA, list(names)),
        )
        present = {row["relname"] for row in cur.fetchall()}
        missing = [name for name in names if name not in present]
        if missing:
            raise UserError(
                f"Schema {SCHEMA} lacks {', '.join(missing)}: run `autopicker build` first."
                if len(missing) < len(names)
                else f"Schema {SCHEMA} has no views yet: run `autopicker build` first."
            )
        result = {}
        for name in names:
            cur.execute(sql.SQL("select * from {}").format(sql.Identifier(SCHEMA, name)))
            result[name] = cur.fetchall()
        conn.rollback()
    return result


def last_loaded_at(database: Database) -> datetime | None:
    """When rows were last loaded into ``langfuse_raw.observations`` (None when nothing ever was)."""
    with database.connect() as conn:
        if conn.execute("select to_regclass('langfuse_raw.observations')").fetchone() == (None,):
            return None
        row = conn.execute("select max(_loaded_at) from langfuse_raw.observations").fetchone()
        conn.rollback()
    return row[0] if row else None
