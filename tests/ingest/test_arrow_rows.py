"""The column-wise way for Parquet (ingest.arrow_rows) against the row path, on arbitrary Parquet files.

Whatever the file holds (values to reject, NUL characters, numbers beyond every limit, long ids, odd levels,
metadata in every encoding, latencies in either unit), loading it the column-wise way must store exactly the
rows, and reject exactly the rows with the same messages and raw text, that the row path does; and the chunks
whose text is made in Arrow must be, byte for byte, the chunks made row by row.
"""

from __future__ import annotations

import re
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import psycopg
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ingest import arrow_rows, chunks, loader
from ingest.db import Database
from ingest.normalize import COPY_COLUMNS
from ingest.raw import ensure_raw_schema
from ingest.readers import FileFormat, FileSource

pytestmark = pytest.mark.property  # make fuzz runs these with many more examples

TEXT_CHARS = st.characters(blacklist_categories=("Cs",))
ODD_TEXT = st.text(alphabet='\x00\t\n\r\\"{}[]é-0aZ ', max_size=6)
TEXT = st.one_of(st.none(), st.text(TEXT_CHARS, max_size=8), ODD_TEXT)
IDS = st.one_of(
    st.sampled_from(["o1", "o2", "o3", "ö4", "o\\5"]),
    st.sampled_from(["", "x" * 513, "é" * 200, "y" * 512, "a\x00b", "t\tab"]),
    st.none(),
    TEXT,
)
BASE = datetime(2026, 11, 24, 10, 0, 0)
MOMENTS = st.one_of(
    st.none(),
    st.integers(0, 5).map(lambda s: BASE + timedelta(seconds=s)),
    st.integers(-(10**6), 10**7).map(lambda us: BASE + timedelta(microseconds=us)),
    st.datetimes(min_value=datetime(1, 1, 1), max_value=datetime(9999, 12, 31, 23, 59, 59, 999999)),
)
FLOATS = st.one_of(
    st.none(),
    st.floats(),
    st.sampled_from([0.0, -0.0, 1.0, 2.5, 1500.0, 1e7, 1e9, 9.99e8, 1e16, 1e-5, 0.1 + 0.2, 1234.5678]),
    st.floats(min_value=0, max_value=20, allow_nan=False).map(lambda f: round(f, 3)),
)
META_VALUES = st.one_of(
    st.none(),
    st.sampled_from(
        [
            '"openai/gpt-4o-mini"',
            '"a\\"b\\\\c\\/d"',
            '"\\u0000"',
            '"\\ud800"',
            '"\\u00e9"',
            "150000",
            "00123",
            "-0",
            "-0.0",
            "0",
            "-5",
            "1.0",
            "1.50",
            "1e5",
            "9.78e-05",
            "1E+400",
            "12345678901234567890123",
            "true",
            "false",
            "null",
            '["prod","agent"]',
            '["a",1,-0,2.50,1e3]',
            '{"a":1,"a":2}',
            '{"a":{"b":1}}',
            "[ 1 ]",
            "[1,",
            '"unterminated',
            "{",
            "plain text",
            "",
            "12abc",
            "1١",
            "-",
            "2026-11-24",
            "tab\there",
            'quote"back\\slash',
        ]
    ),
    st.text(TEXT_CHARS, max_size=6),
)
KEYS = st.one_of(
    st.sampled_from(["k", "cost_usd", "model", 'q"k', "b\\k", "é"]), st.text(TEXT_CHARS, max_size=4)
)
PARAMETERS = st.one_of(
    st.none(),
    st.sampled_from(['{"t":1}', "", '{"a":"b\\\\c"}', "[1]", "null", "{bad", '{"x":\n1}', '{"x":"\t"}', "x"]),
)

SCHEMA = pa.schema(
    [
        ("id", pa.string()),
        ("trace_id", pa.string()),
        ("project_id", pa.string()),
        ("parent_observation_id", pa.string()),
        ("type", pa.string()),
        ("name", pa.string()),
        ("level", pa.string()),
        ("status_message", pa.string()),
        ("environment", pa.string()),
        ("provided_model_name", pa.string()),
        ("model_parameters", pa.string()),
        ("usage_details", pa.map_(pa.string(), pa.uint64())),
        ("cost_details", pa.map_(pa.string(), pa.float64())),
        ("total_cost", pa.float64()),
        ("start_time", pa.timestamp("us")),
        ("end_time", pa.timestamp("us")),
        ("completion_start_time", pa.timestamp("us")),
        ("created_at", pa.timestamp("us")),
        ("updated_at", pa.timestamp("us")),
        ("latency", pa.float64()),
        ("time_to_first_token", pa.float64()),
        ("metadata", pa.map_(pa.string(), pa.string())),
        ("input", pa.string()),
    ]
)


@st.composite
def parquet_rows(draw: st.DrawFn) -> dict[str, Any]:
    valid = draw(st.booleans())  # half the rows valid but for what the draws below change
    start = BASE + timedelta(seconds=draw(st.integers(0, 60)))
    end = start + timedelta(milliseconds=draw(st.integers(0, 5000)))
    row: dict[str, Any] = {
        "id": draw(st.sampled_from(["o1", "o2", "o3", "o4"])) if valid else draw(IDS),
        "trace_id": "t1" if valid else draw(IDS),
        "project_id": draw(st.sampled_from(["p", None, ""])) if valid else draw(IDS),
        "parent_observation_id": draw(st.sampled_from(["", None, "root"])) if valid else draw(IDS),
        "type": draw(st.sampled_from(["EVENT", "GENERATION", "SPAN"]))
        if valid
        else draw(st.sampled_from(["EVENT", "GENERATION", "SPAN", "event", "Generation", "AGENT", "", None])),
        "name": draw(TEXT),
        "level": draw(st.one_of(st.sampled_from(["DEFAULT", "ERROR", "CRITICAL", "warning"]), TEXT)),
        "status_message": draw(TEXT),
        "environment": draw(st.sampled_from(["production", None, ""])) if valid else draw(TEXT),
        "provided_model_name": draw(st.one_of(st.sampled_from(["openai/gpt-4o", "", None]), TEXT)),
        "model_parameters": draw(PARAMETERS),
        "usage_details": draw(
            st.one_of(
                st.none(),
                st.lists(st.tuples(KEYS, st.one_of(st.none(), st.integers(0, 2**64 - 1))), max_size=3),
            )
        ),
        "cost_details": draw(st.one_of(st.none(), st.lists(st.tuples(KEYS, FLOATS), max_size=3))),
        "total_cost": draw(FLOATS),
        "start_time": start if valid else draw(MOMENTS),
        "end_time": end if valid else draw(MOMENTS),
        "completion_start_time": draw(MOMENTS),
        "created_at": draw(MOMENTS),
        "updated_at": BASE + timedelta(seconds=draw(st.integers(0, 3))) if valid else draw(MOMENTS),
        # a latency in seconds, in milliseconds, or anything
        "latency": draw(
            st.one_of(
                st.just((end - start).total_seconds()),
                st.just((end - start).total_seconds() * 1000),
                FLOATS,
            )
        ),
        "time_to_first_token": draw(FLOATS),
        "metadata": draw(st.one_of(st.none(), st.lists(st.tuples(KEYS, META_VALUES), max_size=4))),
        "input": draw(st.sampled_from([None, "a prompt"])),
    }
    return row


@st.composite
def export_rows(draw: st.DrawFn, number: int) -> dict[str, Any]:
    """A row as an export holds it, which the column-wise way makes whole: id ``o{number}``, text that
    COPY must escape or that is not ASCII now and then, and every other value within the rules."""
    start = BASE + timedelta(milliseconds=draw(st.integers(0, 10**6)))
    end = start + timedelta(milliseconds=draw(st.integers(0, 10**5)))
    return {
        "id": f"o{number}",
        "trace_id": draw(st.sampled_from(["t1", "t2", "t\\3"])),
        "project_id": "p",
        "parent_observation_id": draw(st.sampled_from(["", None, "root"])),
        "type": draw(st.sampled_from(["GENERATION", "EVENT", "SPAN"])),
        "name": draw(st.sampled_from(["llm_call", "fallback", "naïve\tname", None])),
        "level": draw(st.sampled_from(["DEFAULT", "ERROR", "WARNING"])),
        "status_message": draw(st.sampled_from([None, "", "rate limited\nretry", "東京"])),
        "environment": "production",
        "provided_model_name": draw(st.sampled_from(["openai/gpt-4o-mini", None, ""])),
        "model_parameters": draw(st.sampled_from([None, '{"temperature":0.2}'])),
        "usage_details": draw(st.sampled_from([None, [("input", 10), ("output", 3)]])),
        "cost_details": draw(st.sampled_from([None, [("total", 0.5), ("input", 1.0)]])),
        "total_cost": draw(st.sampled_from([None, 0.0, 1.5, 0.00019005])),
        "start_time": start,
        "end_time": end,
        "completion_start_time": draw(st.sampled_from([None, start])),
        "created_at": start,
        "updated_at": end,
        "latency": (end - start).total_seconds(),
        "time_to_first_token": draw(st.sampled_from([None, 0.1])),
        "metadata": draw(
            st.sampled_from(
                [
                    None,
                    [("original_model", '"openai/gpt-4o"'), ("estimated_tokens", "150000")],
                    [("k", "é\\x")],
                ]
            )
        ),
        "input": "a prompt",
    }


def _write(path: Path, rows: list[dict[str, Any]]) -> Path:
    arrays = [pa.array([r[f.name] for r in rows], f.type) for f in SCHEMA]
    pq.write_table(pa.Table.from_arrays(arrays, schema=SCHEMA), path, row_group_size=5)
    return path


def _load(conn: psycopg.Connection, path: Path, unit: str) -> tuple[Any, ...]:
    conn.execute("TRUNCATE langfuse_raw.observations, langfuse_raw.rejected_rows")
    conn.commit()
    source = FileSource(path, "x.parquet", FileFormat("parquet"), with_io=False)
    stats = loader.load_source(conn, source, source="x.parquet", batch_id=1, latency_unit=unit)
    columns = ", ".join(f"{c}::text" for c in COPY_COLUMNS)
    stored = conn.execute(f"SELECT {columns} FROM langfuse_raw.observations ORDER BY id").fetchall()
    rejected = conn.execute(
        "SELECT row_number, error, raw FROM langfuse_raw.rejected_rows ORDER BY row_number"
    ).fetchall()
    counts = (stats.rows_read, stats.inserted, stats.updated, stats.duplicates, stats.rejected)
    return stored, rejected, counts, dict(stats.skipped), stats.latency_ms


@pytest.fixture
def conn(database: Database) -> Any:
    ensure_raw_schema(database)
    with database.connect() as connection:
        yield connection


def test_an_export_shaped_file_takes_the_column_wise_way() -> None:
    columns = [f for f in SCHEMA if f.name != "input"]
    assert arrow_rows.vectorisable(pa.schema(columns), with_io=False)
    assert not arrow_rows.vectorisable(pa.schema(columns), with_io=True)
    assert not arrow_rows.vectorisable(pa.schema([*columns, ("traceId", pa.string())]), with_io=False)
    assert not arrow_rows.vectorisable(pa.schema([("metadata", pa.string())]), with_io=False)


@given(
    st.lists(st.one_of(st.none(), ODD_TEXT), max_size=12), st.integers(0, 12), st.integers(0, 12), st.data()
)
def test_a_batch_takes_the_escaping_way_only_for_its_own_values(
    texts: list[str | None], start: int, stop: int, data: st.DataObject
) -> None:
    """Only the values of an array (a slice's, or a taken array's, whose buffers are padded) decide whether
    its text needs COPY's escaping or a NUL check; the bytes around them in the buffer do not."""
    whole = pa.array(texts, pa.string())
    picked = whole.slice(start, max(stop - start, 0))
    if texts:
        indices = data.draw(st.lists(st.integers(0, len(texts) - 1), max_size=8))
        picked = data.draw(st.sampled_from([picked, whole.take(pa.array(indices, pa.int64()))]))
    held = [value for value in picked.to_pylist() if value is not None]
    assert arrow_rows._has_special(picked) == any(c in value for value in held for c in "\x00\\\t\n\r")


@given(st.lists(st.lists(st.one_of(st.none(), st.text("ab{} ", max_size=4)), max_size=6), max_size=4))
def test_model_parameters_match_as_the_pattern_says_batch_after_batch(
    batches: list[list[str | None]],
) -> None:
    """Each batch's texts match the pattern as RE2 says, whether tried before (remembered) or not."""
    for pattern in (r"^\{ *\}$", r"^a+$"):
        for texts in batches:
            matched = arrow_rows._matches(pa.array(texts, pa.string()), pattern).to_pylist()
            assert matched == [text is not None and re.search(pattern, text) is not None for text in texts]


@settings(suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow], deadline=None)
@given(
    st.lists(parquet_rows(), min_size=1, max_size=30),
    st.sampled_from(["auto", "auto", "s", "ms"]),
    st.sampled_from([3, 8, 1000]),
)
def test_the_column_wise_way_stores_and_rejects_as_the_row_path(
    conn: psycopg.Connection,
    tmp_path_factory: pytest.TempPathFactory,
    monkeypatch: pytest.MonkeyPatch,
    rows: list[dict[str, Any]],
    unit: str,
    batch_rows: int,
) -> None:
    path = _write(tmp_path_factory.mktemp("arrow") / "x.parquet", rows)
    with monkeypatch.context() as patch:
        patch.setattr(arrow_rows, "BATCH_ROWS", batch_rows)
        column_wise = _load(conn, path, unit)
    with monkeypatch.context() as patch:
        patch.setattr(arrow_rows, "vectorisable", lambda *args: False)
        row_path = _load(conn, path, unit)
    assert column_wise == row_path


@settings(suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow], deadline=None)
@given(
    st.lists(parquet_rows(), min_size=1, max_size=30),
    st.booleans(),
    st.data(),
    st.sampled_from([3, 8, 1000]),
    st.sampled_from([2, 7, 20_000]),
)
def test_a_chunk_made_in_arrow_is_the_chunk_made_row_by_row(
    tmp_path_factory: pytest.TempPathFactory,
    monkeypatch: pytest.MonkeyPatch,
    rows: list[dict[str, Any]],
    distinct: bool,
    data: st.DataObject,
    batch_rows: int,
    chunk_rows: int,
) -> None:
    if distinct:  # as in an export: every id once, in no order, and most rows made in Arrow whole
        order = data.draw(st.permutations(range(len(rows))))
        plain = data.draw(st.lists(st.booleans(), min_size=len(rows), max_size=len(rows)))
        rows = [
            data.draw(export_rows(order[i])) if plain[i] or i % 4 else {**row, "id": f"o{order[i]}"}
            for i, row in enumerate(rows)
        ]
    earlier = data.draw(st.sets(st.sampled_from([f"o{i}" for i in range(30)] + ["ö4", "o\\5"])))
    path = _write(tmp_path_factory.mktemp("arrow") / "x.parquet", rows)
    options = chunks.ParseOptions(suffix="\tx.parquet\t1", chunk_rows=chunk_rows)

    def made() -> list[tuple[Any, ...]]:
        recent = chunks.RecentIds()
        recent.add(dict.fromkeys(earlier, 0))  # ids a file before this one ended with
        source = FileSource(path, "x.parquet", FileFormat("parquet"), with_io=False)
        return [
            (
                bytes(c.blob),
                c.row_numbers,
                c.repeated,
                c.repeated_at,
                c.rows_read,
                c.duplicates,
                dict(c.skipped),
                c.latency_ms,
                [(r.row_number, r.error, r.raw) for r in c.rejections],
            )
            for c in chunks.make_chunks(source.rows(), options, None, recent)
        ]

    with monkeypatch.context() as patch:
        patch.setattr(arrow_rows, "BATCH_ROWS", batch_rows)
        in_arrow = made()
        patch.setattr(chunks, "_arrow_text", lambda *args: None)  # every chunk's rows added one by one
        row_by_row = made()
    assert in_arrow == row_by_row
