"""SQLAlchemy engines per database, and create-or-upgrade of the raw schema ``langfuse_raw``."""

from __future__ import annotations

from functools import cache

import sqlalchemy as sa
from sqlalchemy.exc import OperationalError

from autopicker.errors import UserError

from .db import Database, connection_failure
from .schema import ensure_schema


@cache
def engine(url: str) -> sa.Engine:
    """One pooled SQLAlchemy engine per database URL."""
    return sa.create_engine("postgresql+psycopg://" + url.split("://", 1)[1], pool_pre_ping=True)


def ensure_raw_schema(database: Database) -> None:
    """Create or upgrade schema ``langfuse_raw`` in ``database``."""
    try:
        with engine(database.url).begin() as conn:
            ensure_schema(conn)
    except OperationalError as exc:
        reason = connection_failure(exc.orig) if exc.orig else type(exc).__name__
        raise UserError(f"Cannot connect to the database at {database.redacted()}: {reason}") from None


def delete_project(database: Database, project_id: str) -> int:
    """Delete the observations of one Langfuse project from ``langfuse_raw``; returns how many went.
    (The demo replaces its own simulated project this way, whatever else the warehouse holds.)"""
    from .schema import observations

    ensure_raw_schema(database)
    with engine(database.url).begin() as conn:
        return conn.execute(observations.delete().where(observations.c.project_id == project_id)).rowcount
