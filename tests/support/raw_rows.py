"""Raw rows written into ``langfuse_raw.observations`` as the loaders write them."""

from __future__ import annotations

from collections.abc import Sequence

from ingest.db import Database


def load_observations(database: Database, rows: Sequence[dict[str, object]]) -> None:
    """Insert the rows (all with the same keys) or, for an id already stored, replace it by a newer version
    (greater ``updated_at``), stamping ``_loaded_at`` with the server's now(): what the loaders do."""
    columns = list(rows[0])
    placeholders = ", ".join(f"%({c})s" for c in columns)
    updates = ", ".join(f"{c} = excluded.{c}" for c in columns if c != "id")
    with database.connect() as conn:
        conn.cursor().executemany(
            f"insert into langfuse_raw.observations ({', '.join(columns)}) values ({placeholders})"
            f" on conflict (id) do update set {updates}, _loaded_at = now()"
            " where observations.updated_at < excluded.updated_at",
            rows,
        )
        conn.commit()
