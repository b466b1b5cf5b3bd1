"""Shared fixtures: a real PostgreSQL for every test, each test in a database of its own.

With ``DATABASE_URL`` set the tests use that server (creating and dropping one database per test); without
it they start an embedded PostgreSQL (pgserver) in a temporary folder for the session. Either way nothing is
mocked: the code under test talks to a real server.
"""

from __future__ import annotations

import os
import tempfile
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import HealthCheck, Phase, settings

from ingest.db import Database, configured_url, embedded_server
from tests.support.cli import REPO

os.environ.setdefault("DBT_SEND_ANONYMOUS_USAGE_STATS", "false")


@pytest.fixture(scope="session")
def pg_server() -> Iterator[Database]:
    """The server the tests use, connected to its maintenance database."""
    url = configured_url()
    if url:
        yield Database(url=url, embedded=False)
        return
    # A folder of its own, not one of pytest's numbered temporary folders, which pytest prunes by rules of
    # its own across sessions: a server whose data folder vanishes shuts down under every later test.
    pgdata = Path(tempfile.mkdtemp(prefix="autopicker-test-pg-"))
    # Started as the command line starts it: a start slower than pgserver's own limit (a busy machine) is
    # waited for; it once failed, and every test of that xdist worker errored.
    server = embedded_server(pgdata, cleanup_mode="delete")
    try:
        yield Database(url=server.get_uri(), embedded=True)
    finally:
        server.cleanup()


def _create_database(server: Database) -> Database:
    name = f"autopicker_test_{uuid.uuid4().hex[:16]}"
    with server.connect(autocommit=True) as conn:
        conn.execute(f'create database "{name}"')
    return server.with_dbname(name)


def _drop_database(server: Database, database: Database) -> None:
    name = database.params["dbname"]
    with server.connect(autocommit=True) as conn:
        conn.execute(f'drop database if exists "{name}" with (force)')


@pytest.fixture
def database(pg_server: Database) -> Iterator[Database]:
    """A new, empty database for this test, dropped afterwards."""
    created = _create_database(pg_server)
    try:
        yield created
    finally:
        _drop_database(pg_server, created)


@pytest.fixture(scope="module")
def module_database(pg_server: Database) -> Iterator[Database]:
    """A database shared by one test module (for expensive set-ups such as a dbt build)."""
    created = _create_database(pg_server)
    try:
        yield created
    finally:
        _drop_database(pg_server, created)


@pytest.fixture
def cli_env(database: Database, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Database:
    """Point the CLI at this test's database and keep its local state in the test's folder."""
    monkeypatch.setenv("DATABASE_URL", database.url)
    monkeypatch.setenv("AUTOPICKER_HOME", str(tmp_path / "autopicker-home"))
    monkeypatch.setenv("AUTOPICKER_PROJECT_DIR", str(REPO))
    return database


# Hypothesis profiles: `make test` runs a bounded, derandomized number of examples (the same ones every run);
# `make fuzz` (HYPOTHESIS_PROFILE=fuzz) many more, drawn afresh each time.
settings.register_profile(
    "test",
    max_examples=25,
    derandomize=True,
    database=None,
    deadline=None,
    print_blob=True,
    phases=[Phase.explicit, Phase.generate],  # a failure is shown as found: shrinking can take minutes
)
settings.register_profile(
    "fuzz",
    max_examples=int(os.environ.get("FUZZ_EXAMPLES", "2000")),
    database=None,
    deadline=None,
    print_blob=True,
    suppress_health_check=[HealthCheck.too_slow],
)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "test"))
