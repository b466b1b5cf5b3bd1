"""Read the rows of one Langfuse export file from a binary stream, whatever its format.

Formats (by file name, see :func:`detect_format`): JSONL (``.jsonl``, ``.ndjson``), JSON (``.json``: one
array, or JSONL when the first non-blank character is not ``[``), CSV (Langfuse quotes every field and writes
objects as JSON text; an empty field is null) and Parquet (``.parquet``); the text formats optionally gzipped
(``.gz``, or any file that starts with the gzip magic bytes). Every reader streams: memory stays constant
whatever the size of the file.

:func:`read_rows` yields ``(row_number, item)``: ``item`` is the JSON text of a row (JSONL lines, parsed later
by :class:`ingest.normalize.Normalizer`), a dict (JSON arrays, CSV records, Parquet rows) or a :class:`BadRow`
for a record the format itself shows is broken. Row numbers are line numbers for JSONL, record numbers
(header excluded) for CSV, and element or row positions for JSON arrays and Parquet, all counted from 1.
A file that cannot be read at all raises :class:`UnreadableFile` with one sentence naming it.

Readers take a binary stream and a name only, so objects from blob storage can be fed the same way as files.
"""

from __future__ import annotations

import csv
import io
import logging
import os
import sys
import zlib
from collections.abc import Iterator
from dataclasses import dataclass
from typing import IO, Any, cast

logger = logging.getLogger(__name__)

_KINDS = {"jsonl": "jsonl", "ndjson": "jsonl", "json": "json", "csv": "csv", "parquet": "parquet"}
SUPPORTED = ".jsonl, .ndjson, .json, .csv or .parquet, text formats optionally with .gz"
_GZIP_MAGIC = b"\x1f\x8b"
_BOM = b"\xef\xbb\xbf"
_BUFFER = 1 << 20
_CSV_FIELD_LIMIT = min(sys.maxsize, 2**31 - 1)


class UnreadableFile(Exception):
    """A file that cannot be read at all; the message is one sentence that names it."""


@dataclass(frozen=True)
class FileFormat:
    """How a file is stored: ``kind`` is jsonl, json, csv or parquet; ``gzip`` whether it is compressed."""

    kind: str
    gzip: bool = False


@dataclass(frozen=True)
class BadRow:
    """A record the reader could split off but not make a row of (a CSV record with a wrong field count)."""

    error: str
    raw: str


class CsvRecord(dict):
    """One CSV record as a dict of header -> value (None for an empty field), which keeps its raw fields."""

    __slots__ = ("fields",)

    def __init__(self, header: list[str], fields: list[str]) -> None:
        super().__init__((h, v if v != "" else None) for h, v in zip(header, fields, strict=True))
        self.fields = fields

    @property
    def raw(self) -> str:
        return _csv_line(self.fields)


def _csv_line(fields: list[str]) -> str:
    out = io.StringIO()
    csv.writer(out, quoting=csv.QUOTE_ALL, lineterminator="").writerow(fields)
    return out.getvalue()


class FileSource:
    """A file as a row source (see :class:`ingest.chunks.RowSource`): picklable, opened where it is read."""

    def __init__(self, path: str | os.PathLike[str], name: str, fmt: FileFormat | None = None) -> None:
        self.path, self.name, self.fmt = os.fspath(path), name, fmt
        self._file: IO[bytes] | None = None

    def __getstate__(self) -> dict[str, Any]:
        return {"path": self.path, "name": self.name, "fmt": self.fmt, "_file": None}

    def rows(self) -> Iterator[tuple[int, Any]]:
        try:
            handle = open(self.path, "rb")  # noqa: SIM115 - closed below, after the last row
        except OSError as exc:
            raise UnreadableFile(f"{self.name} cannot be opened: {exc.strerror or exc}.") from None
        self._file = handle
        try:
            yield from read_rows(handle, self.name, self.fmt)
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


def read_rows(stream: IO[bytes], name: str, fmt: FileFormat | None = None) -> Iterator[tuple[int, Any]]:
    """The rows of one file, streamed: ``(row_number, JSON text | dict | BadRow)``.

    ``stream`` is the file's raw bytes (compressed if it is); ``name`` is used for the format and in messages.
    """
    fmt = fmt or detect_format(name)
    if fmt is None:
        raise UnreadableFile(f"{name}: cannot tell the format from the name (expected {SUPPORTED}).")
    try:
        if fmt.kind == "parquet":
            yield from _parquet_rows(stream)
            return
        buffered = (
            stream
            if isinstance(stream, io.BufferedReader)
            else io.BufferedReader(cast(io.RawIOBase, stream), _BUFFER)
        )
        if fmt.gzip or buffered.peek(2)[:2] == _GZIP_MAGIC:
            buffered = io.BufferedReader(_gzip_reader(buffered), _BUFFER)
        if fmt.kind == "csv":
            yield from _csv_rows(buffered)
        elif fmt.kind == "json" and _first_char(buffered) == b"[":
            yield from _json_array_rows(buffered)
        else:
            yield from _jsonl_rows(buffered)
    except UnreadableFile:
        raise
    except Exception as exc:  # every library raises its own kind; all mean the same to the user
        if not _is_read_error(exc):
            raise
        raise UnreadableFile(f"{name} cannot be read: {_reason(exc)}.") from None


def _gzip_reader(stream: IO[bytes]) -> IO[bytes]:
    # ISA-L inflates about twice as fast as zlib; the file format is the same.
    from isal import igzip

    return igzip.IGzipFile(fileobj=stream, mode="rb")  # type: ignore[return-value]


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


def _jsonl_rows(buffered: io.BufferedReader) -> Iterator[tuple[int, bytes]]:
    if buffered.peek(3)[:3] == _BOM:
        buffered.read(3)
    for number, line in enumerate(buffered, 1):
        if line[0] <= 32 and not line.strip():  # blank lines are not rows
            continue
        yield number, line


def _json_array_rows(buffered: io.BufferedReader) -> Iterator[tuple[int, Any]]:
    import ijson

    if buffered.peek(3)[:3] == _BOM:
        buffered.read(3)
    yield from enumerate(ijson.items(buffered, "item", use_float=True), 1)


def _csv_rows(buffered: io.BufferedReader) -> Iterator[tuple[int, Any]]:
    csv.field_size_limit(_CSV_FIELD_LIMIT)
    # Bytes that are not UTF-8 become U+FFFD rather than failing the whole file.
    text = io.TextIOWrapper(buffered, encoding="utf-8-sig", errors="replace", newline="")
    reader = csv.reader(text)
    header = next(reader, None)
    if header is None:
        return
    width = len(header)
    for number, fields in enumerate(reader, 1):
        if len(fields) == width:
            yield number, CsvRecord(header, fields)
        elif fields:
            error = f"the record has {len(fields)} fields, the header has {width}"
            yield number, BadRow(error, _csv_line(fields))


def _parquet_rows(stream: IO[bytes]) -> Iterator[tuple[int, dict]]:
    import pyarrow.parquet as pq

    parquet = pq.ParquetFile(stream)
    number = 0
    for batch in parquet.iter_batches(batch_size=8192):
        for row in batch.to_pylist():
            number += 1
            yield number, row
