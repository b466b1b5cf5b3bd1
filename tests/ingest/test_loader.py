"""The loader's API, as the file ingest and the API ingest use it: one transaction per load, the caller's
state committed with the rows, rows in any key style, parsing in a thread or in a child process."""

from __future__ import annotations

import threading
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import psycopg
import pytest

from ingest import chunks, loader
from ingest.db import Database
from ingest.raw import ensure_raw_schema
from ingest.readers import BadRow, FileSource, UnreadableFile
from tests.support.export_files import REJECTS_FIXTURE, V2_FIXTURE, write_jsonl
from tests.support.ingest_runner import query, stored

API_ROW = {  # an observation as the v2 API returns it
    "id": "api0000000000001",
    "traceId": "f" * 32,
    "type": "EVENT",
    "name": "rate_limit_fallback",
    "startTime": "2026-11-24T10:00:00.000Z",
    "endTime": "2026-11-24T10:00:00.000Z",
    "updatedAt": "2026-11-24T10:00:01.000Z",
    "metadata": {"original_model": '"openai/gpt-4o-mini"'},
    "latency": 0,
    "projectId": "proj",
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
        loader.load_rows(
            conn, [(1, API_ROW)], source="api", batch_id=loader.start_batch(conn, "api"), before_commit=fail
        )
    assert stored(database) == {}
    assert query(database, "SELECT * FROM langfuse_raw.ingest_state") == []


def test_a_load_that_waits_its_turn_stamps_its_rows_after_the_load_before_commits(database: Database) -> None:
    """Loads take turns, and a load's transaction begins only when its turn comes: the load time on its rows
    (`_loaded_at`, the transaction's start) is later than the commit of the load it waited for. So a build
    that read the first load's rows cannot miss the second's by reading only rows loaded after them
    (macros/touched_traces.sql, `incremental_overlap_minutes`)."""
    ensure_raw_schema(database)
    first_writing, first_may_commit = threading.Event(), threading.Event()

    def hold(cur: psycopg.Cursor, stats: loader.LoadStats) -> None:
        first_writing.set()
        assert first_may_commit.wait(timeout=120)

    def load(connection: psycopg.Connection, oid: str, **kwargs: Any) -> None:
        batch = loader.start_batch(connection, oid)
        loader.load_rows(connection, [(1, API_ROW | {"id": oid})], source=oid, batch_id=batch, **kwargs)

    with database.connect() as first, database.connect() as second, database.connect() as watcher:
        watcher.autocommit = True
        first_load = threading.Thread(
            target=load, args=(first, "first00000000001"), kwargs={"before_commit": hold}
        )
        first_load.start()
        assert first_writing.wait(timeout=120)
        second_load = threading.Thread(target=load, args=(second, "second0000000001"))
        second_load.start()
        waiting = 0
        for _ in range(100_000):  # until the second load waits for the lock (each look is a query)
            (waiting,) = watcher.execute(
                "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND NOT granted"
                " AND database = (SELECT oid FROM pg_database WHERE datname = current_database())"
            ).fetchone() or (0,)
            if waiting or not second_load.is_alive():
                break
        assert waiting == 1
        (released_at,) = watcher.execute("SELECT clock_timestamp()").fetchone() or (None,)
        first_may_commit.set()
        first_load.join()
        second_load.join()
    loaded_at = {
        row["id"]: row["_loaded_at"]
        for row in query(database, "SELECT id, _loaded_at FROM langfuse_raw.observations")
    }
    assert loaded_at["first00000000001"] < released_at < loaded_at["second0000000001"]


def PathSource(path: Path) -> FileSource:  # noqa: N802 - reads as the class it returns
    return FileSource(path, path.name)


def _load_in_child_process(connection: psycopg.Connection, path: Path, batch: int) -> loader.LoadStats:
    with chunks.ParserProcess() as parser:
        options = chunks.ParseOptions(loader.copy_suffix(path.name, batch), False, "auto")
        parsed = parser.chunks(parser.submit(PathSource(path), options))
        return loader.load_chunks(connection, parsed, source=path.name, batch_id=batch)


@pytest.mark.parametrize("path", [V2_FIXTURE, REJECTS_FIXTURE], ids=["v2", "rejects"])
def test_child_process_parsing_stores_what_the_thread_stores(path: Path, database: Database) -> None:
    results = []
    for in_child in (False, True):
        ensure_raw_schema(database)
        with database.connect() as connection:
            batch = loader.start_batch(connection, "test")
            if in_child:
                stats = _load_in_child_process(connection, path, batch)
            else:
                stats = loader.load_source(connection, PathSource(path), source=path.name, batch_id=batch)
        rejected = query(database, "SELECT row_number, error FROM langfuse_raw.rejected_rows ORDER BY 1")
        results.append((stored(database), stats.rows_read, stats.inserted, stats.rejected, rejected))
        with database.connect(autocommit=True) as connection:
            connection.execute("DROP SCHEMA langfuse_raw CASCADE")
    assert results[0] == results[1]


def test_a_file_unreadable_in_the_child_process_loads_nothing(
    conn: psycopg.Connection, database: Database, tmp_path: Path
) -> None:
    path = tmp_path / "broken.jsonl.gz"
    path.write_bytes(b"\x1f\x8b" + b"\0" * 64)
    with pytest.raises(UnreadableFile, match="broken.jsonl.gz cannot be read"):
        _load_in_child_process(conn, path, 1)
    assert stored(database) == {}


def _event(oid: str, second: int, name: str) -> dict[str, Any]:
    return {
        "id": oid,
        "trace_id": "a" * 32,
        "type": "EVENT",
        "name": name,
        "start_time": "2026-11-24 10:00:00.000000",
        "updated_at": f"2026-11-24 10:00:{second:02d}.000000",
    }


@pytest.mark.parametrize("in_process", [False, True], ids=["thread", "child process"])
def test_versions_across_chunk_boundaries(
    in_process: bool, conn: psycopg.Connection, database: Database, tmp_path: Path
) -> None:
    rows = [
        _event("x", 1, "x old"),
        _event("y", 5, "y new"),
        _event("z", 1, "z"),
        {"id": "w", "type": "SPAN"},
        _event("x", 3, "x new"),
        _event("y", 2, "y old"),  # x updates the stored row, y loses to it
        _event("z", 1, "z again"),
        "not a row",
    ]
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


def test_stored_ids_with_escaped_characters_are_updated_not_duplicated(
    conn: psycopg.Connection, database: Database
) -> None:
    # Ids that COPY text must escape (a backslash, a tab) next to plain ones: a second load of newer versions
    # finds every one of them stored and updates it.
    ids = ["plain-1", "back\\slash", "tab\there", "new\nline", "plain-2"]
    first = [(n, _event(oid, 1, "v1")) for n, oid in enumerate(ids, 1)]
    loader.load_rows(conn, first, source="a", batch_id=loader.start_batch(conn, "a"))
    second = [(n, _event(oid, 2, "v2")) for n, oid in enumerate(ids + ["fresh"], 1)]
    stats = loader.load_rows(conn, second, source="b", batch_id=loader.start_batch(conn, "b"))
    assert (stats.inserted, stats.updated, stats.duplicates, stats.rejected) == (1, 5, 0, 0)
    assert {k: v["name"] for k, v in stored(database).items()} == dict.fromkeys([*ids, "fresh"], "v2")


def test_rows_an_earlier_file_held_go_to_the_upsert_and_still_load(
    conn: psycopg.Connection, database: Database, tmp_path: Path
) -> None:
    # Export windows overlap: the parser remembers the ids of the last rows it read and sends rows of the next
    # file with those ids apart, to the upsert. Whether such a row turns out stored or not, it loads right.
    refused = {**_event("x", 1, "x refused"), "model_parameters": "{oops"}  # JSON PostgreSQL refuses
    first = write_jsonl(tmp_path / "a.jsonl", [refused, _event("y", 1, "y old"), _event("z", 1, "z")])
    second = write_jsonl(
        tmp_path / "b.jsonl", [_event("w", 1, "w"), _event("y", 2, "y new"), _event("x", 1, "x")]
    )
    with chunks.ParserProcess() as parser:
        tickets = [
            parser.submit(PathSource(p), chunks.ParseOptions(loader.copy_suffix(p.name, 1)))
            for p in (first, second)
        ]
        a = loader.load_chunks(conn, parser.chunks(tickets[0]), source="a", batch_id=1)
        parsed = list(parser.chunks(tickets[1]))
    assert [(c.repeated, len(c.row_numbers)) for c in parsed] == [(2, 3)]
    assert parsed[0].blob[parsed[0].repeated_at :].startswith(b"x\t") and parsed[0].row_numbers == [1, 3, 2]
    b = loader.load_chunks(conn, iter(parsed), source="b", batch_id=1)
    assert (a.inserted, a.rejected) == (2, 1)
    assert (b.inserted, b.updated, b.duplicates, b.rejected) == (2, 1, 0, 0)
    assert {k: v["name"] for k, v in stored(database).items()} == {"w": "w", "x": "x", "y": "y new", "z": "z"}


def test_without_earlier_rows_nothing_is_marked_repeated(tmp_path: Path) -> None:
    recent = chunks.RecentIds()
    rows = [(1, _event("a", 1, "a")), (2, _event("b", 1, "b"))]
    options = chunks.ParseOptions("\ts\t1")
    assert [c.repeated for c in chunks.make_chunks(rows, options, recent=recent)] == [0]
    again = list(
        chunks.make_chunks([(1, _event("b", 2, "b")), (2, _event("c", 1, "c"))], options, recent=recent)
    )
    assert [(c.repeated, c.row_numbers) for c in again] == [(1, [2, 1])]  # c first, then the repeated b
