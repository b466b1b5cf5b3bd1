"""The five fallback views as terminal tables: what ``autopicker show`` prints.

The views live in schema ``analytics`` (the dbt profile's target schema) and are read in one transaction, so
every view sees the same ``now()`` and the same data. Each table shows at most ``limit`` rows, in the view's
own order, and says how many more there are.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal

from psycopg import sql
from rich.console import Console
from rich.table import Table

from .db import Database
from .errors import UserError

logger = logging.getLogger(__name__)

SCHEMA = "analytics"

#: (view, title) in the seed guide's order.
VIEWS: tuple[tuple[str, str], ...] = (
    ("fallback_rate_limit_daily", "Rate-limit fallbacks per day (seed Query 1)"),
    ("fallback_context_length", "Context-length fallbacks (seed Query 2)"),
    ("fallback_all_daily", "All fallbacks per day (seed Query 3)"),
    ("fallback_cost_impact", "Fallback cost impact (seed Query 4)"),
    ("fallback_success_rate", "Fallback success rate (seed Query 5)"),
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


def _cell(value: object) -> str:
    if value is None:
        return "—"
    if isinstance(value, Decimal):
        return format(value, "f")
    if isinstance(value, datetime | date):
        return value.isoformat()
    return str(value)


def _is_number(rows: Sequence[tuple[object, ...]], index: int) -> bool:
    return any(isinstance(row[index], int | float | Decimal) for row in rows)


def render_views(results: Sequence[ViewRows], console: Console) -> None:
    """Print each view as a table, with a line for the rows left out."""
    for result in results:
        table = Table(title=f"{result.title}\n[dim]{SCHEMA}.{result.name}[/dim]", title_justify="left")
        for index, column in enumerate(result.columns):
            table.add_column(column, justify="right" if _is_number(result.rows, index) else "left")
        for row in result.rows:
            table.add_row(*(_cell(value) for value in row))
        console.print(table)
        if result.hidden > 0:
            console.print(f"… {result.hidden} more rows", style="dim", highlight=False)
        elif result.total == 0:
            console.print("(no rows)", style="dim", highlight=False)
    if results and all(result.total == 0 for result in results):
        console.print("The warehouse has no fallbacks in the reporting window: the five views are empty.")
