"""``autopicker ingest``: load Langfuse observations into schema ``langfuse_raw``.

``ingest files PATH...`` reads export files, folders and export prefixes, local or on S3
(:func:`ingest.sources.s3.ingest_paths`; its progress and summary are :mod:`autopicker.cli.progress`).
``ingest api`` reads what is new in the Langfuse API (:func:`ingest.sources.api.run_api_ingest`): this module
turns command-line values into its options, shows one progress line per observation type while pages
arrive, and prints a table of what was read and loaded. Both exit with 1 when any row was rejected (kept in
``langfuse_raw.rejected_rows``).
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime
from typing import Annotated

import typer
from rich import box
from rich.console import Console
from rich.progress import (
    Progress,
    ProgressColumn,
    SpinnerColumn,
    Task,
    TaskID,
    TextColumn,
    TimeElapsedColumn,
)
from rich.table import Table
from rich.text import Text

from autopicker.cli.console import output_console
from autopicker.clock import Clock, SystemClock
from autopicker.durations import parse_duration, parse_moment
from autopicker.errors import UsageError
from ingest import db
from ingest.sources.api import DEFAULT_OVERLAP, ApiIngestOptions, ApiIngestReport, TypeReport, run_api_ingest
from ingest.sources.langfuse_client import (
    DEFAULT_REQUESTS_PER_MINUTE,
    MAX_PAGE_SIZE,
    Credentials,
    LangfuseReader,
    RetryPolicy,
)

logger = logging.getLogger(__name__)

console = output_console()
err_console = output_console(stderr=True)


class _RowsPerSecond(ProgressColumn):
    def render(self, task: Task) -> Text:
        speed = task.finished_speed or task.speed
        return Text(f"{speed:,.0f} rows/s" if speed else "", style="progress.data.speed")


ingest_app = typer.Typer(help="Load Langfuse observations into schema langfuse_raw.", no_args_is_help=True)


@ingest_app.command("files")
def ingest_files_command(
    paths: Annotated[
        list[str],
        typer.Argument(
            metavar="PATH...",
            help="Export files, folders or blob-storage export prefixes (local, or s3://bucket/prefix/).",
            show_default=False,
        ),
    ],
    with_io: Annotated[
        bool, typer.Option("--with-io", help="Also copy input and output (prompts and answers).")
    ] = False,
    force: Annotated[
        bool, typer.Option("--force", help="Load files even if the same content was loaded before.")
    ] = False,
    latency_unit: Annotated[
        str, typer.Option("--latency-unit", help="Unit of latency in the files: auto (per row), s or ms.")
    ] = "auto",
    as_json: Annotated[bool, typer.Option("--json", help="Print the summary as JSON on stdout.")] = False,
) -> None:
    """Load Langfuse export files (JSONL, JSON, CSV, Parquet; gzipped or not) into schema langfuse_raw.

    Exit code 0 when every row loaded, 1 when a row was rejected or a file failed, 2 for a usage error.
    """
    from autopicker.cli.progress import make_reporter
    from ingest.sources.s3 import ingest_paths  # local PATHs as ingest.sources.files does, s3:// from S3

    if latency_unit not in ("auto", "s", "ms"):
        raise UsageError(f"--latency-unit must be auto, s or ms, not {latency_unit!r}.")
    reporter = make_reporter(as_json=as_json)
    result = ingest_paths(
        db.resolve, paths, reporter=reporter, with_io=with_io, force=force, latency_unit=latency_unit
    )
    reporter.summary(result)
    raise typer.Exit(result.exit_code)


@ingest_app.command("api")
def ingest_api_command(
    since: Annotated[
        str | None,
        typer.Option(
            "--since",
            help="Backfill from here: a duration back from now (7d) or an ISO date. Default: the "
            "watermark minus the overlap; 30 days back on the first run.",
        ),
    ] = None,
    until: Annotated[
        str | None,
        typer.Option("--until", help="Read up to here (exclusive), same forms as --since. Default: now."),
    ] = None,
    overlap: Annotated[
        str,
        typer.Option(
            "--overlap", help="Read again this far before the watermark, for rows that reach Langfuse late."
        ),
    ] = f"{int(DEFAULT_OVERLAP.total_seconds() // 60)}m",
    requests_per_minute: Annotated[
        int,
        typer.Option(
            "--requests-per-minute",
            min=1,
            help="Client-side request budget (Langfuse Cloud: 30 Hobby, 100 Core, 1000 Pro).",
        ),
    ] = DEFAULT_REQUESTS_PER_MINUTE,
    page_size: Annotated[
        int, typer.Option("--page-size", min=1, max=MAX_PAGE_SIZE, help="Rows per request.")
    ] = MAX_PAGE_SIZE,
    with_io: Annotated[
        bool, typer.Option("--with-io", help="Also copy input and output (prompts and answers).")
    ] = False,
    timeout: Annotated[
        float, typer.Option("--timeout", min=0.1, help="Seconds to wait for one answer before retrying.")
    ] = 60.0,
    max_retries: Annotated[
        int,
        typer.Option(
            "--max-retries", min=0, help="Retries of a request that failed for a reason that may pass."
        ),
    ] = 6,
) -> None:
    """Load EVENT and GENERATION observations from the Langfuse API, from where the last run stopped."""
    clock = SystemClock()
    now = datetime.fromtimestamp(clock.time(), UTC)
    options = ApiIngestOptions(
        since=parse_moment(since, "--since", now) if since else None,
        until=parse_moment(until, "--until", now) if until else None,
        overlap=parse_duration(overlap, "--overlap"),
        page_size=page_size,
        with_io=with_io,
    )
    credentials = Credentials.from_env()
    database = db.resolve()
    reader = LangfuseReader(
        credentials,
        clock=clock,
        requests_per_minute=requests_per_minute,
        timeout=timeout,
        retry=RetryPolicy(max_retries=max_retries),
    )
    try:
        report = ingest_with_progress(database, reader, options, clock)
    finally:
        reader.close()
    render_report(report, console)
    if report.stats.rejected:
        err_console.print(
            f"{report.stats.rejected:,} rows were rejected; they are in langfuse_raw.rejected_rows "
            f"(_batch_id {report.batch_id}).",
            highlight=False,
        )
        raise typer.Exit(1)


def ingest_with_progress(
    database: db.Database, reader: LangfuseReader, options: ApiIngestOptions, clock: Clock
) -> ApiIngestReport:
    """Run the API ingest with a progress line per type on a terminal (nothing otherwise)."""
    progress = Progress(
        SpinnerColumn(),
        TextColumn("{task.description:<11}"),
        TextColumn("{task.fields[pages]:>5,} pages"),
        TextColumn("{task.completed:>10,.0f} rows"),
        _RowsPerSecond(),
        TimeElapsedColumn(),
        console=console,
        disable=not console.is_terminal,
        transient=False,
    )
    tasks: dict[str, TaskID] = {}

    def on_page(typ: TypeReport) -> None:
        if typ.type not in tasks:
            tasks[typ.type] = progress.add_task(typ.type, total=None, pages=0)
        progress.update(tasks[typ.type], completed=typ.stats.rows_read, pages=typ.pages)

    with progress:
        return run_api_ingest(database, reader, options, clock=clock, on_page=on_page)


def render_report(report: ApiIngestReport, out: Console) -> None:
    """The summary table of one API ingest run."""
    table = Table(title=f"Langfuse API, project {report.project_id}", title_justify="left", box=box.SIMPLE)
    table.add_column("type")
    for name in ("pages", "rows read", "new", "updated", "duplicates", "rejected"):
        table.add_column(name, justify="right")
    for typ in report.types.values():
        s = typ.stats
        table.add_row(
            typ.type,
            f"{typ.pages:,}",
            f"{s.rows_read:,}",
            f"{s.inserted:,}",
            f"{s.updated:,}",
            f"{s.duplicates:,}",
            f"[red]{s.rejected:,}[/red]" if s.rejected else "0",
        )
    out.print(table)
    for typ in report.types.values():
        ranges = ", ".join(f"{_when(r.start)} to {_when(r.before)}" for r in typ.ranges) or "nothing"
        resumed = " (first the rest of an interrupted run)" if typ.resumed else ""
        out.print(f"{typ.type}: read {ranges}{resumed}; watermark {_when(typ.watermark)}.", highlight=False)
    waited = ""
    if report.budget_wait >= 1:
        waited = f", {report.budget_wait:,.0f} s waiting for the request budget"
    out.print(
        f"{report.requests:,} requests ({report.retries:,} retried){waited}; load batch {report.batch_id}.",
        highlight=False,
    )


def _when(moment: datetime | None) -> str:
    return "-" if moment is None else moment.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def register(app: typer.Typer) -> None:
    app.add_typer(ingest_app, name="ingest")
