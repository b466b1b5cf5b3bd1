"""The raw schema ``langfuse_raw``, declared once with SQLAlchemy Core, and its create-or-upgrade.

Every table the loaders write is declared here; :func:`ensure_schema` creates what is missing and adds new
columns and indexes to existing tables, so an older warehouse is upgraded in place by any command that loads.
The observations table's columns follow from the export row (:mod:`autopicker.export_row`), named as its
snake_case export names; the loader's own columns start with an underscore.
"""

from __future__ import annotations

import hashlib
import logging
from typing import Any

from sqlalchemy import (
    BigInteger,
    Column,
    Connection,
    Double,
    Index,
    Integer,
    MetaData,
    Numeric,
    PrimaryKeyConstraint,
    Table,
    Text,
    inspect,
    text,
)
from sqlalchemy.dialects.postgresql import ARRAY, JSONB, TIMESTAMP
from sqlalchemy.exc import DBAPIError

from autopicker.export_row import LOADED, Field

logger = logging.getLogger(__name__)

RAW_SCHEMA = "langfuse_raw"
TS = TIMESTAMP(timezone=True)

metadata = MetaData(schema=RAW_SCHEMA)

# The type each kind of export value is stored as (see autopicker.export_row).
_COLUMN_TYPES: dict[str, Any] = {
    "text": Text,
    "timestamp": TS,
    "decimal": Numeric,  # money keeps the exported digits
    "seconds": Double,
    "json_text": JSONB,
    "numbers": JSONB,
    "strings": JSONB,
}
# The columns the ingest's rules make required (see ingest.normalize): a version always, metadata an object.
_REQUIRED = {"trace_id", "type", "start_time", "updated_at"}


def _export_column(field: Field) -> Column:
    name = field.column
    assert name is not None
    if name == "id":
        # The key compares bytes (COLLATE "C"): ids have no language to sort by, and locale-aware
        # comparisons made the server's work for a 1M-row load ~7% greater.
        return Column("id", Text(collation="C"), primary_key=True)
    if name == "metadata":
        return Column("metadata", JSONB, nullable=False, server_default=text("'{}'::jsonb"))
    return Column(name, _COLUMN_TYPES[field.kind], nullable=name not in _REQUIRED)


#: Observations of type EVENT and GENERATION, one row per id, the newest version (greatest ``updated_at``):
#: the export's loaded fields (prompts and answers only when loaded with --with-io), then the lineage.
observations = Table(
    "observations",
    metadata,
    *(_export_column(field) for field in LOADED),
    Column("_source_file", Text, nullable=False),
    Column("_loaded_at", TS, nullable=False, server_default=text("now()")),
    Column("_batch_id", BigInteger, nullable=False),
)
# Besides the key, only block-range (BRIN) indexes: the table is written in bulk, and a B-tree costs the
# ingest about as much again as the key's own (one on random trace ids adds ~40% to a 1M-row load), while a
# BRIN index costs little, since rows arrive roughly in the order of both columns. _loaded_at is what dbt's
# incremental models read new rows by; start_time bounds their reads of whole traces (the raw table has no
# trace index). Lookups by trace or name belong to the dbt models' own indexes.
Index("observations_loaded_at_brin", observations.c._loaded_at, postgresql_using="brin")
Index("observations_start_time_brin", observations.c.start_time, postgresql_using="brin")
#: Indexes an older version declared, dropped on upgrade (by name, in schema langfuse_raw).
RETIRED_INDEXES = ("observations_loaded_at_idx",)

#: One row per load run (a file ingest or an API ingest), for lineage and the nightly summary.
load_batches = Table(
    "load_batches",
    metadata,
    Column("batch_id", BigInteger, primary_key=True, autoincrement=True),
    Column("source", Text, nullable=False),
    Column("started_at", TS, nullable=False, server_default=text("now()")),
    Column("finished_at", TS),
    Column("rows_loaded", BigInteger, nullable=False, server_default=text("0")),
    Column("rows_rejected", BigInteger, nullable=False, server_default=text("0")),
    # running, finished, or abandoned: its run ended without finishing (killed), as a later run found
    # (finished_at is then when it was found); NULL for rows written before this column existed
    Column("status", Text),
)

#: Rows that could not be loaded, with the reason; the rest of their file still loads.
rejected_rows = Table(
    "rejected_rows",
    metadata,
    Column("rejected_id", BigInteger, primary_key=True, autoincrement=True),
    Column("_batch_id", BigInteger, nullable=False),
    Column("source_file", Text, nullable=False),
    Column("row_number", BigInteger),
    Column("error", Text, nullable=False),
    Column("raw", Text),
    Column("rejected_at", TS, nullable=False, server_default=text("now()")),
    # SHA-256 of the file the row came from (file ingests): a later load of that file replaces its rows
    Column("content_hash", Text),
)
Index("rejected_rows_batch_idx", rejected_rows.c._batch_id)
Index("rejected_rows_content_hash_idx", rejected_rows.c.content_hash)

#: Files already loaded, by content hash and format: a file seen again is skipped unless forced.
loaded_files = Table(
    "loaded_files",
    metadata,
    Column("content_hash", Text, primary_key=True),
    Column("source_file", Text, nullable=False),
    Column("size_bytes", BigInteger),
    Column("rows_read", BigInteger, nullable=False, server_default=text("0")),
    Column("rows_loaded", BigInteger, nullable=False, server_default=text("0")),
    Column("rows_rejected", BigInteger, nullable=False, server_default=text("0")),
    Column("_batch_id", BigInteger, nullable=False),
    Column("loaded_at", TS, nullable=False, server_default=text("now()")),
    # jsonl, json, csv (each maybe .gz) or parquet: the same bytes read as another format are another file
    Column("file_format", Text),
)

#: API ingest watermarks: the newest start time fully loaded, per Langfuse project and observation type.
ingest_state = Table(
    "ingest_state",
    metadata,
    Column("project_id", Text, nullable=False),
    Column("type", Text, nullable=False),
    Column("watermark", TS, nullable=False),
    Column("updated_at", TS, nullable=False, server_default=text("now()")),
    # The range an interrupted run left half-read (see ingest.sources.api): [range_from, range_before) is
    # still to be read, and once it is, the watermark moves to range_until. NULL when nothing is pending.
    Column("range_from", TS),
    Column("range_before", TS),
    Column("range_until", TS),
    PrimaryKeyConstraint("project_id", "type"),
)

#: Object-storage export locations: the last complete run (manifest) loaded from each prefix.
export_state = Table(
    "export_state",
    metadata,
    Column("location", Text, primary_key=True),
    Column("last_manifest_key", Text, nullable=False),
    Column("runs_loaded", Integer, nullable=False, server_default=text("0")),
    Column("updated_at", TS, nullable=False, server_default=text("now()")),
    # See ingest.sources.s3: files loaded from runs that are not complete yet (object key -> ETag), and
    # runs that failed their checks (tried again on every later ingest).
    Column("pending_files", JSONB),
    Column("failed_manifests", ARRAY(Text)),
)

# Serialises concurrent create-or-upgrade runs (two ingests starting at once on an empty database).
_SCHEMA_LOCK_KEY = 0x4155_5450  # "AUTP"


def ensure_schema(conn: Connection) -> None:
    """Create schema ``langfuse_raw`` and its tables, or upgrade them: add missing columns and indexes, drop
    retired indexes.

    Runs in the caller's transaction; new columns are added as nullable so existing rows stay valid. A
    column's type or collation is never changed in place (that rewrites the table and fails under the dbt
    views that read it): a warehouse created before ``id`` was ``COLLATE "C"`` keeps its key as it was,
    which is correct, only slower to load.
    """
    conn.execute(text("select pg_advisory_xact_lock(:k)"), {"k": _SCHEMA_LOCK_KEY})
    existed = conn.execute(text("select 1 from pg_namespace where nspname = :s"), {"s": RAW_SCHEMA}).first()
    conn.execute(text(f"create schema if not exists {RAW_SCHEMA}"))
    metadata.create_all(conn, checkfirst=True)
    if existed is not None:  # a schema created just now is as declared: nothing to compare
        _upgrade(conn)
    _mark(conn)


def _upgrade(conn: Connection) -> None:
    """Add the columns and indexes an existing schema lacks, and drop retired indexes."""
    inspector = inspect(conn)
    for table in metadata.sorted_tables:
        existing = {c["name"] for c in inspector.get_columns(table.name, schema=RAW_SCHEMA)}
        for column in table.columns:
            if column.name in existing:
                continue
            ddl_type = column.type.compile(dialect=conn.dialect)
            default = ""
            if column.server_default is not None:
                default = f" default {column.server_default.arg.text}"  # type: ignore[attr-defined]
            conn.execute(
                text(f'alter table {RAW_SCHEMA}.{table.name} add column "{column.name}" {ddl_type}{default}')
            )
        indexes = {i["name"] for i in inspector.get_indexes(table.name, schema=RAW_SCHEMA)}
        for retired in RETIRED_INDEXES:
            if retired in indexes:
                conn.execute(text(f"drop index {RAW_SCHEMA}.{retired}"))
        for index in table.indexes:
            if index.name not in indexes:
                index.create(conn, checkfirst=True)


def fingerprint() -> str:
    """A digest of the schema this version creates (tables, columns, types, defaults, indexes, retired
    indexes): the mark :func:`ensure_schema` leaves on the schema, so that a run that finds it needs one
    query instead of a comparison. ``ingest.raw.SCHEMA_MARK`` holds it for that query."""
    from sqlalchemy.dialects import postgresql
    from sqlalchemy.schema import CreateIndex, CreateTable

    dialect = postgresql.dialect()  # type: ignore[no-untyped-call]
    parts = [f"retired {' '.join(RETIRED_INDEXES)}"]
    for table in metadata.sorted_tables:
        parts.append(str(CreateTable(table).compile(dialect=dialect)).strip())
        parts += sorted(str(CreateIndex(index).compile(dialect=dialect)) for index in table.indexes)
    return hashlib.sha256("\n".join(parts).encode()).hexdigest()[:16]


def _mark(conn: Connection) -> None:
    """Leave this version's mark on the schema; a role that does not own it cannot, and the next run then
    compares the schema again, as it did before there was a mark."""
    try:
        with conn.begin_nested():
            conn.execute(text(f"comment on schema {RAW_SCHEMA} is 'autopicker raw schema {fingerprint()}'"))
    except DBAPIError:
        logger.info("cannot mark schema %s as current (not its owner)", RAW_SCHEMA)
