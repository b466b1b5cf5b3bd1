"""``autopicker fallbacks``: the seed guide's Python Examples 1 and 2 as a command.

It fetches the fallback events (``rate_limit_fallback`` and ``context_length_fallback``) of a time window,
either from the Langfuse API (the v2 observations endpoint through the SDK, filtered by type ``EVENT`` and
by name, with the same retries and request budget as ``ingest api``) or from the warehouse
(``langfuse_raw.observations``), and counts them by fallback type and original -> fallback model. Metadata
values are read as the warehouse stores them: SDK v5's JSON-encoded strings are decoded, a missing model is
``unknown`` (as in the seed's ``.get(..., 'unknown')``).
"""

from __future__ import annotations

import logging
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Annotated, Any

import typer
from rich import box
from rich.console import Console
from rich.table import Table

from .db import Database
from .errors import UsageError
from .langfuse_client import DEFAULT_REQUESTS_PER_MINUTE, MAX_PAGE_SIZE, LangfuseReader
from .normalize import natural_value
from .readers import BadRow
from .terminal import output_console
from .timespec import parse_moment

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
    from .raw import ensure_raw_schema

    ensure_raw_schema(database)
    result = FallbackCounts(f"the warehouse at {database.redacted()}", since, until)
    with database.connect() as conn:
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


def render(result: FallbackCounts, out: Console) -> None:
    """Example 2's summary: one row per fallback type and model pair, most frequent first."""
    span = f"{_when(result.since)} to {_when(result.until)}"
    if not result.counts:
        out.print(f"No fallback events from {span} in {result.source}.", highlight=False)
    else:
        table = Table(title=f"Fallbacks from {span}", title_justify="left", box=box.SIMPLE)
        table.add_column("type")
        table.add_column("original model")
        table.add_column("fallback model")
        table.add_column("count", justify="right")
        order = sorted(
            result.counts.items(),
            key=lambda item: (FALLBACK_NAMES.index(item[0][0]), -item[1], item[0][1], item[0][2]),
        )
        for (name, original, fallback), count in order:
            table.add_row(name, original, f"-> {fallback}", f"{count:,}")
        out.print(table)
        per_type = ", ".join(f"{name} {result.total(name):,}" for name in FALLBACK_NAMES)
        out.print(f"{result.total():,} fallbacks ({per_type}), read from {result.source}.", highlight=False)
    if result.unreadable:
        out.print(
            f"{result.unreadable:,} fallback events could not be read (malformed rows).", highlight=False
        )


def _when(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%d %H:%M UTC")


def fallbacks_command(
    since: Annotated[
        str,
        typer.Option("--since", help="Window start: a duration back from now (30m, 24h, 7d) or an ISO date."),
    ] = "24h",
    until: Annotated[
        str | None,
        typer.Option("--until", help="Window end (exclusive), same forms as --since. Default: now."),
    ] = None,
    source: Annotated[
        str | None,
        typer.Option(
            "--from",
            help="api (the Langfuse API) or warehouse (what was loaded). Default: api when "
            "LANGFUSE_PUBLIC_KEY and LANGFUSE_SECRET_KEY are set, else warehouse.",
            show_default=False,
        ),
    ] = None,
    requests_per_minute: Annotated[
        int, typer.Option("--requests-per-minute", min=1, help="Client-side request budget for --from api.")
    ] = DEFAULT_REQUESTS_PER_MINUTE,
) -> None:
    """Count fallback events by type and original -> fallback model (the seed's Examples 1 and 2)."""
    from router.clock import SystemClock

    from . import db
    from .langfuse_client import Credentials

    clock = SystemClock()
    now = datetime.fromtimestamp(clock.time(), UTC)
    start = parse_moment(since, "--since", now)
    end = parse_moment(until, "--until", now) if until else now
    if start >= end:
        raise UsageError("--since must be before --until.")
    chosen = source or ("api" if Credentials.present() else "warehouse")
    if chosen == "api":
        reader = LangfuseReader(Credentials.from_env(), clock=clock, requests_per_minute=requests_per_minute)
        try:
            result = from_api(reader, start, end)
        finally:
            reader.close()
    elif chosen == "warehouse":
        result = from_warehouse(db.resolve(), start, end)
    else:
        raise UsageError(f"--from must be api or warehouse, not {chosen!r}.")
    render(result, output_console())
