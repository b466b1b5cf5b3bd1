"""The nightly job's configuration and its lock (``autopicker nightly`` runs the steps: ingest, then ``dbt
build``, then ``dbt source freshness``).

What to ingest comes from, in order of precedence: ``--source`` options, the ``AUTOPICKER_SOURCES``
environment variable (sources separated by spaces), the ``sources`` list of the config file (``--config`` or
``AUTOPICKER_CONFIG``, TOML), and, when none of these is set, the Langfuse API if its keys are set. A source
is ``api`` (the Langfuse API; keys from ``LANGFUSE_PUBLIC_KEY``, ``LANGFUSE_SECRET_KEY`` and
``LANGFUSE_BASE_URL``), an ``s3://bucket/prefix/`` export location, or a local export folder. Secrets are
only ever read from the environment, never from the config file. The config file (every key optional)::

    sources = ["api", "s3://my-bucket/langfuse/"]

    [api]                      # as the options of `autopicker ingest api`
    overlap = "15m"
    requests_per_minute = 30
    page_size = 1000
    timeout = 60
    max_retries = 6
    with_io = false

    [files]                    # as the options of `autopicker ingest files`
    with_io = false
    latency_unit = "auto"

Every step runs even when an earlier one failed (a failed ingest still leaves the warehouse consistent, and
the build then covers what did load; freshness says how stale the data is); the summary table lists each
step, and the exit code is 1 when any step failed or rejected rows, 0 otherwise.

Two nightly jobs never run at once against one warehouse, even from different hosts: the job holds a
PostgreSQL session advisory lock for its whole run. A second one exits with a message, or with ``--wait``
waits for the first to finish.
"""

from __future__ import annotations

import contextlib
import logging
import os
import re
import tomllib
from collections.abc import Callable, Iterator
from pathlib import Path

import msgspec
import psycopg

from autopicker.errors import UsageError, UserError
from ingest import db

logger = logging.getLogger(__name__)

NIGHTLY_LOCK = 0x4155_544E  # "AUTN": one nightly job per warehouse
SOURCES_ENV = "AUTOPICKER_SOURCES"
CONFIG_ENV = "AUTOPICKER_CONFIG"


class ApiSettings(msgspec.Struct, forbid_unknown_fields=True, frozen=True):
    """``[api]``: as the options of ``autopicker ingest api``."""

    overlap: str = "15m"
    requests_per_minute: int = 30
    page_size: int = 1000
    timeout: float = 60.0
    max_retries: int = 6
    with_io: bool = False


class FilesSettings(msgspec.Struct, forbid_unknown_fields=True, frozen=True):
    """``[files]``: as the options of ``autopicker ingest files``."""

    with_io: bool = False
    latency_unit: str = "auto"


class NightlyConfig(msgspec.Struct, forbid_unknown_fields=True):
    """What the nightly job ingests, and how: the config file's model (every key optional)."""

    sources: list[str] = []
    api: ApiSettings = msgspec.field(default_factory=ApiSettings)
    files: FilesSettings = msgspec.field(default_factory=FilesSettings)


def load_config(
    path: Path | None, environ: dict[str, str] | None = None, cli_sources: list[str] | None = None
) -> NightlyConfig:
    """The job's configuration: the file (if any), then the environment, then the command line."""
    from ingest.sources.langfuse_client import Credentials

    env = dict(os.environ) if environ is None else environ
    config = NightlyConfig()
    path = path or (Path(env[CONFIG_ENV]) if env.get(CONFIG_ENV) else None)
    if path is not None:
        config = _read_config_file(path)
    if env.get(SOURCES_ENV, "").strip():
        config.sources = env[SOURCES_ENV].split()
    if cli_sources:
        config.sources = list(cli_sources)
    if not config.sources:
        if not Credentials.present(env):
            raise UsageError(
                f"Nothing to ingest: give --source, set {SOURCES_ENV} or `sources` in the config file, or "
                "set LANGFUSE_PUBLIC_KEY and LANGFUSE_SECRET_KEY to read the Langfuse API."
            )
        config.sources = ["api"]
    for source in config.sources:
        if source != "api" and not source.startswith("s3://") and not Path(source).exists():
            raise UsageError(f"Source {source!r} is neither api, an s3:// location nor an existing folder.")
    return config


def _read_config_file(path: Path) -> NightlyConfig:
    try:
        document = tomllib.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise UsageError(f"Cannot read the config file {path}: {exc.strerror or exc}.") from None
    except tomllib.TOMLDecodeError as exc:
        raise UsageError(f"The config file {path} is not valid TOML: {exc}.") from None
    if isinstance(document.get("sources"), str):
        document["sources"] = [document["sources"]]
    try:
        config = msgspec.convert(document, NightlyConfig)
    except msgspec.ValidationError as exc:
        raise UsageError(_config_error(path, str(exc))) from None
    if not all(config.sources):
        raise UsageError(f"In {path}, sources must be a list of strings that are not empty.")
    return config


_UNKNOWN = re.compile(r"Object contains unknown field `(?P<key>[^`]*)`(?: - at `\$\.(?P<at>\w+)`)?\Z")
_MISTYPED = re.compile(r"Expected `(?P<want>[^`]*)`, got `(?P<got>[^`]*)` - at `\$\.(?P<at>[\w.\[\]]+)`\Z")
_KNOWN = {
    None: "sources, [api], [files]",
    "api": ", ".join(ApiSettings.__struct_fields__),
    "files": ", ".join(FilesSettings.__struct_fields__),
}


def _config_error(path: Path, message: str) -> str:
    """msgspec's message about the config file as one sentence in the file's own terms."""
    unknown = _UNKNOWN.match(message)
    if unknown:
        at = unknown["at"]
        where = f"In {path}, [{at}]" if at else f"The config file {path}"
        return f"{where} has an unknown key {unknown['key']!r} (known: {_KNOWN.get(at, '')})."
    mistyped = _MISTYPED.match(message)
    if mistyped:
        section, _, key = mistyped["at"].partition(".")
        if not key and section in ("api", "files"):
            return f"In {path}, [{section}] must be a table."
        where = f"[{section}] {key}" if key and section in ("api", "files") else mistyped["at"].split("[")[0]
        return f"In {path}, {where} has the wrong type: expected {mistyped['want']}, got {mistyped['got']}."
    return f"The config file {path} is not valid: {message}."


# -- the lock --------------------------------------------------------------------------------------------


@contextlib.contextmanager
def nightly_lock(
    database: db.Database, *, wait: bool, on_wait: Callable[[str], None] | None = None
) -> Iterator[None]:
    """Hold the warehouse's nightly lock for the duration of the block (a session advisory lock on a
    connection of its own, released when the block ends or the process dies)."""
    with database.locking_connection(autocommit=True, application_name="autopicker nightly") as conn:
        row = conn.execute("SELECT pg_try_advisory_lock(%s)", (NIGHTLY_LOCK,)).fetchone()
        if not row or not row[0]:
            holder = _holder(conn)
            if not wait:
                raise UserError(
                    f"Another `autopicker nightly` is running on this warehouse{holder}; run "
                    "with --wait to wait for it to finish."
                )
            if on_wait is not None:
                on_wait(f"waiting for the `autopicker nightly` running on this warehouse{holder} to finish")
            conn.execute("SELECT pg_advisory_lock(%s)", (NIGHTLY_LOCK,))
        yield


def _holder(conn: psycopg.Connection) -> str:
    row = conn.execute(
        "SELECT a.backend_start, host(a.client_addr) FROM pg_locks l "
        "JOIN pg_stat_activity a ON a.pid = l.pid WHERE l.locktype = 'advisory' AND l.granted "
        "AND l.classid = 0 AND l.objid = %s AND l.objsubid = 1",
        (NIGHTLY_LOCK,),
    ).fetchone()
    if row is None or row[0] is None:
        return ""
    started = row[0].strftime("%Y-%m-%d %H:%M:%S %Z").strip()
    return f" (started {started}" + (f" from {row[1]})" if row[1] else ")")
