"""Rows of a type that is not loaded (spans, agents, tools...) are told apart before they are read: by the
bytes of a JSONL line's head, by the type field of a CSV record, by the type column of a Parquet file. What
is skipped so must be exactly what the normaliser would skip, and a loaded row is never taken for one."""

from __future__ import annotations

import json
import string
from collections import Counter
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from hypothesis import given
from hypothesis import strategies as st

from ingest.chunks import ParseOptions, make_chunks
from ingest.normalize import Normalizer, skipped_type
from ingest.readers import SkippedRow, read_rows
from tests.support.export_files import write_csv, write_parquet

ROW = {
    "id": "obs-1",
    "trace_id": "trace-1",
    "start_time": "2026-11-24 10:15:02.120000",
    "end_time": "2026-11-24 10:15:03.900000",
    "project_id": "proj",
    "parent_observation_id": "",
    "type": "GENERATION",
    "name": "llm_call",
    "level": "DEFAULT",
    "input": '[{"role": "user", "content": "caf\u00e9"}]',
    "output": None,
    "metadata": {"attempt": "1"},
}
TYPES = st.one_of(
    st.sampled_from(["EVENT", "GENERATION", "event", "Generation", "SPAN", "span", "AGENT", "TOOL", "", "_"]),
    st.text(max_size=12),
    st.none(),
    st.integers(),
)
KEYS = st.text(string.ascii_letters + '_"\\{[ ,:', min_size=1, max_size=8)
VALUES = st.recursive(
    st.one_of(st.none(), st.booleans(), st.integers(), st.text(max_size=12)),
    lambda inner: st.one_of(
        st.lists(inner, max_size=3), st.dictionaries(st.sampled_from(["type", "x"]), inner, max_size=2)
    ),
    max_leaves=6,
)


def _decided(row: dict[str, Any]) -> tuple[Any, Counter[str]]:
    normalizer = Normalizer(suffix="\tf\t1")
    try:
        outcome: Any = normalizer.from_dict(row)
    except Exception as exc:  # a rejection: its reason
        outcome = str(exc)
    return outcome, normalizer.skipped


@given(
    typ=TYPES,
    before=st.dictionaries(KEYS, VALUES, max_size=3),
    after=st.dictionaries(KEYS, VALUES, max_size=3),
    spaced=st.booleans(),
)
def test_a_line_skipped_by_its_head_is_one_the_normaliser_skips(
    typ: Any, before: dict[str, Any], after: dict[str, Any], spaced: bool
) -> None:
    # Keys in any order, nested objects with "type" keys of their own before the row's, keys that hold
    # quotes and braces: the head never mistakes another key for the row's type.
    before.pop("type", None)
    after.pop("type", None)
    row = {**before, "type": typ, **{k: v for k, v in after.items() if k not in before}}
    text = (json.dumps(row) if spaced else json.dumps(row, separators=(",", ":"))).encode()
    told = skipped_type(text)
    if told is not None:
        assert _decided(row) == (None, Counter({told: 1}))
        normalizer = Normalizer(suffix="\tf\t1")
        assert normalizer.from_text(text) is None
        assert normalizer.skipped == {told: 1}


def test_langfuse_lines_are_told_by_their_head() -> None:
    for typ, told in (("SPAN", "SPAN"), ("agent", "AGENT"), ("EVENT", None), ("generation", None)):
        text = json.dumps({**ROW, "type": typ}).encode()
        assert skipped_type(text) == told
        assert skipped_type(json.dumps({**ROW, "type": typ}, separators=(",", ":")).encode()) == told
    # A "type" key nested in an object before the row's own is not the row's type: the line is decoded.
    nested = {"metadata": {"type": "SPAN"}, **ROW}
    assert skipped_type(json.dumps(nested).encode()) is None
    assert Normalizer(suffix="\tf\t1").from_text(json.dumps(nested).encode()) is not None
    # A key that ends in an escaped quote and "type" is not the type key either.
    tricky = b'{"x\\"type": "SPAN", ' + json.dumps(ROW).encode()[1:]
    assert skipped_type(tricky) is None


def test_a_skipped_line_is_not_read_past_its_type() -> None:
    # The rest of a span line is not decoded: its input and output are never parsed, so what they hold does
    # not matter; the line counts as a skipped SPAN.
    text = json.dumps({**ROW, "type": "SPAN"}).encode().replace(b'"output": null', b'"output": \xff{')
    rows = [(1, text), (2, json.dumps(ROW).encode())]
    (chunk,) = make_chunks(rows, ParseOptions("\tf\t1"))
    assert (chunk.rows_read, chunk.skipped, chunk.rejections) == (2, Counter({"SPAN": 1}), [])


@pytest.mark.parametrize("fmt", ["csv", "parquet"])
def test_csv_and_parquet_rows_of_skipped_types_are_not_made_into_rows(fmt: str, tmp_path: Any) -> None:
    rows = [
        {**ROW, "id": "a", "type": "SPAN"},
        {**ROW, "id": "b"},
        {**ROW, "id": "c", "type": "tool"},
        {**ROW, "id": "d", "type": "event"},
    ]
    for row in rows:
        row.update(end_time=None, completion_start_time=None, created_at=None, updated_at=None)
        row.update(status_message=None, environment=None, provided_model_name=None, model_parameters=None)
        row.update(usage_details={}, cost_details={}, total_cost=None, latency=None, time_to_first_token=None)
    path = (write_csv if fmt == "csv" else write_parquet)(tmp_path / f"rows.{fmt}", rows)
    with open(path, "rb") as handle:
        read = list(read_rows(handle, path.name, with_io=False))
    if fmt == "csv":
        assert [n for n, _ in read] == [1, 2, 3, 4]
        assert read[0][1] == SkippedRow("SPAN") and read[2][1] == SkippedRow("TOOL")
        assert [r["id"] for _, r in (read[1], read[3])] == ["b", "d"]
    else:  # one record batch without the skipped rows, for the column-wise way (ingest.arrow_rows)
        ((_, batch),) = read
        assert (batch.rows_read, batch.numbers, batch.skipped) == (4, [2, 4], Counter({"SPAN": 1, "TOOL": 1}))
        assert batch.batch.column("id").to_pylist() == ["b", "d"]
        assert "input" not in batch.batch.schema.names  # not read at all without --with-io
    (chunk,) = make_chunks(read, ParseOptions("\tf\t1"))
    assert (chunk.rows_read, chunk.skipped, len(chunk.row_numbers)) == (4, Counter({"SPAN": 1, "TOOL": 1}), 2)


def test_a_parquet_file_keeps_its_input_with_io(tmp_path: Any) -> None:
    row = dict(ROW, usage_details={}, cost_details={}, **{k: None for k in _MISSING})
    path = write_parquet(tmp_path / "rows.parquet", [row])
    with open(path, "rb") as handle:
        ((_, row),) = list(read_rows(handle, path.name, with_io=True))
    assert row["input"] == ROW["input"]
    table = pq.read_table(path)
    assert table.schema.field("start_time").type == pa.timestamp("us")
    assert row["start_time"] == ROW["start_time"]  # Langfuse's own text, made by Arrow


_MISSING = (
    "completion_start_time",
    "created_at",
    "updated_at",
    "status_message",
    "environment",
    "provided_model_name",
    "model_parameters",
    "total_cost",
    "latency",
    "time_to_first_token",
)
