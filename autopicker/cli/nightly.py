"""``autopicker nightly``: the unattended job. Ingest every source, then ``dbt build``, then ``dbt source
freshness``, then the report (``--no-report`` leaves it out), under the warehouse's nightly lock
(:mod:`ingest.warehouse.nightly` holds the configuration and the lock; docs/nightly.md the rules).

Every step runs even when an earlier one failed (a failed ingest still leaves the warehouse consistent, and
the build then covers what did load; freshness says how stale the data is); the summary table lists each
step, and the exit code is 1 when any step failed or rejected rows, 0 otherwise.
"""

from __future__ import annotations

import functools
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich import box
from rich.console import Console
from rich.table import Table

from autopicker.cli.console import output_console
from autopicker.clock import SystemClock
from autopicker.errors import UserError
from ingest import db
from ingest.warehouse.nightly import (
    CONFIG_ENV,
    SOURCES_ENV,
    ApiSettings,
    NightlyConfig,
    load_config,
    nightly_lock,
)

if TYPE_CHECKING:
    from ingest.sources.files import FileResult

console = output_console()
err_console = output_console(stderr=True)


@dataclass
class Step:
    """One step of the job and how it went: status is ok, warn (a data test or freshness check warned;
    not a failure), rejected rows or failed."""

    name: str
    status: str = "ok"
    detail: str = ""
    seconds: float = 0.0

    @property
    def failed(self) -> bool:
        return self.status not in ("ok", "warn")


def run_nightly(
    database: db.Database, config: NightlyConfig, *, wait: bool = False, report: Path | None = None
) -> list[Step]:
    """Run the job; returns its steps (a step that raised is recorded as failed with its sentence). With
    ``report``, the last step writes the report into that folder."""
    from ingest.warehouse.dbt import build_args

    steps: list[Step] = []
    with nightly_lock(database, wait=wait, on_wait=lambda text: err_console.print(text, highlight=False)):
        for source in config.sources:
            steps.append(_timed(f"ingest {source}", functools.partial(_ingest, database, source, config)))
        steps.append(_timed("dbt build", lambda step: _dbt(build_args(), database, step)))
        steps.append(
            _timed("dbt source freshness", lambda step: _dbt(["source", "freshness"], database, step))
        )
        if report is not None:
            steps.append(_timed("report", functools.partial(_report, database, report)))
    return steps


def _timed(name: str, action: Callable[[Step], None]) -> Step:
    step = Step(name)
    started = time.monotonic()
    console.rule(name, style="dim")
    try:
        action(step)
    except UserError as exc:
        step.status, step.detail = "failed", str(exc)
    step.seconds = time.monotonic() - started
    return step


def _ingest(database: db.Database, source: str, config: NightlyConfig, step: Step) -> None:
    if source == "api":
        _ingest_api(database, config.api, step)
        return
    from autopicker.cli.progress import make_reporter

    with_io, latency_unit = config.files.with_io, config.files.latency_unit
    reporter = make_reporter()
    if source.startswith("s3://"):
        from ingest.sources.s3 import ingest_s3

        result = ingest_s3(database, [source], reporter=reporter, with_io=with_io, latency_unit=latency_unit)
    else:
        from ingest.sources.files import ingest_files

        result = ingest_files(
            database, [source], reporter=reporter, with_io=with_io, latency_unit=latency_unit
        )
    reporter.summary(result)
    t = result.totals
    step.detail = f"{_files(result.files)}, {t.loaded:,} rows loaded"
    if result.errors:
        step.status = "failed"
        step.detail += f"; {len(result.errors)} errors, the first: {result.errors[0]}"
    elif t.rejected:
        step.status = "rejected rows"
        step.detail += f", {t.rejected:,} rejected (langfuse_raw.rejected_rows)"


def _files(files: list[FileResult]) -> str:
    """``2 files loaded, 1 skipped (already loaded), 1 failed``, leaving out what is zero."""
    counts = Counter(f.status for f in files)
    loaded = counts.pop("loaded", 0)
    parts = [f"{loaded:,} {'file' if loaded == 1 else 'files'} loaded"]
    parts += [
        f"{n:,} {'skipped (already loaded)' if status == 'already loaded' else status}"
        for status, n in sorted(counts.items())
    ]
    return ", ".join(parts)


def _ingest_api(database: db.Database, settings: ApiSettings, step: Step) -> None:
    from autopicker.cli.ingest import ingest_with_progress, render_report
    from autopicker.durations import parse_duration
    from ingest.sources.api import ApiIngestOptions
    from ingest.sources.langfuse_client import Credentials, LangfuseReader, RetryPolicy

    options = ApiIngestOptions(
        overlap=parse_duration(settings.overlap, "[api] overlap"),
        page_size=settings.page_size,
        with_io=settings.with_io,
    )
    clock = SystemClock()
    reader = LangfuseReader(
        Credentials.from_env(),
        clock=clock,
        requests_per_minute=settings.requests_per_minute,
        timeout=settings.timeout,
        retry=RetryPolicy(max_retries=settings.max_retries),
    )
    try:
        report = ingest_with_progress(database, reader, options, clock)
    finally:
        reader.close()
    render_report(report, console)
    s = report.stats
    step.detail = f"{s.rows_read:,} rows read, {s.loaded:,} loaded ({report.requests:,} requests)"
    if s.rejected:
        step.status = "rejected rows"
        step.detail += f", {s.rejected:,} rejected (langfuse_raw.rejected_rows)"


def _dbt(args: list[str], database: db.Database, step: Step) -> None:
    from ingest.warehouse.dbt import run_dbt_outcome

    outcome = run_dbt_outcome(args, database)
    code = outcome.code
    if outcome.warned:
        shown = ", ".join(outcome.warned[:5]) + (
            f" and {len(outcome.warned) - 5} more" if len(outcome.warned) > 5 else ""
        )
        step.status, step.detail = "warn", f"{len(outcome.warned):,} warned: {shown}"
    if code == 1:
        step.status, step.detail = "failed", "a model, test or source check failed (see dbt's log above)"
    elif code:
        step.status, step.detail = "failed", f"dbt itself failed (exit code {code}; see its log above)"


def _report(database: db.Database, out: Path, step: Step) -> None:
    from autopicker.cli.report import write

    step.detail = str(write(out, database))


def render_steps(steps: list[Step], out: Console) -> None:
    """The job's summary: one row per step."""
    table = Table(title="autopicker nightly", title_justify="left", box=box.SIMPLE)
    table.add_column("step")
    table.add_column("result")
    table.add_column("time", justify="right")
    table.add_column("details")
    for step in steps:
        style = "red" if step.failed else "yellow" if step.status == "warn" else None
        status = f"[{style}]{step.status}[/{style}]" if style else step.status
        table.add_row(step.name, status, f"{step.seconds:,.1f} s", step.detail)
    out.print(table)


def nightly_command(
    config: Annotated[
        Path | None,
        typer.Option(
            "--config",
            help=f"TOML file with sources, [api] and [files] settings (default: ${CONFIG_ENV}).",
            dir_okay=False,
        ),
    ] = None,
    source: Annotated[
        list[str] | None,
        typer.Option(
            "--source",
            help=f"What to ingest: api, s3://bucket/prefix/ or a folder (repeatable; default: "
            f"${SOURCES_ENV}, the config file, else api).",
            show_default=False,
        ),
    ] = None,
    wait: Annotated[
        bool,
        typer.Option(
            "--wait",
            help="If another nightly job is running on this warehouse, wait for it instead of exiting.",
        ),
    ] = False,
    report: Annotated[
        bool,
        typer.Option(
            "--report/--no-report",
            help="Write the report (`autopicker report`) after the build, or leave it out.",
        ),
    ] = True,
    report_out: Annotated[
        Path | None,
        typer.Option(
            "--report-out",
            help="Folder of the report (default: report/ in the local state folder).",
            show_default=False,
            file_okay=False,
        ),
    ] = None,
) -> None:
    """Ingest (Langfuse API or exports), then dbt build, dbt source freshness and the report; exit 1 on any
    failure."""
    from autopicker.cli.report import default_out

    settings = load_config(config, cli_sources=source)
    database = db.resolve()
    steps = run_nightly(
        database, settings, wait=wait, report=(report_out or default_out()) if report else None
    )
    render_steps(steps, console)
    failed = [s for s in steps if s.failed]
    if failed:
        err_console.print(
            f"error: {len(failed)} of {len(steps)} steps failed: "
            + "; ".join(f"{s.name}: {s.detail or s.status}" for s in failed),
            highlight=False,
            markup=False,
        )
        raise typer.Exit(1)


def register(app: typer.Typer) -> None:
    app.command("nightly")(nightly_command)
