"""What ``autopicker ingest files`` shows while it runs and at the end.

On a terminal: a progress bar (bytes of the current files, rows read, rows per second) on stderr, warnings and
errors above it, and a summary table on stdout. Elsewhere (logs, pipes): one plain line per file on stderr and
the summary as plain ``name: value`` lines on stdout. With ``--json`` the summary is one JSON document on
stdout, for scripts. Errors and warnings always go to stderr, each one sentence.
"""

from __future__ import annotations

import json
import logging
from typing import TYPE_CHECKING, Any

from rich.console import Console
from rich.progress import (
    BarColumn,
    Progress,
    ProgressColumn,
    Task,
    TaskProgressColumn,
    TextColumn,
    TimeElapsedColumn,
)
from rich.table import Table
from rich.text import Text

from autopicker.cli.console import output_console

if TYPE_CHECKING:
    from ingest.loader import LoadStats
    from ingest.sources.files import FileResult, FileTask, RunResult

logger = logging.getLogger(__name__)

#: With more files than this the summary table shows totals only.
MAX_FILE_ROWS = 30


class _RowsColumn(ProgressColumn):
    """Rows read so far and their rate."""

    def render(self, task: Task) -> Text:
        rows = int(task.fields.get("rows", 0))
        elapsed = task.elapsed or 0.0
        rate = f"{rows / elapsed:,.0f} rows/s" if elapsed > 0 else "- rows/s"
        return Text(f"{rows:,} rows  {rate}")


class Reporter:
    """Plain output: a line per file on stderr, the summary on stdout."""

    def __init__(self, out: Console, err: Console, *, as_json: bool = False) -> None:
        self.out, self.err, self.as_json = out, err, as_json

    # messages
    def note(self, text: str) -> None:
        self._print_err(f"note: {text}")

    def warning(self, text: str) -> None:
        self._print_err(f"warning: {text}")

    def error(self, text: str) -> None:
        self._print_err(f"error: {text}")

    def _print_err(self, text: str) -> None:
        self.err.print(text, highlight=False, markup=False, soft_wrap=True)

    # progress
    def start(self, tasks: list[FileTask]) -> None:
        pass

    def file_started(self, task: FileTask) -> None:
        pass

    def file_progress(self, task: FileTask, rows: int, position: int | None) -> None:
        pass

    def file_done(self, result: FileResult) -> None:
        if result.status == "failed":
            return
        if result.status == "already loaded":
            self._print_err(f"skipped {result.task.name}: already loaded (use --force to load it again)")
            return
        s = result.stats
        rate = s.rows_read / result.seconds if result.seconds > 0 else 0.0
        self._print_err(
            f"loaded {result.task.name}: {s.rows_read:,} rows read, {s.loaded:,} loaded, "
            f"{s.duplicates:,} duplicates, {s.skipped_types:,} skipped types, {s.rejected:,} rejected "
            f"({result.seconds:.1f} s, {rate:,.0f} rows/s)"
        )
        self._first_rejected(result)

    def _first_rejected(self, result: FileResult) -> None:
        first = result.stats.first_rejection
        if first is not None:
            where = (
                f" {_ROW_WORD.get(result.task.fmt.kind, 'row')} {first.row_number:,}"
                if first.row_number
                else ""
            )
            self._print_err(
                f"rejected {result.task.name}{where}: {first.error}" + _more(result.stats.rejected)
            )

    def stop(self) -> None:
        pass

    # the end
    def summary(self, result: RunResult) -> None:
        if self.as_json:
            self.out.print(
                json.dumps(summary_document(result), indent=2), highlight=False, markup=False, soft_wrap=True
            )
        elif self.out.is_terminal:
            self.out.print(summary_table(result))
        else:
            for line in summary_lines(result):
                self.out.print(line, highlight=False, markup=False, soft_wrap=True)


class TerminalReporter(Reporter):
    """A rich progress bar on stderr while files load."""

    def __init__(self, out: Console, err: Console, *, as_json: bool = False) -> None:
        super().__init__(out, err, as_json=as_json)
        self._progress = Progress(
            TextColumn("{task.description}"),
            BarColumn(),
            TaskProgressColumn(),
            _RowsColumn(),
            TimeElapsedColumn(),
            console=err,
            transient=False,
        )
        self._task: Any = None
        self._base = 0  # bytes of the files already done
        self._rows_done = 0

    def _print_err(self, text: str) -> None:
        self._progress.console.print(text, highlight=False, markup=False, soft_wrap=True)

    def start(self, tasks: list[FileTask]) -> None:
        total = sum(t.size for t in tasks) or 1
        self._task = self._progress.add_task(f"loading {len(tasks)} file(s)", total=total, rows=0)
        self._progress.start()

    def file_started(self, task: FileTask) -> None:
        self._progress.update(self._task, description=_short(task.name))

    def file_progress(self, task: FileTask, rows: int, position: int | None) -> None:
        done = self._base + min(position if position is not None else 0, task.size)
        self._progress.update(self._task, completed=done, rows=self._rows_done + rows)

    def file_done(self, result: FileResult) -> None:
        self._first_rejected(result)
        self._base += result.task.size
        self._rows_done += result.stats.rows_read
        self._progress.update(self._task, completed=self._base, rows=self._rows_done)

    def stop(self) -> None:
        if self._task is not None:
            self._progress.update(self._task, description="done")
        self._progress.stop()


#: What a row number counts, by format: JSONL lines, CSV records (the header not counted), rows otherwise.
_ROW_WORD = {"jsonl": "line", "csv": "record"}


def _more(rejected: int) -> str:
    if rejected < 2:
        return ""
    rows = "row" if rejected == 2 else "rows"
    return f" ({rejected - 1:,} more rejected {rows} in langfuse_raw.rejected_rows)"


def _short(name: str, width: int = 40) -> str:
    return name if len(name) <= width else "..." + name[-(width - 3) :]


def make_reporter(*, as_json: bool = False) -> Reporter:
    """The reporter for this process: a progress bar when stderr is a terminal, plain lines otherwise."""
    out, err = output_console(), output_console(stderr=True)
    if err.is_terminal:
        return TerminalReporter(out, err, as_json=as_json)
    return Reporter(out, err, as_json=as_json)


def _skipped_text(stats: LoadStats) -> str:
    if not stats.skipped:
        return "0"
    detail = ", ".join(f"{t} {n:,}" for t, n in stats.skipped.most_common())
    return f"{stats.skipped_types:,} ({detail})"


def summary_lines(result: RunResult) -> list[str]:
    t = result.totals
    loaded = sum(1 for f in result.files if f.status == "loaded")
    already = sum(1 for f in result.files if f.status == "already loaded")
    failed = sum(1 for f in result.files if f.status == "failed")
    return [
        f"files: {loaded} loaded, {already} skipped (already loaded), {failed} failed",
        f"rows read: {t.rows_read:,}",
        f"rows loaded: {t.loaded:,} ({t.inserted:,} new, {t.updated:,} updated)",
        f"duplicates: {t.duplicates:,}",
        f"skipped types: {_skipped_text(t)}",
        f"rejected: {t.rejected:,}" + (" (see langfuse_raw.rejected_rows)" if t.rejected else ""),
        f"errors: {len(result.errors)}",
    ] + ([_latency_note(t)] if t.latency_ms else [])


def _latency_note(stats: LoadStats) -> str:
    return (
        f"latency read as milliseconds: {stats.latency_ms:,} rows "
        "(with --latency-unit auto: the unit end_time - start_time agrees with; s or ms sets it)"
    )


def summary_table(result: RunResult) -> Table:
    table = Table(title=f"ingest batch {result.batch_id}" if result.batch_id else "ingest")
    for column in ("file", "status", "read", "loaded", "duplicates", "skipped types", "rejected"):
        table.add_column(column, justify="left" if column in ("file", "status") else "right")
    shown = result.files if len(result.files) <= MAX_FILE_ROWS else []
    for f in shown:
        s = f.stats
        table.add_row(
            f.task.name,
            f.status,
            f"{s.rows_read:,}",
            f"{s.loaded:,}",
            f"{s.duplicates:,}",
            f"{s.skipped_types:,}",
            f"{s.rejected:,}",
        )
    t = result.totals
    table.add_row(
        f"total ({len(result.files)} files)",
        _status_counts(result),
        f"{t.rows_read:,}",
        f"{t.loaded:,}",
        f"{t.duplicates:,}",
        f"{t.skipped_types:,}",
        f"{t.rejected:,}",
        style="bold",
        end_section=True,
    )
    if t.latency_ms:
        table.caption = _latency_note(t)
    return table


def _status_counts(result: RunResult) -> str:
    counts: dict[str, int] = {}
    for f in result.files:
        counts[f.status] = counts.get(f.status, 0) + 1
    return ", ".join(f"{n} {s}" for s, n in counts.items()) or "-"


def _stats_document(stats: LoadStats) -> dict[str, Any]:
    return {
        "rows_read": stats.rows_read,
        "inserted": stats.inserted,
        "updated": stats.updated,
        "duplicates": stats.duplicates,
        "skipped_types": dict(stats.skipped),
        "rejected": stats.rejected,
        "latency_ms_rows": stats.latency_ms,
    }


def summary_document(result: RunResult) -> dict[str, Any]:
    return {
        "batch_id": result.batch_id,
        "files": [
            {
                "file": f.task.name,
                "status": f.status,
                "seconds": round(f.seconds, 3),
                "error": f.error,
                **_stats_document(f.stats),
            }
            for f in result.files
        ],
        "totals": _stats_document(result.totals),
        "notes": result.notes,
        "warnings": result.warnings,
        "errors": result.errors,
        "exit_code": result.exit_code,
    }
