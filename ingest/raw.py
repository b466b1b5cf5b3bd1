"""SQLAlchemy engines per database, and create-or-upgrade of the raw schema ``langfuse_raw``."""

from __future__ import annotations

from functools import cache
from typing import TYPE_CHECKING

import psycopg

from autopicker.errors import UserError

from .db import Database, connection_failure, connection_lost, failure_cause

if TYPE_CHECKING:
    import sqlalchemy as sa

#: The mark :func:`ingest.schema.ensure_schema` leaves on a schema it has brought up to date (the comment on
#: schema ``langfuse_raw``), with this version's :func:`ingest.schema.fingerprint` (a test keeps the two
#: equal). A run that finds it skips the comparison, and SQLAlchemy, whose import and reflection are most
#: of a small ingest's time.
SCHEMA_MARK = "autopicker raw schema 00f0be76882e4c92"
_MARK_QUERY = "SELECT obj_description(oid, 'pg_namespace') FROM pg_namespace WHERE nspname = 'langfuse_raw'"


@cache
def engine(url: str) -> sa.Engine:
    """One pooled SQLAlchemy engine per database URL."""
    import sqlalchemy as sa

    return sa.create_engine("postgresql+psycopg://" + url.split("://", 1)[1], pool_pre_ping=True)


def ensure_raw_schema(database: Database) -> None:
    """Create or upgrade schema ``langfuse_raw`` in ``database`` (one query when it is marked current)."""
    try:
        with database.connect() as conn:
            row = conn.execute(_MARK_QUERY).fetchone()
        if row is not None and row[0] == SCHEMA_MARK:
            return
    except psycopg.Error:
        pass  # the full check below reports what is wrong
    from sqlalchemy.exc import OperationalError

    from .schema import ensure_schema

    try:
        with engine(database.url).begin() as conn:
            ensure_schema(conn)
    except OperationalError as exc:
        cause = exc.orig or exc
        if connection_lost(cause):
            reason = connection_failure(cause)
            raise UserError(f"Cannot connect to the database at {database.redacted()}: {reason}") from None
        raise UserError(
            f"The database at {database.redacted()} could not create or upgrade schema langfuse_raw: "
            f"{failure_cause(cause)}."
        ) from None


def delete_project(database: Database, project_id: str) -> int:
    """Delete the observations of one Langfuse project from ``langfuse_raw``; returns how many went.
    (The demo replaces its own simulated project this way, whatever else the warehouse holds.)"""
    from .schema import observations

    ensure_raw_schema(database)
    with engine(database.url).begin() as conn:
        return conn.execute(observations.delete().where(observations.c.project_id == project_id)).rowcount
