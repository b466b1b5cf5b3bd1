"""``autopicker ingest files PATH...``: find Langfuse export files, check them against their manifests, load.

A PATH is a file, a folder, or a blob-storage export prefix copied locally
(``{prefix}{projectId}/{table}/{YYYY-MM-DDTHH-MM-SS}.{ext}[.gz]`` with manifests in
``{prefix}{projectId}/manifests/``). Decisions a user can rely on (docs/ingest.md says the same):

- Tables ``observations_v2/`` and ``observations/`` load; ``traces/`` and ``scores/`` (and UI exports of
  those) are ignored with a note. In a plain folder every file with a known extension is loaded.
- Under an export prefix that has a ``manifests/`` folder, a run is complete only when its manifest exists:
  the files a manifest lists are loaded; a file no manifest lists (a run still being written) is skipped
  with a warning, unless it is named explicitly on the command line. A listed file that is missing is an
  error naming it. After a listed file is loaded, its row count must equal the manifest's ``rowCount``;
  otherwise that is an error. Each file is still one transaction of its own: the other files of the run
  (and the rows of a file whose count disagrees) stay loaded, since every row is loaded idempotently; a file
  whose count disagrees is not recorded as loaded, so the next run checks it again. Any of these errors
  makes the exit code 1.
- A file whose content (SHA-256) was loaded before in the same format is skipped unless ``force``. A file
  is recorded as loaded only when each of its rows is stored or rejected; loading it again (``force``, or
  after it failed) replaces the rejected rows its earlier loads left, so they are never doubled.
- An empty (0-byte) file is an error of its own, unless a manifest says it has no rows. A file that cannot
  be read at all (a header without the columns of an observation, invalid gzip, ...) is reported in one
  sentence; nothing from it is loaded and the other files still load.
- A file whose rejected rows are more than :data:`ingest.chunks.REJECTS_KEPT` and more than half of its
  rows is mostly junk: an error, and it is not recorded as loaded (its good rows and first rejected rows
  stay).
- PATHs that hold no export file at all are an error (exit 1), unlike files that are all loaded already.
- One row in ``langfuse_raw.load_batches`` per run; ``_source_file`` is the manifest's object key for
  export files, else the path as given.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import re
import time
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from pathlib import Path, PurePosixPath
from typing import Any, Protocol

import psycopg

from autopicker.errors import UsageError, UserError
from ingest.chunks import PARSERS, REJECTS_KEPT, Chunk, ParseOptions, ParserFailed, ParserPool
from ingest.db import Database, load_failure
from ingest.loader import LoadStats, copy_suffix, finish_batch, load_chunks, start_batch
from ingest.readers import SUPPORTED, FileFormat, FileSource, UnreadableFile, detect_format

logger = logging.getLogger(__name__)

LOADED_TABLES = ("observations_v2", "observations")
IGNORED_TABLES = ("traces", "scores")
_UI_EXPORT = re.compile(r"\d+-lf-(?P<table>[a-z_]+)-export-.+", re.IGNORECASE)
_HASH_BLOCK = 1 << 20


@dataclass
class FileTask:
    """One file to load."""

    path: Path
    name: str  # shown to the user and stored as _source_file
    fmt: FileFormat
    size: int
    expected_rows: int | None = None  # the manifest's rowCount
    manifest: str | None = None  # the manifest that lists the file
    content_hash: str = ""  # SHA-256 of the file, once read


class Reporter(Protocol):
    """What a file ingest tells as it goes (the command line draws it: :mod:`autopicker.cli.progress`)."""

    def note(self, text: str) -> None: ...

    def warning(self, text: str) -> None: ...

    def error(self, text: str) -> None: ...

    def start(self, tasks: list[FileTask]) -> None: ...

    def file_started(self, task: FileTask) -> None: ...

    def file_progress(self, task: FileTask, rows: int, position: int | None) -> None: ...

    def file_done(self, result: FileResult) -> None: ...

    def stop(self) -> None: ...


@dataclass
class Plan:
    """What a run will load, and what it found wrong or left out before loading anything."""

    tasks: list[FileTask] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)


@dataclass
class FileResult:
    task: FileTask
    status: str  # "loaded", "already loaded" or "failed"
    stats: LoadStats = field(default_factory=LoadStats)
    error: str | None = None
    seconds: float = 0.0


@dataclass
class RunResult:
    batch_id: int | None
    files: list[FileResult]
    totals: LoadStats
    notes: list[str]
    warnings: list[str]
    errors: list[str]

    @property
    def exit_code(self) -> int:
        return 1 if self.errors or self.totals.rejected else 0


# -- planning ------------------------------------------------------------------------------------------


def plan_files(args: Sequence[str]) -> Plan:
    """Resolve the command line's PATHs into files to load; a PATH that is not there is a usage error."""
    if not args:
        raise UsageError("Give at least one file or folder to load.")
    for arg in args:
        if not Path(arg).exists():
            raise UsageError(f"{arg} does not exist.")
    plan = Plan()
    seen: set[Path] = set()
    ignored: Counter[str] = Counter()
    for arg in args:
        path = Path(arg)
        if path.is_dir():
            _plan_folder(path, plan, seen, ignored)
        else:
            _plan_explicit(path, plan, seen, ignored)
    for what, count in sorted(ignored.items()):
        plan.notes.append(f"ignored {count} {what}")
    return plan


def _plan_explicit(path: Path, plan: Plan, seen: set[Path], ignored: Counter[str]) -> None:
    fmt = detect_format(path.name)
    if fmt is None:
        raise UsageError(f"{path}: cannot tell the format from the name (expected {SUPPORTED}).")
    table = _table_of(path)
    if table in IGNORED_TABLES:
        ignored[f"file(s) of table {table} (only observations are loaded)"] += 1
        return
    project = path.parent.parent if path.parent.name in LOADED_TABLES else None
    # A file named explicitly loads even if no manifest lists it; when one does, its row count is checked.
    listing = _manifest_listing(project, Plan()) if project is not None and _has_manifests(project) else {}
    entry = listing.get(path.resolve())
    _add_task(path, fmt, plan, seen, entry)


def _plan_folder(folder: Path, plan: Plan, seen: set[Path], ignored: Counter[str]) -> None:
    files: list[Path] = []
    for root, dirs, names in os.walk(folder):
        dirs[:] = sorted(d for d in dirs if not d.startswith("."))
        files += [Path(root) / n for n in sorted(names) if not n.startswith(".")]
    listings: dict[Path, dict[Path, dict[str, Any]]] = {}
    for path in files:  # every run with a manifest here is checked, even one whose files are all missing
        manifests_of = path.parent.parent
        if path.parent.name == "manifests" and manifests_of not in listings:
            listings[manifests_of] = _manifest_listing(manifests_of, plan)
    for path in files:
        parent = path.parent
        if parent.name == "manifests":
            continue  # a manifests/ folder holds manifests, read with their project above
        table = _table_of(path)
        if table in IGNORED_TABLES:
            ignored[f"file(s) of table {table} (only observations are loaded)"] += 1
            continue
        entry = None
        project = parent.parent if parent.name in LOADED_TABLES else None
        if project is not None and _has_manifests(project):
            if project not in listings:
                listings[project] = _manifest_listing(project, plan)
            entry = listings[project].get(path.resolve())
            if entry is None:
                plan.warnings.append(
                    f"skipped {path}: no manifest lists it, so its export run is not complete "
                    "(name the file to load it anyway)"
                )
                continue
        fmt = detect_format(path.name)
        if fmt is None:
            ignored["file(s) with an unknown extension"] += 1
            continue
        _add_task(path, fmt, plan, seen, entry)


def _add_task(path: Path, fmt: FileFormat, plan: Plan, seen: set[Path], entry: dict[str, Any] | None) -> None:
    resolved = path.resolve()
    if resolved in seen:
        return
    seen.add(resolved)
    task = FileTask(path=path, name=str(path), fmt=fmt, size=path.stat().st_size)
    if entry is not None:
        task.name = entry["key"]
        task.expected_rows = entry.get("rowCount")
        task.manifest = entry["manifest"]
    plan.tasks.append(task)


def _table_of(path: Path) -> str | None:
    """The export table a file belongs to, from its folder or from a UI export's file name."""
    if path.parent.name in LOADED_TABLES + IGNORED_TABLES:
        return path.parent.name
    match = _UI_EXPORT.fullmatch(path.name)
    return match.group("table").lower() if match else None


def _has_manifests(project: Path) -> bool:
    return (project / "manifests").is_dir()


@dataclass(frozen=True)
class ManifestEntry:
    """One observations file an export run's manifest lists."""

    key: str  # the object key, as the manifest writes it
    relative: str  # "{table}/{file name}": where the file sits under its project's prefix
    row_count: int | None


def read_manifest(text: str | bytes, shown: str) -> tuple[list[ManifestEntry], list[str]]:
    """The observations files a manifest lists (other tables left out), and what is wrong with it, one
    sentence each. ``shown`` names the manifest in those sentences."""
    try:
        document = json.loads(text)
        entries = document["files"]
        if not isinstance(entries, list):
            raise TypeError("files is not a list")
    except (ValueError, KeyError, TypeError) as exc:
        return [], [f"manifest {shown} cannot be read ({exc}); its run's files are not loaded."]
    listed, errors = [], []
    for entry in entries:
        key = entry.get("key") if isinstance(entry, dict) else None
        if not isinstance(key, str) or not key:
            errors.append(f"manifest {shown} has a file entry without a key.")
            continue
        parts = PurePosixPath(key).parts
        table = entry.get("table") or (parts[-2] if len(parts) >= 2 else "")
        if table not in LOADED_TABLES:
            continue
        count = entry.get("rowCount")
        listed.append(
            ManifestEntry(
                key=key,
                # Keys hold the export prefix; the file is found in its table folder under the project.
                relative="/".join(parts[-2:]),
                row_count=count if isinstance(count, int) and not isinstance(count, bool) else None,
            )
        )
    return listed, errors


def _manifest_listing(project: Path, plan: Plan) -> dict[Path, dict[str, Any]]:
    """Files the project's manifests list (resolved local path -> entry with key, rowCount, manifest);
    missing listed files and unreadable manifests are added to the plan's errors."""
    listing: dict[Path, dict[str, Any]] = {}
    for manifest in sorted((project / "manifests").glob("*.json")):
        shown = f"{project.name}/manifests/{manifest.name}"
        try:
            text = manifest.read_bytes()
        except OSError as exc:
            text = b""  # read_manifest reports it as unreadable
            logger.debug("cannot read %s: %s", manifest, exc)
        entries, errors = read_manifest(text, shown)
        plan.errors += errors
        for entry in entries:
            local = project / entry.relative
            if not local.is_file():
                plan.errors.append(f"manifest {shown} lists {entry.key}, but that file is missing.")
                continue
            listing[local.resolve()] = {"key": entry.key, "rowCount": entry.row_count, "manifest": shown}
    return listing


# -- loading -------------------------------------------------------------------------------------------


def content_hash(path: Path) -> str:
    """SHA-256 of a file's bytes, as stored (compressed files are hashed compressed)."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while block := handle.read(_HASH_BLOCK):
            digest.update(block)
    return digest.hexdigest()


def ingest_files(
    database: Database | Callable[[], Database],
    args: Sequence[str],
    *,
    reporter: Reporter,
    with_io: bool = False,
    force: bool = False,
    latency_unit: str = "auto",
) -> RunResult:
    """Load the files ``args`` name; progress, warnings and errors go to ``reporter`` as they happen.

    ``database`` may be a callable (such as :func:`ingest.db.resolve`), called only once the PATHs are
    known to be good, so a usage error never starts a server."""
    from ingest.raw import ensure_raw_schema

    plan = plan_files(args)
    for note in plan.notes:
        reporter.note(note)
    for warning in plan.warnings:
        reporter.warning(warning)
    for error in plan.errors:
        reporter.error(error)
    result = RunResult(None, [], LoadStats(), plan.notes, plan.warnings, list(plan.errors))
    if not plan.tasks:
        if not plan.warnings and not plan.errors:  # nothing there at all, rather than nothing ready
            error = f"No observation export files found in {' '.join(args)} (expected {SUPPORTED})."
            result.errors.append(error)
            reporter.error(error)
        else:
            reporter.note("no files to load")
        return result
    if not isinstance(database, Database):
        database = database()
    # Every file to load is handed to a pool of parser processes, which take them in turn and parse them
    # ahead of the writer, each while the ones before are still being written. They are started first, so
    # that their interpreters start while the schema is checked. Files are hashed in a thread (hashlib leaves
    # the interpreter lock), from the start; each is handed to the parsers once it is known to be loaded
    # (hashed, and not loaded before), a few files ahead of the one being written, so no file waits for the
    # hashing of all the others.
    # A parser of Parquet holds Arrow's libraries and buffers (about 100 MB more than one of text): a run with
    # Parquet files has one parser, so that it stays within the same memory.
    parsers = 1 if any(t.fmt.kind == "parquet" for t in plan.tasks) else PARSERS
    with ParserPool(parsers) as parser, ThreadPoolExecutor(1, thread_name_prefix="ingest-hash") as hasher:
        hashes = [hasher.submit(content_hash, task.path) for task in plan.tasks]
        try:
            ensure_raw_schema(database)
            with database.connect() as conn:
                batch_id = result.batch_id = start_batch(conn, "files: " + " ".join(args))
                options = ParseOptions(with_io=with_io, latency_unit=latency_unit, suffix="")
                seen: dict[str, str] = {}
                outcomes: list[FileResult | None] = []
                tickets: dict[int, int] = {}

                def check(upto: int) -> None:
                    """Check the files before ``upto`` that are not yet, and submit those to load."""
                    for i in range(len(outcomes), min(upto, len(plan.tasks))):
                        task = plan.tasks[i]
                        outcomes.append(_check_content(conn, task, force, seen, hashes[i]))
                        if outcomes[i] is None:
                            suffix = copy_suffix(task.name, batch_id)
                            tickets[i] = parser.submit(
                                FileSource(task.path, task.name, task.fmt, with_io=with_io),
                                replace(options, suffix=suffix),
                            )

                reporter.start(plan.tasks)
                try:
                    for i, task in enumerate(plan.tasks):
                        check(i + 1 + parsers)  # this file, and the next ones the parsers can work on
                        reporter.file_started(task)
                        outcome = outcomes[i]
                        if outcome is None:
                            chunks = parser.chunks(tickets[i])
                            outcome = _load_file(conn, task, chunks, batch_id, reporter)
                        result.files.append(outcome)
                        result.totals.add(outcome.stats)
                        if outcome.error:
                            result.errors.append(outcome.error)
                            reporter.error(outcome.error)
                        reporter.file_done(outcome)
                finally:
                    reporter.stop()
                finish_batch(conn, batch_id, result.totals)
        finally:
            for pending in hashes:
                pending.cancel()
    return result


def _check_content(
    conn: psycopg.Connection, task: FileTask, force: bool, seen: dict[str, str], hashed: Future[str]
) -> FileResult | None:
    """The result of a file that is not to be loaded (already loaded, repeated in this run, unreadable),
    None for one to load; ``hashed`` is its content hash being computed. ``seen`` holds the run's files
    checked before ("hash format" -> name), and gets this one."""
    if task.size == 0 and task.expected_rows != 0:
        error = f"{task.name} is empty (0 bytes): not a {format_label(task.fmt)} export file."
        return FileResult(task, "failed", error=error)
    try:
        task.content_hash = hashed.result()
    except OSError as exc:
        return FileResult(task, "failed", error=f"{task.name} cannot be read: {exc.strerror}.")
    key = f"{task.content_hash} {format_label(task.fmt)}"
    if key in seen and not force:
        logger.info("%s has the same content as %s", task.name, seen[key])
        return FileResult(task, "already loaded")
    seen[key] = task.name
    if force:
        return None
    row = conn.execute(
        "SELECT file_format FROM langfuse_raw.loaded_files WHERE content_hash = %s", (task.content_hash,)
    ).fetchone()
    conn.rollback()  # end the read's transaction: each file loads in a transaction of its own
    if row is not None and row[0] in (None, format_label(task.fmt)):
        return FileResult(task, "already loaded")
    return None


def format_label(fmt: FileFormat) -> str:
    """How loaded_files names a format: jsonl, csv.gz, parquet, ..."""
    return fmt.kind + (".gz" if fmt.gzip else "")


def _load_file(
    conn: psycopg.Connection, task: FileTask, chunks: Iterator[Chunk], batch_id: int, reporter: Reporter
) -> FileResult:
    started = time.monotonic()
    mismatch: list[str] = []

    def record(cur: psycopg.Cursor, stats: LoadStats) -> None:
        # This load's rejected rows replace those that earlier loads of the same file left.
        cur.execute(
            "DELETE FROM langfuse_raw.rejected_rows WHERE source_file = %(name)s AND content_hash = %(hash)s "
            "AND _batch_id <> %(batch)s",
            {"name": task.name, "hash": task.content_hash, "batch": batch_id},
        )
        if stats.rejected:
            cur.execute(
                "UPDATE langfuse_raw.rejected_rows SET content_hash = %(hash)s "
                "WHERE _batch_id = %(batch)s AND source_file = %(name)s",
                {"name": task.name, "hash": task.content_hash, "batch": batch_id},
            )
        if stats.rejected > REJECTS_KEPT and stats.rejected * 2 > stats.rows_read:
            mismatch.append(
                f"{task.name} is mostly junk: {stats.rejected:,} of its {stats.rows_read:,} rows were "
                f"rejected (the first {REJECTS_KEPT:,} are in langfuse_raw.rejected_rows); it is not "
                "recorded as loaded."
            )
            return
        if task.expected_rows is not None and stats.rows_read != task.expected_rows:
            mismatch.append(
                f"{task.name} has {stats.rows_read:,} rows but manifest {task.manifest} says "
                f"{task.expected_rows:,}; its rows are loaded, and it will be checked again on the next run."
            )
            return
        cur.execute(
            "INSERT INTO langfuse_raw.loaded_files (content_hash, source_file, size_bytes, rows_read, "
            "rows_loaded, rows_rejected, _batch_id, file_format) VALUES (%s, %s, %s, %s, %s, %s, %s, %s) "
            "ON CONFLICT (content_hash) DO UPDATE SET source_file = excluded.source_file, "
            "size_bytes = excluded.size_bytes, rows_read = excluded.rows_read, "
            "rows_loaded = excluded.rows_loaded, rows_rejected = excluded.rows_rejected, "
            "_batch_id = excluded._batch_id, file_format = excluded.file_format, loaded_at = now()",
            (
                task.content_hash,
                task.name,
                task.size,
                stats.rows_read,
                stats.loaded,
                stats.rejected,
                batch_id,
                format_label(task.fmt),
            ),
        )

    def progress(stats: LoadStats, position: int | None) -> None:
        reporter.file_progress(task, stats.rows_read, position)

    try:
        stats = load_chunks(
            conn, chunks, source=task.name, batch_id=batch_id, before_commit=record, on_chunk=progress
        )
    except UnreadableFile as exc:
        return FileResult(
            task, "failed", error=f"{exc} Nothing from it was loaded.", seconds=time.monotonic() - started
        )
    except ParserFailed as exc:
        logger.error("%s", exc)
        error = f"{task.name}: the parser failed; nothing from it was loaded."
        return FileResult(task, "failed", error=error, seconds=time.monotonic() - started)
    except psycopg.OperationalError as exc:
        raise UserError(load_failure(exc, conn, task.name)) from None
    return FileResult(task, "loaded", stats, mismatch[0] if mismatch else None, time.monotonic() - started)
