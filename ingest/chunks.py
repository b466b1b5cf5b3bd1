"""Rows to chunks of ``COPY`` text, parsed ahead of the database in a thread or in a child process.

:func:`make_chunks` normalises rows (:class:`ingest.normalize.Normalizer`) into :class:`Chunk` objects of up
to :data:`CHUNK_ROWS` rows: the COPY text of the rows to write, their row numbers, the rejected rows, counts.
Within a chunk, rows repeated under one id are reduced to the one with the greatest ``updated_at`` (on ties
the first one read), so a chunk never holds an id twice; rows are sorted by id, and those whose ids the
parser process saw at the end of the file before (:class:`RecentIds`) are put last, for the upsert.

Parsing is CPU-bound Python while writing is PostgreSQL's work, so they run side by side:
:func:`parse_in_thread` for any iterable (API pages), and a :class:`ParserProcess` for sources that can be
opened in another process (files: there the parser does not share the interpreter lock with the thread that
feeds PostgreSQL, and it moves on to the next file while the last chunk of one is written). Either way a
bounded number of chunks is in flight, so memory stays constant whatever the size of the input.

The parser process is a child interpreter with two pipes rather than a :mod:`concurrent.futures` pool or a
:class:`multiprocessing.Queue`, which fit this less well: a source's result is a stream of chunks, while a
future holds one value (a whole file's worth, in memory at once); a chunk is megabytes of COPY text, which a
Queue pickles and copies on both sides, while here it crosses the pipe as raw bytes read straight into one
buffer (:func:`_read_exact`); and multiprocessing's start methods either run the caller's main module again
in the child (spawn) or copy the caller's threads and database connection into it (fork). The standard
library still frames the small messages (:class:`multiprocessing.connection.Connection`).
"""

from __future__ import annotations

import contextlib
import ctypes
import fcntl
import functools
import logging
import os
import queue
import signal
import subprocess
import sys
import threading
import traceback
from collections import Counter, deque
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from multiprocessing.connection import Connection
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

import orjson

from .normalize import COPY_COLUMNS, Normalizer, RowError, version_key
from .readers import ArrowBatch, BadRow, SkippedRow, UnreadableFile

if TYPE_CHECKING:  # pyarrow is imported only where a Parquet file is read
    from .arrow_rows import Block, ChunkText

logger = logging.getLogger(__name__)

CHUNK_ROWS = 20_000
#: A chunk also ends once its COPY text (and rejected rows' text) pass this many characters, so that rows
#: of megabytes each keep the few chunks in flight within bounded memory.
CHUNK_CHARS = 16 << 20
#: Rejected rows of one source kept in full in rejected_rows; later ones are counted only (see ingest.loader).
REJECTS_KEPT = 1000
#: Chunks parsed ahead of the database by the parser thread, and read ahead from the parser process (the
#: parser and the database take turns being the slower one; four chunks of slack keep both busy).
THREAD_AHEAD = 2
READ_AHEAD = 4
#: A file's first chunk holds chunk_rows // RAMP rows, the next ones twice as many each, up to chunk_rows.
RAMP = 16
#: Parser processes of a file ingest (see ParserPool).
PARSERS = 2
RAW_LIMIT = 100_000  # characters of a rejected row kept in rejected_rows.raw
# For the parser process (glibc; ignored elsewhere, and a user's own settings win): a chunk's text and COPY
# bytes are megabytes each, which glibc would map afresh and hand back every time, so that each chunk paid
# for zeroed pages again (~6 ms of 20 ms); kept in the heap, they are reused.
_MALLOC_TUNING = {"MALLOC_MMAP_THRESHOLD_": str(32 << 20), "MALLOC_TRIM_THRESHOLD_": str(128 << 20)}
_UPDATED_AT = COPY_COLUMNS.index("updated_at")
_M_MMAP_THRESHOLD = -3  # glibc's mallopt parameter (malloc.h)


@dataclass
class Rejection:
    """A row that is not loaded: its row number, why, and its raw text."""

    row_number: int | None
    error: str
    raw: str | None


@dataclass
class Chunk:
    """Up to CHUNK_ROWS rows of one source, ready for COPY."""

    blob: bytes | bytearray | memoryview  # COPY text (format text, NULL ''), one line per row to write
    row_numbers: list[Any]  # the row number of each line of blob
    rejections: list[Rejection]
    rows_read: int
    duplicates: int  # rows dropped for another version of the same id in this chunk
    skipped: Counter[str]  # rows of types that are not loaded, by type
    position: int | None  # how far into the source (bytes) the chunk ends, for progress
    #: The last ``repeated`` lines (from byte ``repeated_at`` of blob) hold ids that an earlier source of the
    #: same parser held too (see RecentIds): they are probably stored already, so they go straight to the
    #: upsert. The other lines are sorted by id, and so are these.
    repeated: int = 0
    repeated_at: int = 0
    latency_ms: int = 0  # rows whose latency was read as milliseconds (see Normalizer.millis_rows)


@dataclass(frozen=True)
class ParseOptions:
    """How to normalise rows (picklable, so a child process can build the same normaliser)."""

    suffix: str  # the tab-separated _source_file and _batch_id appended to every line
    with_io: bool = False
    latency_unit: str = "auto"
    chunk_rows: int = CHUNK_ROWS

    def normalizer(self) -> Normalizer:
        return Normalizer(suffix=self.suffix, with_io=self.with_io, latency_unit=self.latency_unit)


class RecentIds:
    """The ids of the last rows (two chunks' worth) that a parser read before the current source.

    Export windows overlap: the rows a file repeats are those at the end of the file before it. Sent apart
    (see Chunk.repeated), they go to the upsert without first failing a COPY of their whole chunk on the
    unique key and having every id of that chunk looked up. A guess only: a row that turns out not to be
    stored is simply inserted by the upsert.
    """

    def __init__(self) -> None:
        self._chunks: deque[dict[str, int]] = deque(maxlen=2)

    def add(self, chunk_ids: dict[str, int]) -> None:
        self._chunks.append(chunk_ids)

    def snapshot(self) -> frozenset[str]:
        return frozenset().union(*self._chunks)


class RowSource(Protocol):
    """Rows that can be opened anywhere, a child process included (the object must be picklable)."""

    def rows(self) -> Iterator[tuple[int | None, Any]]:
        """Open the source and yield its ``(row_number, row)``; the source is closed when this ends."""

    def position(self) -> int | None:
        """How far into the source reading has got (bytes), or None when unknown."""


class ParserFailed(RuntimeError):
    """The parser process ended without a result (a bug, or it was killed)."""


class _Rows:
    """The rows of the chunk being built: one line per id, the newest version of each (ties: the first).

    Rows made in Arrow (a Parquet file's, see ingest.arrow_rows) are held as their blocks of columns while
    the chunk has no other rows, and the chunk's text is then made in Arrow too; a row of the row path, or
    an id met twice, has the blocks' rows added one by one like any other, in their order."""

    __slots__ = ("lines", "numbers", "first_at", "repeated", "earlier", "size", "duplicates", "blocks")

    def __init__(self, earlier: frozenset[str]) -> None:
        self.blocks: list[Block] = []
        self.lines: list[str] = []
        self.numbers: list[Any] = []
        self.first_at: dict[str, int] = {}
        self.repeated: list[int] = []  # indexes in lines of ids held by ``earlier`` (see RecentIds)
        self.earlier = earlier
        self.size = 0  # characters of the lines
        self.duplicates = 0

    def add_block(self, block: Block) -> None:
        """Add the rows of a block made in Arrow."""
        if self.lines:
            self._add_each(block)
        else:
            self.blocks.append(block)
            self.size += block.size

    def spill(self) -> None:
        """Add the held blocks' rows one by one."""
        blocks, self.blocks = self.blocks, []
        for block in blocks:
            self.size -= block.size
            self._add_each(block)

    def _add_each(self, block: Block) -> None:
        versions = block.versions
        rows = zip(block.ids.to_pylist(), block.lines.to_pylist(), block.numbers, strict=True)
        for index, (oid, line, number) in enumerate(rows):
            self.add(oid, versions[index], line, number)

    def add(self, oid: str, version: Any, line: str, number: Any) -> None:
        """Add a row's line; ``version`` is its updated_at as text (or an Arrow scalar of it)."""
        if self.blocks:
            self.spill()
        lines = self.lines
        count = len(lines)
        at = self.first_at.setdefault(oid, count)
        if at == count:
            lines.append(line)
            self.numbers.append(number)
            self.size += len(line)
            if self.earlier and oid in self.earlier:
                self.repeated.append(count)
        else:
            self.duplicates += 1
            if version.__class__ is not str:
                version = version.as_py()
            kept = lines[at].split("\t", _UPDATED_AT + 1)[_UPDATED_AT]
            if version != kept and version_key(version) > version_key(kept):
                lines[at], self.numbers[at] = line, number


def make_chunks(
    rows: Iterable[tuple[int | None, Any]],
    options: ParseOptions,
    position: Any = None,
    recent: RecentIds | None = None,
) -> Iterator[Chunk]:
    """Normalise ``rows`` into chunks; ``position`` (a callable) tells progress at each chunk's end.
    With ``recent``, rows whose ids it holds are marked repeated, and it learns this source's ids."""
    normalizer = options.normalizer()
    from_text, from_dict, skipped = normalizer.from_text, normalizer.from_dict, normalizer.skipped
    chunk_rows = options.chunk_rows
    earlier = recent.snapshot() if recent is not None else frozenset()
    pending = _Rows(earlier)
    add = pending.add
    earlier_arrow: list[Any] = []  # earlier as an Arrow array, made once if a chunk of Arrow rows needs it
    rejections: list[Rejection] = []
    read = rejected = 0
    chunk_chars = CHUNK_CHARS
    # A file's first chunks are small, doubling up to chunk_rows: the rows an export repeats from the run
    # before come first, and a chunk with one of them stored already is copied again after a look-up (see
    # ingest.loader), which then costs a small chunk rather than a whole one.
    limit = max(chunk_rows // RAMP, 1) if recent is not None else chunk_rows
    for number, item in rows:
        read += 1
        try:
            if item.__class__ is bytes or item.__class__ is str:  # a JSONL line: the common case
                result = from_text(item)
            elif item.__class__ is SkippedRow:  # the reader told its type, and read no more of it
                skipped[item.type] += 1
                result = None
            elif isinstance(item, dict):
                result = from_dict(item)
            elif item.__class__ is ArrowBatch:  # a Parquet batch, made into lines column by column
                read += item.rows_read - 1
                skipped.update(item.skipped)
                rejected = _arrow_rows(item, normalizer, pending, rejections, rejected)
                result = None
            elif isinstance(item, BadRow):
                raise RowError(item.error)
            else:
                raise RowError("a row must be a JSON object")
        except RowError as exc:
            rejected = _reject(rejections, rejected, number, item, exc, pending)
            result = None
        if result is not None:
            add(result[0], result[1], result[2], number)
        if read >= limit or pending.size > chunk_chars:
            yield _chunk(pending, rejections, read, normalizer, position, earlier_arrow)
            limit = min(limit * 2, chunk_rows)
            if recent is not None:
                recent.add(pending.first_at)
            pending, rejections, read = _Rows(earlier), [], 0
            add = pending.add
    if read:
        yield _chunk(pending, rejections, read, normalizer, position, earlier_arrow)
        if recent is not None:
            recent.add(pending.first_at)


def _reject(
    rejections: list[Rejection], rejected: int, number: Any, item: Any, exc: RowError, pending: _Rows
) -> int:
    """Record a rejected row (its raw text only for the first REJECTS_KEPT of the source); returns the
    source's count of rejected rows."""
    rejected += 1
    raw = raw_text(item) if rejected <= REJECTS_KEPT else None  # the rest are only counted
    rejections.append(Rejection(number, str(exc), raw))
    pending.size += len(raw) if raw else 0
    return rejected


def _arrow_rows(
    item: ArrowBatch, normalizer: Normalizer, pending: _Rows, rejections: list[Rejection], rejected: int
) -> int:
    """Add the rows of one Parquet batch to the chunk being built, as make_chunks adds rows one by one: the
    rows made column by column (ingest.arrow_rows) and, in their places, those that take the row path.
    Returns the source's count of rejected rows."""
    from .arrow_rows import normalize_batch

    add = pending.add
    for piece in normalize_batch(item, normalizer):
        if isinstance(piece, tuple):  # a row for the row path
            number, row = piece
            try:
                result = normalizer.from_dict(row)
            except RowError as exc:
                rejected = _reject(rejections, rejected, number, row, exc, pending)
                continue
            if result is not None:
                add(result[0], result[1], result[2], number)
            continue
        pending.add_block(piece)
    return rejected


def _chunk(
    pending: _Rows,
    rejections: list[Rejection],
    read: int,
    normalizer: Normalizer,
    position: Any,
    earlier_arrow: list[Any],
) -> Chunk:
    blob: bytes | memoryview
    made = _arrow_text(pending, earlier_arrow) if pending.blocks else None
    if made is not None:
        blob, row_numbers, repeated, repeated_at = made.blob, made.numbers, made.repeated, made.repeated_at
        pending.first_at = dict.fromkeys(made.ids, 0)
    else:
        pending.spill()  # held blocks whose text Arrow did not make (an id met twice) join the rows
        lines, numbers, marked = pending.lines, pending.numbers, pending.repeated
        # Lines start with the id: in id order, PostgreSQL's key index takes them with far fewer page visits.
        order = sorted(range(len(lines)), key=lines.__getitem__)
        tail = b""
        if marked:  # the repeated rows go last, in id order too
            held = set(marked)
            tail = _blob([lines[i] for i in order if i in held])
            order = [i for i in order if i not in held] + [i for i in order if i in held]
        head = _blob([lines[i] for i in order[: len(order) - len(marked)]])
        blob, row_numbers, repeated, repeated_at = (
            head + tail if tail else head,
            [numbers[i] for i in order],
            len(marked),
            len(head),
        )
    skipped = normalizer.skipped.copy()
    normalizer.skipped.clear()
    latency_ms, normalizer.millis_rows = normalizer.millis_rows, 0
    return Chunk(
        blob,
        row_numbers,
        rejections,
        read,
        pending.duplicates,
        skipped,
        position() if position else None,
        repeated,
        repeated_at,
        latency_ms,
    )


def _arrow_text(pending: _Rows, earlier_arrow: list[Any]) -> ChunkText | None:
    """The chunk's text made in Arrow from its held blocks (see ingest.arrow_rows.chunk_text)."""
    import pyarrow as pa

    from .arrow_rows import chunk_text

    if pending.earlier and not earlier_arrow:
        earlier_arrow.append(pa.array(sorted(pending.earlier), pa.string()))
    return chunk_text(pending.blocks, earlier_arrow[0] if earlier_arrow else None)


def _blob(lines: list[str]) -> bytes:
    if not lines:
        return b""
    lines.append("")  # the last line's newline, without copying the joined text again
    # surrogatepass: a lone surrogate becomes bytes PostgreSQL refuses, so that row alone is rejected.
    return "\n".join(lines).encode("utf-8", "surrogatepass")


def raw_text(item: Any) -> str | None:
    """A row's raw text for ``rejected_rows.raw``."""
    if isinstance(item, bytes):
        text = item.decode("utf-8", "replace")
    elif isinstance(item, str):
        text = item
    elif isinstance(item, BadRow) or hasattr(item, "raw"):
        text = item.raw
    else:
        try:
            text = orjson.dumps(item, default=str, option=orjson.OPT_NON_STR_KEYS).decode()
        except TypeError:
            text = repr(item)
    return storable(text.rstrip("\r\n"))


def storable(text: str) -> str:
    """Text PostgreSQL can store: no NUL characters, and not unboundedly long."""
    text = text.replace("\x00", "\ufffd")
    return text if len(text) <= RAW_LIMIT else text[:RAW_LIMIT] + "..."


# -- parsing in a thread -------------------------------------------------------------------------------

_END = object()


@dataclass
class _Failure:
    exc: BaseException


def parse_in_thread(
    rows: Iterable[tuple[int | None, Any]], options: ParseOptions, position: Any = None
) -> Iterator[Chunk]:
    """Chunks of ``rows``, parsed by a thread up to THREAD_AHEAD chunks ahead of the consumer."""
    handoff: queue.Queue[Any] = queue.Queue(maxsize=THREAD_AHEAD)
    stop = threading.Event()

    def produce() -> None:
        try:
            for chunk in make_chunks(rows, options, position):
                while not stop.is_set():
                    try:
                        handoff.put(chunk, timeout=0.1)
                        break
                    except queue.Full:
                        continue
                if stop.is_set():
                    return
            handoff.put(_END)
        except BaseException as exc:  # handed to the consumer, which raises it in its own thread
            handoff.put(_Failure(exc))

    thread = threading.Thread(target=produce, name="ingest-parser", daemon=True)
    thread.start()
    try:
        while True:
            item = handoff.get()
            if item is _END:
                return
            if isinstance(item, _Failure):
                raise item.exc
            yield item
    finally:
        stop.set()
        while thread.is_alive():  # let the parser see `stop` even if it is waiting to hand over
            try:
                handoff.get(timeout=0.1)
            except queue.Empty:
                continue
        thread.join()


# -- parsing in a child process ------------------------------------------------------------------------


class ParserProcess:
    """A child process that parses sources one after another, in the order they are submitted.

    Submit every source up front, then consume ``chunks(ticket)`` in the same order: while the caller writes
    one source's last chunk, the child is already parsing the next source, so neither side waits at file
    boundaries. The child is a fresh interpreter started for this (not a fork, and not through
    multiprocessing's spawn, which would run the caller's main script again): it shares no locks, threads or
    database connection with this process. It stays at most about one chunk ahead (the pipe applies
    back-pressure), so memory stays bounded; when this process dies, its pipes close and the child ends.
    Sources must be picklable and importable (see :class:`ingest.readers.FileSource`).
    """

    def __init__(self, read_ahead: int = READ_AHEAD) -> None:
        _unmap_chunks_when_freed()
        tasks_read, tasks_write = os.pipe()
        results_read, results_write = os.pipe()
        _widen(results_write)
        package_root = str(Path(__file__).resolve().parent.parent)
        env = {
            **_MALLOC_TUNING,
            **os.environ,
            "PYTHONPATH": os.pathsep.join(filter(None, [package_root, os.environ.get("PYTHONPATH")])),
        }
        try:
            self._process = subprocess.Popen(
                [
                    sys.executable,
                    "-c",
                    "from ingest.chunks import serve; serve()",
                    str(tasks_read),
                    str(results_write),
                ],
                pass_fds=(tasks_read, results_write),
                stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL,
                env=env,
            )
        finally:
            os.close(tasks_read)
            os.close(results_write)
        self._tasks = Connection(tasks_write, readable=False)
        self._results = Connection(results_read, writable=False)
        self._submitted = 0
        self._next = 0  # the ticket whose chunks come next
        self._stopped = False
        # A reader thread takes chunks off the pipe while the caller writes, so the parser never waits for
        # the database: parsing is the longer of the two, and any pause in it is lost time.
        self._inbox: queue.Queue[Any] = queue.Queue(maxsize=read_ahead)
        self._reader = threading.Thread(target=self._read, name="ingest-parser-reader", daemon=True)
        self._reader.start()

    def _read(self) -> None:
        try:
            while True:
                message = self._results.recv()
                if message[0] == "chunk":
                    message = ("chunk", message[1], _read_exact(self._results.fileno(), message[2]))
                self._inbox.put(message)
        except (EOFError, OSError):
            self._inbox.put(("gone",))

    def submit(self, source: RowSource, options: ParseOptions) -> int:
        """Queue ``source`` for parsing; returns its ticket for :meth:`chunks`."""
        self._tasks.send((source, options))
        self._submitted += 1
        return self._submitted - 1

    def chunks(self, ticket: int) -> Iterator[Chunk]:
        """The chunks of the source with this ticket (tickets are consumed in order). Raises UnreadableFile
        when the source cannot be read; the parser then goes on with the next source."""
        if self._stopped:
            raise ParserFailed("the parser process stopped after an earlier failure")
        if ticket != self._next:
            raise ValueError(f"ticket {ticket} asked for before ticket {self._next}")
        finished = False
        try:
            while True:
                message = self._inbox.get()
                kind = message[0]
                if kind == "chunk":
                    yield Chunk(message[2], *message[1])
                    continue
                if kind == "gone":
                    code = self._process.wait(5)
                    raise ParserFailed(f"the parser process ended early (exit code {code})")
                finished = True
                if kind == "end":
                    return
                if kind == "unreadable":
                    raise UnreadableFile(message[1])
                raise ParserFailed(f"the parser process failed:\n{message[1]}")
        finally:
            self._next += 1
            if not finished:  # the caller gave up on this source mid-way: the parser cannot go on
                self.close()

    def close(self) -> None:
        """Stop the child process (at once if it is still busy)."""
        if self._stopped:
            return
        self._stopped = True
        self._tasks.close()
        if self._process.poll() is None:
            self._process.kill()
        self._process.wait()
        while self._reader.is_alive():  # the pipe is closed now: the reader ends once it can hand over
            with contextlib.suppress(queue.Empty):
                self._inbox.get(timeout=0.1)
        self._results.close()

    def __enter__(self) -> ParserProcess:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class ParserPool:
    """Parser processes that take the submitted sources in turn, so that as many sources are parsed side by
    side, with the interface of one :class:`ParserProcess` (tickets consumed in the order submitted).

    Parsing a file is CPU-bound Python: on a machine with a core to spare beside PostgreSQL (or one shared
    with other work, where each process gets its share), two parsers keep the writer busier than one.
    Each reads ahead fewer chunks than a lone parser, so the pool's memory stays about the same."""

    def __init__(self, processes: int = PARSERS) -> None:
        self._parsers: list[ParserProcess] = []
        try:
            for _ in range(processes):
                self._parsers.append(ParserProcess(read_ahead=max(READ_AHEAD // processes, 1)))
        except BaseException:
            self.close()
            raise
        self._submitted = 0

    def submit(self, source: RowSource, options: ParseOptions) -> int:
        """Queue ``source`` for the next parser in turn; returns its ticket for :meth:`chunks`."""
        ticket = self._submitted
        self._parsers[ticket % len(self._parsers)].submit(source, options)
        self._submitted += 1
        return ticket

    def chunks(self, ticket: int) -> Iterator[Chunk]:
        """The chunks of the source with this ticket, as :meth:`ParserProcess.chunks` gives them."""
        count = len(self._parsers)
        return self._parsers[ticket % count].chunks(ticket // count)

    def close(self) -> None:
        for parser in self._parsers:
            parser.close()

    def __enter__(self) -> ParserPool:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _read_exact(pipe: int, size: int) -> bytearray:
    """``size`` bytes from the pipe, read straight into one buffer (``recv_bytes`` would copy a chunk's
    megabytes twice more on the way)."""
    buffer = bytearray(size)
    view = memoryview(buffer)
    got = 0
    while got < size:
        read = os.readv(pipe, [view[got:]])
        if not read:
            raise EOFError
        got += read
    return buffer


def _write_all(pipe: int, data: bytes | bytearray | memoryview) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(pipe, view) :]


@functools.cache
def _unmap_chunks_when_freed() -> None:
    """In the process that reads the parsers' chunks: have glibc map every allocation of 1 MiB or more
    afresh and unmap it when freed. By default glibc raises that threshold to the size of the last such
    block freed, so chunks (megabytes each, read in one thread and freed in another) would come from its
    heaps, which fragment and grow over a long run (about 40 MB over a 2.5M-row ingest). Not glibc, or
    ``MALLOC_MMAP_THRESHOLD_`` set by the user: nothing changes."""
    if "MALLOC_MMAP_THRESHOLD_" in os.environ or not sys.platform.startswith("linux"):
        return
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL(None).mallopt(_M_MMAP_THRESHOLD, 1 << 20)


def _widen(pipe: int) -> None:
    # A chunk is megabytes: a pipe of 1 MiB instead of 64 KiB moves it with far fewer wake-ups.
    with contextlib.suppress(OSError):  # not Linux, or above the system's limit: the default still works
        fcntl.fcntl(pipe, getattr(fcntl, "F_SETPIPE_SZ", 1031), 1 << 20)


def serve() -> None:
    """The parser process's main: parse each submitted source and send its chunks, until the tasks pipe
    closes. Its two pipe descriptors (tasks to read, results to write) are its arguments."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the parent handles Ctrl-C and ends this process
    tasks = Connection(int(sys.argv[1]), writable=False)
    results = Connection(int(sys.argv[2]), readable=False)
    recent = RecentIds()  # across the sources of the run: the files of one export overlap
    try:
        while True:
            try:
                source, options = tasks.recv()
            except EOFError:
                return
            try:
                for chunk in make_chunks(source.rows(), options, source.position, recent):
                    results.send(
                        (
                            "chunk",
                            (
                                chunk.row_numbers,
                                chunk.rejections,
                                chunk.rows_read,
                                chunk.duplicates,
                                chunk.skipped,
                                chunk.position,
                                chunk.repeated,
                                chunk.repeated_at,
                                chunk.latency_ms,
                            ),
                            len(chunk.blob),
                        )
                    )
                    _write_all(results.fileno(), chunk.blob)  # the blob follows its message, as raw bytes
                results.send(("end",))
            except UnreadableFile as exc:
                results.send(("unreadable", str(exc)))
            except (BrokenPipeError, ConnectionResetError):
                raise
            except Exception as exc:  # a bug: hand the traceback over and go on with the next source
                results.send(("failed", "".join(traceback.format_exception(exc))))
    except (BrokenPipeError, ConnectionResetError):
        return  # the parent is gone; nothing to tell
