"""``autopicker ingest files s3://bucket/prefix/``: a Langfuse blob-storage export read straight from S3.

Works with AWS S3 and S3-compatible stores (MinIO, R2, ...) through boto3: the endpoint comes from the
standard ``AWS_ENDPOINT_URL_S3`` or ``AWS_ENDPOINT_URL``, credentials and region the standard way (env,
``~/.aws``, instance roles). Layout as Langfuse writes it: ``{prefix}{projectId}/{table}/{timestamp}.{ext}``,
and, written last, ``{prefix}{projectId}/manifests/{timestamp}.json``. The location may be the export prefix
(project folders below it) or one project's folder.

- A run is complete when its manifest exists; data files are only ever found through a manifest, so a run
  still being written is not seen at all, and it loads on a later invocation once its manifest is there.
- Listing: one ``ListObjectsV2`` with ``Delimiter='/'`` finds the project folders, then per project the
  manifests are listed with ``StartAfter`` the last manifest loaded (``langfuse_raw.export_state``, one row
  per project folder), so an invocation lists only what is new, never the whole bucket. Manifest names are
  timestamps: listing order is time order, and runs load in that order.
- The files a manifest lists in ``observations_v2/`` or ``observations/`` are checked to exist (``HEAD``)
  before anything loads, then streamed (text formats in one ``GET``, Parquet by ranged reads of the parts
  it needs) through the same readers and loader as local files: one transaction per file, rows rejected
  with their reason, and the file's row count checked against the manifest's ``rowCount``.
- In each file's transaction the file (object key and ETag) is recorded in ``export_state.pending_files``,
  so a run interrupted half-way, or tried again after a failure, does not load its finished files again
  (unless the object changed). When all of a run's files are in, the run becomes ``last_manifest_key``
  (``runs_loaded`` grows by one) and its files leave ``pending_files``.
- A run that fails its checks (a listed file missing, a row count that disagrees, an unreadable file or
  manifest) keeps the rows that did load, makes the exit code 1, and is remembered in
  ``export_state.failed_manifests``: every later invocation tries it again (by key, without listing) until
  it loads. Later runs are not held up by it.
- ``--force`` lists and loads every run again.
"""

from __future__ import annotations

import io
import logging
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any

import psycopg

from autopicker.errors import UsageError, UserError
from ingest.db import Database, load_failure
from ingest.loader import LoadStats, finish_batch, load_source, start_batch
from ingest.readers import FileFormat, UnreadableFile, detect_format, read_rows
from ingest.sources.files import LOADED_TABLES, FileResult, FileTask, Reporter, RunResult, read_manifest

logger = logging.getLogger(__name__)

SCHEME = "s3://"
_MANIFESTS = "manifests/"
_READ_BLOCK = 1 << 20


def is_s3_url(arg: str) -> bool:
    return arg.startswith(SCHEME)


def s3_client() -> Any:
    """A boto3 S3 client configured the standard way (env, ~/.aws, instance role; AWS_ENDPOINT_URL[_S3])."""
    import boto3
    from botocore.config import Config

    return boto3.client("s3", config=Config(retries={"mode": "standard", "max_attempts": 5}))


def split_url(url: str) -> tuple[str, str]:
    """``s3://bucket/some/prefix`` -> ``("bucket", "some/prefix/")``; the prefix is always a folder."""
    rest = url[len(SCHEME) :]
    bucket, _, prefix = rest.partition("/")
    if not bucket:
        raise UsageError(f"{url} names no bucket; write s3://bucket/prefix/.")
    if prefix and not prefix.endswith("/"):
        prefix += "/"
    return bucket, prefix


# -- reading one object ----------------------------------------------------------------------------------


class S3ObjectStream(io.RawIOBase):
    """A seekable, read-only stream over one S3 object.

    Sequential reads come from one streaming ``GET``; a seek elsewhere (Parquet reads its footer first)
    starts a ranged ``GET`` at the new position. ``IfMatch`` pins every read to the version first seen.
    """

    def __init__(self, client: Any, bucket: str, key: str, size: int, etag: str | None) -> None:
        super().__init__()
        self._client, self._bucket, self._key, self._size, self._etag = client, bucket, key, size, etag
        self._pos = 0
        self._body: Any = None
        self._body_pos = -1

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def tell(self) -> int:
        return self._pos

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        base = {io.SEEK_SET: 0, io.SEEK_CUR: self._pos, io.SEEK_END: self._size}[whence]
        self._pos = max(0, base + offset)
        return self._pos

    def readinto(self, buffer: Any) -> int:
        if self._pos >= self._size or len(buffer) == 0:
            return 0
        if self._body is None or self._body_pos != self._pos:
            self._open_at(self._pos)
        data = self._body.read(min(len(buffer), _READ_BLOCK))
        count = len(data)
        buffer[:count] = data
        self._pos += count
        self._body_pos += count
        return count

    def _open_at(self, position: int) -> None:
        self._close_body()
        request: dict[str, Any] = {"Bucket": self._bucket, "Key": self._key}
        if position:
            request["Range"] = f"bytes={position}-"
        if self._etag:
            request["IfMatch"] = self._etag
        self._body = self._client.get_object(**request)["Body"]
        self._body_pos = position

    def _close_body(self) -> None:
        if self._body is not None:
            self._body.close()
            self._body = None

    def close(self) -> None:
        self._close_body()
        super().close()


class S3Source:
    """One S3 object as a row source for :func:`ingest.loader.load_source`."""

    def __init__(self, client: Any, obj: S3Object) -> None:
        self._client, self._obj = client, obj
        self._stream: S3ObjectStream | None = None

    def rows(self) -> Iterator[tuple[int | None, Any]]:
        stream = S3ObjectStream(self._client, self._obj.bucket, self._obj.key, self._obj.size, self._obj.etag)
        self._stream = stream
        try:
            yield from read_rows(stream, self._obj.url, self._obj.fmt)  # type: ignore[arg-type]
        finally:
            self._stream = None
            stream.close()

    def position(self) -> int | None:
        stream = self._stream
        return stream.tell() if stream is not None else None


# -- planning ------------------------------------------------------------------------------------------


@dataclass
class S3Object:
    bucket: str
    key: str
    fmt: FileFormat
    size: int
    etag: str | None
    expected_rows: int | None
    manifest: str

    @property
    def url(self) -> str:
        return f"{SCHEME}{self.bucket}/{self.key}"


@dataclass
class ExportRun:
    """One complete run of one project: its manifest and the observation files it lists."""

    location: str  # s3://bucket/prefix/projectId/ (the export_state key)
    manifest_key: str
    objects: list[S3Object] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    retry: bool = False  # a run that failed before, tried again
    #: Every observations file the manifest lists (loaded now, before, or missing).
    listed_keys: list[str] = field(default_factory=list)


@dataclass
class _ProjectState:
    last_manifest_key: str
    pending_files: dict[str, str]  # object key -> ETag, of runs not complete yet
    failed_manifests: list[str]


def _project_prefixes(client: Any, bucket: str, prefix: str) -> list[str]:
    """The project folders at ``prefix``: the prefix itself when it is one, else its sub-folders."""
    folders: list[str] = []
    for page in client.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix, Delimiter="/"):
        folders += [p["Prefix"] for p in page.get("CommonPrefixes", [])]
    own = {prefix + _MANIFESTS, *(prefix + t + "/" for t in LOADED_TABLES)}
    if own & set(folders):
        return [prefix]
    return folders


def _new_manifests(client: Any, bucket: str, project: str, start_after: str) -> list[str]:
    request = {"Bucket": bucket, "Prefix": project + _MANIFESTS}
    if start_after:
        request["StartAfter"] = start_after
    keys: list[str] = []
    for page in client.get_paginator("list_objects_v2").paginate(**request):
        keys += [o["Key"] for o in page.get("Contents", []) if o["Key"].endswith(".json")]
    return sorted(keys)


def _plan_run(
    client: Any, bucket: str, project: str, location: str, manifest_key: str, retry: bool
) -> ExportRun:
    from botocore.exceptions import ClientError

    run = ExportRun(location, manifest_key, retry=retry)
    shown = f"{SCHEME}{bucket}/{manifest_key}"
    try:
        body = client.get_object(Bucket=bucket, Key=manifest_key)["Body"].read()
    except ClientError as exc:
        run.errors.append(f"manifest {shown} cannot be read ({_client_reason(exc)}); its run is not loaded.")
        return run
    entries, errors = read_manifest(body, shown)
    run.errors += errors
    for entry in entries:
        key = entry.key
        # Keys may be written relative to the export prefix or in full: the file is found in its
        # table folder of this project, as for local exports.
        object_key = project + entry.relative
        run.listed_keys.append(object_key)
        fmt = detect_format(object_key)
        if fmt is None:
            run.errors.append(f"manifest {shown} lists {key}, whose format is not one of the known ones.")
            continue
        try:
            head = client.head_object(Bucket=bucket, Key=object_key)
        except ClientError as exc:
            if _status(exc) == 404:
                run.errors.append(f"manifest {shown} lists {key}, but that file is missing.")
            else:
                run.errors.append(f"{SCHEME}{bucket}/{object_key} cannot be read: {_client_reason(exc)}.")
            continue
        run.objects.append(
            S3Object(
                bucket,
                object_key,
                fmt,
                int(head.get("ContentLength", 0)),
                head.get("ETag"),
                entry.row_count,
                shown,
            )
        )
    return run


# -- state -----------------------------------------------------------------------------------------------


def _read_state(conn: psycopg.Connection, location: str) -> _ProjectState:
    with conn.transaction():
        conn.execute(
            "INSERT INTO langfuse_raw.export_state (location, last_manifest_key) VALUES (%s, '') "
            "ON CONFLICT (location) DO NOTHING",
            (location,),
        )
        row = conn.execute(
            "SELECT last_manifest_key, pending_files, failed_manifests "
            "FROM langfuse_raw.export_state WHERE location = %s",
            (location,),
        ).fetchone()
    assert row is not None
    return _ProjectState(row[0], dict(row[1] or {}), list(row[2] or []))


def _finish_run(conn: psycopg.Connection, run: ExportRun, failed: bool) -> None:
    """Record a run as loaded (its files leave pending_files), or as failed, to be tried again."""
    params = {"m": run.manifest_key, "location": run.location, "keys": run.listed_keys}
    with conn.transaction():
        if failed:
            conn.execute(
                "UPDATE langfuse_raw.export_state SET "
                "failed_manifests = CASE WHEN %(m)s = ANY(coalesce(failed_manifests, '{}')) "
                "THEN failed_manifests ELSE array_append(coalesce(failed_manifests, '{}'), %(m)s) END, "
                "last_manifest_key = greatest(last_manifest_key, %(m)s), updated_at = now() "
                "WHERE location = %(location)s",
                params,
            )
        else:
            conn.execute(
                "UPDATE langfuse_raw.export_state SET "
                "failed_manifests = array_remove(failed_manifests, %(m)s), "
                "last_manifest_key = greatest(last_manifest_key, %(m)s), runs_loaded = runs_loaded + 1, "
                "pending_files = pending_files - %(keys)s::text[], updated_at = now() "
                "WHERE location = %(location)s",
                params,
            )


_RECORD_FILE = (
    "UPDATE langfuse_raw.export_state SET "
    "pending_files = coalesce(pending_files, '{}') || jsonb_build_object(%(key)s::text, %(etag)s::text), "
    "updated_at = now() WHERE location = %(location)s"
)


# -- the run ---------------------------------------------------------------------------------------------


def ingest_s3(
    database: Database,
    urls: list[str],
    *,
    reporter: Reporter,
    with_io: bool = False,
    force: bool = False,
    latency_unit: str = "auto",
    client: Any = None,
) -> RunResult:
    """Load the complete, not yet loaded runs of the exports at ``urls`` (``s3://bucket/prefix/``)."""
    from botocore.exceptions import BotoCoreError, ClientError, NoCredentialsError

    from ingest.raw import ensure_raw_schema

    locations = [split_url(url) for url in urls]
    client = client or s3_client()
    result = RunResult(None, [], LoadStats(), [], [], [])
    ensure_raw_schema(database)
    with database.locking_connection(autocommit=True) as conn:
        runs: list[ExportRun] = []
        try:
            for (bucket, prefix), url in zip(locations, urls, strict=True):
                runs += _plan_location(conn, client, bucket, prefix, url, result, force)
        except NoCredentialsError:
            raise UserError(
                "No AWS credentials found: set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY (or "
                "AWS_PROFILE) to read from S3."
            ) from None
        except BotoCoreError as exc:  # endpoint unreachable, bad configuration
            raise UserError(f"Cannot reach S3: {exc}.") from None
        for message in result.warnings:
            reporter.warning(message)
        for message in result.errors:
            reporter.error(message)
        tasks = [_task(obj) for run in runs for obj in run.objects]
        if not runs:
            reporter.note("no new export runs to load")
            return result
        result.batch_id = start_batch(conn, "files: " + " ".join(urls))
        reporter.start(tasks)
        try:
            for run in runs:
                _load_run(
                    conn,
                    client,
                    run,
                    result,
                    reporter,
                    with_io=with_io,
                    latency_unit=latency_unit,
                    error_types=(ClientError, BotoCoreError),
                )
        finally:
            reporter.stop()
            finish_batch(conn, result.batch_id, result.totals)
    return result


def _plan_location(
    conn: psycopg.Connection, client: Any, bucket: str, prefix: str, url: str, result: RunResult, force: bool
) -> list[ExportRun]:
    from botocore.exceptions import ClientError

    try:
        projects = _project_prefixes(client, bucket, prefix)
    except ClientError as exc:
        result.errors.append(f"{url} cannot be listed: {_client_reason(exc)}.")
        return []
    runs: list[ExportRun] = []
    found_manifests = False
    for project in projects:
        location = f"{SCHEME}{bucket}/{project}"
        _lock(conn, location)
        state = _read_state(conn, location)
        retried = [] if force else state.failed_manifests
        try:
            new = _new_manifests(client, bucket, project, "" if force else state.last_manifest_key)
        except ClientError as exc:
            result.errors.append(f"{location} cannot be listed: {_client_reason(exc)}.")
            continue
        found_manifests = found_manifests or bool(new or state.last_manifest_key)
        project_runs = [_plan_run(client, bucket, project, location, key, retry=True) for key in retried]
        project_runs += [
            _plan_run(client, bucket, project, location, key, retry=False)
            for key in new
            if key not in retried
        ]
        for run in project_runs if not force else ():  # files an interrupted or failed ingest finished
            run.objects = [o for o in run.objects if state.pending_files.get(o.key) != (o.etag or "")]
        runs += project_runs
    if not found_manifests:
        result.warnings.append(
            f"no export run manifests under {url}; a run is loaded once Langfuse has written its manifest"
        )
    return runs


def _lock(conn: psycopg.Connection, location: str) -> None:
    # Held for the session: one ingest per export location at a time.
    row = conn.execute(
        "SELECT pg_try_advisory_lock(hashtext('autopicker export ' || %s))", (location,)
    ).fetchone()
    if not row or not row[0]:
        raise UserError(f"Another ingest is loading {location}; run again when it has finished.")


def _task(obj: S3Object) -> FileTask:
    # FileTask is what the progress reporter shows; for an S3 object, path is its key.
    return FileTask(
        path=Path(obj.key),
        name=obj.url,
        fmt=obj.fmt,
        size=obj.size,
        expected_rows=obj.expected_rows,
        manifest=obj.manifest,
    )


def _load_run(
    conn: psycopg.Connection,
    client: Any,
    run: ExportRun,
    result: RunResult,
    reporter: Reporter,
    *,
    with_io: bool,
    latency_unit: str,
    error_types: tuple[type[BaseException], ...],
) -> None:
    assert result.batch_id is not None
    errors = list(run.errors)
    for message in run.errors:
        reporter.error(message)
    for obj in run.objects:
        task = _task(obj)
        outcome = _load_object(
            conn,
            client,
            obj,
            task,
            run,
            result.batch_id,
            reporter,
            with_io=with_io,
            latency_unit=latency_unit,
            error_types=error_types,
        )
        result.files.append(outcome)
        result.totals.add(outcome.stats)
        if outcome.error:
            errors.append(outcome.error)
            reporter.error(outcome.error)
        reporter.file_done(outcome)
    result.errors += errors
    _finish_run(conn, run, failed=bool(errors))
    if errors:
        reporter.warning(
            f"the run of {run.location}{_MANIFESTS}{PurePosixPath(run.manifest_key).name} did "
            "not load completely; every later ingest tries it again until it does"
        )


def _load_object(
    conn: psycopg.Connection,
    client: Any,
    obj: S3Object,
    task: FileTask,
    run: ExportRun,
    batch_id: int,
    reporter: Reporter,
    *,
    with_io: bool,
    latency_unit: str,
    error_types: tuple[type[BaseException], ...],
) -> FileResult:
    started = time.monotonic()
    reporter.file_started(task)
    mismatch: list[str] = []

    def record(cur: psycopg.Cursor, stats: LoadStats) -> None:
        if obj.expected_rows is not None and stats.rows_read != obj.expected_rows:
            mismatch.append(
                f"{obj.url} has {stats.rows_read:,} rows but manifest {obj.manifest} says "
                f"{obj.expected_rows:,}; its rows are loaded, and its run is tried again on the next run."
            )
            return
        cur.execute(_RECORD_FILE, {"key": obj.key, "etag": obj.etag or "", "location": run.location})

    def progress(stats: LoadStats, position: int | None) -> None:
        reporter.file_progress(task, stats.rows_read, position)

    try:
        # Parsed in a thread, not the files' parser process: the download is the slow part, and the S3
        # client's own errors then reach this function as they are.
        stats = load_source(
            conn,
            S3Source(client, obj),
            source=obj.url,
            batch_id=batch_id,
            with_io=with_io,
            latency_unit=latency_unit,
            before_commit=record,
            on_chunk=progress,
        )
    except UnreadableFile as exc:
        return FileResult(
            task, "failed", error=f"{exc} Nothing from it was loaded.", seconds=time.monotonic() - started
        )
    except error_types as exc:
        return FileResult(
            task,
            "failed",
            error=f"{obj.url} cannot be read: {_any_reason(exc)}; nothing from it was loaded.",
            seconds=time.monotonic() - started,
        )
    except psycopg.OperationalError as exc:
        raise UserError(load_failure(exc, conn, obj.url)) from None
    reporter.file_progress(task, stats.rows_read, obj.size)
    return FileResult(task, "loaded", stats, mismatch[0] if mismatch else None, time.monotonic() - started)


def _status(exc: Any) -> int:
    return int(exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0) or 0)


def _client_reason(exc: Any) -> str:
    error = exc.response.get("Error", {})
    code, message = error.get("Code", ""), error.get("Message", "")
    return f"{code}: {message}" if code and message else (code or message or str(exc))


def _any_reason(exc: BaseException) -> str:
    if hasattr(exc, "response"):
        return _client_reason(exc)
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


def ingest_paths(
    database: Database | Callable[[], Database],
    paths: Sequence[str],
    *,
    reporter: Reporter,
    with_io: bool = False,
    force: bool = False,
    latency_unit: str = "auto",
) -> RunResult:
    """What ``autopicker ingest files`` loads: local PATHs through :func:`ingest.sources.files.ingest_files`, s3://
    locations through :func:`ingest_s3`, as one result (local files first)."""
    from ingest.sources.files import ingest_files

    remote = [p for p in paths if is_s3_url(p)]
    local = [p for p in paths if not is_s3_url(p)]
    for url in remote:
        split_url(url)  # a usage error before anything loads
    result = (
        ingest_files(
            database, local, reporter=reporter, with_io=with_io, force=force, latency_unit=latency_unit
        )
        if local
        else None
    )
    if not remote:
        assert result is not None
        return result
    if not isinstance(database, Database):
        database = database()
    s3_result = ingest_s3(
        database, remote, reporter=reporter, with_io=with_io, force=force, latency_unit=latency_unit
    )
    if result is None:
        return s3_result
    result.batch_id = result.batch_id or s3_result.batch_id
    result.files += s3_result.files
    result.totals.add(s3_result.totals)
    for mine, theirs in (
        (result.notes, s3_result.notes),
        (result.warnings, s3_result.warnings),
        (result.errors, s3_result.errors),
    ):
        mine += theirs
    return result
