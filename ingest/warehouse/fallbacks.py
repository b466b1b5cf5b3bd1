"""``autopicker fallbacks``: the Fallback Tracking guide's Python Examples 1 and 2 as a command.

It fetches the fallback events (``rate_limit_fallback`` and ``context_length_fallback``) of a time window,
either from the Langfuse API (the v2 observations endpoint through the SDK, filtered by type ``EVENT`` and
by name, with the same retries and request budget as ``ingest api``) or from the warehouse
(``langfuse_raw.observations``), and counts them by fallback type and original -> fallback model. Metadata
values are read as the warehouse stores them: SDK v5's JSON-encoded strings are decoded, a missing model is
``unknown`` (as in the guide's ``.get(..., 'unknown')``).
"""

from __future__ import annotations

import logging
from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from autopicker.errors import UserError
from ingest.db import Database
from ingest.normalize import natural_value
from ingest.readers import BadRow
from ingest.sources.langfuse_client import MAX_PAGE_SIZE, LangfuseReader

logger = logging.getLogger(__name__)

FALLBACK_NAMES = ("rate_limit_fallback", "context_length_fallback")
UNKNOWN = "unknown"

Key = tuple[str, str, str]  # (fallback type, original model, fallback model)


@dataclass
class FallbackCounts:
    """Fallback events of a window counted by type and model pair."""

    source: str
    since: datetime
    until: datetime
    counts: Counter[Key] = field(default_factory=Counter)
    #: Events the API returned that could not be read (malformed rows).
    unreadable: int = 0

    def total(self, name: str | None = None) -> int:
        return sum(n for key, n in self.counts.items() if name is None or key[0] == name)


def from_api(reader: LangfuseReader, since: datetime, until: datetime) -> FallbackCounts:
    """Count the window's fallback events as the Langfuse API returns them."""
    result = FallbackCounts(f"the Langfuse API at {reader.credentials.base_url}", since, until)
    for name in FALLBACK_NAMES:
        cursor: str | None = None
        while True:
            page = reader.observations_page(
                fields="core,basic,metadata",
                limit=MAX_PAGE_SIZE,
                cursor=cursor,
                type="EVENT",
                name=name,
                from_start_time=since,
                to_start_time=until,
            )
            for row in page.rows:
                if isinstance(row, BadRow):
                    result.unreadable += 1
                    continue
                metadata = row.get("metadata") or {}
                pair = (_model(metadata, "original_model"), _model(metadata, "fallback_model"))
                result.counts[(name, *pair)] += 1
            if page.cursor is None:
                break
            cursor = page.cursor
    return result


def from_warehouse(database: Database, since: datetime, until: datetime) -> FallbackCounts:
    """Count the window's fallback events loaded into ``langfuse_raw.observations``."""
    result = FallbackCounts(f"the warehouse at {database.redacted()}", since, until)
    with database.connect() as conn:
        # A reading command creates nothing: a database never loaded is said to be one, not reported empty.
        if conn.execute("select to_regclass('langfuse_raw.observations')").fetchone() == (None,):
            raise UserError(
                f"The warehouse at {database.redacted()} holds no Langfuse data yet (no table"
                " langfuse_raw.observations): load some with `autopicker ingest` first."
            )
        rows = conn.execute(
            """
            SELECT name,
                   coalesce(nullif(metadata->>'original_model', ''), %(unknown)s),
                   coalesce(nullif(metadata->>'fallback_model', ''), %(unknown)s),
                   count(*)
            FROM langfuse_raw.observations
            WHERE type = 'EVENT' AND name = ANY(%(names)s)
              AND start_time >= %(since)s AND start_time < %(until)s
            GROUP BY 1, 2, 3
            """,
            {"names": list(FALLBACK_NAMES), "since": since, "until": until, "unknown": UNKNOWN},
        ).fetchall()
    for name, original, fallback, count in rows:
        result.counts[(name, original, fallback)] += int(count)
    return result


def _model(metadata: dict[str, Any], key: str) -> str:
    value = natural_value(metadata.get(key))
    if value is None or value == "":
        return UNKNOWN
    return value if isinstance(value, str) else str(value)
