"""Rows to chunks of ``COPY`` text, parsed ahead of the database in a thread or in a child process.

:func:`make_chunks` normalises rows (:class:`ingest.normalize.Normalizer`) into :class:`Chunk` objects of up
to :data:`CHUNK_ROWS` rows: the COPY text of the rows to write, their row numbers, the rejected rows, counts.
Within a chunk, rows repeated under one id are reduced to the one with the greatest ``updated_at`` (on ties
the first one read), so a chunk never holds an id twice.

Parsing is CPU-bound Python while writing is PostgreSQL's work, so they run side by side:
:func:`parse_in_thread` for any iterable (API pages, small files) and :func:`parse_in_process` for a
:class:`RowSource` that can be opened in another process (big files: there the parser does not share the
interpreter lock with the thread that feeds PostgreSQL). Either way a bounded number of chunks is in flight,
so memory stays constant whatever the size of the input.
"""

from __future__ import annotations

import contextlib
import gc
import logging
import multiprocessing
import queue
import signal
import threading
import traceback
from collections import Counter
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Any, Protocol

import orjson

from .normalize import COPY_COLUMNS, Normalizer, RowError, version_key
from .readers import BadRow, UnreadableFile

logger = logging.getLogger(__name__)

CHUNK_ROWS = 20_000
#: Chunks parsed ahead of the database by the parser thread.
THREAD_AHEAD = 2
RAW_LIMIT = 100_000  # characters of a rejected row kept in rejected_rows.raw
_UPDATED_AT = COPY_COLUMNS.index("updated_at")


@dataclass
class Rejection:
    """A row that is not loaded: its row number, why, and its raw text."""

    row_number: int | None
    error: str
    raw: str | None


@dataclass
class Chunk:
    """Up to CHUNK_ROWS rows of one source, ready for COPY."""

    blob: bytes  # COPY text (format text, NULL ''), one line per row to write
    row_numbers: list[Any]  # the row number of each line of blob
    rejections: list[Rejection]
    rows_read: int
    duplicates: int  # rows dropped for another version of the same id in this chunk
    skipped: Counter[str]  # rows of types that are not loaded, by type
    position: int | None  # how far into the source (bytes) the chunk ends, for progress


@dataclass(frozen=True)
class ParseOptions:
    """How to normalise rows (picklable, so a child process can build the same normaliser)."""

    suffix: str  # the tab-separated _source_file and _batch_id appended to every line
    with_io: bool = False
    latency_unit: str = "auto"

    def normalizer(self) -> Normalizer:
        return Normalizer(suffix=self.suffix, with_io=self.with_io, latency_unit=self.latency_unit)


class RowSource(Protocol):
    """Rows that can be opened anywhere, a child process included (the object must be picklable)."""

    def rows(self) -> Iterator[tuple[int | None, Any]]:
        """Open the source and yield its ``(row_number, row)``; the source is closed when this ends."""

    def position(self) -> int | None:
        """How far into the source reading has got (bytes), or None when unknown."""


class ParserFailed(RuntimeError):
    """The parser process ended without a result (a bug, or it was killed)."""


def make_chunks(rows: Iterable[tuple[int | None, Any]], options: ParseOptions,
                position: Any = None) -> Iterator[Chunk]:
    """Normalise ``rows`` into chunks; ``position`` (a callable) tells progress at each chunk's end."""
    normalizer = options.normalizer()
    from_text, from_dict = normalizer.from_text, normalizer.from_dict
    lines: list[str] = []
    numbers: list[Any] = []
    first_at: dict[str, int] = {}
    rejections: list[Rejection] = []
    read = duplicates = 0
    for number, item in rows:
        read += 1
        try:
            if item.__class__ is bytes or item.__class__ is str:
                result = from_text(item)
            elif isinstance(item, dict):
                result = from_dict(item)
            elif isinstance(item, BadRow):
                raise RowError(item.error)
            else:
                raise RowError("a row must be a JSON object")
        except RowError as exc:
            rejections.append(Rejection(number, str(exc), raw_text(item)))
            result = None
        if result is not None:
            oid, version, line = result
            size = len(lines)
            at = first_at.setdefault(oid, size)
            if at == size:
                lines.append(line)
                numbers.append(number)
            else:
                duplicates += 1
                kept = lines[at].split("\t", _UPDATED_AT + 1)[_UPDATED_AT]
                if version != kept and version_key(version) > version_key(kept):
                    lines[at], numbers[at] = line, number
        if read == CHUNK_ROWS:
            yield _chunk(lines, numbers, rejections, read, duplicates, normalizer, position)
            lines, numbers, first_at, rejections = [], [], {}, []
            read = duplicates = 0
    if read:
        yield _chunk(lines, numbers, rejections, read, duplicates, normalizer, position)


def _chunk(lines: list[str], numbers: list[Any], rejections: list[Rejection], read: int, duplicates: int,
           normalizer: Normalizer, position: Any) -> Chunk:
    # surrogatepass: a lone surrogate becomes bytes PostgreSQL refuses, so that row alone is rejected.
    blob = ("\n".join(lines) + "\n").encode("utf-8", "surrogatepass") if lines else b""
    skipped = normalizer.skipped.copy()
    normalizer.skipped.clear()
    return Chunk(blob, numbers, rejections, read, duplicates, skipped, position() if position else None)


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


def parse_in_thread(rows: Iterable[tuple[int | None, Any]], options: ParseOptions,
                    position: Any = None) -> Iterator[Chunk]:
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


def can_parse_in_process() -> bool:
    """Whether child-process parsing is available (it needs the fork start method)."""
    return "fork" in multiprocessing.get_all_start_methods()


def parse_in_process(source: RowSource, options: ParseOptions) -> Iterator[Chunk]:
    """Chunks of ``source``, parsed in a forked child process one chunk ahead of the consumer.

    The child only reads and parses; it never touches the parent's database connection (its cyclic garbage
    collector is off and it leaves through ``os._exit``, so no inherited object is finalised there).
    """
    context = multiprocessing.get_context("fork")
    receiver, sender = context.Pipe(duplex=False)
    child = context.Process(target=_child_main, args=(source, options, sender, receiver),
                            name="ingest-parser", daemon=True)
    child.start()
    sender.close()
    finished = False
    try:
        while True:
            try:
                message = receiver.recv()
            except EOFError:
                child.join(5)
                raise ParserFailed(f"the parser process ended early (exit code {child.exitcode})") from None
            kind = message[0]
            if kind == "chunk":
                meta = message[1]
                yield Chunk(receiver.recv_bytes(), *meta)
            elif kind == "end":
                finished = True
                return
            elif kind == "unreadable":
                raise UnreadableFile(message[1])
            else:
                raise ParserFailed(f"the parser process failed:\n{message[1]}")
    finally:
        receiver.close()
        if not finished and child.is_alive():
            child.kill()
        child.join()


def _child_main(source: RowSource, options: ParseOptions, sender: Any, receiver: Any) -> None:
    # The parent's end of the pipe must not stay open here: when the parent dies, writes must fail.
    receiver.close()
    gc.disable()
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the parent handles Ctrl-C and ends this process
    try:
        for chunk in make_chunks(source.rows(), options, source.position):
            sender.send(("chunk", (chunk.row_numbers, chunk.rejections, chunk.rows_read, chunk.duplicates,
                                   chunk.skipped, chunk.position)))
            sender.send_bytes(chunk.blob)
        sender.send(("end",))
    except (BrokenPipeError, ConnectionResetError):
        pass  # the parent is gone; nothing to tell
    except UnreadableFile as exc:
        sender.send(("unreadable", str(exc)))
    except BaseException as exc:  # a bug: hand the traceback to the parent
        _report(sender, exc)
    finally:
        sender.close()


def _report(sender: Any, exc: BaseException) -> None:
    with contextlib.suppress(OSError):
        sender.send(("failed", "".join(traceback.format_exception(exc))))
