"""Which PostgreSQL the warehouse uses, and connections to it.

With ``DATABASE_URL`` set (a ``postgresql://`` URL) everything (the CLI, dbt, the tests) uses that server.
Without it, an embedded PostgreSQL from the ``pgserver`` package is started with its data in the project's
``.autopicker/`` folder (or ``$AUTOPICKER_HOME``) and left running for later commands; ``autopicker db stop``
stops it. The embedded server listens on a Unix socket only, never on a network address.
"""

from __future__ import annotations

import contextlib
import logging
import os
import re
import subprocess
import time
import warnings
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import quote

import psycopg
from psycopg.conninfo import conninfo_to_dict, make_conninfo

from autopicker.errors import UsageError, UserError

logger = logging.getLogger(__name__)

_URL_SCHEMES = ("postgresql://", "postgres://")


def project_dir() -> Path:
    """The dbt project: ``$AUTOPICKER_PROJECT_DIR``, else the working folder or a parent with a
    ``dbt_project.yml``, else the source checkout this package was installed from."""
    explicit = os.environ.get("AUTOPICKER_PROJECT_DIR")
    if explicit:
        path = Path(explicit).expanduser().resolve()
        if not (path / "dbt_project.yml").is_file():
            raise UserError(f"AUTOPICKER_PROJECT_DIR={explicit} has no dbt_project.yml.")
        return path
    here = Path.cwd().resolve()
    for candidate in (here, *here.parents):
        if (candidate / "dbt_project.yml").is_file() and (candidate / "ingest").is_dir():
            return candidate
    checkout = Path(__file__).resolve().parent.parent
    if (checkout / "dbt_project.yml").is_file():
        return checkout
    raise UserError(
        "Cannot find the AutoPicker dbt project; run from the project folder or set AUTOPICKER_PROJECT_DIR."
    )


def home_dir() -> Path:
    """Where local state lives (the embedded server's data): ``$AUTOPICKER_HOME`` or ``.autopicker/``."""
    explicit = os.environ.get("AUTOPICKER_HOME")
    if explicit:
        return Path(explicit).expanduser().resolve()
    return project_dir() / ".autopicker"


@dataclass(frozen=True)
class Database:
    """A PostgreSQL database the warehouse can use."""

    url: str
    embedded: bool

    @property
    def params(self) -> dict[str, str]:
        return {k: str(v) for k, v in conninfo_to_dict(self.url).items() if v is not None}

    def redacted(self) -> str:
        """The URL with any password masked, safe to print or log."""
        p = self.params
        if not p.get("password"):
            return self.url
        user = quote(p.get("user", ""), safe="")
        host = p.get("host", "")
        port = f":{p['port']}" if p.get("port") else ""
        return f"postgresql://{user}:***@{host}{port}/{p.get('dbname', '')}"

    def libpq_env(self) -> dict[str, str]:
        """The standard libpq variables for this database, which ``profiles.yml`` reads for dbt."""
        p = self.params
        env = {
            "PGHOST": p.get("host", "localhost"),
            "PGPORT": p.get("port", "5432"),
            "PGUSER": p.get("user", "postgres"),
            "PGDATABASE": p.get("dbname", "postgres"),
            "PGPASSWORD": p.get("password", ""),
        }
        return env

    def with_dbname(self, dbname: str) -> Database:
        """Another database on the same server."""
        params = self.params | {"dbname": dbname}
        return Database(url=_url_from_params(params), embedded=self.embedded)

    def connect(self, **kwargs: object) -> psycopg.Connection:
        """A psycopg connection; a server that does not answer is a :class:`UserError` that keeps the
        server's reason ("Connection refused", "password authentication failed ...")."""
        try:
            return psycopg.connect(self.url, **kwargs)  # type: ignore[arg-type]
        except psycopg.OperationalError as exc:
            raise UserError(
                f"Cannot connect to the database at {self.redacted()}: {connection_failure(exc)}"
            ) from None

    @contextlib.contextmanager
    def locking_connection(self, **kwargs: object) -> Iterator[psycopg.Connection]:
        """:meth:`connect`, for a connection that holds session advisory locks: they are released before it
        closes. Closing alone releases them only when the server has ended the session, a moment after the
        client has moved on, so a run started right after the last one ended could find its lock held."""
        with self.connect(**kwargs) as conn:
            try:
                yield conn
            finally:
                if not conn.closed and not conn.broken:
                    with contextlib.suppress(psycopg.Error):
                        conn.execute("select pg_advisory_unlock_all()")

    def ping(self) -> None:
        """Connect and run a query: a :class:`UserError` unless the server really answers now."""
        with self.connect(connect_timeout=10) as conn:
            conn.execute("select 1")


#: libpq's prefix before the reason ("connection failed: connection to server at "h", port 5 failed: ").
_LIBPQ_PREFIX = re.compile(
    r"^(connection (failed|is bad): )?(connection to server (at|on) .*? failed: )?(FATAL: +)?"
)


def connection_failure(exc: BaseException) -> str:
    """The cause of a failed connection in one line: libpq's reason, then its hint in parentheses."""
    lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
    if not lines:
        return type(exc).__name__
    reason = _LIBPQ_PREFIX.sub("", lines[0]) or lines[0]
    hint = " ".join(_LIBPQ_PREFIX.sub("", line) for line in lines[1:])
    return f"{reason} ({hint[:1].lower()}{hint[1:]})" if hint else reason


#: SQLSTATEs with which the server ends the session: shut down, crashed, or not taking connections yet.
_SESSION_ENDED = frozenset({"57P01", "57P02", "57P03"})
#: The cause of a failure that leaves the connection open, by SQLSTATE, then by its class (two characters).
_CAUSES = {
    "53100": "the database server is out of disk space",
    "53200": "the database server is out of memory",
    "53300": "the database server has too many connections",
    "57014": "the statement was cancelled",
    "55P03": "a lock was not granted in time",
    "40001": "a concurrent transaction conflicted with this one",
    "40P01": "a deadlock with another transaction",
    "53": "the database server ran short of a resource",
    "54": "a limit of the database server was exceeded",
    "55": "the database was not in the state the statement needs",
    "57": "an administrator or the server stopped the statement",
    "58": "the database server had a system error",
    "40": "the transaction was rolled back",
}


def connection_lost(exc: BaseException, conn: psycopg.Connection | None = None) -> bool:
    """Whether an error means the connection is gone (or never came), rather than a statement failed on a
    connection that still works: out of disk or memory, cancelled, timed out, and so on."""
    if conn is not None and conn.broken:
        return True
    state = getattr(exc, "sqlstate", None)
    return state is None or state.startswith("08") or state in _SESSION_ENDED


def failure_cause(exc: BaseException) -> str:
    """What made a statement fail, in one line: the cause, then PostgreSQL's own words in parentheses."""
    diag = getattr(exc, "diag", None)
    lines = str(exc).strip().splitlines()
    message = (diag.message_primary if diag is not None else None) or (
        lines[0] if lines else type(exc).__name__
    )
    state: str | None = getattr(exc, "sqlstate", None)
    if state is None:
        return message
    cause = _CAUSES.get(state) or _CAUSES.get(state[:2])
    return f"{cause} ({message})" if cause else f"{message} (SQLSTATE {state})"


def load_failure(exc: BaseException, conn: psycopg.Connection | None, what: str) -> str:
    """The sentence for a database error that ended the load of one file (one transaction: nothing of it
    stays): a lost connection only when the connection is really gone."""
    if connection_lost(exc, conn):
        return f"Lost the database connection while loading {what}: {connection_failure(exc)}"
    return f"Loading {what} failed in the database: {failure_cause(exc)}; nothing from it was stored."


def _url_from_params(params: dict[str, str]) -> str:
    user = quote(params.get("user", "postgres"), safe="")
    password = params.get("password")
    auth = f"{user}:{quote(password, safe='')}" if password else user
    host = params.get("host", "")
    dbname = quote(params.get("dbname", "postgres"), safe="")
    if host.startswith("/"):
        port = f"&port={params['port']}" if params.get("port") else ""
        return f"postgresql://{auth}@/{dbname}?host={quote(host, safe='/')}{port}"
    port = f":{params['port']}" if params.get("port") else ""
    extra = {k: v for k, v in params.items() if k not in {"user", "password", "host", "port", "dbname"}}
    query = ("?" + make_conninfo(**extra).replace(" ", "&")) if extra else ""
    return f"postgresql://{auth}@{host}{port}/{dbname}{query}"


def configured_url() -> str | None:
    """``DATABASE_URL`` when set, validated."""
    url = os.environ.get("DATABASE_URL", "").strip()
    if not url:
        return None
    if not url.startswith(_URL_SCHEMES):
        raise UsageError("DATABASE_URL must be a postgresql:// URL.")
    try:
        conninfo_to_dict(url)
    except psycopg.ProgrammingError:
        raise UsageError("DATABASE_URL is not a valid PostgreSQL URL.") from None
    return "postgresql://" + url.split("://", 1)[1]


def resolve(start: bool = True) -> Database:
    """The warehouse database: ``DATABASE_URL`` or the embedded server (started when ``start``)."""
    url = configured_url()
    if url is not None:
        return Database(url=url, embedded=False)
    return Database(url=_embedded_url(start=start), embedded=True)


def _pgdata() -> Path:
    return home_dir() / "pgdata"


def _embedded_url(start: bool) -> str:
    pgdata = _pgdata()
    if not start and not (pgdata / "PG_VERSION").exists():
        raise UserError("The embedded database does not exist yet; any command that needs it creates it.")
    pgdata.mkdir(parents=True, exist_ok=True)
    if not (pgdata / "PG_VERSION").exists():
        logger.info("creating the embedded PostgreSQL in %s", pgdata)
    _forget_dead_postmaster(pgdata)
    try:
        server = embedded_server(pgdata)
    except Exception as exc:  # pgserver raises plain exceptions from initdb/pg_ctl
        raise UserError(f"Could not start the embedded PostgreSQL in {pgdata}: {exc}") from None
    url = server.get_uri()
    _require_passwords(pgdata, Database(url=url, embedded=True))
    return url


#: The embedded server's client authentication. pgserver's initdb trusts every local connection; the owner
#: (the PostgreSQL user the CLI connects as) keeps that over the socket, every other login (a BI role) must
#: give its password.
_HBA = """# autopicker: the owner over the Unix socket without a password, every other login with one.
local all {owner} trust
local all all scram-sha-256
"""


def _require_passwords(pgdata: Path, database: Database) -> None:
    """Make the embedded server ask every login but the owner for its password (a reload, no restart)."""
    hba = pgdata / "pg_hba.conf"
    wanted = _HBA.format(owner=database.params.get("user", "postgres"))
    if hba.read_text() == wanted:
        return
    hba.write_text(wanted)  # in place: the file keeps the owner and mode the server needs
    with database.connect(autocommit=True) as conn:
        conn.execute("select pg_reload_conf()")
    logger.info("the embedded PostgreSQL now asks every login but its owner for a password")


#: How long the embedded server may take to start. pgserver gives pg_ctl 10 seconds, which a busy machine
#: (a fresh initdb, every core taken) can exceed; the server pg_ctl started goes on starting after that.
START_SECONDS = 180


def embedded_server(pgdata: Path, cleanup_mode: str | None = None) -> Any:
    """pgserver's handle on the server of ``pgdata``, started if need be. A start that outlasts pgserver's
    own limit is waited for (up to :data:`START_SECONDS`) and the server taken over, rather than failed."""
    pgserver = _import_pgserver()
    try:
        return pgserver.get_server(pgdata, cleanup_mode=cleanup_mode)
    except subprocess.TimeoutExpired:
        logger.info("the embedded PostgreSQL in %s is slow to start; waiting for it", pgdata)
    from pgserver.postgres_server import PostgresServer

    PostgresServer._instances.pop(pgdata.expanduser().resolve(), None)  # the handle that gave up on it
    deadline = time.monotonic() + START_SECONDS
    while not _postmaster_ready(pgdata):
        if time.monotonic() > deadline:
            raise TimeoutError(f"it did not start within {START_SECONDS} seconds")
        time.sleep(0.2)
    return pgserver.get_server(pgdata, cleanup_mode=cleanup_mode)


def _postmaster_ready(pgdata: Path) -> bool:
    """Whether the server of ``postmaster.pid`` runs and has written that it takes connections."""
    try:
        lines = (pgdata / "postmaster.pid").read_text().splitlines()
    except FileNotFoundError:
        return False
    return len(lines) >= 8 and lines[7].strip() == "ready" and _postmaster_alive(pgdata)


def stop_embedded() -> bool:
    """Stop the embedded server if it runs; returns whether it was running."""
    pgdata = _pgdata()
    if not _postmaster_alive(pgdata):
        return False
    pgserver = _import_pgserver()
    # pgserver runs the server as a dedicated system user when we are root.
    user = "pgserver" if os.geteuid() == 0 else None
    try:
        pgserver.pg_ctl(["-w", "-m", "fast", "stop"], pgdata=pgdata, user=user, timeout=60)
    except Exception as exc:
        raise UserError(f"Could not stop the embedded PostgreSQL in {pgdata}: {exc}") from None
    return True


def _postmaster_alive(pgdata: Path, lock_file: str = "postmaster.pid") -> bool:
    """Whether the server of ``postmaster.pid`` (or another lock file of its) runs (the file outlives a
    killed server)."""
    try:
        pid = int((pgdata / lock_file).read_text().split()[0])
        os.kill(pid, 0)
    except (FileNotFoundError, IndexError, ValueError, ProcessLookupError):
        return False
    except PermissionError:  # it runs as another system user
        return not _zombie(pid)
    return not _zombie(pid)


def _zombie(pid: int) -> bool:
    """Whether ``pid`` has exited and waits to be reaped: a killed server's process lingers so until the
    system's init collects it, and signals still "reach" it, which pg_ctl and pgserver take for a live
    server."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return False
    return state == "Z"


def _forget_dead_postmaster(pgdata: Path) -> None:
    """Remove the lock files of a server that is gone (killed, or its machine restarted): ``postmaster.pid``
    and its socket's ``.s.PGSQL.<port>.lock`` (in the socket folder the pid file names: pgdata, or a
    shorter folder when pgdata's path is too long for a socket), which would otherwise keep a new one from
    starting."""
    pid_file = pgdata / "postmaster.pid"
    if not pid_file.exists() or _postmaster_alive(pgdata):
        return
    lines = pid_file.read_text().splitlines()
    # postmaster.pid: pid, data folder, start time, port, socket folder, ... (PostgreSQL's miscadmin.h)
    if len(lines) >= 5 and lines[3].strip().isdigit() and lines[4].strip():
        socket = Path(lines[4].strip()) / f".s.PGSQL.{lines[3].strip()}"
        lock = socket.with_name(socket.name + ".lock")
        if lock.exists() and not _postmaster_alive(lock.parent, lock.name):
            lock.unlink(missing_ok=True)
            socket.unlink(missing_ok=True)
    logger.info("the embedded PostgreSQL in %s is not running; removing its stale postmaster.pid", pgdata)
    pid_file.unlink(missing_ok=True)


def _import_pgserver():  # type: ignore[no-untyped-def]
    # pgserver's platformdirs warns about XDG_RUNTIME_DIR on headless machines; the fallback it takes is fine.
    warnings.filterwarnings("ignore", message=".*XDG_RUNTIME_DIR.*")
    try:
        import pgserver
    except ImportError:  # pragma: no cover - pgserver is a hard dependency
        raise UserError("Set DATABASE_URL, or install pgserver for the embedded database.") from None
    return pgserver
