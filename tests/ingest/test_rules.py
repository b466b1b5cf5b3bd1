"""The ingest's rules: rejects never lose good rows, versions and duplicates, manifests, skip-if-loaded,
latency units, unreadable files and exit codes."""

from __future__ import annotations

import gzip
import io
import json
from pathlib import Path

from rich.console import Console

from autopicker.cli.progress import TerminalReporter
from ingest.db import Database
from ingest.sources.files import ingest_files
from tests.support.export_files import (
    REJECTS_FIXTURE,
    V2_FIXTURE,
    copy_export,
    synthetic_rows,
    v2_rows,
    write_jsonl,
)
from tests.support.ingest_runner import query, run_ingest, stored


def _event(oid: str, updated_at: str, name: str, **extra: object) -> dict[str, object]:
    return {
        "id": oid,
        "trace_id": "t" * 32,
        "type": "EVENT",
        "name": name,
        "start_time": "2026-11-24 10:00:00.000000",
        "updated_at": updated_at,
        **extra,
    }


def test_bad_rows_are_rejected_and_the_rest_loads(cli_env: Database) -> None:
    run = run_ingest(REJECTS_FIXTURE, "--json")
    assert run.exit_code == 1
    assert set(stored(cli_env)) == {"b00000000000000a", "b00000000000000b", "b00000000000000j"}
    rejected = query(
        cli_env,
        "SELECT row_number, error, raw, source_file FROM langfuse_raw.rejected_rows ORDER BY row_number",
    )
    by_line = {r["row_number"]: r for r in rejected}
    assert sorted(by_line) == [2, 3, 4, 5, 6, 7, 8, 11, 12, 13]  # line 9 is blank, not a row
    expected = {
        2: "not valid JSON",
        3: "the row has no id",
        4: "the row has no type",
        5: "the row has no start time",
        6: "latency must be a number, got 'abc'",
        7: "start_time is not a timestamp: 'yesterday'",
        8: "a row must be a JSON object",
        11: "end_time is not a timestamp",
        12: "status_message contains a NUL character",
        13: "name must be a string, got a number",
    }
    for line, text in expected.items():
        assert text in by_line[line]["error"], (line, by_line[line]["error"])
    assert by_line[2]["raw"] == "{not json"
    assert '"name": "bad_latency"' in by_line[6]["raw"]
    assert "impossible_date" in by_line[11]["raw"]
    assert {r["source_file"] for r in rejected} == {str(REJECTS_FIXTURE)}
    totals = run.summary["totals"]
    assert (totals["rows_read"], totals["inserted"], totals["rejected"]) == (13, 3, 10)
    assert "(see langfuse_raw.rejected_rows)" not in run.stdout  # JSON output only
    assert "Traceback" not in run.stderr


def test_a_row_repeated_across_files_is_stored_once(cli_env: Database, tmp_path: Path) -> None:
    rows = synthetic_rows(10)
    # Export windows overlap: the boundary rows appear in both files.
    first = write_jsonl(tmp_path / "2026-11-24T11-00-00.jsonl", rows[:6])
    second = write_jsonl(tmp_path / "2026-11-24T12-00-00.jsonl", rows[4:])
    run = run_ingest(first, second, "--json")
    assert run.exit_code == 0, run.stderr
    assert set(stored(cli_env)) == {r["id"] for r in rows}
    totals = run.summary["totals"]
    assert (totals["inserted"], totals["updated"], totals["duplicates"]) == (10, 0, 2)
    before = query(cli_env, "SELECT id, _loaded_at, _batch_id FROM langfuse_raw.observations ORDER BY id")

    again = run_ingest(first, second, "--force", "--json")  # the same files again: nothing changes
    assert again.exit_code == 0, again.stderr
    assert (again.summary["totals"]["inserted"], again.summary["totals"]["updated"]) == (0, 0)
    assert again.summary["totals"]["duplicates"] == 12
    after = query(cli_env, "SELECT id, _loaded_at, _batch_id FROM langfuse_raw.observations ORDER BY id")
    assert after == before


def test_newest_version_wins_and_older_versions_lose(cli_env: Database, tmp_path: Path) -> None:
    v1 = _event("x1", "2026-11-24 10:00:01.000000", "first")
    v2 = _event("x1", "2026-11-24 10:00:02.000000", "second")
    v0 = _event("x1", "2026-11-24 10:00:00.500000", "older")
    assert run_ingest(write_jsonl(tmp_path / "a.jsonl", [v1])).exit_code == 0
    assert run_ingest(write_jsonl(tmp_path / "b.jsonl", [v2])).exit_code == 0
    assert stored(cli_env)["x1"]["name"] == "second"
    run = run_ingest(write_jsonl(tmp_path / "c.jsonl", [v0]), "--json")
    assert run.summary["totals"]["duplicates"] == 1
    assert stored(cli_env)["x1"]["name"] == "second"
    row = query(cli_env, "SELECT _source_file FROM langfuse_raw.observations")[0]
    assert row["_source_file"].endswith("b.jsonl")


def test_within_a_file_the_greatest_updated_at_wins(cli_env: Database, tmp_path: Path) -> None:
    rows = [
        _event("y1", "2026-11-24T10:00:02Z", "newest"),  # ISO with zone and zone-less text compare as UTC
        _event("y1", "2026-11-24 10:00:01.000000", "older"),
        _event("y2", "2026-11-24 10:00:01.000000", "first of a tie"),
        _event("y2", "2026-11-24 10:00:01.000000", "second of a tie"),
    ]
    run = run_ingest(write_jsonl(tmp_path / "a.jsonl", rows), "--json")
    assert run.exit_code == 0, run.stderr
    names = {k: v["name"] for k, v in stored(cli_env).items()}
    assert names == {"y1": "newest", "y2": "first of a tie"}
    assert run.summary["totals"]["duplicates"] == 2


def test_on_a_tie_the_stored_row_stays(cli_env: Database, tmp_path: Path) -> None:
    stamp = "2026-11-24 10:00:01.000000"
    run_ingest(write_jsonl(tmp_path / "a.jsonl", [_event("z1", stamp, "stored")]))
    run_ingest(write_jsonl(tmp_path / "b.jsonl", [_event("z1", stamp, "same version, other text")]))
    assert stored(cli_env)["z1"]["name"] == "stored"


def test_already_loaded_files_are_skipped_unless_forced(cli_env: Database, tmp_path: Path) -> None:
    first = run_ingest(V2_FIXTURE, "--json")
    assert first.summary["files"][0]["status"] == "loaded"
    copy = tmp_path / "renamed-copy.jsonl"
    copy.write_bytes(V2_FIXTURE.read_bytes())  # same content under another name
    second = run_ingest(copy, "--json")
    assert second.exit_code == 0
    assert [f["status"] for f in second.summary["files"]] == ["already loaded"]
    assert second.summary["totals"]["rows_read"] == 0
    forced = run_ingest(copy, "--force", "--json")
    assert forced.summary["files"][0]["status"] == "loaded"
    assert forced.summary["totals"]["rows_read"] == 6
    assert (forced.summary["totals"]["inserted"], forced.summary["totals"]["updated"]) == (0, 0)
    files = query(cli_env, "SELECT source_file, rows_read, rows_loaded FROM langfuse_raw.loaded_files")
    assert files == [{"source_file": str(copy), "rows_read": 6, "rows_loaded": 0}]
    assert len(query(cli_env, "SELECT * FROM langfuse_raw.load_batches")) == 3


def test_latency_in_milliseconds_is_converted(cli_env: Database, tmp_path: Path) -> None:
    rows = v2_rows()
    for row in rows:  # an integration created before 2026-04-01 writes milliseconds
        row["latency"] = None if row["latency"] is None else row["latency"] * 1000
        ttft = row["time_to_first_token"]
        row["time_to_first_token"] = None if ttft is None else ttft * 1000
    path = write_jsonl(tmp_path / "ms.jsonl", rows)
    assert run_ingest(path).exit_code == 0
    g2 = stored(cli_env)["a0000000000000g2"]
    assert (g2["latency"], g2["time_to_first_token"]) == (1.6, 0.4)
    assert stored(cli_env)["a0000000000000e1"]["latency"] == 0.0

    # Told the unit, the ingest trusts it.
    assert run_ingest(path, "--force", "--latency-unit", "s").exit_code == 0
    assert stored(cli_env)["a0000000000000g2"]["latency"] == 1.6  # same version: the stored row stays
    rows[2]["updated_at"] = "2026-11-24 10:00:04.000000"
    assert run_ingest(write_jsonl(tmp_path / "s.jsonl", rows), "--latency-unit", "s").exit_code == 0
    assert stored(cli_env)["a0000000000000g2"]["latency"] == 1600.0
    bad = run_ingest(path, "--latency-unit", "minutes")
    assert bad.exit_code == 2 and "--latency-unit" in bad.stderr


def test_manifest_missing_file_and_row_count_mismatch(cli_env: Database, tmp_path: Path) -> None:
    prefix = copy_export(tmp_path / "export")
    project = prefix / "proj-demo"
    manifest_path = project / "manifests" / "2026-11-24T12-00-00.json"
    manifest = json.loads(manifest_path.read_text())
    manifest["files"][0]["rowCount"] = 7
    missing = "proj-demo/observations_v2/2026-11-24T12-00-01.jsonl.gz"
    manifest["files"].append({**manifest["files"][0], "key": missing, "rowCount": 3})
    manifest["files"].append({"key": "proj-demo/traces/2026-11-24T12-00-00.jsonl.gz", "table": "traces"})
    manifest_path.write_text(json.dumps(manifest))
    run = run_ingest(prefix, "--json")
    assert run.exit_code == 1
    errors = run.summary["errors"]
    assert any(f"lists {missing}, but that file is missing" in e for e in errors)
    assert any(
        "has 6 rows but manifest proj-demo/manifests/2026-11-24T12-00-00.json says 7" in e for e in errors
    )
    assert len(stored(cli_env)) == 5  # the file's rows are loaded, but it is checked again next time
    assert query(cli_env, "SELECT * FROM langfuse_raw.loaded_files") == []
    again = run_ingest(prefix, "--json")
    assert again.exit_code == 1
    assert again.summary["files"][0]["status"] == "loaded"
    assert any("says 7" in e for e in again.summary["errors"])


def test_files_no_manifest_lists_are_skipped_unless_named(cli_env: Database, tmp_path: Path) -> None:
    prefix = copy_export(tmp_path / "export")
    unlisted = write_jsonl(
        prefix / "proj-demo" / "observations_v2" / "2026-11-24T13-00-00.jsonl", synthetic_rows(3)
    )  # a run whose manifest is not written yet
    run = run_ingest(prefix, "--json")
    assert run.exit_code == 0, run.stderr
    assert len(run.summary["files"]) == 1
    assert any(str(unlisted) in w and "no manifest lists it" in w for w in run.summary["warnings"])
    assert "warning: skipped" in run.stderr
    named = run_ingest(unlisted, "--json")
    assert named.exit_code == 0, named.stderr
    assert named.summary["totals"]["inserted"] == 3


def test_unreadable_files_are_named_and_the_others_load(cli_env: Database, tmp_path: Path) -> None:
    write_jsonl(tmp_path / "a-good.jsonl", synthetic_rows(3))
    corrupt = tmp_path / "b-corrupt.jsonl.gz"
    text = "".join(json.dumps(r) + "\n" for r in synthetic_rows(5000, prefix="d"))
    corrupt.write_bytes(gzip.compress(text.encode())[:-2000])
    truncated = tmp_path / "c-truncated.parquet"
    truncated.write_bytes(b"PAR1" + b"\0" * 100)
    not_gzip = tmp_path / "d-not-gzip.csv.gz"
    not_gzip.write_text("plain text")
    run = run_ingest(tmp_path, "--json")
    assert run.exit_code == 1
    assert set(stored(cli_env)) == {r["id"] for r in synthetic_rows(3)}  # nothing from the broken files
    status = {Path(f["file"]).name: f["status"] for f in run.summary["files"]}
    assert status == {
        "a-good.jsonl": "loaded",
        "b-corrupt.jsonl.gz": "failed",
        "c-truncated.parquet": "failed",
        "d-not-gzip.csv.gz": "failed",
    }
    lines = [line for line in run.stderr.splitlines() if line.startswith("error: ")]
    assert len(lines) == 3
    assert "b-corrupt.jsonl.gz cannot be read" in lines[0] and "truncated" in lines[0]
    assert "c-truncated.parquet cannot be read" in lines[1]
    assert "d-not-gzip.csv.gz cannot be read" in lines[2]
    assert all(line.endswith("Nothing from it was loaded.") for line in lines)


def test_usage_errors_exit_2_before_loading_anything(cli_env: Database, tmp_path: Path) -> None:
    missing = run_ingest(V2_FIXTURE, tmp_path / "nope.jsonl")
    assert missing.exit_code == 2
    assert missing.stderr.strip() == f"error: {tmp_path / 'nope.jsonl'} does not exist."
    unknown = tmp_path / "rows.txt"
    unknown.write_text("{}")
    odd = run_ingest(unknown)
    assert odd.exit_code == 2 and "cannot tell the format" in odd.stderr
    assert query(cli_env, "SELECT to_regclass('langfuse_raw.observations') AS t")[0]["t"] is None


def test_plain_output_names_files_and_totals(cli_env: Database) -> None:
    run = run_ingest(V2_FIXTURE)
    assert run.exit_code == 0
    line = f"loaded {V2_FIXTURE}: 6 rows read, 5 loaded, 0 duplicates, 1 skipped types, 0 rejected"
    assert line in run.stderr
    assert "rows loaded: 5 (5 new, 0 updated)" in run.stdout
    assert "skipped types: 1 (SPAN 1)" in run.stdout


def test_terminal_output_has_a_progress_bar_and_a_summary_table(cli_env: Database) -> None:
    out, err = io.StringIO(), io.StringIO()
    reporter = TerminalReporter(
        Console(file=out, force_terminal=True, width=150), Console(file=err, force_terminal=True, width=150)
    )
    result = ingest_files(cli_env, [str(REJECTS_FIXTURE), str(V2_FIXTURE)], reporter=reporter)
    reporter.summary(result)
    assert result.exit_code == 1
    assert "rows/s" in err.getvalue() and "done" in err.getvalue()
    assert "error: " not in err.getvalue()  # rejected rows are counted, not errors
    table = out.getvalue()
    assert "total (2 files)" in table and "rejected" in table
    assert "13" in table and "10" in table  # rows read and rejected of the rejects fixture
