"""``autopicker ingest api``: incremental load of EVENT and GENERATION observations from Langfuse's API.

State lives in ``langfuse_raw.ingest_state``, one row per Langfuse project and observation type:
``watermark`` (every observation that started before it has been read) and, while a run is under way or
after it was interrupted, the range still to read: ``[range_from, range_before)``, and ``range_until``, the
watermark that range leads to.

Algorithm, per type:

1. The v2 observations API returns a time range newest first, in cursor pages of up to 1000 rows. Each page
   is loaded in its own transaction (:func:`ingest.loader.load_rows`), and the same transaction records
   what is left to read: ``range_before`` becomes the oldest start time loaded so far plus 1 ms. A crash or
   kill therefore loses at most the page in flight, and the next run reads only what is left. (Start times
   are kept to the millisecond; rows sharing the oldest instant may straddle two pages, so that instant is
   read again rather than skipped.)
2. A run first finishes a range an interrupted run left behind.
3. Then it reads ``[watermark - overlap, now)``, where ``now`` is the run's start and the overlap (default
   15 minutes) catches rows that reach Langfuse late and rows updated since; ``[--since, --until)`` for a
   backfill; the last 30 days on the first run.
4. In the transaction of a range's last page the pending range is cleared and the watermark moves to the
   range's end, provided the range reaches back to the watermark (no gap is ever declared read). On the
   first run the watermark starts at the range's start: history before it is a backfill's business.
5. Rows read twice (overlap, a resumed boundary, a backfill) are de-duplicated by id and the version with
   the newest ``updatedAt`` wins (the loader's upsert).

One ``ingest api`` runs at a time per warehouse (a session advisory lock); a second one stops with a message.
Rows the SDK's model or the normaliser rejects go to ``langfuse_raw.rejected_rows`` with the reason; their
``row_number`` counts the rows the run read for that type.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import psycopg

from autopicker.clock import Clock
from autopicker.errors import UserError
from ingest.db import Database, connection_failure, connection_lost, failure_cause
from ingest.loader import LoadStats, finish_batch, load_rows, start_batch
from ingest.sources.langfuse_client import MAX_PAGE_SIZE, WAREHOUSE_FIELDS, LangfuseReader

logger = logging.getLogger(__name__)

TYPES = ("EVENT", "GENERATION")
DEFAULT_OVERLAP = timedelta(minutes=15)
FIRST_RUN_LOOKBACK = timedelta(days=30)
#: Langfuse stores start times to the millisecond (see step 1 of the module docstring).
BOUNDARY_STEP = timedelta(milliseconds=1)
_API_INGEST_LOCK = 0x4155_5441  # "AUTA": one `ingest api` per warehouse


@dataclass(frozen=True)
class ApiIngestOptions:
    """What one run reads."""

    since: datetime | None = None
    until: datetime | None = None
    overlap: timedelta = DEFAULT_OVERLAP
    page_size: int = MAX_PAGE_SIZE
    with_io: bool = False
    types: tuple[str, ...] = TYPES

    @property
    def fields(self) -> str:
        return ",".join((*WAREHOUSE_FIELDS, "io") if self.with_io else WAREHOUSE_FIELDS)


@dataclass(frozen=True)
class TimeRange:
    """``[start, before)`` to read; once read, the watermark may move to ``until``."""

    start: datetime
    before: datetime
    until: datetime


@dataclass
class _State:
    watermark: datetime | None = None
    pending: TimeRange | None = None


@dataclass
class TypeReport:
    """What a run did for one observation type."""

    type: str
    pages: int = 0
    stats: LoadStats = field(default_factory=LoadStats)
    ranges: list[TimeRange] = field(default_factory=list)
    resumed: bool = False
    watermark: datetime | None = None


@dataclass
class ApiIngestReport:
    """What a run did: per type, plus the requests it took."""

    project_id: str
    source: str
    batch_id: int
    types: dict[str, TypeReport] = field(default_factory=dict)
    requests: int = 0
    retries: int = 0
    budget_wait: float = 0.0

    @property
    def stats(self) -> LoadStats:
        total = LoadStats()
        for report in self.types.values():
            total.add(report.stats)
        return total


PageCallback = Callable[[TypeReport], None]


def run_api_ingest(
    database: Database,
    reader: LangfuseReader,
    options: ApiIngestOptions,
    *,
    clock: Clock,
    on_page: PageCallback | None = None,
    on_start: Callable[[ApiIngestReport], None] | None = None,
) -> ApiIngestReport:
    """Load what is new since the last run (or the backfill range of ``options``) into ``langfuse_raw``."""
    now = datetime.fromtimestamp(clock.time(), UTC)
    _check_options(options, now)
    from ingest.raw import ensure_raw_schema  # SQLAlchemy only when a run starts, not for every command

    ensure_raw_schema(database)
    project_id = reader.project_id()
    source = f"langfuse-api:{reader.credentials.base_url}/project/{project_id}"
    with database.locking_connection(autocommit=True) as conn:
        _lock(conn)
        report = ApiIngestReport(project_id, source, start_batch(conn, source))
        if on_start is not None:
            on_start(report)
        try:
            for typ in options.types:
                report.types[typ] = TypeReport(typ)
                _ingest_type(conn, reader, options, report, report.types[typ], now, on_page)
        except psycopg.OperationalError as exc:
            failure = (
                f"Lost the connection to the database at {database.redacted()}: {connection_failure(exc)}"
                if connection_lost(exc, conn)
                else f"The database at {database.redacted()} stopped the ingest: {failure_cause(exc)}"
            )
            raise UserError(f"{failure}; what was committed is kept and the next run resumes.") from None
        finally:
            report.requests, report.retries = reader.requests, reader.retries
            report.budget_wait = reader.budget.waited
            try:
                finish_batch(conn, report.batch_id, report.stats)
            except psycopg.Error as exc:  # the failure that got us here is the one to report
                logger.warning("could not record the end of load batch %d: %s", report.batch_id, exc)
    return report


def _check_options(options: ApiIngestOptions, now: datetime) -> None:
    if not 1 <= options.page_size <= MAX_PAGE_SIZE:
        raise UserError(f"The page size must be between 1 and {MAX_PAGE_SIZE}.")
    if options.overlap < timedelta(0):
        raise UserError("The overlap cannot be negative.")
    until = options.until or now
    if options.since is not None and options.since >= until:
        raise UserError(
            f"--since ({options.since.isoformat()}) must be before --until ({until.isoformat()})."
        )


def _lock(conn: psycopg.Connection) -> None:
    row = conn.execute("SELECT pg_try_advisory_lock(%s)", (_API_INGEST_LOCK,)).fetchone()
    if not row or not row[0]:
        raise UserError(
            "Another `autopicker ingest api` is loading into this warehouse; run again when it has finished."
        )


def _ingest_type(
    conn: psycopg.Connection,
    reader: LangfuseReader,
    options: ApiIngestOptions,
    report: ApiIngestReport,
    typ_report: TypeReport,
    now: datetime,
    on_page: PageCallback | None,
) -> None:
    typ = typ_report.type
    state = _read_state(conn, report.project_id, typ)
    if state.pending is not None:
        logger.info(
            "%s: finishing the range an interrupted run left, %s to %s",
            typ,
            state.pending.start.isoformat(),
            state.pending.before.isoformat(),
        )
        typ_report.resumed = True
        _read_range(conn, reader, options, report, typ_report, state, state.pending, on_page)
        state = _read_state(conn, report.project_id, typ)
    until = options.until or now
    if options.since is not None:
        start = options.since
    elif state.watermark is not None:
        start = state.watermark - options.overlap
    else:
        start = until - FIRST_RUN_LOOKBACK
    if start < until:
        _read_range(conn, reader, options, report, typ_report, state, TimeRange(start, until, until), on_page)
    typ_report.watermark = _read_state(conn, report.project_id, typ).watermark


def _read_range(
    conn: psycopg.Connection,
    reader: LangfuseReader,
    options: ApiIngestOptions,
    report: ApiIngestReport,
    typ_report: TypeReport,
    state: _State,
    rng: TimeRange,
    on_page: PageCallback | None,
) -> None:
    typ = typ_report.type
    typ_report.ranges.append(rng)
    before = rng.before
    cursor: str | None = None
    while True:
        # The query keeps its bounds while following the cursor; `before` is only what a restart would use.
        page = reader.observations_page(
            fields=options.fields,
            limit=options.page_size,
            cursor=cursor,
            type=typ,
            from_start_time=rng.start,
            to_start_time=rng.before,
        )
        done = page.cursor is None
        if not done and page.oldest_start is not None:
            before = min(before, page.oldest_start + BOUNDARY_STEP)
        values = _next_state(state, rng, before, done)

        def record(cur: psycopg.Cursor, _stats: LoadStats, values: tuple[Any, ...] = values) -> None:
            cur.execute(_UPSERT_STATE, (report.project_id, typ, *values))

        stats = load_rows(
            conn,
            _numbered(page.rows, typ_report.stats.rows_read),
            source=report.source,
            batch_id=report.batch_id,
            with_io=options.with_io,
            latency_unit="s",
            before_commit=record,
        )
        typ_report.stats.add(stats)
        typ_report.pages += 1
        if on_page is not None:
            on_page(typ_report)
        if done:
            return
        cursor = page.cursor


def _next_state(state: _State, rng: TimeRange, before: datetime, done: bool) -> tuple[Any, ...]:
    """``(watermark, range_from, range_before, range_until)`` to store with a page."""
    old = state.watermark
    if not done:
        return (old if old is not None else rng.start, rng.start, before, rng.until)
    if old is None:
        watermark = rng.until
    elif rng.start <= old:
        watermark = max(old, rng.until)
    else:  # a backfill that starts after the watermark: the gap stays unread, so the watermark stays
        watermark = old
    state.watermark, state.pending = watermark, None
    return (watermark, None, None, None)


def _numbered(rows: Iterable[Any], already: int) -> Iterator[tuple[int, Any]]:
    return enumerate(rows, already + 1)


def _read_state(conn: psycopg.Connection, project_id: str, typ: str) -> _State:
    row = conn.execute(
        "SELECT watermark, range_from, range_before, range_until FROM langfuse_raw.ingest_state "
        "WHERE project_id = %s AND type = %s",
        (project_id, typ),
    ).fetchone()
    if row is None:
        return _State()
    watermark, start, before, until = row
    pending = TimeRange(start, before, until) if start is not None and before is not None else None
    return _State(watermark, pending)


_UPSERT_STATE = """
INSERT INTO langfuse_raw.ingest_state AS s
    (project_id, type, watermark, range_from, range_before, range_until, updated_at)
VALUES (%s, %s, %s, %s, %s, %s, now())
ON CONFLICT (project_id, type) DO UPDATE SET
    watermark = excluded.watermark,
    range_from = excluded.range_from,
    range_before = excluded.range_before,
    range_until = excluded.range_until,
    updated_at = now()
"""
