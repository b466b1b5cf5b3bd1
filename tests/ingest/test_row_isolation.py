"""One bad row costs that row only: it goes to ``rejected_rows`` with its line and field, and every other row
of its file (and of later files) is stored; numbers keep every digit; the latency unit guess is reported.

Each test runs ``autopicker ingest files`` on a real database."""

from __future__ import annotations

import contextlib
import json
import random
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import psycopg
import pytest

from ingest.db import Database
from ingest.loader import _COPY_DIRECT, _copy_rows
from ingest.normalize import ID_MAX_BYTES
from ingest.raw import ensure_raw_schema
from tests.support.ingest_runner import query, run_ingest, stored


def _row(oid: str, **extra: Any) -> dict[str, Any]:
    return {
        "id": oid,
        "trace_id": "t" + oid[:40],
        "type": "GENERATION",
        "name": "llm_call",
        "level": "DEFAULT",
        "start_time": "2026-11-24 10:00:00.000000",
        "end_time": "2026-11-24 10:00:01.000000",
        "updated_at": "2026-11-24 10:00:02.000000",
        "latency": 1.0,
        "total_cost": 0.001,
        "metadata": {"attempt": "1"},
        **extra,
    }


def _write(folder: Path, name: str, lines: list[str]) -> Path:
    path = folder / name
    path.write_text("".join(line + "\n" for line in lines), encoding="utf-8")
    return path


def _rejected(database: Database) -> dict[int, str]:
    rows = query(database, "SELECT row_number, error FROM langfuse_raw.rejected_rows ORDER BY row_number")
    return {r["row_number"]: r["error"] for r in rows}


def test_a_nul_in_one_rows_metadata_rejects_that_row_only(cli_env: Database, tmp_path: Path) -> None:
    # The JSON value's own "line 1" in PostgreSQL's error once blamed the first row still to retry.
    lines = [json.dumps(_row(i)) for i in ("a1", "a2")]
    lines.append(json.dumps(_row("b", metadata={"x": "x\u0000y"})))
    lines.append(json.dumps(_row("c1")))
    run = run_ingest(_write(tmp_path, "nul.jsonl", lines))
    assert run.exit_code == 1
    assert set(stored(cli_env)) == {"a1", "a2", "c1"}
    assert _rejected(cli_env) == {
        3: "metadata contains a NUL character (\\u0000), which PostgreSQL cannot store"
    }


def test_a_line_that_is_not_json_is_named_by_its_file_and_line(cli_env: Database, tmp_path: Path) -> None:
    # The decoder's own position ("line 1 column 1", "line 2" for a cut-short row) once stood for the line.
    good = json.dumps(_row("a1"))
    mixed = tmp_path / "mixed.jsonl"
    mixed.write_text(f"{good}\nthis is {{not json\n\n{json.dumps(_row('c1'))[:-20]}", encoding="utf-8")
    one = tmp_path / "one.jsonl"
    one.write_text(json.dumps(_row("d1"))[:-20] + "\n", encoding="utf-8")
    run = run_ingest(mixed, one)
    assert run.exit_code == 1
    assert set(stored(cli_env)) == {"a1"}
    rows = query(
        cli_env, "SELECT source_file, row_number, error FROM langfuse_raw.rejected_rows ORDER BY 1, 2"
    )
    truncated = "not valid JSON: the line ends inside its JSON value (truncated)"
    assert [(r["source_file"], r["row_number"], r["error"]) for r in rows] == [
        (str(mixed), 2, "not valid JSON: invalid character at byte 5 of the line"),
        (str(mixed), 4, truncated),
        (str(one), 1, truncated),
    ]
    assert (
        f"rejected {mixed} line 2: not valid JSON: invalid character at byte 5 of the line "
        "(1 more rejected row in langfuse_raw.rejected_rows)\n"
    ) in run.stderr
    assert f"rejected {one} line 1: {truncated}\n" in run.stderr


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("name", "a\x00b"),
        ("status_message", "\x00"),
        ("model_parameters", {"stop": "\x00"}),
        ("usage_details", {"in\x00put": 1}),
        ("cost_details", {"total": "\x00"}),
    ],
)
def test_a_nul_in_any_field_is_named(cli_env: Database, tmp_path: Path, field: str, value: Any) -> None:
    lines = [json.dumps(_row("a1")), json.dumps(_row("b", **{field: value})), json.dumps(_row("c1"))]
    run_ingest(_write(tmp_path, "nul.jsonl", lines))
    assert set(stored(cli_env)) == {"a1", "c1"}
    assert _rejected(cli_env) == {
        2: f"{field} contains a NUL character (\\u0000), which PostgreSQL cannot store"
    }


def test_an_id_beyond_the_limit_is_rejected_and_later_files_load(cli_env: Database, tmp_path: Path) -> None:
    # Random text does not compress: 10,000 characters once exceeded the key index's row size and aborted the
    # run as a "lost connection", storing nothing from this or any later file.
    long_id = "".join(random.Random(7).choices("0123456789abcdef", k=10_000))
    first = _write(
        tmp_path, "a.jsonl", [json.dumps(_row("a1")), json.dumps(_row(long_id)), json.dumps(_row("c1"))]
    )
    second = _write(tmp_path, "b.jsonl", [json.dumps(_row("d1"))])
    run = run_ingest(first, second)
    assert run.exit_code == 1
    assert "Lost the database connection" not in run.stderr
    assert set(stored(cli_env)) == {"a1", "c1", "d1"}
    assert _rejected(cli_env) == {2: f"id is 10,000 bytes long; at most {ID_MAX_BYTES} are stored"}


def test_an_id_at_the_limit_is_stored(cli_env: Database, tmp_path: Path) -> None:
    at_limit = "".join(random.Random(8).choices("0123456789abcdef", k=ID_MAX_BYTES))
    run = run_ingest(_write(tmp_path, "a.jsonl", [json.dumps(_row(at_limit))]))
    assert run.exit_code == 0, run.stderr
    assert set(stored(cli_env)) == {at_limit}


@pytest.mark.parametrize(
    ("change", "reason"),
    [
        (
            {"total_cost": 2e10},
            "total_cost 20000000000.0 USD is outside the stored range 0 to 1,000,000,000 USD",
        ),
        ({"total_cost": -1e308}, "total_cost -1e+308 USD is outside the stored range 0 to 1,000,000,000 USD"),
        ({"latency": -5.0, "end_time": None}, "latency -5.0 seconds is outside the stored range"),
        ({"time_to_first_token": 1e8}, "time_to_first_token 100000000.0 seconds is outside the stored range"),
        (
            {"end_time": "2026-11-24 09:00:00.000000"},
            "end_time 2026-11-24 09:00:00.000000 is before start_time 2026-11-24 10:00:00.000000",
        ),
        (
            {"start_time": "2026-11-24T10:00:00-01:00", "end_time": "2026-11-24T10:30:00Z"},
            "end_time 2026-11-24T10:30:00Z is before start_time 2026-11-24T10:00:00-01:00",
        ),
    ],
)
def test_values_outside_the_limits_are_rejected_with_the_field(
    cli_env: Database, tmp_path: Path, change: dict[str, Any], reason: str
) -> None:
    run = run_ingest(_write(tmp_path, "a.jsonl", [json.dumps(_row("a1")), json.dumps(_row("b", **change))]))
    assert run.exit_code == 1
    assert set(stored(cli_env)) == {"a1"}
    rejected = _rejected(cli_env)
    assert list(rejected) == [2]
    assert rejected[2].startswith(reason), rejected[2]


def test_an_unknown_level_is_stored_as_it_is(cli_env: Database, tmp_path: Path) -> None:
    lines = [json.dumps(_row("a1", level="INFO")), json.dumps(_row("a2", level="CRITICAL"))]
    run = run_ingest(_write(tmp_path, "a.jsonl", lines))
    assert run.exit_code == 0, run.stderr
    assert {k: v["level"] for k, v in stored(cli_env).items()} == {"a1": "INFO", "a2": "CRITICAL"}


def test_numbers_keep_every_digit(cli_env: Database, tmp_path: Path) -> None:
    lines = [
        # the fast way (an export line in the common shape) and the general way (a metadata number)
        '{"id":"a1","trace_id":"t","type":"GENERATION","start_time":"2026-11-24 10:00:00.000000",'
        '"total_cost":0.12345678901234567890123,"metadata":{"n":"12345678901234567890123"},'
        '"cost_details":{"total":0.12345678901234567890123}}',
        '{"id":"a2","trace_id":"t","type":"GENERATION","start_time":"2026-11-24 10:00:00.000000",'
        '"total_cost":0.12345678901234567890123,"metadata":{"n":12345678901234567890123,"f":1.000000000000000000001},'
        '"usage_details":{"input":123456789012345678901234567890}}',
    ]
    run = run_ingest(_write(tmp_path, "a.jsonl", lines))
    assert run.exit_code == 0, run.stderr
    rows = query(
        cli_env,
        "SELECT id, total_cost, metadata->>'n' AS n, metadata->>'f' AS f, cost_details->>'total' AS cost,"
        " usage_details->>'input' AS tokens FROM langfuse_raw.observations ORDER BY id",
    )
    exact = Decimal("0.12345678901234567890123")
    assert [(r["id"], r["total_cost"], r["n"]) for r in rows] == [
        ("a1", exact, "12345678901234567890123"),
        ("a2", exact, "12345678901234567890123"),
    ]
    assert rows[0]["cost"] == str(exact)
    assert rows[1]["f"] == "1.000000000000000000001"
    assert rows[1]["tokens"] == "123456789012345678901234567890"


def test_the_summary_says_how_many_latencies_were_read_as_milliseconds(
    cli_env: Database, tmp_path: Path
) -> None:
    lines = [json.dumps(_row("a1", latency=1000.0)), json.dumps(_row("a2", latency=1.0))]
    run = run_ingest(_write(tmp_path, "a.jsonl", lines), "--json")
    assert run.exit_code == 0, run.stderr
    assert run.summary["totals"]["latency_ms_rows"] == 1
    plain = run_ingest(_write(tmp_path, "b.jsonl", [json.dumps(_row("b1", latency=2000.0))]))
    assert "latency read as milliseconds: 1 rows" in plain.stdout


def test_refused_rows_are_found_without_retrying_every_row(database: Database) -> None:
    # Rows the normaliser cannot know PostgreSQL refuses (here: invalid JSON text kept as written) are found
    # by COPYs whose total size grows as n log n, not n * k.
    tail = b"\t2026-11-24 10:00:00\t\t\t\t2026-11-24 10:00:00\t\t\t{}\t\t\ts\t1"
    good = b"g%06d\tt\t\t\tEVENT\t\t\t\t\t\t\t\t\t" + tail
    bad = b"b%06d\tt\t\t\tEVENT\t\t\t\t\t\t{oops\t\t\t" + tail
    n = 2000
    lines = [(bad if i % 50 == 7 else good) % i for i in range(n)]
    sent: list[int] = []

    class Counting:
        def __init__(self, copy: psycopg.Copy) -> None:
            self._copy = copy

        def write(self, data: Any) -> None:
            sent.append(bytes(data).count(b"\n"))
            self._copy.write(data)

    class CountingCursor(psycopg.Cursor):
        @contextlib.contextmanager
        def copy(self, statement: Any, *args: Any, **kwargs: Any) -> Iterator[Any]:  # type: ignore[override]
            with super().copy(statement, *args, **kwargs) as copy:
                yield Counting(copy)

    ensure_raw_schema(database)
    with psycopg.connect(database.url, cursor_factory=CountingCursor) as conn, conn.cursor() as cur:
        refused = _copy_rows(cur, _COPY_DIRECT, lines, list(range(1, n + 1)))
        stored_count = cur.execute("SELECT count(*) FROM langfuse_raw.observations").fetchone()
    assert sorted(r.row_number for r in refused) == [i + 1 for i in range(n) if i % 50 == 7]
    assert all("column model_parameters" in r.error for r in refused)
    assert stored_count == (n - len(refused),)
    # One re-copy of the rest per refused row would send ~20 n lines here; halving sends far fewer.
    assert sum(sent) <= 8 * n, sum(sent)
