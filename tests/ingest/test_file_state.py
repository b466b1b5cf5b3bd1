"""Hostile files and honest file state: bounded lines and rejects, headers that cannot be observations,
empty files, format-aware skipping, rejects never doubled, "nothing there" apart from "nothing new", and
load runs that never stay unfinished."""

from __future__ import annotations

import gzip
import io
import os
import shutil
import subprocess
import sys
import zlib
from pathlib import Path

import pytest

from ingest import readers
from ingest.chunks import REJECTS_KEPT
from ingest.db import Database
from ingest.loader import LoadStats, finish_batch, start_batch
from ingest.raw import ensure_raw_schema
from tests.support.cli import HANG_TIMEOUT
from tests.support.export_files import synthetic_rows, write_jsonl
from tests.support.ingest_runner import query, run_ingest, stored

GOOD = b'{"id":"%s","trace_id":"t","type":"EVENT","start_time":"2026-11-24 10:00:00.000000"}\n'


def _count(database: Database, table: str) -> int:
    return int(query(database, f"SELECT count(*) AS n FROM langfuse_raw.{table}")[0]["n"])


# -- bounded lines --------------------------------------------------------------------------------------


def test_an_overlong_jsonl_line_is_one_bad_row_and_reading_goes_on(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(readers, "MAX_LINE_BYTES", 100)
    data = GOOD % b"a" + b'{"id": "' + b"x" * 5000 + b'"}\n' + GOOD % b"b"
    rows = list(readers.read_rows(io.BytesIO(gzip.compress(data, mtime=0)), "x.jsonl.gz"))
    assert [n for n, _ in rows] == [1, 2, 3]
    bad = rows[1][1]
    assert isinstance(bad, readers.BadRow)
    assert bad.error == "the line is 5,011 bytes long, over the limit of 100"
    assert bad.raw.startswith('{"id": "xxx') and len(bad.raw) <= readers._PREVIEW
    assert rows[2][1] == GOOD % b"b"


def test_an_overlong_csv_record_is_one_bad_row_and_reading_goes_on(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(readers, "MAX_LINE_BYTES", 200)
    header = '"id","trace_id","type","start_time","name"\r\n'
    good = '"{}","t","EVENT","2026-11-24 10:00:00","n"\r\n'
    text = header + good.format("a") + '"b","t","EVENT","s","' + "y" * 500 + '"\r\n' + good.format("c")
    rows = list(readers.read_rows(io.BytesIO(text.encode()), "x.csv"))
    assert rows[0][1]["id"] == "a"
    assert isinstance(rows[1][1], readers.BadRow) and "over the limit of 200" in rows[1][1].error
    assert rows[2] == (3, {**rows[0][1], "id": "c"})  # the record after the long one is read as ever


def test_an_overlong_json_array_element_fails_the_file(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(readers, "MAX_LINE_BYTES", 1000)
    data = b'[{"id": "a"}, {"id": "' + b"x" * (4 << 20) + b'"}]'
    with pytest.raises(readers.UnreadableFile, match="array element 2 is longer than the limit of 1,000"):
        list(readers.read_rows(io.BytesIO(data), "x.json"))


def _endless_line_gzip(path: Path, line_bytes: int) -> Path:
    compressor = zlib.compressobj(1, zlib.DEFLATED, 31)
    block = b"a" * (1 << 20)
    with open(path, "wb") as out:
        out.write(compressor.compress(GOOD % b"before" + b'{"id": "endless", "metadata": "'))
        for _ in range(line_bytes // len(block)):
            out.write(compressor.compress(block))
        out.write(compressor.compress(b'"}\n' + GOOD % b"after"))
        out.write(compressor.flush())
    return path


def test_a_gzip_bomb_line_is_rejected_within_bounded_memory(cli_env: Database, tmp_path: Path) -> None:
    path = _endless_line_gzip(tmp_path / "bomb.jsonl.gz", 768 << 20)
    assert path.stat().st_size < 8 << 20
    # A fresh interpreter runs the command line, so that its peak (and its parser's) is all it reports.
    probe = (
        "import resource, subprocess, sys\n"
        "code = subprocess.run(sys.argv[1:], stdout=subprocess.DEVNULL).returncode\n"
        "print(code, resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", probe, sys.executable, "-m", "autopicker", "ingest", "files", str(path)],
        env=dict(os.environ),
        capture_output=True,
        text=True,
        timeout=HANG_TIMEOUT,
    )
    code, peak_kib = map(int, done.stdout.split())
    assert code == 1, done.stderr
    assert peak_kib < 300 * 1024, f"peak {peak_kib // 1024} MiB"
    assert sorted(stored(cli_env)) == ["after", "before"]
    (rejected,) = query(
        cli_env, "SELECT row_number, error, length(raw) AS raw FROM langfuse_raw.rejected_rows"
    )
    assert rejected["row_number"] == 2 and rejected["raw"] == readers._PREVIEW
    assert "over the limit of 8,388,608" in rejected["error"]


# -- bounded rejects ------------------------------------------------------------------------------------


def test_rejects_are_capped_per_file_and_a_mostly_junk_file_fails(cli_env: Database, tmp_path: Path) -> None:
    junk = REJECTS_KEPT * 3
    path = tmp_path / "junk.jsonl.gz"
    path.write_bytes(gzip.compress(GOOD % b"good" + b"junk\n" * junk, mtime=0))
    for attempt in range(2):  # not recorded as loaded, so read again; its rejects replaced, not added
        run = run_ingest(path)
        assert run.exit_code == 1
        assert "is mostly junk: 3,000 of its 3,001 rows were rejected" in run.stderr, attempt
        assert _count(cli_env, "rejected_rows") == REJECTS_KEPT
        assert _count(cli_env, "loaded_files") == 0
        assert sorted(stored(cli_env)) == ["good"]
    first = query(
        cli_env, "SELECT min(row_number) AS a, max(row_number) AS b FROM langfuse_raw.rejected_rows"
    )
    assert first == [{"a": 2, "b": REJECTS_KEPT + 1}]  # the first ones, in full


def test_some_junk_past_the_cap_still_loads_the_file(cli_env: Database, tmp_path: Path) -> None:
    rows = synthetic_rows(3 * REJECTS_KEPT)
    path = write_jsonl(tmp_path / "mixed.jsonl", rows)
    path.write_bytes(path.read_bytes() + b"junk\n" * (REJECTS_KEPT + 5))
    run = run_ingest(path, "--json")
    assert run.exit_code == 1
    assert run.summary["totals"]["rejected"] == REJECTS_KEPT + 5
    assert _count(cli_env, "rejected_rows") == REJECTS_KEPT
    assert query(cli_env, "SELECT rows_rejected FROM langfuse_raw.loaded_files") == [
        {"rows_rejected": REJECTS_KEPT + 5}
    ]
    assert len(stored(cli_env)) == len(rows)


# -- honest file state ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("header", "missing"),
    [
        ('"id","trace_id","start_time","name"', "type"),
        ('"id","trace_id","type","start_tme"', "start_time"),
    ],
    ids=["no-type", "misspelled-start-time"],
)
def test_a_header_that_cannot_describe_observations_fails_the_file(
    header: str, missing: str, cli_env: Database, tmp_path: Path
) -> None:
    path = tmp_path / "odd.csv"
    path.write_text(header + "\n" + '"a","t","EVENT","2026-11-24 10:00:00"\n' * 3)
    good = write_jsonl(tmp_path / "good.jsonl", synthetic_rows(2))
    for _ in range(2):  # never recorded as loaded: the next run says the same
        run = run_ingest(path, good)
        assert run.exit_code == 1
        assert f"odd.csv: the header has no {missing} column" in run.stderr
        assert "Nothing from it was loaded." in run.stderr
        assert _count(cli_env, "rejected_rows") == 0
    assert len(stored(cli_env)) == 2
    assert [
        r["source_file"] for r in query(cli_env, "SELECT source_file FROM langfuse_raw.loaded_files")
    ] == [str(good)]


def test_empty_files_are_errors_whatever_their_siblings_held(cli_env: Database, tmp_path: Path) -> None:
    (tmp_path / "header-only.csv").write_text('"id","trace_id","type","start_time"\n')
    names = ["e.parquet", "e.json", "e.jsonl.gz", "e.jsonl", "e.csv"]
    for name in names:
        (tmp_path / name).write_bytes(b"")
    run = run_ingest(tmp_path)
    assert run.exit_code == 1
    for name in names:
        assert f"{tmp_path / name} is empty (0 bytes)" in run.stderr
    forced = run_ingest(tmp_path / "e.jsonl.gz", "--force")
    assert forced.exit_code == 1 and "is empty" in forced.stderr


def test_the_same_bytes_in_another_format_are_another_file(cli_env: Database, tmp_path: Path) -> None:
    first = write_jsonl(tmp_path / "a.jsonl", synthetic_rows(3))
    assert run_ingest(first).exit_code == 0
    copy = shutil.copy(first, tmp_path / "copy.jsonl")
    other = shutil.copy(first, tmp_path / "b.json")
    run = run_ingest(copy, other, "--json")
    assert run.exit_code == 0
    assert [f["status"] for f in run.summary["files"]] == ["already loaded", "loaded"]


def test_force_never_doubles_rejects(cli_env: Database, tmp_path: Path) -> None:
    path = write_jsonl(tmp_path / "two-bad.jsonl", synthetic_rows(3))
    path.write_bytes(path.read_bytes() + b"not json\n{}\n")
    assert run_ingest(path).exit_code == 1
    assert run_ingest(path, "--force").exit_code == 1
    assert run_ingest(path, "--force").exit_code == 1
    assert sorted(
        r["row_number"] for r in query(cli_env, "SELECT row_number FROM langfuse_raw.rejected_rows")
    ) == [
        4,
        5,
    ]


def test_nothing_there_is_an_error_and_nothing_new_is_not(cli_env: Database, tmp_path: Path) -> None:
    (tmp_path / "empty").mkdir()
    (tmp_path / "empty" / "notes.txt").write_text("not an export")
    run = run_ingest(tmp_path / "empty")
    assert run.exit_code == 1
    assert run.stderr.count("error:") == 1 and "No observation export files found in" in run.stderr
    (tmp_path / "full").mkdir()
    path = write_jsonl(tmp_path / "full" / "a.jsonl", synthetic_rows(2))
    assert run_ingest(path.parent).exit_code == 0
    again = run_ingest(path.parent)
    assert again.exit_code == 0 and "already loaded" in again.stderr


# -- load runs ------------------------------------------------------------------------------------------


def test_a_run_that_ended_without_finishing_is_marked_abandoned_by_the_next(database: Database) -> None:
    ensure_raw_schema(database)
    with database.connect() as killed:
        lost = start_batch(killed, "files: killed")
    with database.connect() as running:
        alive = start_batch(running, "files: still running")
        with database.connect() as later:
            latest = start_batch(later, "files: the next run")
            rows = {
                r["batch_id"]: r
                for r in query(
                    database, "SELECT batch_id, status, finished_at FROM langfuse_raw.load_batches"
                )
            }
            assert rows[lost]["status"] == "abandoned" and rows[lost]["finished_at"] is not None
            assert rows[alive]["status"] == "running" and rows[alive]["finished_at"] is None
            finish_batch(later, latest, LoadStats())
        finish_batch(running, alive, LoadStats())
    statuses = query(database, "SELECT batch_id, status FROM langfuse_raw.load_batches ORDER BY batch_id")
    assert [r["status"] for r in statuses] == ["abandoned", "finished", "finished"]
    with database.connect() as conn:  # a finished run's lock is released: nothing is held by the session
        held = conn.execute(  # of this database: a shared server holds other databases' locks too
            "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND database = "
            "(SELECT oid FROM pg_database WHERE datname = current_database())"
        ).fetchone()
        assert held == (0,)
