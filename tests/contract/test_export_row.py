"""The router's own export, through the real ingest, into a real database: every field it wrote arrives.

The router writes export rows with the offline sink and the ingest reads them; both follow
``autopicker.export_row``. Here the simulator (and a router that keeps prompts and answers) writes an export
folder, ``autopicker ingest files --with-io`` loads it, and each loaded row is compared, column by column,
with the row the router wrote.
"""

from __future__ import annotations

import gzip
import json
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

from psycopg.rows import dict_row

from autopicker.clock import ManualClock
from autopicker.export_row import LOADED, NAMES, Field
from ingest.db import Database
from router.clock_tracing import ClockTracerProvider
from router.export_sink import offline_client
from router.simulate import simulate
from router.tracing import Tracing
from tests.support.ingest_runner import run_ingest
from tests.support.router import ask, simulated_llm

END = 1_764_000_000  # a fixed moment, so the simulation is the same on every run
LOADED_TYPES = {"EVENT", "GENERATION"}


def _write_exports(out: Path) -> None:
    """The simulator's export (project ``sim``) and a router run that keeps prompts and answers (``io``)."""
    simulate(out, requests=300, seed=7, days=1, end=END, project_id="sim")
    clock = ManualClock(float(END))
    provider = ClockTracerProvider(clock)
    client, sink = offline_client(out, project_id="io", clock=clock, tracer_provider=provider)
    try:
        llm, _, _ = simulated_llm(
            ["openai/gpt-4o-mini", "gemini/gemini-2.5-pro"],
            clock=clock,
            overrides={"openai/gpt-4o-mini": {"rpm": 1}},
            tracing=Tracing(client, clock=clock, sink=sink, capture_content=True),
        )
        llm.complete(ask(500), max_tokens=100, user_id="u-1", session_id="s-1", tags=["t"])
        llm.complete(ask(500), max_tokens=100)  # the first model's limit is spent: a fallback
        clock.advance(5)
        llm.flush()
    finally:
        client.shutdown()
        provider.shutdown()


def _exported(out: Path) -> list[dict[str, Any]]:
    rows = []
    for path in sorted(out.rglob("*.jsonl.gz")):
        rows.extend(json.loads(line) for line in gzip.decompress(path.read_bytes()).splitlines())
    return rows


def _natural(value: str) -> Any:
    # The ingest's rule for metadata values: JSON text (a string, number, object, array, true, false or null)
    # becomes its value; anything else stays the string.
    def refuse(constant: str) -> Any:
        raise ValueError(constant)

    try:
        return json.loads(value, parse_constant=refuse)
    except ValueError:
        return value


def _expected(field: Field, value: Any) -> Any:
    """What the raw table holds for an exported value."""
    if value is None or value == "":
        return None
    if field.kind == "timestamp":
        return datetime.fromisoformat(value).replace(tzinfo=UTC)
    if field.kind == "decimal":
        return Decimal(repr(value))
    if field.kind == "json_text":
        if isinstance(value, str):
            try:
                return json.loads(value)
            except ValueError:
                return value
        return value
    if field.kind == "strings":
        return {key: _natural(text) for key, text in value.items()}
    return value


def test_every_field_the_router_writes_arrives(cli_env: Database, tmp_path: Path) -> None:
    out = tmp_path / "export"
    _write_exports(out)
    exported = _exported(out)
    assert exported and all(list(row) == list(NAMES) for row in exported)
    kept = {row["id"]: row for row in exported if row["type"] in LOADED_TYPES}
    assert len(kept) == sum(row["type"] in LOADED_TYPES for row in exported)  # one row per id

    run = run_ingest(out, "--with-io")
    assert run.exit_code == 0, run.stderr

    columns = ", ".join(f.column for f in LOADED if f.column is not None)
    with cli_env.connect() as conn, conn.cursor(row_factory=dict_row) as cur:
        stored = {r["id"]: r for r in cur.execute(f"select {columns} from langfuse_raw.observations")}
    assert stored.keys() == kept.keys()

    for oid, row in kept.items():
        for field in LOADED:
            assert field.column is not None
            assert stored[oid][field.column] == _expected(field, row[field.name]), (oid, field.name)

    # The comparison means something only if the router fills each column somewhere: every loaded field is
    # set (not null) in some exported row.
    unset = [f.name for f in LOADED if all(row[f.name] in (None, "") for row in kept.values())]
    assert unset == []
