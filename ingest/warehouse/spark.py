"""A local Apache Spark for the warehouse: a Spark Thrift server, and a standalone cluster on one machine.

The dbt project reaches Spark through dbt-spark's ``thrift`` method, the way it reaches a cluster's Thrift
server; locally the server is ``HiveThriftServer2`` from the installed ``pyspark`` distribution (its jars and
``bin/`` scripts), run by Java 17 or newer. docs/spark.md says why this and not dbt-spark's ``session``
method.

The server is started once and reused: its state lives in ``spark/`` under the project's local state folder
(``.autopicker/``, or ``$AUTOPICKER_HOME``):

- ``thrift.json``: the running server (pid, port, master), written once it answers;
- ``thrift.log``: its output; ``metastore_db/`` (Derby) and ``warehouse/``: the catalog and the tables;
- ``tmp/``: Spark's scratch space.

Every Spark process listens on 127.0.0.1 only (the Thrift port is a free one chosen at start; the driver's
web UI is off; ``SPARK_LOCAL_IP`` keeps the standalone daemons' web UIs on loopback too). Each process is
started in a process group of its own and stopped by that id, and only when its command line shows it is the
process this module started.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import logging
import os
import re
import shutil
import signal
import socket
import subprocess
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import asdict, dataclass
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

from autopicker.errors import UsageError, UserError
from ingest.db import home_dir
from ingest.warehouse.dbt import DbtOutcome, run_dbt_with
from ingest.warehouse.views import VIEWS, ViewRows

logger = logging.getLogger(__name__)

THRIFT_SERVER_CLASS = "org.apache.spark.sql.hive.thriftserver.HiveThriftServer2"
MASTER_CLASS = "org.apache.spark.deploy.master.Master"
WORKER_CLASS = "org.apache.spark.deploy.worker.Worker"
LOOPBACK = "127.0.0.1"
#: How long a JVM may take to listen (a cold start takes ~25 s; a busy machine, several times that).
START_TIMEOUT = 300.0
STOP_TIMEOUT = 60.0
INSTALL_HINT = "run `make spark-install` (Java 17 and `pip install -e '.[spark]'`)"
BUILD_HINT = "run `autopicker build --target spark` first"


@dataclass(frozen=True)
class ThriftServer:
    """A Spark Thrift server this module started: where it listens and which process it is."""

    port: int
    pid: int
    master: str
    host: str = LOOPBACK

    def dbt_env(self) -> dict[str, str]:
        """Environment for dbt's ``spark`` target (profiles.yml) to reach this server."""
        return {
            "AUTOPICKER_SPARK_HOST": self.host,
            "AUTOPICKER_SPARK_PORT": str(self.port),
            "DBT_SEND_ANONYMOUS_USAGE_STATS": "false",
        }


@dataclass(frozen=True)
class StandaloneCluster:
    """A Spark standalone master and its workers, on 127.0.0.1."""

    master_url: str
    master_pid: int
    worker_pids: tuple[int, ...]


def state_dir() -> Path:
    """The local Spark's state folder: ``spark/`` under the project's local state."""
    return home_dir() / "spark"


# -- the installation --------------------------------------------------------------------------------------


def spark_home() -> Path:
    """The installed ``pyspark`` distribution (``SPARK_HOME``): its ``bin/`` scripts and ``jars/``."""
    try:
        import pyspark
    except ImportError:
        raise UserError(f"Spark is not installed: {INSTALL_HINT}.") from None
    home = Path(pyspark.__file__).resolve().parent
    if not (home / "bin" / "spark-submit").is_file():
        raise UserError(f"The pyspark installation in {home} has no bin/spark-submit; reinstall it.")
    return home


def java_major_version(java: str = "java") -> int | None:
    """The major version of the ``java`` on PATH (17 for 17.0.15), or None when there is none."""
    executable = shutil.which(java)
    if executable is None:
        return None
    try:
        shown = subprocess.run(
            [executable, "-version"], capture_output=True, text=True, timeout=60, check=False
        ).stderr
    except (OSError, subprocess.TimeoutExpired):
        return None
    match = re.search(r'version "(\d+)(?:\.(\d+))?', shown)
    if match is None:
        return None
    major = int(match[1])
    return int(match[2] or 0) if major == 1 else major  # "1.8.0" is Java 8


def check_java() -> None:
    """Raise a UserError unless Java 17 or newer is on PATH (Spark 4 needs it)."""
    version = java_major_version()
    if version is None:
        raise UserError(f"Java is not installed: {INSTALL_HINT}.")
    if version < 17:
        raise UserError(f"Spark needs Java 17 or newer, but `java` is Java {version}: {INSTALL_HINT}.")


def free_port() -> int:
    """A TCP port free on 127.0.0.1 right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind((LOOPBACK, 0))
        return int(probe.getsockname()[1])


def _listening(port: int, host: str = LOOPBACK) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.settimeout(1.0)
        return probe.connect_ex((host, port)) == 0


def _spark_environment(home: Path, folder: Path) -> dict[str, str]:
    env = dict(os.environ)
    env["SPARK_HOME"] = str(home)
    # The standalone daemons' web UIs bind to SPARK_LOCAL_IP, else to every address.
    env["SPARK_LOCAL_IP"] = LOOPBACK
    # Marks the daemons' command lines with their state folder, so that a stop finds exactly them.
    env["SPARK_DAEMON_JAVA_OPTS"] = f"-Dautopicker.state={folder}"
    env.pop("PYSPARK_SUBMIT_ARGS", None)
    return env


# -- processes ---------------------------------------------------------------------------------------------


def _command_line(pid: int) -> str | None:
    """The process's command line, or None when there is no such process."""
    try:
        raw = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return None
    return raw.replace(b"\0", b" ").decode(errors="replace")


def _is_ours(pid: int, *marks: str) -> bool:
    """Whether process ``pid`` runs and its command line holds every one of ``marks``."""
    command = _command_line(pid)
    return command is not None and all(mark in command for mark in marks)


def _spawn(command: Sequence[str], *, cwd: Path, env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    """Start a Spark script in a new process group (stopped as one), its output appended to ``log``."""
    log.parent.mkdir(parents=True, exist_ok=True)
    with open(log, "ab") as output:
        return subprocess.Popen(
            list(command),
            cwd=cwd,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=output,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )


def _wait_listening(
    process: subprocess.Popen[bytes] | None,
    pid: int,
    port: int,
    what: str,
    log: Path,
    timeout: float,
    clock: Callable[[], float] = time.monotonic,
) -> None:
    """Wait until ``port`` accepts connections; a UserError (with the log's tail) if the process ends or
    ``timeout`` seconds pass first."""
    deadline = clock() + timeout
    while not _listening(port):
        ended = process.poll() is not None if process is not None else _command_line(pid) is None
        if ended:
            raise UserError(f"{what} stopped while starting; its log {log} ends with:\n{_tail(log)}")
        if clock() > deadline:
            _stop_group(pid)
            raise UserError(f"{what} did not listen on port {port} within {timeout:.0f} s; see {log}.")
        time.sleep(0.5)


def _tail(log: Path, lines: int = 15) -> str:
    try:
        text = log.read_text(errors="replace")
    except OSError:
        return "(no log)"
    return "\n".join(text.splitlines()[-lines:])


def _stop_group(pid: int, timeout: float = STOP_TIMEOUT) -> None:
    """Stop the process group led by ``pid`` (TERM, then KILL after ``timeout`` seconds)."""
    with contextlib.suppress(ProcessLookupError):
        os.killpg(pid, signal.SIGTERM)
    deadline = time.monotonic() + timeout
    while _command_line(pid) is not None and time.monotonic() < deadline:
        _reap(pid)
        time.sleep(0.2)
    if _command_line(pid) is not None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(pid, signal.SIGKILL)
        while _command_line(pid) is not None and _reap(pid):
            pass
    _reap(pid)


def _reap(pid: int) -> bool:
    """Collect ``pid``'s exit status if it is a child of this process; whether it was one."""
    try:
        os.waitpid(pid, os.WNOHANG)
    except ChildProcessError:
        return False
    return True


# -- the Thrift server -------------------------------------------------------------------------------------


def _state_file(folder: Path) -> Path:
    return folder / "thrift.json"


def running_thrift_server(folder: Path | None = None) -> ThriftServer | None:
    """The Thrift server started with state in ``folder`` (default :func:`state_dir`), if it still runs."""
    folder = (folder or state_dir()).resolve()
    try:
        state = json.loads(_state_file(folder).read_text())
        server = ThriftServer(**state)
    except (OSError, ValueError, TypeError):
        return None
    if _is_ours(server.pid, THRIFT_SERVER_CLASS, str(folder)) and _listening(server.port, server.host):
        return server
    return None


def start_thrift_server(
    folder: Path | None = None,
    *,
    master: str = "local[2]",
    driver_memory: str = "1g",
    executor_memory: str = "512m",
    timeout: float = START_TIMEOUT,
    settings: Mapping[str, str] | None = None,
) -> ThriftServer:
    """Start a Spark Thrift server with state in ``folder`` (default :func:`state_dir`), or return the one
    already running there. ``master`` is ``local[N]`` or a standalone master's ``spark://`` URL (whose
    executors get ``executor_memory`` each). ``settings`` are Spark settings (``--conf``) over the server's
    own; a server already running keeps those it was started with."""
    folder = (folder or state_dir()).resolve()
    folder.mkdir(parents=True, exist_ok=True)
    with _locked(folder):  # one start at a time per folder: the Derby catalog admits one server
        return _start_thrift_server(
            folder, master, {"driver": driver_memory, "executor": executor_memory}, timeout, settings or {}
        )


@contextlib.contextmanager
def _locked(folder: Path) -> Iterator[None]:
    with open(folder / "thrift.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


def _start_thrift_server(
    folder: Path, master: str, memory: dict[str, str], timeout: float, settings: Mapping[str, str]
) -> ThriftServer:
    running = running_thrift_server(folder)
    if running is not None:
        if running.master != master:
            raise UserError(
                f"A Spark Thrift server for {running.master} already runs with state in {folder}; "
                "stop it first (`make spark-stop`)."
            )
        return running
    home = spark_home()
    check_java()
    (folder / "tmp").mkdir(exist_ok=True)
    _state_file(folder).unlink(missing_ok=True)
    port = free_port()
    log = folder / "thrift.log"
    conf = {
        "spark.master": master,
        "spark.app.name": "autopicker-thrift",
        "spark.driver.memory": memory["driver"],
        "spark.executor.memory": memory["executor"],
        "spark.driver.host": LOOPBACK,
        "spark.driver.bindAddress": LOOPBACK,
        "spark.ui.enabled": "false",
        "spark.local.dir": str(folder / "tmp"),
        "spark.sql.warehouse.dir": str(folder / "warehouse"),
        "spark.sql.session.timeZone": "UTC",
        # Few shuffle partitions: one machine, and adaptive execution still splits large shuffles.
        "spark.sql.shuffle.partitions": "8",
        "spark.log.level": "WARN",
        "spark.hadoop.javax.jdo.option.ConnectionURL": (
            f"jdbc:derby:;databaseName={folder / 'metastore_db'};create=true"
        ),
        "spark.driver.extraJavaOptions": f"-Dderby.system.home={folder}",
        **settings,
    }
    command = [str(home / "bin" / "spark-submit"), "--class", THRIFT_SERVER_CLASS]
    for key, value in conf.items():
        command += ["--conf", f"{key}={value}"]
    command += [
        "--hiveconf",
        f"hive.server2.thrift.port={port}",
        "--hiveconf",
        f"hive.server2.thrift.bind.host={LOOPBACK}",
        "spark-internal",
    ]
    logger.info("starting a Spark Thrift server (%s) on %s:%d; log in %s", master, LOOPBACK, port, log)
    started = time.monotonic()
    process = _spawn(command, cwd=folder, env=_spark_environment(home, folder), log=log)
    _wait_listening(process, process.pid, port, "The Spark Thrift server", log, timeout)
    server = ThriftServer(port=port, pid=process.pid, master=master)
    _state_file(folder).write_text(json.dumps(asdict(server)))
    logger.info("Spark Thrift server listening after %.1f s", time.monotonic() - started)
    return server


def stop_thrift_server(folder: Path | None = None) -> bool:
    """Stop the Thrift server started with state in ``folder``; whether one was running."""
    folder = (folder or state_dir()).resolve()
    if not folder.is_dir():
        return False
    with _locked(folder):
        state_file = _state_file(folder)
        try:
            pid = int(json.loads(state_file.read_text())["pid"])
        except (OSError, ValueError, KeyError, TypeError):
            return False
        found = _is_ours(pid, THRIFT_SERVER_CLASS, str(folder))
        if found:
            _stop_group(pid)
        state_file.unlink(missing_ok=True)
        return found


# -- a standalone cluster ----------------------------------------------------------------------------------


def _cluster_file(folder: Path) -> Path:
    return folder / "cluster.json"


def start_standalone_cluster(
    folder: Path,
    *,
    workers: int = 2,
    worker_cores: int = 1,
    worker_memory: str = "1g",
    timeout: float = START_TIMEOUT,
) -> StandaloneCluster:
    """Start a standalone master and ``workers`` workers on 127.0.0.1 (``spark-class``), each worker with
    ``worker_cores`` cores and ``worker_memory``; their logs, work folders and pids (``cluster.json``, for
    :func:`stop_standalone_cluster`) go to ``folder``."""
    home = spark_home()
    check_java()
    folder = folder.resolve()
    folder.mkdir(parents=True, exist_ok=True)
    env = _spark_environment(home, folder)
    spark_class = str(home / "bin" / "spark-class")
    port = free_port()
    master_log = folder / "master.log"
    master = _spawn(
        [
            spark_class,
            MASTER_CLASS,
            "--host",
            LOOPBACK,
            "--port",
            str(port),
            "--webui-port",
            str(free_port()),
        ],
        cwd=folder,
        env=env,
        log=master_log,
    )
    cluster = StandaloneCluster(f"spark://{LOOPBACK}:{port}", master.pid, ())
    _cluster_file(folder).write_text(json.dumps(asdict(cluster)))
    try:
        _wait_listening(master, master.pid, port, "The Spark master", master_log, timeout)
        logger.info("Spark master at %s", cluster.master_url)
        started = []
        for index in range(1, workers + 1):
            work = folder / f"worker-{index}"
            work.mkdir(exist_ok=True)
            worker_port = free_port()
            worker_log = folder / f"worker-{index}.log"
            options = {"--host": LOOPBACK, "--port": str(worker_port), "--webui-port": str(free_port())}
            options |= {"--cores": str(worker_cores), "--memory": worker_memory, "--work-dir": str(work)}
            command = [spark_class, WORKER_CLASS, *(item for pair in options.items() for item in pair)]
            worker = _spawn([*command, cluster.master_url], cwd=folder, env=env, log=worker_log)
            cluster = StandaloneCluster(cluster.master_url, master.pid, (*cluster.worker_pids, worker.pid))
            _cluster_file(folder).write_text(json.dumps(asdict(cluster)))
            started.append((worker, worker_port, worker_log, index))
        for worker, worker_port, worker_log, index in started:
            _wait_listening(worker, worker.pid, worker_port, f"Spark worker {index}", worker_log, timeout)
    except BaseException:
        stop_standalone_cluster(folder)
        raise
    return cluster


def stop_standalone_cluster(folder: Path) -> bool:
    """Stop the workers, then the master, started with state in ``folder`` (only processes that are still
    those daemons); whether any was running."""
    folder = folder.resolve()
    try:
        state = json.loads(_cluster_file(folder).read_text())
        cluster = StandaloneCluster(state["master_url"], state["master_pid"], tuple(state["worker_pids"]))
    except (OSError, ValueError, KeyError, TypeError):
        return False
    found = False
    for pid, kind in [
        *((pid, WORKER_CLASS) for pid in cluster.worker_pids),
        (cluster.master_pid, MASTER_CLASS),
    ]:
        if _is_ours(pid, kind, str(folder)):
            _stop_group(pid)
            found = True
    _cluster_file(folder).unlink(missing_ok=True)
    return found


@contextlib.contextmanager
def standalone_cluster(folder: Path, **options: Any) -> Iterator[StandaloneCluster]:
    """A standalone cluster for the duration of a ``with`` block."""
    cluster = start_standalone_cluster(folder, **options)
    try:
        yield cluster
    finally:
        stop_standalone_cluster(folder)


# -- dbt on Spark ------------------------------------------------------------------------------------------

#: dbt arguments selecting the staging models with their unit and data tests (the standalone-cluster proof).
STAGING_SELECTION = ("--select", "path:models/staging", "--indirect-selection", "cautious")
#: The environment variables of dbt's ``spark`` target (profiles.yml) naming a Thrift server to use.
HOST_ENV, PORT_ENV, SCHEMA_ENV = "AUTOPICKER_SPARK_HOST", "AUTOPICKER_SPARK_PORT", "AUTOPICKER_SPARK_SCHEMA"


def target_server() -> ThriftServer:
    """The Thrift server the ``spark`` target builds on: the one ``AUTOPICKER_SPARK_HOST`` (and
    ``AUTOPICKER_SPARK_PORT``, default 10000) name when set, an existing server; else the local one,
    started when it does not run."""
    host = os.environ.get(HOST_ENV, "").strip()
    if not host:
        return start_thrift_server()
    port = os.environ.get(PORT_ENV, "10000").strip()
    if not port.isdigit() or not 0 < int(port) < 65536:
        raise UsageError(f"{PORT_ENV} must be a port number, not {port!r}.")
    return ThriftServer(port=int(port), pid=0, master="external", host=host)


def target_schema() -> str:
    """The ``spark`` target's schema, the views' (``AUTOPICKER_SPARK_SCHEMA``, default ``analytics``)."""
    return os.environ.get(SCHEMA_ENV, "").strip() or "analytics"


def export_location(location: str) -> str:
    """The dbt var ``langfuse_export_uri`` for an export given as a local folder or a URI (``file://``,
    ``s3a://``...): a folder is made absolute, since the Spark server does not share our working folder."""
    if re.match(r"^[A-Za-z][A-Za-z0-9+.-]*://", location):
        return location.rstrip("/")
    path = Path(location).expanduser()
    if not path.is_dir():
        raise UsageError(f"{location} is not a folder (give a Langfuse export folder or a URI).")
    return str(path.resolve())


def run_dbt_spark(
    args: Sequence[str],
    server: ThriftServer,
    *,
    export: str | None = None,
    variables: dict[str, Any] | None = None,
    env: dict[str, str] | None = None,
    project: Path | None = None,
    quiet: bool = False,
) -> DbtOutcome:
    """Run one dbt command on the ``spark`` target against ``server``, over the export at ``export`` (see
    :func:`export_location`); returns dbt's exit code and how many nodes ended in each status. ``env`` adds
    variables (e.g. another schema); ``quiet`` leaves only errors in dbt's own log."""
    values = dict(variables or {})
    if export is not None:
        values["langfuse_export_uri"] = export
    argv = [*args, "--target", "spark"]
    if values:
        argv += ["--vars", json.dumps(values)]
    return again_after_failed_close(
        lambda: run_dbt_with(argv, server.dbt_env() | (env or {}), project, quiet=quiet)
    )


#: What the Thrift server of Spark 4's distribution answers, now and then, when asked to close a session: its
#: Hive loads a function registry that needs a jar the distribution leaves out (docs/spark.md, "dbt-spark, as
#: found"). The session is gone on the server all the same, but dbt stops with that error.
FAILED_CLOSE = "LlapSigner"
#: How many times a dbt command stopped by :data:`FAILED_CLOSE` is run again.
FAILED_CLOSE_RETRIES = 2


def again_after_failed_close(run: Callable[[], DbtOutcome]) -> DbtOutcome:
    """``run()`` (one dbt command), run again when the server's failure to close a session stopped it. dbt's
    commands are safe to repeat: a model is rebuilt from its sources, an incremental one from its state."""
    outcome = run()
    for _ in range(FAILED_CLOSE_RETRIES):
        if outcome.code != 2 or FAILED_CLOSE not in outcome.error:
            break
        logger.warning(
            "The Spark Thrift server failed to close a session (a jar its distribution lacks); "
            "running the dbt command again."
        )
        outcome = run()
    return outcome


def query(server: ThriftServer, sql: str) -> tuple[list[str], list[tuple[Any, ...]]]:
    """Column names and rows of one statement run on ``server``."""
    return queries(server, [sql])[0]


def queries(server: ThriftServer, statements: Sequence[str]) -> list[tuple[list[str], list[tuple[Any, ...]]]]:
    """Column names and rows of each statement, run in order on one connection to ``server``."""
    try:
        from pyhive import hive
    except ImportError:
        raise UserError(f"The Spark client is not installed: {INSTALL_HINT}.") from None
    try:
        connection = hive.connect(
            host=server.host, port=server.port, username="autopicker", configuration=SESSION_CONFIGURATION
        )
    except Exception as exc:  # thrift's transport errors have no common base worth naming
        raise UserError(
            f"Cannot reach the Spark Thrift server at {server.host}:{server.port}: {exc}."
        ) from None
    try:
        results = []
        cursor = connection.cursor()
        for sql in statements:
            cursor.execute(sql)
            rows = cursor.fetchall()
            description = cursor.description or []
            names = [column[0].split(".")[-1] for column in description]
            kinds = [column[1] for column in description]
            results.append((names, [tuple(map(_typed, kinds, row)) for row in rows]))
        return results
    finally:
        connection.close()


#: The session of every query: instants shown in UTC, as in the ``spark`` target's sessions (profiles.yml).
SESSION_CONFIGURATION = {"spark.sql.session.timeZone": "UTC"}


def _typed(kind: str, value: Any) -> Any:
    """A value as PostgreSQL's driver types it: the Thrift server answers dates as text, and timestamps
    without their zone (UTC, the session's)."""
    if kind == "DATE_TYPE" and isinstance(value, str):
        return date.fromisoformat(value)
    if kind == "TIMESTAMP_TYPE" and isinstance(value, datetime) and value.tzinfo is None:
        return value.replace(tzinfo=UTC)
    return value


def _present_views(server: ThriftServer, schema: str, names: Sequence[str]) -> None:
    """Raise a :class:`UserError` asking for a build when ``schema`` lacks any of the views ``names``."""
    _, databases = query(server, "show databases")
    tables: set[str] = set()
    if (schema,) in {(str(row[0]).lower(),) for row in databases}:
        _, rows = query(server, f"show views in {schema}")
        tables = {str(row[1]).lower() for row in rows}
    missing = [name for name in names if name not in tables]
    if len(missing) == len(names):
        raise UserError(f"Schema {schema} on Spark has no views yet: {BUILD_HINT}.")
    if missing:
        raise UserError(f"Schema {schema} on Spark lacks {', '.join(missing)}: {BUILD_HINT}.")


def fetch_views(server: ThriftServer, limit: int, schema: str | None = None) -> list[ViewRows]:
    """The first ``limit`` rows of each of the five fallback views on Spark, and how many each has (as
    :func:`ingest.warehouse.views.fetch_views` on PostgreSQL)."""
    schema = schema or target_schema()
    _present_views(server, schema, [name for name, _ in VIEWS])
    statements = []
    for name, _ in VIEWS:
        statements += [
            f"select count(*) from {schema}.{name}",
            f"select * from {schema}.{name} limit {limit}",
        ]
    answers = queries(server, statements)
    results = []
    for index, (name, title) in enumerate(VIEWS):
        (_, counted), (columns, rows) = answers[2 * index], answers[2 * index + 1]
        results.append(ViewRows(name, title, columns, rows, int(counted[0][0])))
    return results


def read_views(
    server: ThriftServer, names: Sequence[str], schema: str | None = None
) -> dict[str, list[dict[str, Any]]]:
    """Every row of each view named, in the view's order (as :func:`ingest.warehouse.views.read_views`)."""
    schema = schema or target_schema()
    _present_views(server, schema, names)
    answers = queries(server, [f"select * from {schema}.{name}" for name in names])
    return {
        name: [dict(zip(columns, row, strict=True)) for row in rows]
        for name, (columns, rows) in zip(names, answers, strict=True)
    }


def last_loaded_at(server: ThriftServer, raw_schema: str = "langfuse_raw") -> datetime | None:
    """When the export last received data: the newest export file's time (the source's ``_loaded_at``), in
    UTC (the server's session time zone), or None when the export is empty."""
    _, rows = query(server, f"select max(_loaded_at) from {raw_schema}.observations")
    return rows[0][0] if rows else None


def build(export: str | None, args: Sequence[str] = ("build",)) -> int:
    """``dbt build`` (or ``args``) on the ``spark`` target over the export at ``export`` (a folder or URI;
    None keeps the source of the last build), on :func:`target_server`; returns dbt's exit code."""
    location = export_location(export) if export is not None else None
    return run_dbt_spark(args, target_server(), export=location).code


@dataclass(frozen=True)
class ClusterBuild:
    """What :func:`build_on_standalone_cluster` did, and how long each part took (seconds)."""

    master_url: str
    workers: int
    start_seconds: float  # the master, the workers and the Thrift server listening
    build_seconds: float  # dbt build of the nodes selected (by default every model, unit and data test)
    exit_code: int  # dbt's
    statuses: dict[str, int]  # dbt's nodes per status (success, pass, warn, error, ...)
    rows: dict[str, int]  # relation (schema.name) -> its rows, for those of CLUSTER_COUNTED


#: The relations whose rows a cluster build reports: staging, the requests and fallbacks, the five views.
CLUSTER_COUNTED = (
    "analytics_staging.stg_langfuse__events",
    "analytics_staging.stg_langfuse__generations",
    "analytics_intermediate.int_requests",
    "analytics_intermediate.int_fallback_events_enriched",
    *(f"analytics.{name}" for name, _ in VIEWS),
)


def _selection(select: Sequence[str], exclude: Sequence[str] = ()) -> list[str]:
    """dbt's arguments for building only the nodes ``select`` selects (``+fallback_all_daily``...) and the
    tests all of whose models are among them (a test of one of them and a model left out would find no
    table on a fresh cluster), without those ``exclude`` selects (``test_type:data``...); nothing selects
    everything."""
    chosen = ["--select", *select, "--indirect-selection", "cautious"] if select else []
    return chosen + (["--exclude", *exclude] if exclude else [])


def build_on_standalone_cluster(
    export: str,
    folder: Path,
    *,
    workers: int = 2,
    variables: dict[str, Any] | None = None,
    select: Sequence[str] = (),
    exclude: Sequence[str] = (),
    clock: Callable[[], float] = time.monotonic,
    settings: Mapping[str, str] | None = None,
) -> ClusterBuild:
    """A standalone cluster on this machine proven end to end: start a master and ``workers`` workers on
    127.0.0.1, a Thrift server whose master is that cluster, ``dbt build`` the whole project (every model,
    unit test and data test; with ``select`` and ``exclude``, see :func:`_selection`) over the export at
    ``export`` there (with dbt vars ``variables``), count the rows of :data:`CLUSTER_COUNTED`, and stop
    everything that was started (state, logs and dbt's files in ``folder``). ``settings``: Spark settings for
    the Thrift server, as :func:`start_thrift_server` takes them."""
    folder = folder.resolve()
    started = clock()
    with standalone_cluster(folder / "cluster", workers=workers) as cluster:
        server = start_thrift_server(folder / "thrift", master=cluster.master_url, settings=settings)
        try:
            ready = clock()
            dbt_files = ["--target-path", str(folder / "dbt"), "--log-path", str(folder / "dbt")]
            outcome = run_dbt_spark(
                ["build", "--full-refresh", *_selection(select, exclude), *dbt_files],
                server,
                export=export,
                variables=variables,
                quiet=True,
            )
            built = clock()
            rows = {}
            if outcome.code == 0:
                answers = queries(server, [f"select count(*) from {name}" for name in CLUSTER_COUNTED])
                rows = {
                    name: int(counted[0][0])
                    for name, (_, counted) in zip(CLUSTER_COUNTED, answers, strict=True)
                }
        finally:
            stop_thrift_server(folder / "thrift")
    return ClusterBuild(
        cluster.master_url,
        workers,
        ready - started,
        built - ready,
        outcome.code,
        dict(outcome.statuses),
        rows,
    )
