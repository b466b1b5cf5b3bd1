"""Read the rows of one Langfuse export file from a binary stream, whatever its format.

Formats (by file name, see :func:`detect_format`): JSONL (``.jsonl``, ``.ndjson``), JSON (``.json``: one
array, or JSONL when the first non-blank character is not ``[``), CSV (Langfuse quotes every field and writes
objects as JSON text; an empty field is null) and Parquet (``.parquet``); the text formats optionally gzipped
(``.gz``, or any file that starts with the gzip magic bytes). Every reader streams: memory stays constant
whatever the size of the file, and whatever it decompresses to. A line (a CSV record, a JSON array element)
longer than :data:`MAX_LINE_BYTES` is never held whole: it becomes a :class:`BadRow` that names the limit,
and reading goes on with the next line (a JSON array cannot be resynchronised, so there the file fails).
A CSV header or a Parquet schema without the columns an observation needs fails the file before any row.

:func:`read_rows` yields ``(row_number, item)``: ``item`` is the JSON text of a row (JSONL lines, parsed later
by :class:`ingest.normalize.Normalizer`), a dict (JSON arrays, CSV records, Parquet rows of a file the
column-wise way does not take), an :class:`ArrowBatch` (a Parquet record batch for :mod:`ingest.arrow_rows`,
with the number of its first row) or a :class:`BadRow` for a record the format itself shows is broken. Row
numbers are line numbers for JSONL, record numbers (header excluded) for CSV, and element or row positions
for JSON arrays and Parquet, all counted from 1. A file that cannot be read at all raises
:class:`UnreadableFile` with one sentence naming it.

Readers take a binary stream and a name only, so objects from blob storage can be fed the same way as files.
"""

from __future__ import annotations

import contextlib
import csv
import io
import logging
import os
import sys
import zlib
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from functools import cache, partial
from typing import IO, Any, cast

from autopicker.export_row import LOADED

from .normalize import LOADED_TYPES

logger = logging.getLogger(__name__)

_KINDS = {"jsonl": "jsonl", "ndjson": "jsonl", "json": "json", "csv": "csv", "parquet": "parquet"}
SUPPORTED = ".jsonl, .ndjson, .json, .csv or .parquet, text formats optionally with .gz"
_GZIP_MAGIC = b"\x1f\x8b"
_BOM = b"\xef\xbb\xbf"
_BUFFER = 1 << 20
_INFLATE_BLOCK = 1 << 18
#: The longest line (JSONL), record (CSV) or array element (JSON) read, in bytes (characters for CSV).
MAX_LINE_BYTES = 8 << 20
#: The most one column of a Parquet row group may decompress to (a bound on what pyarrow decodes at once).
MAX_COLUMN_CHUNK_BYTES = 512 << 20
_PREVIEW = 1000  # characters of an overlong line kept as its raw text
_SKIP_BLOCK = 1 << 20
_CSV_FIELD_LIMIT = min(sys.maxsize, 2**31 - 1)
#: Columns an observation cannot do without, each in Langfuse's snake_case or camelCase spelling.
REQUIRED_COLUMNS = (("id",), ("trace_id", "traceId"), ("type",), ("start_time", "startTime"))


class UnreadableFile(Exception):
    """A file that cannot be read at all; the message is one sentence that names it."""


@dataclass(frozen=True)
class FileFormat:
    """How a file is stored: ``kind`` is jsonl, json, csv or parquet; ``gzip`` whether it is compressed."""

    kind: str
    gzip: bool = False


@dataclass(frozen=True)
class SkippedRow:
    """A row of a type that is not loaded (``type`` in upper case), told by the reader from its type column
    alone: the rest of the row is not read."""

    type: str


class _SkipTypes(dict):
    """A type column's value -> the SkippedRow it makes, or None for a row to read (a loaded type, or a value
    the normaliser has to judge: missing, empty, not text)."""

    def __missing__(self, value: Any) -> SkippedRow | None:
        skipped = None
        if value.__class__ is str and value:
            upper = value.upper()
            if upper not in LOADED_TYPES:
                skipped = SkippedRow(upper)
        if len(self) < 1000:
            self[value] = skipped
        return skipped


#: The columns the ingest reads, in either key style; a Parquet file is read for these alone (and for
#: ``input`` and ``output`` when they are kept), so the others are never decompressed.
_READ_COLUMNS = frozenset(
    n for f in LOADED if f.name not in ("input", "output") for n in (f.name, f.camel)
) | {"model"}
_IO_COLUMNS = ("input", "output")


@dataclass
class ArrowBatch:
    """The rows of one Parquet record batch that are not skipped by type, as Arrow columns, for the
    column-wise way (:mod:`ingest.arrow_rows`)."""

    batch: Any  # pyarrow.RecordBatch
    numbers: list[int]  # the file's row number of each row
    rows_read: int  # rows of the batch, skipped ones included
    skipped: Counter[str]  # rows of types that are not loaded, by type (upper case)

    def row(self, index: int) -> dict[str, Any]:
        """One row as the row path reads it: a dict, timestamps as text (see :func:`_parquet_rows`)."""
        import pyarrow as pa

        one = self.batch.slice(index, 1)
        arrays = [a.cast(pa.string()) if pa.types.is_timestamp(a.type) else a for a in one.columns]
        return pa.RecordBatch.from_arrays(arrays, names=one.schema.names).to_pylist()[0]


@dataclass(frozen=True)
class BadRow:
    """A record the reader could split off but not make a row of (a CSV record with a wrong field count)."""

    error: str
    raw: str


class CsvRecord(dict):
    """One CSV record as a dict of header -> value (None for an empty field), which keeps its raw fields."""

    __slots__ = ("fields",)

    def __init__(self, header: list[str], fields: list[str]) -> None:
        # Fields are strings: `or None` turns the empty ones to None (a comprehension and zip, far faster
        # than a generator of pairs); the caller checks the count.
        super().__init__(zip(header, [v or None for v in fields], strict=False))
        self.fields = fields

    @property
    def raw(self) -> str:
        return _csv_line(self.fields)


def missing_columns(columns: list[str]) -> list[str]:
    """The required columns (:data:`REQUIRED_COLUMNS`) a header or schema lacks, by their snake_case name."""
    present = set(columns)
    return [names[0] for names in REQUIRED_COLUMNS if not present.intersection(names)]


def _no_columns(name: str, missing: list[str], columns: list[str]) -> UnreadableFile:
    shown = ", ".join(columns[:12]) + (", ..." if len(columns) > 12 else "")
    return UnreadableFile(
        f"{name}: the header has no {' or '.join(missing)} column, so its records cannot be observations "
        f"(its columns: {shown or 'none'})."
    )


def _overlong(size: int, head: bytes | str) -> BadRow:
    text = head.decode("utf-8", "replace") if isinstance(head, bytes) else head
    return BadRow(f"the line is {size:,} bytes long, over the limit of {MAX_LINE_BYTES:,}", text[:_PREVIEW])


def _csv_line(fields: list[str]) -> str:
    out = io.StringIO()
    csv.writer(out, quoting=csv.QUOTE_ALL, lineterminator="").writerow(fields)
    return out.getvalue()


class FileSource:
    """A file as a row source (see :class:`ingest.chunks.RowSource`): picklable, opened where it is read."""

    def __init__(
        self, path: str | os.PathLike[str], name: str, fmt: FileFormat | None = None, *, with_io: bool = True
    ) -> None:
        self.path, self.name, self.fmt, self.with_io = os.fspath(path), name, fmt, with_io
        self._file: IO[bytes] | None = None

    def __getstate__(self) -> dict[str, Any]:
        return {"path": self.path, "name": self.name, "fmt": self.fmt, "with_io": self.with_io, "_file": None}

    def rows(self) -> Iterator[tuple[int, Any]]:
        try:
            handle = open(self.path, "rb")  # noqa: SIM115 - closed below, after the last row
        except OSError as exc:
            raise UnreadableFile(f"{self.name} cannot be opened: {exc.strerror or exc}.") from None
        self._file = handle
        try:
            yield from read_rows(handle, self.name, self.fmt, with_io=self.with_io)
        finally:
            self._file = None
            handle.close()

    def position(self) -> int | None:
        """Bytes of the file read so far (compressed bytes for gzipped files)."""
        handle = self._file
        try:
            return handle.tell() if handle is not None else None
        except (OSError, ValueError):
            return None


def detect_format(name: str) -> FileFormat | None:
    """The format a file name says, or None when it names none this reader knows."""
    lower = name.lower()
    gz = lower.endswith(".gz")
    base = lower[:-3] if gz else lower
    kind = _KINDS.get(base.rsplit(".", 1)[-1]) if "." in base else None
    if kind is None or (kind == "parquet" and gz):
        return None
    return FileFormat(kind, gz)


def read_rows(
    stream: IO[bytes], name: str, fmt: FileFormat | None = None, *, with_io: bool = True
) -> Iterator[tuple[int, Any]]:
    """The rows of one file, streamed: ``(row_number, JSON text | dict | ArrowBatch | BadRow | SkippedRow)``.

    ``stream`` is the file's raw bytes (compressed if it is); ``name`` is used for the format and in messages.
    Without ``with_io``, Parquet files are not read for ``input`` and ``output``.
    """
    fmt = fmt or detect_format(name)
    if fmt is None:
        raise UnreadableFile(f"{name}: cannot tell the format from the name (expected {SUPPORTED}).")
    try:
        if fmt.kind == "parquet":
            yield from _parquet_rows(stream, name, with_io)
            return
        buffered = (
            stream
            if isinstance(stream, io.BufferedReader)
            else io.BufferedReader(cast(io.RawIOBase, stream), _BUFFER)
        )
        if fmt.gzip or buffered.peek(2)[:2] == _GZIP_MAGIC:
            inflated = _gzip_reader(buffered)
            try:
                yield from _text_rows(io.BufferedReader(inflated, _BUFFER), fmt, name)
            finally:
                inflated.close()  # stops its thread
        else:
            yield from _text_rows(buffered, fmt, name)
    except UnreadableFile:
        raise
    except Exception as exc:  # every library raises its own kind; all mean the same to the user
        if not _is_read_error(exc):
            raise
        raise UnreadableFile(f"{name} cannot be read: {_reason(exc)}.") from None


def _text_rows(buffered: io.BufferedReader, fmt: FileFormat, name: str) -> Iterator[tuple[int, Any]]:
    if fmt.kind == "csv":
        yield from _csv_rows(buffered, name)
    elif fmt.kind == "json" and _first_char(buffered) == b"[":
        yield from _json_array_rows(buffered, name)
    else:
        yield from _jsonl_rows(buffered)


def _gzip_reader(stream: IO[bytes]) -> io.BufferedReader:
    """The inflated stream. ISA-L inflates about twice as fast as zlib, and does it in a thread of its own
    (reading 2 MiB of the file at a time, and ahead by two blocks of 256 KiB), which leaves the interpreter
    lock while it works: the parser's Python runs meanwhile. Close it to stop the thread."""
    from isal import igzip_threaded

    return igzip_threaded.open(stream, "rb", threads=1, block_size=_INFLATE_BLOCK)  # type: ignore[return-value]


def _is_read_error(exc: BaseException) -> bool:
    import ijson

    if isinstance(exc, OSError | EOFError | zlib.error | csv.Error | UnicodeDecodeError | ijson.JSONError):
        return True
    if "pyarrow" in sys.modules:
        import pyarrow as pa

        if isinstance(exc, pa.ArrowException):
            return True
    from isal import isal_zlib

    # The stub declares isal_zlib.error as an instance; it is the exception class.
    return isinstance(exc, cast(type[BaseException], isal_zlib.error))


def _reason(exc: BaseException) -> str:
    if isinstance(exc, EOFError):
        return "the compressed data ends early (truncated file)"
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    return text.rstrip(".")


def _first_char(buffered: io.BufferedReader) -> bytes:
    head = buffered.peek(65536)
    if head.startswith(_BOM):
        head = head[len(_BOM) :]
    stripped = head.lstrip()
    return stripped[:1]


def _jsonl_rows(buffered: io.BufferedReader) -> Iterator[tuple[int, bytes | BadRow]]:
    if buffered.peek(3)[:3] == _BOM:
        buffered.read(3)
    limit = MAX_LINE_BYTES + 1  # a line this long without its newline is over the limit
    for number, line in enumerate(iter(partial(buffered.readline, limit), b""), 1):
        if len(line) == limit and line[-1] != 10:
            yield number, _overlong(limit + _skip_line(buffered), line)
        elif line[0] <= 32 and not line.strip():  # blank lines are not rows
            continue
        else:
            yield number, line


def _skip_line(stream: Any) -> int:
    """Read and drop the rest of the current line (its newline included); returns how much was dropped."""
    skipped = 0
    while block := stream.readline(_SKIP_BLOCK):
        skipped += len(block)
        if block[-1:] in (b"\n", "\n", "\r"):
            break
    return skipped


class _ElementTooLong(Exception):
    pass


class _BoundedStream:
    """A binary stream that fails once more than MAX_LINE_BYTES are read without :meth:`mark`: ijson holds a
    JSON array's element whole, so an endless one must stop the file before it fills memory."""

    def __init__(self, stream: IO[bytes]) -> None:
        self._stream = stream
        self._since_mark = 0

    def mark(self) -> None:
        self._since_mark = 0

    def read(self, size: int = -1) -> bytes:
        data = self._stream.read(min(size, _SKIP_BLOCK) if size >= 0 else _SKIP_BLOCK)
        self._since_mark += len(data)
        if self._since_mark > MAX_LINE_BYTES + 2 * _SKIP_BLOCK:
            raise _ElementTooLong
        return data


def _json_array_rows(buffered: io.BufferedReader, name: str) -> Iterator[tuple[int, Any]]:
    """The elements of a JSON array with every digit of their numbers: fractions as Decimal, integers of any
    size (yajl, ijson's C backend, reads integers only up to 64 bits when asked for floats)."""
    import ijson

    if buffered.peek(3)[:3] == _BOM:
        buffered.read(3)
    bounded = _BoundedStream(buffered)
    number = 0
    try:
        for number, item in enumerate(ijson.items(bounded, "item", use_float=False, buf_size=65536), 1):
            bounded.mark()
            yield number, item
    except _ElementTooLong:
        raise UnreadableFile(
            f"{name}: array element {number + 1:,} is longer than the limit of {MAX_LINE_BYTES:,} bytes; "
            "a JSON array cannot be read past it (JSONL can)."
        ) from None


class _BoundedLines:
    """Text lines for csv.reader, none held longer than MAX_LINE_BYTES characters per record: a record that
    grows past it raises _RecordTooLong (csv.reader starts afresh on the next call) after the rest of its
    physical line is dropped."""

    def __init__(self, text: io.TextIOWrapper) -> None:
        self._text = text
        self.used = 0  # characters of the record being read

    def __iter__(self) -> _BoundedLines:
        return self

    def __next__(self) -> str:
        line = self._text.readline(MAX_LINE_BYTES + 1)
        if not line:
            raise StopIteration
        self.used += len(line)
        if self.used > MAX_LINE_BYTES:
            size = self.used + (0 if line[-1] in "\r\n" else _skip_line(self._text))
            raise _RecordTooLong(size, line)
        return line


class _RecordTooLong(Exception):
    def __init__(self, size: int, head: str) -> None:
        super().__init__(size)
        self.size, self.head = size, head


def _csv_rows(buffered: io.BufferedReader, name: str) -> Iterator[tuple[int, Any]]:
    csv.field_size_limit(_CSV_FIELD_LIMIT)
    # Bytes that are not UTF-8 become U+FFFD rather than failing the whole file.
    text = io.TextIOWrapper(buffered, encoding="utf-8-sig", errors="replace", newline="")
    lines = _BoundedLines(text)
    reader = csv.reader(lines)
    try:
        header = next(reader, None)
    except _RecordTooLong:
        raise UnreadableFile(f"{name}: the header is longer than {MAX_LINE_BYTES:,} characters.") from None
    if header is None:
        raise UnreadableFile(f"{name} has no header (an empty CSV file).")
    missing = missing_columns(header)
    if missing:
        raise _no_columns(name, missing, header)
    width = len(header)
    type_at = header.index("type")
    skip_of = _SkipTypes()
    number = 0
    while True:
        lines.used = 0
        try:
            fields = next(reader)
        except StopIteration:
            return
        except _RecordTooLong as exc:
            number += 1
            yield number, _overlong(exc.size, exc.head)
            continue
        number += 1
        if len(fields) == width:
            yield number, skip_of[fields[type_at]] or CsvRecord(header, fields)
        elif fields:
            error = f"the record has {len(fields)} fields, the header has {width}"
            yield number, BadRow(error, _csv_line(fields))


@cache
def _arrow_memory_pool() -> None:
    """Have Arrow allocate with jemalloc where the wheel has it: over a long run of Parquet files it holds
    about 50 MB less than Arrow's default (mimalloc) and is the fastest of the three for this work
    (docs/benchmarks.md). Once per process; ``ARROW_DEFAULT_MEMORY_POOL`` set by the user wins."""
    import pyarrow as pa

    if "ARROW_DEFAULT_MEMORY_POOL" not in os.environ:
        with contextlib.suppress(NotImplementedError):  # a build without jemalloc: Arrow's default stays
            pa.set_memory_pool(pa.jemalloc_memory_pool())


def _parquet_rows(stream: IO[bytes], name: str, with_io: bool) -> Iterator[tuple[int, Any]]:
    import pyarrow as pa
    import pyarrow.parquet as pq

    _arrow_memory_pool()

    # Without pre-buffering: with it, the reader keeps every row group's column chunks it has read until the
    # file is closed, so its memory grows with the file (about 100 MB over a 500 MB export file).
    parquet = pq.ParquetFile(stream, pre_buffer=False)
    names = parquet.schema_arrow.names
    missing = missing_columns(names)
    if missing:
        raise _no_columns(name, missing, names)
    columns = [n for n in names if n in _READ_COLUMNS or (with_io and n in _IO_COLUMNS)]
    meta = parquet.metadata
    for i in range(meta.num_row_groups):
        group = meta.row_group(i)
        size = max(
            (
                group.column(j).total_uncompressed_size
                for j in range(group.num_columns)
                if group.column(j).path_in_schema.split(".", 1)[0] in columns
            ),
            default=0,
        )
        if size > MAX_COLUMN_CHUNK_BYTES:
            raise UnreadableFile(
                f"{name}: a column of row group {i + 1} decompresses to {size:,} bytes, over the limit of "
                f"{MAX_COLUMN_CHUNK_BYTES:,}; write the file with smaller row groups."
            )
    # Timestamps of microseconds without a zone (Langfuse's) become text in Langfuse's own shape, which Arrow
    # writes far faster than Python makes datetimes, and which the normaliser passes on as it is.
    types = [parquet.schema_arrow.field(n).type for n in columns]
    as_text = [i for i, t in enumerate(types) if pa.types.is_timestamp(t) and t.unit == "us" and t.tz is None]
    skip_of = _SkipTypes()
    number = 0
    from .arrow_rows import BATCH_ROWS, vectorisable

    # One thread: the parser is one of several processes at work (and Arrow's threads cost memory).
    if vectorisable(pa.schema([parquet.schema_arrow.field(n) for n in columns]), with_io):
        batches = parquet.iter_batches(batch_size=BATCH_ROWS, columns=columns, use_threads=False)
        yield from _arrow_batches(batches, skip_of)
        return
    for batch in parquet.iter_batches(batch_size=4096, columns=columns, use_threads=False):
        skips = [skip_of[t] for t in batch.column("type").to_pylist()]
        kept = [i for i, skipped in enumerate(skips) if skipped is None]
        if len(kept) < len(skips):  # only the rows to load are made into dicts
            batch = batch.take(kept) if kept else batch.slice(0, 0)
        if as_text:
            arrays = batch.columns
            for i in as_text:
                arrays[i] = arrays[i].cast(pa.string())
            batch = pa.RecordBatch.from_arrays(arrays, names=batch.schema.names)
        rows = iter(batch.to_pylist())
        for skipped in skips:
            number += 1
            yield number, skipped or next(rows)


def _arrow_batches(batches: Iterator[Any], skip_of: _SkipTypes) -> Iterator[tuple[int, ArrowBatch]]:
    """Each record batch without its rows of skipped types, for the column-wise way (ingest.arrow_rows),
    with the number of its first row."""
    import pyarrow as pa
    import pyarrow.compute as pc

    loaded = pa.array(sorted(LOADED_TYPES))
    number = 0
    for batch in batches:
        types = batch.column("type")
        skipped: Counter[str] = Counter()
        others = pc.filter(types, pc.invert(pc.fill_null(pc.is_in(types, loaded), False)))
        skipping = []
        if len(others):
            for entry in pc.value_counts(others).to_pylist():
                value = entry["values"]
                row = skip_of[value] if value is not None else None
                if row is not None:
                    skipping.append(value)
                    skipped[row.type] += entry["counts"]
        if skipping:
            keep = pc.invert(pc.fill_null(pc.is_in(types, pa.array(skipping, types.type)), False))
            kept = pc.indices_nonzero(keep).to_pylist()
            rows = batch.take(pa.array(kept, pa.int64()))
            numbers = [number + 1 + i for i in kept]
        else:
            rows, numbers = batch, list(range(number + 1, number + 1 + batch.num_rows))
        yield number + 1, ArrowBatch(rows, numbers, batch.num_rows, skipped)
        number += batch.num_rows
