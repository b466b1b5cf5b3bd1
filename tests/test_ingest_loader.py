"""The loader's API, as the file ingest and the API ingest use it: one transaction per load, the caller's
state committed with the rows, rows in any key style, parsing in a thread or in a child process."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import psycopg
import pytest
from export_files import REJECTS_FIXTURE, V2_FIXTURE, write_jsonl
from ingest_runner import query, stored

from ingest import chunks, loader
from ingest.db import Database
from ingest.raw import ensure_raw_schema
from ingest.readers import BadRow, FileSource, UnreadableFile

API_ROW = {  # an observation as the v2 API returns it
    "id": "api0000000000001", "traceId": "f" * 32, "type": "EVENT", "name": "rate_limit_fallback",
    "startTime": "2026-11-24T10:00:00.000Z", "endTime": "2026-11-24T10:00:00.000Z",
    "updatedAt": "2026-11-24T10:00:01.000Z", "metadata": {"original_model": '"openai/gpt-4o-mini"'},
    "latency": 0, "projectId": "proj",
}


@pytest.fixture
def conn(database: Database) -> Any:
    ensure_raw_schema(database)
    with database.connect() as connection:
        yield connection


def _watermark(cur: psycopg.Cursor, stats: loader.LoadStats) -> None:
    cur.execute(
        "INSERT INTO langfuse_raw.ingest_state (project_id, type, watermark) VALUES ('proj', 'EVENT', %s)",
        (datetime(2026, 11, 24, 10, tzinfo=UTC),),
    )


def test_state_commits_with_the_rows(conn: psycopg.Connection, database: Database) -> None:
    batch = loader.start_batch(conn, "api")
    rows = [(1, API_ROW), (2, BadRow("the API returned a string", '"x"'))]
    stats = loader.load_rows(conn, rows, source="api", batch_id=batch, before_commit=_watermark)
    assert (stats.rows_read, stats.inserted, stats.rejected) == (2, 1, 1)
    assert set(stored(database)) == {"api0000000000001"}
    assert stored(database)["api0000000000001"]["metadata"] == {"original_model": "openai/gpt-4o-mini"}
    assert len(query(database, "SELECT * FROM langfuse_raw.ingest_state")) == 1
    [reject] = query(database, "SELECT row_number, error, raw FROM langfuse_raw.rejected_rows")
    assert reject == {"row_number": 2, "error": "the API returned a string", "raw": '"x"'}


def test_a_failing_before_commit_leaves_nothing(conn: psycopg.Connection, database: Database) -> None:
    def fail(cur: psycopg.Cursor, stats: loader.LoadStats) -> None:
        _watermark(cur, stats)
        raise RuntimeError("the caller's state could not be saved")

    with pytest.raises(RuntimeError):
        loader.load_rows(conn, [(1, API_ROW)], source="api", batch_id=loader.start_batch(conn, "api"),
                         before_commit=fail)
    assert stored(database) == {}
    assert query(database, "SELECT * FROM langfuse_raw.ingest_state") == []


def PathSource(path: Path) -> FileSource:  # noqa: N802 - reads as the class it returns
    return FileSource(path, path.name)


@pytest.mark.parametrize("path", [V2_FIXTURE, REJECTS_FIXTURE], ids=["v2", "rejects"])
def test_child_process_parsing_stores_what_the_thread_stores(path: Path, database: Database,
                                                            monkeypatch: pytest.MonkeyPatch) -> None:
    results = []
    for threshold in (1 << 60, 0):  # thread, then child process
        monkeypatch.setattr(loader, "PROCESS_THRESHOLD", threshold)
        ensure_raw_schema(database)
        with database.connect() as connection:
            batch = loader.start_batch(connection, "test")
            stats = loader.load_source(connection, PathSource(path), source=path.name, batch_id=batch,
                                       size=path.stat().st_size)
        rejected = query(database, "SELECT row_number, error FROM langfuse_raw.rejected_rows ORDER BY 1")
        results.append((stored(database), stats.rows_read, stats.inserted, stats.rejected, rejected))
        with database.connect(autocommit=True) as connection:
            connection.execute("DROP SCHEMA langfuse_raw CASCADE")
    assert results[0] == results[1]


def test_a_file_unreadable_in_the_child_process_loads_nothing(conn: psycopg.Connection, database: Database,
                                                              tmp_path: Path,
                                                              monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(loader, "PROCESS_THRESHOLD", 0)
    path = tmp_path / "broken.jsonl.gz"
    path.write_bytes(b"\x1f\x8b" + b"\0" * 64)
    with pytest.raises(UnreadableFile, match="broken.jsonl.gz cannot be read"):
        loader.load_source(conn, PathSource(path), source="broken", batch_id=1, size=0)
    assert stored(database) == {}


def _event(oid: str, second: int, name: str) -> dict[str, Any]:
    return {"id": oid, "trace_id": "a" * 32, "type": "EVENT", "name": name,
            "start_time": "2026-11-24 10:00:00.000000", "updated_at": f"2026-11-24 10:00:{second:02d}.000000"}


@pytest.mark.parametrize("in_process", [False, True], ids=["thread", "child process"])
def test_versions_across_chunk_boundaries(in_process: bool, conn: psycopg.Connection, database: Database,
                                          tmp_path: Path) -> None:
    rows = [_event("x", 1, "x old"), _event("y", 5, "y new"),
            _event("z", 1, "z"), {"id": "w", "type": "SPAN"},
            _event("x", 3, "x new"), _event("y", 2, "y old"),  # x updates the stored row, y loses to it
            _event("z", 1, "z again"), "not a row"]
    path = write_jsonl(tmp_path / "rows.jsonl", rows)  # type: ignore[arg-type]
    options = chunks.ParseOptions(loader.copy_suffix("rows", 1), chunk_rows=2)
    if in_process:
        with chunks.ParserProcess() as parser:
            parsed = parser.chunks(parser.submit(PathSource(path), options))
            stats = loader.load_chunks(conn, parsed, source="rows", batch_id=1)
    else:
        parsed = chunks.parse_in_thread(PathSource(path).rows(), options)
        stats = loader.load_chunks(conn, parsed, source="rows", batch_id=1)
    assert {k: v["name"] for k, v in stored(database).items()} == {"x": "x new", "y": "y new", "z": "z"}
    assert (stats.inserted, stats.updated, stats.duplicates, stats.rejected) == (3, 1, 2, 1)
    assert stats.rows_read == stats.loaded + stats.duplicates + stats.rejected + stats.skipped_types == 8


def test_stored_ids_with_escaped_characters_are_updated_not_duplicated(conn: psycopg.Connection,
                                                                        database: Database) -> None:
    # Ids that COPY text must escape (a backslash, a tab) next to plain ones: a second load of newer versions
    # finds every one of them stored and updates it.
    ids = ["plain-1", "back\\slash", "tab\there", "new\nline", "plain-2"]
    first = [(n, _event(oid, 1, "v1")) for n, oid in enumerate(ids, 1)]
    loader.load_rows(conn, first, source="a", batch_id=loader.start_batch(conn, "a"))
    second = [(n, _event(oid, 2, "v2")) for n, oid in enumerate(ids + ["fresh"], 1)]
    stats = loader.load_rows(conn, second, source="b", batch_id=loader.start_batch(conn, "b"))
    assert (stats.inserted, stats.updated, stats.duplicates, stats.rejected) == (1, 5, 0, 0)
    assert {k: v["name"] for k, v in stored(database).items()} == dict.fromkeys([*ids, "fresh"], "v2")
