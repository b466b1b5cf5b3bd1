"""``autopicker bi-role`` on small hand-made warehouses: bad input, an unbuilt warehouse, a database name that
needs quoting, updating a password, and roles it must refuse. (tests/warehouse/test_dashboards.py checks the
role against the real views, before and after a rebuild.)"""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import psycopg
import pytest

from ingest.db import Database
from tests.support.bi_roles import (
    bi_role_cli,
    connect_as,
    drop_role,
    scram_matches,
    stored_verifier,
    unique_role,
)


def build_small_warehouse(database: Database) -> None:
    """A raw table holding a prompt and one analytics view over it, owned by the warehouse user."""
    with database.connect() as conn:
        conn.execute("create schema langfuse_raw")
        conn.execute("create table langfuse_raw.prompts (prompt text)")
        conn.execute("insert into langfuse_raw.prompts values ('a secret prompt')")
        conn.execute("create schema analytics")
        conn.execute(
            "create view analytics.prompt_count as select count(*) as prompts from langfuse_raw.prompts"
        )
        conn.commit()


@pytest.fixture
def role(database: Database) -> Iterator[str]:
    name = unique_role()
    yield name
    drop_role(database, name)


@pytest.fixture
def quoted_database(pg_server: Database) -> Iterator[Database]:
    """A database whose name needs quoting: capitals, a space, a hyphen and a double quote."""
    name = f'BI "Ware" house-{uuid.uuid4().hex[:8]}'
    with pg_server.connect(autocommit=True) as conn:
        conn.execute(psycopg.sql.SQL("create database {}").format(psycopg.sql.Identifier(name)))
    created = pg_server.with_dbname(name)
    try:
        yield created
    finally:
        with pg_server.connect(autocommit=True) as conn:
            conn.execute(
                psycopg.sql.SQL("drop database if exists {} with (force)").format(
                    psycopg.sql.Identifier(name)
                )
            )


def test_password_comes_from_the_environment(database: Database) -> None:
    result = bi_role_cli(database, unique_role(), password=None)
    assert result.returncode == 2
    assert result.stderr.strip() == (
        "error: Set AUTOPICKER_BI_PASSWORD to the password the BI role should log in with."
    )


def test_role_name_must_be_a_plain_lowercase_name(database: Database) -> None:
    result = bi_role_cli(database, "Metabase-BI", password="pw")
    assert result.returncode == 2
    assert result.stderr.startswith("error: Role name 'Metabase-BI' must be 1 to 63 lowercase letters")
    assert "Traceback" not in result.stderr


def test_warehouse_not_built_yet(database: Database, role: str) -> None:
    result = bi_role_cli(database, role, password="pw")
    assert result.returncode == 1
    dbname = database.params["dbname"]
    assert result.stderr.strip() == (
        f"error: Schema analytics does not exist yet in database {dbname}: run `autopicker build` first."
    )
    with database.connect() as conn:
        assert conn.execute("select 1 from pg_roles where rolname = %s", (role,)).fetchone() is None


def test_quoted_database_name_and_a_new_password(quoted_database: Database) -> None:
    build_small_warehouse(quoted_database)
    name = unique_role()
    try:
        created = bi_role_cli(quoted_database, name, password="first-Pass")
        assert created.returncode == 0, created.stderr
        assert f"BI role {name} created" in created.stdout
        assert f"database {quoted_database.params['dbname']}" in created.stdout
        with connect_as(quoted_database, name, "first-Pass") as conn:
            assert conn.execute("select prompts from analytics.prompt_count").fetchone() == (1,)
            with pytest.raises(psycopg.errors.InsufficientPrivilege):
                conn.execute("select prompt from langfuse_raw.prompts")

        updated = bi_role_cli(quoted_database, name, password="second-Pass")
        assert updated.returncode == 0, updated.stderr
        assert f"BI role {name} updated (new password)" in updated.stdout
        verifier = stored_verifier(quoted_database, name)
        assert scram_matches(verifier, "second-Pass")
        assert not scram_matches(verifier, "first-Pass")
        for result in (created, updated):
            assert "first-Pass" not in result.stdout + result.stderr
            assert "second-Pass" not in result.stdout + result.stderr
    finally:
        drop_role(quoted_database, name)


def test_refuses_a_role_with_administrative_attributes(database: Database, role: str) -> None:
    build_small_warehouse(database)
    with database.connect(autocommit=True) as conn:
        conn.execute(f'create role "{role}" login createdb')
    result = bi_role_cli(database, role, password="pw")
    assert result.returncode == 1
    assert result.stderr.strip() == (
        f"error: Role {role} exists with administrative attributes (superuser, createdb, createrole,"
        " replication or bypassrls); pick another name for the BI role."
    )


def test_refuses_a_role_that_could_read_the_raw_tables_and_changes_nothing(
    database: Database, role: str
) -> None:
    build_small_warehouse(database)
    with database.connect(autocommit=True) as conn:
        conn.execute(f"create role \"{role}\" login password 'old'")
        conn.execute(f'grant usage on schema langfuse_raw to "{role}"')
        conn.execute(f'grant select on langfuse_raw.prompts to "{role}"')
    before = stored_verifier(database, role)

    result = bi_role_cli(database, role, password="new")
    assert result.returncode == 1
    assert result.stderr.strip() == (
        f"error: Role {role} could also read langfuse_raw.prompts (older grants or role memberships); revoke"
        " those first, since the BI role must only read schema analytics."
    )
    # one transaction: neither the password nor any grant changed
    assert stored_verifier(database, role) == before
    with database.connect() as conn:
        assert not conn.execute("select has_schema_privilege(%s, 'analytics', 'USAGE')", (role,)).fetchone()[
            0
        ]  # type: ignore[index]


def test_the_role_writes_no_large_object_and_no_temporary_table(database: Database, role: str) -> None:
    build_small_warehouse(database)
    result = bi_role_cli(database, role, password="pw")
    assert result.returncode == 0, result.stderr
    with database.connect() as conn:
        objects_before = conn.execute("select count(*) from pg_largeobject_metadata").fetchone()
    with connect_as(database, role, "pw") as conn:
        with pytest.raises(psycopg.errors.ReadOnlySqlTransaction):
            conn.execute("create temp table t (x int)")
        for read_only in ("on", "off"):  # a session can turn read-only off: the writers stay out of reach
            conn.execute(f"set default_transaction_read_only = {read_only}")
            for statement in ("select lo_from_bytea(0, 'x')", "select lo_creat(-1)", "select lo_create(0)"):
                with pytest.raises(psycopg.errors.InsufficientPrivilege):
                    conn.execute(statement)
        assert conn.execute("select prompts from analytics.prompt_count").fetchone() == (1,)
    with database.connect() as conn:
        assert conn.execute("select count(*) from pg_largeobject_metadata").fetchone() == objects_before
        # the warehouse user keeps what it had
        conn.execute("select lo_unlink(lo_from_bytea(0, 'x'))")


def test_refuses_a_role_granted_a_large_object_writer(database: Database, role: str) -> None:
    build_small_warehouse(database)
    with database.connect(autocommit=True) as conn:
        conn.execute(f"create role \"{role}\" login password 'old'")
        conn.execute(f'grant execute on function lo_from_bytea(oid, bytea) to "{role}"')
    result = bi_role_cli(database, role, password="new")
    assert result.returncode == 1
    assert "could also write large objects with pg_catalog.lo_from_bytea(oid, bytea)" in result.stderr
