"""Run dbt against the warehouse database, in process.

dbt reads its connection from the standard libpq variables through the project's ``profiles.yml``; this module
sets them from :func:`ingest.db.resolve` (embedded server or ``DATABASE_URL``) for the duration of one
invocation, so ``autopicker build`` and a plain ``dbt build`` with ``PG*`` exported behave the same.

Commands that write the warehouse (``build``, ``run``, ...) take turns: each holds a session-level advisory
lock on the database for its whole run, so a second ``autopicker build`` waits for the first instead of
racing it (docs/warehouse.md, "Concurrent builds").
"""

from __future__ import annotations

import contextlib
import logging
import os
import sys
from collections import Counter
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from autopicker.errors import UsageError
from ingest.db import Database, project_dir

logger = logging.getLogger(__name__)

#: Commands that accept ``--project-dir`` / ``--profiles-dir``.
_PROJECT_COMMANDS = {
    "build",
    "run",
    "test",
    "seed",
    "snapshot",
    "compile",
    "show",
    "parse",
    "ls",
    "list",
    "docs",
    "source",
    "run-operation",
    "debug",
    "deps",
    "clean",
    "retry",
    "clone",
}
#: Commands that write models (and so take the build lock).
_WRITING_COMMANDS = {"build", "run", "seed", "snapshot", "retry", "clone"}
_BUILD_LOCK = 0x4155_5442  # "AUTB": one writing dbt command at a time per database


@contextlib.contextmanager
def _build_lock(database: Database) -> Iterator[None]:
    """Hold the build lock for the block, waiting (and saying so) while another build holds it."""
    with database.locking_connection(autocommit=True) as conn:
        row = conn.execute("select pg_try_advisory_lock(%s)", (_BUILD_LOCK,)).fetchone()
        if not (row and row[0]):
            logger.warning("Another build of this warehouse is running; waiting for it to finish.")
            conn.execute("select pg_advisory_lock(%s)", (_BUILD_LOCK,))
        yield


@contextlib.contextmanager
def _environment(values: dict[str, str]) -> Iterator[None]:
    saved = {k: os.environ.get(k) for k in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for key, old in saved.items():
            if old is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = old


def dbt_env(database: Database) -> dict[str, str]:
    """Environment for a dbt run against ``database``."""
    return database.libpq_env() | {"DBT_SEND_ANONYMOUS_USAGE_STATS": "false"}


@dataclass(frozen=True)
class DbtOutcome:
    """How a dbt command went: its exit code and the nodes per status (``success``, ``pass``, ``warn``,
    ``error``, ``fail``, ``skipped``...)."""

    code: int
    statuses: Counter[str] = field(default_factory=Counter)
    #: what warned, one entry a node: a data test (see :func:`_warned`) or a source freshness check
    warned: tuple[str, ...] = ()
    #: the error that stopped dbt before or between its nodes (exit code 2), as dbt words it
    error: str = ""


def build_args(*, full_refresh: bool = False, select: str | None = None) -> list[str]:
    """The ``dbt build`` of ``autopicker build`` and the nightly job. A build without ``--full-refresh``
    leaves the unit tests out: they check the project's SQL on fixed rows, so no load can change their
    outcome, and they would cost a nightly build as much as its models; a full refresh runs them, as do
    ``make test`` and CI (docs/warehouse.md, "Tests")."""
    args = ["build"]
    if select:
        args += ["--select", select]
    args += ["--full-refresh"] if full_refresh else ["--exclude-resource-type", "unit_test"]
    return args


def run_dbt(args: Sequence[str], database: Database, project: Path | None = None) -> int:
    """Run one dbt command (``["build"]``, ``["test", "--select", "x"]``...) and return dbt's exit code:
    0 success, 1 a model or test failed, 2 dbt itself failed."""
    return run_dbt_outcome(args, database, project).code


def run_dbt_outcome(
    args: Sequence[str], database: Database, project: Path | None = None, *, quiet: bool = False
) -> DbtOutcome:
    """:func:`run_dbt`, saying which nodes warned; ``quiet`` leaves only errors in dbt's own log."""
    writes = bool(args) and args[0] in _WRITING_COMMANDS
    env = dbt_env(database) | ({"DBT_QUIET": "true"} if quiet else {})
    with _build_lock(database) if writes else contextlib.nullcontext():
        return _invoke(args, env, project)


def run_dbt_with(
    args: Sequence[str], env: dict[str, str], project: Path | None = None, *, quiet: bool = False
) -> DbtOutcome:
    """:func:`run_dbt_outcome` with ``env`` set for the invocation instead (and no build lock): the
    variables of the profiles.yml target it runs (``--target spark`` reads ``AUTOPICKER_SPARK_*``)."""
    return _invoke(args, env | ({"DBT_QUIET": "true"} if quiet else {}), project)


def _invoke(args: Sequence[str], env: dict[str, str], project: Path | None) -> DbtOutcome:
    from dbt.cli.exceptions import DbtUsageException
    from dbt.cli.main import dbtRunner

    project = project or project_dir()
    argv = list(args)
    if argv and argv[0] in _PROJECT_COMMANDS and "--project-dir" not in argv:
        argv += ["--project-dir", str(project)]
        if "--profiles-dir" not in argv:
            argv += ["--profiles-dir", str(project)]
    if "DBT_USE_COLORS" not in os.environ and not sys.stdout.isatty():
        env = env | {"DBT_USE_COLORS": "false"}  # no escape codes in logs and pipes
    with _environment(env):
        result = dbtRunner().invoke(argv)
    if isinstance(result.exception, DbtUsageException):
        # dbt prints nothing for a command line it cannot parse; its sentence is the whole message.
        raise UsageError(f"dbt: {result.exception}")
    if result.exception is not None:
        logger.debug("dbt raised", exc_info=result.exception)
        return DbtOutcome(2, error=str(result.exception))
    statuses: Counter[str] = Counter()
    warned: list[str] = []
    for node_result in getattr(result.result, "results", None) or ():
        status = str(getattr(node_result.status, "value", node_result.status))
        statuses[status] += 1
        if status == "warn":
            warned.append(_warned(node_result))
    return DbtOutcome(0 if result.success else 1, statuses, tuple(warned))


def _warned(node_result: Any) -> str:
    """A node that warned, for a person: a generic test by its kind, column and model or source
    (``accepted_values of level in source langfuse.observations``), any other node by its name; then the
    number of rows it found."""
    node = getattr(node_result, "node", None)
    name = str(getattr(node, "name", None) or getattr(node, "unique_id", "?"))
    test = getattr(node, "test_metadata", None)
    attached = str(getattr(node, "attached_node", None) or "")  # "model.<project>.int_requests"
    sources = getattr(node, "sources", None) or []  # a source's test: [["langfuse", "observations"]]
    target = (
        "model " + attached.split(".", 2)[2]
        if attached.count(".") >= 2
        else "source " + ".".join(sources[0])
        if len(sources) == 1
        else None
    )
    if test is not None and target is not None:
        column = getattr(node, "column_name", None)
        name = f"{test.name}{f' of {column}' if column else ''} in {target}"
    failures = getattr(node_result, "failures", None)
    if isinstance(failures, int):
        name += f" ({failures:,} {'row' if failures == 1 else 'rows'})"
    return name
