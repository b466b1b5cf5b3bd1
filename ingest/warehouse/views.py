"""The five fallback views, read for ``autopicker show`` and the demo.

The views live in schema ``analytics`` (the dbt profile's target schema) and are read in one transaction, so
every view sees the same ``now()`` and the same data. Each table shows at most ``limit`` rows, in the view's
own order, and says how many more there are.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

from psycopg import sql

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
