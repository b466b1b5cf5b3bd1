"""Bulk, idempotent loading of observations into ``langfuse_raw.observations``.

:func:`load_rows` takes any iterable of ``(row_number, row)`` (JSON text or dicts, in any of Langfuse's key
styles: the API ingest feeds its pages this way) and :func:`load_chunks` chunks parsed by a
:class:`ingest.chunks.ParserProcess` (the file ingest); each load is ONE transaction:

- Rows are normalised into chunks of ``COPY`` text (:mod:`ingest.chunks`) by a parser running beside the
  writer (a thread, or a child process for files), so parsing and writing overlap and memory stays bounded
  by a few chunks.
- A chunk whose ids are all new is copied straight into ``observations`` (the common case, and the fastest
  path PostgreSQL has). When any of its ids is already stored (export windows overlap, a row was updated,
  the file was loaded before), that copy stops at the unique key and the chunk instead goes through a
  temporary staging table and one set-based upsert keyed on ``id`` that keeps the version with the greatest
  ``updated_at`` and leaves the stored row alone on ties, so loading the same data again changes nothing.
- Rows the normaliser rejects, and any row PostgreSQL itself refuses (found by re-copying around the line
  its error names), go to ``langfuse_raw.rejected_rows``; every other row still loads. Of one load, the
  first :data:`ingest.chunks.REJECTS_KEPT` rejected rows are kept there in full; the rest are only counted
  (``LoadStats.rejected``), so a file of junk cannot fill the disk.
- Loads into one database take turns (an advisory lock), so concurrent runs never race on the same ids;
  readers are never blocked. A load's transaction begins only once it holds the lock, so the load time it
  stamps on its rows (``_loaded_at``, the transaction's start) is later than the commit of every load before
  it: rows never appear behind what an incremental build has already read (docs/warehouse.md).

``before_commit`` runs inside the transaction after the rows, so a caller can record its own state (a file's
content hash, an API watermark) atomically with the data.
"""

from __future__ import annotations

import logging
import re
import time
from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import psycopg
from psycopg import errors as pg_errors
from psycopg.abc import Buffer

from .chunks import REJECTS_KEPT, Chunk, ParseOptions, Rejection, RowSource, parse_in_thread, storable
from .normalize import COPY_COLUMNS, escape_copy_text, unescape_copy_text

logger = logging.getLogger(__name__)

_LOAD_LOCK = 0x4155_544C  # "AUTL": one loading transaction at a time per database
_BATCH_LOCK = 0x4155_4C42  # "AULB", with a batch id: held by the run that writes that batch

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
# The line of the COPY input an error names (an error inside a JSON value names that value's line first).
_COPY_LINE = re.compile(r"\bCOPY [\w.]+, line (\d+)")
# What PostgreSQL raises for a row it cannot store (a value it refuses, a key too large for its index);
# anything else (a lost connection) ends the load.
_ROW_ERRORS = (pg_errors.DataError, pg_errors.IntegrityError, pg_errors.ProgramLimitExceeded)


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
    #: Rows whose latency was read as milliseconds (detected, or forced with ``latency_unit="ms"``).
    latency_ms: int = 0
    #: The first row rejected (the lowest row number of the first chunk with a rejection), for messages.
    first_rejection: Rejection | None = None

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
        self.latency_ms += other.latency_ms
        self.first_rejection = self.first_rejection or other.first_rejection


def copy_suffix(source: str, batch_id: int) -> str:
    """The constant tail of every COPY line: ``_source_file`` and ``_batch_id``."""
    return f"\t{escape_copy_text(source)}\t{batch_id}"


def start_batch(conn: psycopg.Connection, source: str) -> int:
    """Record the start of a load run in ``load_batches`` (committed at once) and return its id.

    The run holds a session-level advisory lock on its batch until :func:`finish_batch` or until its
    connection ends (the process was killed, the server restarted). Runs whose lock is free but whose row
    is not finished are thereby known to be over: each new run marks them ``abandoned``, with the time it
    found them as ``finished_at``, so no row stays ``running`` forever."""
    with conn.transaction():
        conn.execute(
            "UPDATE langfuse_raw.load_batches SET finished_at = now(), status = 'abandoned' "
            "WHERE finished_at IS NULL AND pg_try_advisory_xact_lock(%s, (batch_id %% 2147483648)::int)",
            (_BATCH_LOCK,),
        )
        row = conn.execute(
            "INSERT INTO langfuse_raw.load_batches (source, status) VALUES (%s, 'running') "
            "RETURNING batch_id",
            (source[:1000],),
        ).fetchone()
        assert row is not None
        conn.execute("SELECT pg_advisory_lock(%s, (%s %% 2147483648)::int)", (_BATCH_LOCK, row[0]))
    return int(row[0])


def finish_batch(conn: psycopg.Connection, batch_id: int, stats: LoadStats) -> None:
    """Record the end of a load run and its totals."""
    with conn.transaction():
        conn.execute(
            "UPDATE langfuse_raw.load_batches SET finished_at = now(), status = 'finished', "
            "rows_loaded = %s, rows_rejected = %s WHERE batch_id = %s",
            (stats.loaded, stats.rejected, batch_id),
        )
    conn.execute("SELECT pg_advisory_unlock(%s, (%s %% 2147483648)::int)", (_BATCH_LOCK, batch_id))
    if not conn.autocommit:
        conn.commit()


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
    return load_chunks(
        conn,
        parse_in_thread(rows, options),
        source=source,
        batch_id=batch_id,
        before_commit=before_commit,
        on_chunk=on_chunk,
    )


def load_source(
    conn: psycopg.Connection,
    rows: RowSource,
    *,
    source: str,
    batch_id: int,
    with_io: bool = False,
    latency_unit: str = "auto",
    before_commit: Callable[[psycopg.Cursor, LoadStats], None] | None = None,
    on_chunk: Callable[[LoadStats, int | None], None] | None = None,
) -> LoadStats:
    """Like :func:`load_rows` for one :class:`ingest.chunks.RowSource`, parsed in a thread. Files load
    through one :class:`ingest.chunks.ParserProcess` for all of them and :func:`load_chunks` instead."""
    options = ParseOptions(copy_suffix(source, batch_id), with_io, latency_unit)
    chunks = parse_in_thread(rows.rows(), options, rows.position)
    return load_chunks(
        conn, chunks, source=source, batch_id=batch_id, before_commit=before_commit, on_chunk=on_chunk
    )


@contextmanager
def _load_turn(conn: psycopg.Connection) -> Iterator[None]:
    """Hold the database's load lock (session-level) around a load's transaction, taken before that
    transaction begins: its ``now()``, every row's ``_loaded_at``, is then later than the commit of the load
    before it. Released after the transaction ends, or by the server if the connection is lost."""
    with conn.transaction():
        conn.execute("SELECT pg_advisory_lock(%s)", (_LOAD_LOCK,))
    try:
        yield
    finally:
        try:
            with conn.transaction():
                conn.execute("SELECT pg_advisory_unlock(%s)", (_LOAD_LOCK,))
        except psycopg.OperationalError:
            pass  # the connection is gone, and the lock with it


def load_chunks(
    conn: psycopg.Connection,
    chunks: Iterator[Chunk],
    *,
    source: str,
    batch_id: int,
    before_commit: Callable[[psycopg.Cursor, LoadStats], None] | None = None,
    on_chunk: Callable[[LoadStats, int | None], None] | None = None,
) -> LoadStats:
    """Load chunks parsed elsewhere (:class:`ingest.chunks.ParserProcess`) in one transaction, as
    :func:`load_rows` does; their parse options carry :func:`copy_suffix` of the same source and batch."""
    stats = LoadStats()
    waited = written = 0.0  # where the time goes, for --verbose: parsing (waited for) or writing
    try:
        with _load_turn(conn), conn.transaction(), conn.cursor() as cur:
            cur.execute("SET LOCAL TIME ZONE 'UTC'")  # zone-less export timestamps are UTC
            mark = time.perf_counter()
            for chunk in chunks:
                now = time.perf_counter()
                waited += now - mark
                _write_chunk(cur, chunk, stats, source, batch_id)
                mark = time.perf_counter()
                written += mark - now
                if on_chunk is not None:
                    on_chunk(stats, chunk.position)
            if before_commit is not None:
                before_commit(cur, stats)
        logger.info(
            "%s: %d rows, %.2f s waiting for the parser, %.2f s writing",
            source,
            stats.rows_read,
            waited,
            written,
        )
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
    stats.latency_ms += chunk.latency_ms
    rejections = list(chunk.rejections)
    new_rows = len(chunk.row_numbers) - chunk.repeated
    if new_rows:
        if chunk.repeated:
            head = memoryview(chunk.blob)[: chunk.repeated_at]
            rejections += _write_new(cur, head, chunk.row_numbers[:new_rows], stats)
        else:
            rejections += _write_new(cur, chunk.blob, chunk.row_numbers, stats)
    if chunk.repeated:  # probably stored already (see RecentIds): the upsert at once
        lines = bytes(memoryview(chunk.blob)[chunk.repeated_at :]).split(b"\n")[:-1]
        rejections += _upsert(cur, lines, chunk.row_numbers[new_rows:], stats)
    if rejections:
        if stats.first_rejection is None:
            stats.first_rejection = min(rejections, key=lambda r: r.row_number or 0)
        room = max(0, REJECTS_KEPT - stats.rejected)  # the first ones of the load are kept, the rest counted
        stats.rejected += len(rejections)
        rejections = rejections[:room]
    if rejections:
        with cur.copy(
            "COPY langfuse_raw.rejected_rows (_batch_id, source_file, row_number, error, raw) FROM STDIN"
        ) as copy:
            for r in rejections:
                copy.write_row((batch_id, source, r.row_number, storable(r.error), r.raw))


def _write_new(cur: psycopg.Cursor, blob: Buffer, numbers: list[Any], stats: LoadStats) -> list[Rejection]:
    """Write COPY lines whose ids are probably new; returns the rows PostgreSQL refused."""
    try:
        _copy_direct(cur, blob)
        stats.inserted += len(numbers)
        return []
    except pg_errors.UniqueViolation:
        # Some ids are stored already: the new rows still go the direct way, the others are upserted.
        lines = bytes(blob).split(b"\n")[:-1]
        keys = [line[: line.index(b"\t")] for line in lines]
        stored = _stored_keys(cur, keys)
        new = [i for i, key in enumerate(keys) if key not in stored]
        rest = [i for i, key in enumerate(keys) if key in stored]
        try:
            if new:
                _copy_direct(cur, b"\n".join(lines[i] for i in new) + b"\n")
            stats.inserted += len(new)
        except _ROW_ERRORS:
            rest = list(range(len(lines)))
        return _upsert(cur, [lines[i] for i in rest], [numbers[i] for i in rest], stats)
    except _ROW_ERRORS:  # a row PostgreSQL refuses: the staging path finds it
        return _upsert(cur, bytes(blob).split(b"\n")[:-1], numbers, stats)


def _copy_direct(cur: psycopg.Cursor, blob: Buffer) -> None:
    with cur.connection.transaction(), cur.copy(_COPY_DIRECT) as copy:
        copy.write(memoryview(blob))  # psycopg sends it in slices: of a memoryview, without copying


def _stored_keys(cur: psycopg.Cursor, keys: list[bytes]) -> set[bytes]:
    """Which of these ids, each as the first field of a COPY line, are stored already (in the same form).

    An id PostgreSQL cannot store (a NUL character, bytes that are not UTF-8) is looked up mangled: it is not
    stored, and if the mangled form is, the row goes the staging way, which refuses it all the same."""
    joined = b"\n".join(keys)
    if b"\\" not in joined:  # nothing escaped: the ids go as one text, split by the server
        text = joined.decode("utf-8", "replace").replace("\x00", "")
        rows = cur.execute(
            "SELECT id FROM langfuse_raw.observations WHERE id = ANY(string_to_array(%s, E'\\n'))", (text,)
        ).fetchall()
    else:
        ids = [unescape_copy_text(k.decode("utf-8", "replace")).replace("\x00", "") for k in keys]
        rows = cur.execute("SELECT id FROM langfuse_raw.observations WHERE id = ANY(%b)", (ids,)).fetchall()
    return {escape_copy_text(r[0]).encode() for r in rows}


def _upsert(cur: psycopg.Cursor, lines: list[bytes], numbers: list[Any], stats: LoadStats) -> list[Rejection]:
    """Upsert ``lines`` through the staging table; returns the rows PostgreSQL refused."""
    if not lines:
        return []
    cur.execute(_CREATE_STAGE)
    cur.execute(f"TRUNCATE {_STAGE}")
    refused = _copy_rows(cur, _COPY_STAGE, lines, numbers)
    inserted, updated = cur.execute(_UPSERT).fetchone()  # type: ignore[misc]
    stats.inserted += inserted
    stats.updated += updated
    stats.duplicates += len(lines) - len(refused) - inserted - updated
    return refused


def _copy_rows(
    cur: psycopg.Cursor, statement: str, lines: list[bytes], numbers: list[int]
) -> list[Rejection]:
    """COPY ``lines``; rows PostgreSQL refuses are left out and returned, everything else is copied.

    The normaliser rejects what it knows PostgreSQL refuses, so this is rare. When a COPY fails at the line
    its error names, the lines before it are copied again at once (they passed) and the lines after it are
    halved and tried apart; an error naming no line halves the range. So k refused rows among n cost
    O(n log n) lines sent at worst, never O(n * k).
    """
    refused: list[Rejection] = []
    pending = [(0, len(lines), False)]  # (start, stop, known to pass)
    conn = cur.connection
    while pending:
        start, stop, passes = pending.pop()
        if start >= stop:
            continue
        try:
            with conn.transaction(), cur.copy(statement) as copy:
                copy.write(b"\n".join(lines[start:stop]) + b"\n")
        except _ROW_ERRORS as exc:
            at = _failed_line(exc)
            if at is None or not 1 <= at <= stop - start or passes:
                at = 1 if stop - start == 1 else None
            if at is None:  # not attributable to a line: halve until it is
                middle = (start + stop) // 2
                pending += [(middle, stop, False), (start, middle, False)]
                continue
            bad = start + at - 1
            refused.append(Rejection(numbers[bad], _pg_reason(exc), storable(_line_text(lines[bad]))))
            middle = (bad + 1 + stop) // 2
            pending += [(middle, stop, False), (bad + 1, middle, False), (start, bad, True)]
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
