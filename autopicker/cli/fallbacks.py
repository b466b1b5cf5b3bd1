"""``autopicker fallbacks``: the guide's Python Examples 1 and 2 as a command.

The counting is :mod:`ingest.warehouse.fallbacks` (from the Langfuse API or from the warehouse); this module
parses the window, picks the source and prints one row per fallback type and model pair, most frequent
first.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated

import typer
from rich import box
from rich.console import Console
from rich.table import Table

from autopicker.cli.console import output_console
from autopicker.clock import SystemClock
from autopicker.durations import parse_moment
from autopicker.errors import UsageError
from ingest import db
from ingest.sources.langfuse_client import DEFAULT_REQUESTS_PER_MINUTE, Credentials, LangfuseReader
from ingest.warehouse.fallbacks import FALLBACK_NAMES, FallbackCounts, from_api, from_warehouse


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
    """Count fallback events by type and original -> fallback model (the Fallback Tracking guide's
    Examples 1 and 2)."""
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


def register(app: typer.Typer) -> None:
    app.command("fallbacks")(fallbacks_command)
