"""Bulk, idempotent loading of observations into ``langfuse_raw.observations``.

:func:`load_rows` takes any iterable of ``(row_number, row)`` (JSON text or dicts, in any of Langfuse's key
styles: the file ingest and the API ingest use the same entry point) and :func:`load_source` a
:class:`ingest.chunks.RowSource` (a file); each load is ONE transaction:

- Rows are normalised into chunks of ``COPY`` text (:mod:`ingest.chunks`) by a parser running beside the
  writer, so parsing and writing overlap and memory stays bounded by a few chunks.
- A chunk whose ids are all new is copied straight into ``observations`` (the common case, and the fastest
  path PostgreSQL has). When any of its ids is already stored (export windows overlap, a row was updated,
  the file was loaded before), that copy stops at the unique key and the chunk instead goes through a
  temporary staging table and one set-based upsert keyed on ``id`` that keeps the version with the greatest
  ``updated_at`` and leaves the stored row alone on ties, so loading the same data again changes nothing.
- Rows the normaliser rejects, and any row PostgreSQL itself refuses (found by re-copying around the line
  its error names), go to ``langfuse_raw.rejected_rows``; every other row still loads.
- Loads into one database take turns (a transaction-level advisory lock), so concurrent runs never race on
  the same ids; readers are never blocked.

``before_commit`` runs inside the transaction after the rows, so a caller can record its own state (a file's
content hash, an API watermark) atomically with the data.
"""

from __future__ import annotations

import logging
import re
from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

import psycopg
from psycopg import errors as pg_errors

from .chunks import (
    Chunk,
    ParseOptions,
    Rejection,
    RowSource,
    can_parse_in_process,
    parse_in_process,
    parse_in_thread,
    storable,
)
from .normalize import COPY_COLUMNS, escape_copy_text

logger = logging.getLogger(__name__)

#: Sources at least this big (bytes) are parsed in a child process; smaller ones are not worth a fork.
PROCESS_THRESHOLD = 8 << 20
_LOAD_LOCK = 0x4155_544C  # "AUTL": one loading transaction at a time per database

_COLUMNS = ", ".join(COPY_COLUMNS)
_COPY_OPTIONS = "(FORMAT text, NULL '')"
_COPY_DIRECT = f"COPY langfuse_raw.observations ({_COLUMNS}) FROM STDIN {_COPY_OPTIONS}"
_STAGE = "pg_temp.observations_stage"
_COPY_STAGE = f"COPY {_STAGE} ({_COLUMNS}) FROM STDIN {_COPY_OPTIONS}"
_CREATE_STAGE = (
    "CREATE TEMP TABLE IF NOT EXISTS observations_stage "
    "(LIKE langfuse_raw.observations INCLUDING DEFAULTS) ON COMMIT DELETE ROWS"
)
_UPDATED = ", ".join(c for c in COPY_COLUMNS if c != "id")
_EXCLUDED = ", ".join("excluded." + c for c in COPY_COLUMNS if c != "id")
_UPSERT = f"""
WITH written AS (
    INSERT INTO langfuse_raw.observations AS o ({_COLUMNS}, _loaded_at)
    SELECT {_COLUMNS}, now() FROM {_STAGE}
    ON CONFLICT (id) DO UPDATE
        SET ({_UPDATED}, _loaded_at) = ({_EXCLUDED}, now())
        WHERE o.updated_at < excluded.updated_at
    RETURNING (xmax = 0) AS inserted
)
SELECT count(*) FILTER (WHERE inserted), count(*) FILTER (WHERE NOT inserted) FROM written
"""
_COPY_LINE = re.compile(r"\bline (\d+)")
# What PostgreSQL raises for a row it cannot store; anything else (a lost connection) ends the load.
_ROW_ERRORS = (pg_errors.DataError, pg_errors.IntegrityError)


@dataclass
class LoadStats:
    """What one load did. ``rows_read`` = inserted + updated + duplicates + rejected + skipped types."""

    rows_read: int = 0
    inserted: int = 0
    updated: int = 0
    #: Rows that changed nothing: repeated in the source, or already stored at the same or a newer version.
    duplicates: int = 0
    rejected: int = 0
    skipped: Counter[str] = field(default_factory=Counter)

    @property
    def loaded(self) -> int:
        return self.inserted + self.updated

    @property
    def skipped_types(self) -> int:
        return sum(self.skipped.values())

    def add(self, other: LoadStats) -> None:
        self.rows_read += other.rows_read
        self.inserted += other.inserted
        self.updated += other.updated
        self.duplicates += other.duplicates
        self.rejected += other.rejected
        self.skipped.update(other.skipped)


def copy_suffix(source: str, batch_id: int) -> str:
    """The constant tail of every COPY line: ``_source_file`` and ``_batch_id``."""
    return f"\t{escape_copy_text(source)}\t{batch_id}"


def start_batch(conn: psycopg.Connection, source: str) -> int:
    """Record the start of a load run in ``load_batches`` (committed at once) and return its id."""
    with conn.transaction():
        row = conn.execute(
            "INSERT INTO langfuse_raw.load_batches (source) VALUES (%s) RETURNING batch_id", (source[:1000],)
        ).fetchone()
    assert row is not None
    return int(row[0])


def finish_batch(conn: psycopg.Connection, batch_id: int, stats: LoadStats) -> None:
    """Record the end of a load run and its totals."""
    with conn.transaction():
        conn.execute(
            "UPDATE langfuse_raw.load_batches SET finished_at = now(), rows_loaded = %s, rows_rejected = %s "
            "WHERE batch_id = %s",
            (stats.loaded, stats.rejected, batch_id),
        )


def load_rows(
    conn: psycopg.Connection,
    rows: Iterable[tuple[int | None, Any]],
    *,
    source: str,
    batch_id: int,
    with_io: bool = False,
    latency_unit: str = "auto",
    before_commit: Callable[[psycopg.Cursor, LoadStats], None] | None = None,
    on_chunk: Callable[[LoadStats, int | None], None] | None = None,
) -> LoadStats:
    """Load ``rows`` (``(row_number, JSON text | dict | BadRow)``) as ``source`` in one transaction.

    ``source`` is stored as ``_source_file``. ``on_chunk(stats, position)`` is called after each chunk with
    the running totals (for progress). An exception raised while iterating ``rows`` (an unreadable file)
    rolls the whole transaction back and propagates.
    """
    options = ParseOptions(copy_suffix(source, batch_id), with_io, latency_unit)
    return _load(conn, parse_in_thread(rows, options), source, batch_id, before_commit, on_chunk)


def load_source(
    conn: psycopg.Connection,
    rows: RowSource,
    *,
    source: str,
    batch_id: int,
    size: int | None = None,
    with_io: bool = False,
    latency_unit: str = "auto",
    before_commit: Callable[[psycopg.Cursor, LoadStats], None] | None = None,
    on_chunk: Callable[[LoadStats, int | None], None] | None = None,
) -> LoadStats:
    """Like :func:`load_rows` for a :class:`RowSource`; one of ``size`` bytes or more is parsed in a child
    process, so that parsing gets a core of its own."""
    options = ParseOptions(copy_suffix(source, batch_id), with_io, latency_unit)
    if size is not None and size >= PROCESS_THRESHOLD and can_parse_in_process():
        chunks = parse_in_process(rows, options)
    else:
        chunks = parse_in_thread(rows.rows(), options, rows.position)
    return _load(conn, chunks, source, batch_id, before_commit, on_chunk)


def _load(conn: psycopg.Connection, chunks: Iterator[Chunk], source: str, batch_id: int,
          before_commit: Callable[[psycopg.Cursor, LoadStats], None] | None,
          on_chunk: Callable[[LoadStats, int | None], None] | None) -> LoadStats:
    stats = LoadStats()
    try:
        with conn.transaction(), conn.cursor() as cur:
            cur.execute("SET LOCAL TIME ZONE 'UTC'")  # zone-less export timestamps are UTC
            cur.execute("SELECT pg_advisory_xact_lock(%s)", (_LOAD_LOCK,))
            for chunk in chunks:
                _write_chunk(cur, chunk, stats, source, batch_id)
                if on_chunk is not None:
                    on_chunk(stats, chunk.position)
            if before_commit is not None:
                before_commit(cur, stats)
    finally:
        close = getattr(chunks, "close", None)
        if close is not None:
            close()  # stop the parser before the caller closes what it reads
    return stats


# -- writing (runs in the caller's thread, inside the load's transaction) --------------------------------


def _write_chunk(cur: psycopg.Cursor, chunk: Chunk, stats: LoadStats, source: str, batch_id: int) -> None:
    stats.rows_read += chunk.rows_read
    stats.duplicates += chunk.duplicates
    stats.skipped.update(chunk.skipped)
    rejections = list(chunk.rejections)
    if chunk.blob:
        conn = cur.connection
        try:
            with conn.transaction(), cur.copy(_COPY_DIRECT) as copy:
                copy.write(chunk.blob)
            stats.inserted += len(chunk.row_numbers)
        except _ROW_ERRORS as exc:
            logger.debug("direct copy of a chunk stopped (%s); upserting it through staging", exc.sqlstate)
            lines = chunk.blob.split(b"\n")[:-1]
            cur.execute(_CREATE_STAGE)
            cur.execute(f"TRUNCATE {_STAGE}")
            refused = _copy_rows(cur, _COPY_STAGE, lines, chunk.row_numbers)
            rejections.extend(refused)
            inserted, updated = cur.execute(_UPSERT).fetchone()  # type: ignore[misc]
            stats.inserted += inserted
            stats.updated += updated
            stats.duplicates += len(lines) - len(refused) - inserted - updated
    if rejections:
        stats.rejected += len(rejections)
        with cur.copy(
            "COPY langfuse_raw.rejected_rows (_batch_id, source_file, row_number, error, raw) FROM STDIN"
        ) as copy:
            for r in rejections:
                copy.write_row((batch_id, source, r.row_number, storable(r.error), r.raw))


def _copy_rows(cur: psycopg.Cursor, statement: str, lines: list[bytes],
               numbers: list[int]) -> list[Rejection]:
    """COPY ``lines``; rows PostgreSQL refuses are left out and returned, everything else is copied.

    PostgreSQL names the failing line, so each refused row costs one re-copy of the rows around it.
    """
    refused: list[Rejection] = []
    pending = [(0, len(lines))]
    conn = cur.connection
    while pending:
        start, stop = pending.pop()
        if start >= stop:
            continue
        try:
            with conn.transaction(), cur.copy(statement) as copy:
                copy.write(b"\n".join(lines[start:stop]) + b"\n")
        except _ROW_ERRORS as exc:
            at = _failed_line(exc)
            if at is None or not 1 <= at <= stop - start:
                at = 1 if stop - start == 1 else None
            if at is None:  # not attributable to a line: halve until it is
                middle = (start + stop) // 2
                pending += [(middle, stop), (start, middle)]
                continue
            bad = start + at - 1
            refused.append(Rejection(numbers[bad], _pg_reason(exc), storable(_line_text(lines[bad]))))
            pending += [(bad + 1, stop), (start, bad)]
    return refused


def _failed_line(exc: psycopg.Error) -> int | None:
    match = _COPY_LINE.search(exc.diag.context or "")
    return int(match.group(1)) if match else None


def _pg_reason(exc: psycopg.Error) -> str:
    message = exc.diag.message_primary or str(exc).strip().splitlines()[0]
    column = re.search(r"column (\w+)", exc.diag.context or "")
    where = f" (column {column.group(1)})" if column else ""
    return f"PostgreSQL refused the row{where}: {message}"


def _line_text(line: bytes) -> str:
    # The row as it was sent to PostgreSQL (tab-separated COPY text), for rows refused after normalising.
    return line.decode("utf-8", "replace")
