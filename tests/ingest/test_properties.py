"""Property tests over the normaliser and the loader's row path, on generated exports that mix valid rows with
hostile ones (a field set to a value PostgreSQL refuses, a size or number beyond the limits, a wrong type)
and junk lines (arbitrary bytes).

Whatever the mix: nothing escapes as an exception; every input line is accounted for (stored, superseded by
a newer version, skipped, or in ``rejected_rows`` under its own line number); valid rows are never rejected
and the stored row of each id is its newest version. The number of examples comes from the hypothesis
profile (tests/conftest.py): bounded in ``make test``, many more in ``make fuzz``.
"""

from __future__ import annotations

import io
import json
from typing import Any

import psycopg
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ingest import chunks, loader
from ingest.db import Database
from ingest.normalize import Normalizer, RowError
from ingest.raw import ensure_raw_schema
from ingest.readers import read_rows

pytestmark = pytest.mark.property  # make fuzz runs these with many more examples

VERSIONS = [f"2026-11-24 10:00:{s:02d}.000000" for s in range(6)]
TEXT = st.text(max_size=20)
HOSTILE_VALUES = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),
    st.integers(min_value=10**20, max_value=10**40),
    st.floats(allow_nan=False, allow_infinity=False),
    st.decimals(allow_nan=False, allow_infinity=False, places=25).map(str),
    TEXT,
    st.text(alphabet='\x00\t\n\r\\\ud800\u2603"{}', max_size=8),
    st.lists(st.integers(), max_size=3),
    st.dictionaries(TEXT, st.one_of(TEXT, st.integers(), st.floats(allow_nan=False)), max_size=3),
    st.sampled_from(
        [
            "x" * 600,
            "2026-02-30 10:00:00.000000",
            "2026-11-24 09:00:00.000000",
            "2026-11-24T10:00:00Z",
            "yesterday",
            "1e400",
            "-1",
            "{",
            "null",
            "INFO",
            "CRITICAL",
        ]
    ),
)
FIELDS = [
    "id",
    "trace_id",
    "type",
    "name",
    "level",
    "status_message",
    "start_time",
    "end_time",
    "updated_at",
    "latency",
    "time_to_first_token",
    "total_cost",
    "metadata",
    "model_parameters",
    "usage_details",
    "cost_details",
    "provided_model_name",
]


def _valid(oid: str, version: str, latency: float, cost: float, meta: str) -> dict[str, Any]:
    return {
        "id": oid,
        "trace_id": "t" + oid,
        "type": "GENERATION",
        "name": "llm_call",
        "level": "DEFAULT",
        "start_time": "2026-11-24 10:00:00.000000",
        "end_time": "2026-11-24 10:00:01.000000",
        "updated_at": version,
        "latency": latency,
        "total_cost": cost,
        "metadata": {"note": meta},
        "usage_details": {"input": 3, "output": 4},
    }


@st.composite
def valid_rows(draw: st.DrawFn) -> dict[str, Any]:
    return _valid(
        draw(st.sampled_from(["v1", "v2", "v3"])),
        draw(st.sampled_from(VERSIONS)),
        draw(st.floats(min_value=0, max_value=1e6)),
        draw(st.floats(min_value=0, max_value=1e8)),
        draw(TEXT.filter(lambda t: "\x00" not in t and not any(0xD800 <= ord(c) <= 0xDFFF for c in t))),
    )


@st.composite
def hostile_rows(draw: st.DrawFn) -> dict[str, Any]:
    row = _valid(draw(st.sampled_from(["h1", "h2"])), draw(st.sampled_from(VERSIONS)), 1.0, 0.5, "x")
    for field in draw(st.lists(st.sampled_from(FIELDS), min_size=1, max_size=3, unique=True)):
        row[field] = draw(HOSTILE_VALUES)
    return row


def _line(item: Any) -> bytes:
    kind, value = item
    if kind == "junk":
        return b"#" + value.replace(b"\n", b" ")  # never blank, never valid JSON
    return json.dumps(value).encode("utf-8", "surrogatepass")


LINES = st.lists(
    st.one_of(
        st.tuples(st.just("valid"), valid_rows()),
        st.tuples(st.just("hostile"), hostile_rows()),
        st.tuples(st.just("junk"), st.binary(max_size=40)),
    ),
    min_size=1,
    max_size=40,
)


@settings(suppress_health_check=[HealthCheck.too_slow])
@given(LINES)
def test_the_normaliser_accounts_for_every_line_and_never_raises(items: list[tuple[str, Any]]) -> None:
    lines = [_line(i) for i in items]
    rows = list(read_rows(io.BytesIO(b"\n".join(lines) + b"\n"), "export.jsonl"))
    assert [n for n, _ in rows] == list(range(1, len(lines) + 1))
    parsed = list(chunks.make_chunks(rows, chunks.ParseOptions("\ts\t1", chunk_rows=7)))
    rejected = [r.row_number for c in parsed for r in c.rejections]
    kept = [n for c in parsed for n in c.row_numbers]
    assert sum(c.rows_read for c in parsed) == len(lines)
    skipped = sum(sum(c.skipped.values()) for c in parsed)
    assert len(kept) + len(rejected) + sum(c.duplicates for c in parsed) + skipped == len(lines)
    assert len(set(kept) | set(rejected)) == len(kept) + len(rejected)
    for item, number in zip(items, range(1, len(lines) + 1), strict=True):
        if item[0] == "valid":
            assert number not in rejected
        if item[0] == "junk":
            assert number in rejected
    for c in parsed:  # every line PostgreSQL gets is UTF-8 with every column
        for text in bytes(c.blob).decode("utf-8").split("\n")[:-1]:
            assert text.count("\t") == 25 and "\x00" not in text


@given(st.dictionaries(st.sampled_from(FIELDS), HOSTILE_VALUES, max_size=6))
def test_any_row_normalises_or_is_rejected_with_a_reason(row: dict[str, Any]) -> None:
    normalizer = Normalizer(suffix="\ts\t1")
    for read, arg in (
        (normalizer.from_dict, row),
        (normalizer.from_text, json.dumps(row).encode("utf-8", "surrogatepass")),
    ):
        try:
            read(arg)
        except RowError as exc:
            assert str(exc) and "\n" not in str(exc)


@pytest.fixture
def conn(database: Database) -> Any:
    ensure_raw_schema(database)
    with database.connect() as connection:
        yield connection


@settings(suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(LINES)
def test_the_loader_stores_or_rejects_every_line(
    conn: psycopg.Connection, items: list[tuple[str, Any]]
) -> None:
    conn.execute("TRUNCATE langfuse_raw.observations, langfuse_raw.rejected_rows")
    conn.commit()
    lines = [_line(i) for i in items]
    rows = read_rows(io.BytesIO(b"\n".join(lines) + b"\n"), "export.jsonl")
    stats = loader.load_rows(conn, rows, source="export.jsonl", batch_id=1)

    stored = dict(
        conn.execute(
            "SELECT id, to_char(updated_at, 'YYYY-MM-DD HH24:MI:SS.US') FROM langfuse_raw.observations"
        )
    )
    rejected = [n for (n,) in conn.execute("SELECT row_number FROM langfuse_raw.rejected_rows")]
    assert stats.rows_read == len(lines)
    assert stats.inserted + stats.updated + stats.duplicates + stats.rejected + stats.skipped_types == len(
        lines
    )
    assert len(rejected) == len(set(rejected)) == stats.rejected
    assert len(stored) == stats.inserted
    newest: dict[str, str] = {}
    for number, (kind, value) in enumerate(items, start=1):
        if kind == "valid":
            assert number not in rejected
            newest[value["id"]] = max(newest.get(value["id"], ""), value["updated_at"])
        elif kind == "junk":
            assert number in rejected
        elif number not in rejected:  # a hostile row the rules accept is stored, or skipped for its type
            oid = value.get("id")
            assert (isinstance(oid, str) and oid in stored) or value.get("type") != "GENERATION"
    assert {k: stored[k] for k in newest} == newest
