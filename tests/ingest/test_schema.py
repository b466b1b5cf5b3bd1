"""The raw schema's create-or-upgrade: a new warehouse gets the current declaration, an older one is upgraded
in place (indexes added and retired) without losing rows, and loading still works in both."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ingest.db import Database
from ingest.raw import SCHEMA_MARK, ensure_raw_schema
from ingest.schema import fingerprint
from tests.support.export_files import V2_FIXTURE
from tests.support.ingest_runner import query, run_ingest, stored


def _indexes(database: Database) -> dict[str, str]:
    rows = query(
        database,
        "SELECT i.relname AS name, am.amname AS method FROM pg_index x "
        "JOIN pg_class i ON i.oid = x.indexrelid JOIN pg_am am ON am.oid = i.relam "
        "WHERE x.indrelid = 'langfuse_raw.observations'::regclass",
    )
    return {r["name"]: r["method"] for r in rows}


def _id_collation(database: Database) -> Any:
    rows = query(
        database,
        "SELECT collation_name FROM information_schema.columns WHERE table_schema = "
        "'langfuse_raw' AND table_name = 'observations' AND column_name = 'id'",
    )
    return rows[0]["collation_name"]


def test_a_new_warehouse_has_a_bytewise_key_and_block_range_indexes(database: Database) -> None:
    ensure_raw_schema(database)
    assert _id_collation(database) == "C"
    assert _indexes(database) == {
        "observations_pkey": "btree",
        "observations_loaded_at_brin": "brin",
        "observations_start_time_brin": "brin",
    }
    ensure_raw_schema(database)  # a second run changes nothing
    assert len(_indexes(database)) == 3


def test_an_older_warehouse_is_upgraded_in_place(cli_env: Database, tmp_path: Path) -> None:
    # The observations table as an earlier version created it: default collation, a B-tree on _loaded_at,
    # and a view over it (as dbt's staging models are), which a change of the key's type would trip over.
    with cli_env.connect(autocommit=True) as conn:
        conn.execute("CREATE SCHEMA langfuse_raw")
        conn.execute(
            "CREATE TABLE langfuse_raw.observations (id text PRIMARY KEY, trace_id text NOT NULL, "
            "type text NOT NULL, start_time timestamptz NOT NULL, updated_at timestamptz NOT NULL, "
            "metadata jsonb NOT NULL DEFAULT '{}', _source_file text NOT NULL, "
            "_loaded_at timestamptz NOT NULL DEFAULT now(), _batch_id bigint NOT NULL)"
        )
        conn.execute("CREATE INDEX observations_loaded_at_idx ON langfuse_raw.observations (_loaded_at)")
        conn.execute(
            "INSERT INTO langfuse_raw.observations (id, trace_id, type, start_time, updated_at, "
            "_source_file, _batch_id) VALUES ('old1', 't', 'EVENT', now(), now(), 'old', 0)"
        )
        conn.execute("CREATE VIEW public.stg_events AS SELECT id AS event_id FROM langfuse_raw.observations")

    run = run_ingest(V2_FIXTURE, "--json")
    assert run.exit_code == 0, run.stderr
    assert _indexes(cli_env) == {
        "observations_pkey": "btree",
        "observations_loaded_at_brin": "brin",
        "observations_start_time_brin": "brin",
    }
    assert _id_collation(cli_env) is None  # the key stays as it was: correct, only slower to load
    assert "old1" in stored(cli_env) and len(stored(cli_env)) == 6
    assert query(cli_env, "SELECT count(*) AS n FROM public.stg_events")[0]["n"] == 6


def test_the_schema_mark_is_this_versions_fingerprint() -> None:
    # A change to the raw schema changes its fingerprint: SCHEMA_MARK in ingest/raw.py must follow it, or runs
    # would take an older schema for the current one.
    assert f"autopicker raw schema {fingerprint()}" == SCHEMA_MARK


def test_a_schema_is_compared_again_unless_it_carries_the_mark(database: Database) -> None:
    ensure_raw_schema(database)
    comment = "SELECT obj_description('langfuse_raw'::regnamespace, 'pg_namespace') AS c"
    assert query(database, comment)[0]["c"] == SCHEMA_MARK
    with database.connect(autocommit=True) as conn:
        conn.execute("DROP INDEX langfuse_raw.observations_start_time_brin")
        conn.execute("COMMENT ON SCHEMA langfuse_raw IS 'an earlier version'")
    ensure_raw_schema(database)  # the mark is not this version's: the schema is compared and repaired
    assert "observations_start_time_brin" in _indexes(database)
    assert query(database, comment)[0]["c"] == SCHEMA_MARK
