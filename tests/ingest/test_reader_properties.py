"""Property tests of the readers and the parser over generated export files of every format, good rows mixed
with junk lines, bytes and values: every row read is stored, rejected, a duplicate or a skipped type (and
nothing else), every good row is stored, and nothing escapes as an exception.

The number of examples comes from the hypothesis profile (tests/conftest.py): a few in ``make test``, many
more under ``make fuzz``."""

from __future__ import annotations

import gzip
import io
import json
import string
from datetime import datetime
from decimal import Decimal
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from hypothesis import given
from hypothesis import strategies as st

from ingest.chunks import ParseOptions, make_chunks
from ingest.normalize import COPY_COLUMNS, unescape_copy_text
from ingest.readers import read_rows
from tests.support.export_files import _csv_field

pytestmark = pytest.mark.property

#: Integers of any size: every format keeps every digit (yajl, for JSON arrays, too: see test_json_numbers).
INTEGER = st.one_of(st.integers(-(2**70), 2**70), st.integers())
COLUMNS = ("id", "trace_id", "type", "name", "start_time", "updated_at", "metadata")
TEXT = st.text(string.ascii_letters + string.digits + " -_.:/", max_size=20)
MOMENT = st.datetimes(min_value=datetime(2020, 1, 1), max_value=datetime(2030, 1, 1)).map(
    lambda d: d.strftime("%Y-%m-%d %H:%M:%S.%f")
)


@st.composite
def good_row(draw: st.DrawFn, index: int) -> dict[str, Any]:
    return {
        "id": f"good-{index}",
        "trace_id": draw(TEXT.filter(bool)),
        "type": draw(st.sampled_from(["EVENT", "GENERATION", "generation", "SPAN"])),
        "name": draw(st.one_of(st.none(), TEXT)),
        "start_time": draw(MOMENT),
        "updated_at": draw(MOMENT),
        "metadata": draw(st.dictionaries(TEXT, st.one_of(TEXT, st.integers(-(10**6), 10**6)), max_size=3)),
    }


#: Values that make a row wrong without making it unreadable (for formats whose records are always split).
BAD_VALUE = st.one_of(
    st.fixed_dictionaries({"type": st.none()}),
    st.fixed_dictionaries({"id": st.none()}),
    st.fixed_dictionaries({"start_time": st.sampled_from(["yesterday", "2026-13-45 99:99:99", ""])}),
    st.fixed_dictionaries({"trace_id": st.none()}),
)
JUNK_LINE = st.one_of(
    st.binary(min_size=1, max_size=200),
    st.text(max_size=200).map(str.encode),
    st.sampled_from([b"{", b"[]", b"null", b'{"id": 1}', b'"text"', b"{}", b"\xff\xfe", b"\x00"]),
).filter(lambda b: b"\n" not in b and b.strip() != b"")


@st.composite
def export(draw: st.DrawFn) -> tuple[list[dict[str, Any] | None], list[Any]]:
    """Rows in file order: a good row (dict) or junk (None), and the junk itself."""
    count = draw(st.integers(0, 40))
    kinds = draw(st.lists(st.booleans(), min_size=count, max_size=count))
    rows: list[dict[str, Any] | None] = []
    junk: list[Any] = []
    for i, good in enumerate(kinds):
        if good:
            rows.append(draw(good_row(i)))
        else:
            rows.append(None)
            junk.append(draw(JUNK_LINE))
    return rows, junk


def _spoil(draw: st.DrawFn, index: int) -> dict[str, Any]:
    return {**draw(good_row(index)), **draw(BAD_VALUE)}


def _jsonl(rows: list[dict[str, Any] | None], junk: list[bytes]) -> bytes:
    lines, bad = [], iter(junk)
    for row in rows:
        lines.append(json.dumps(row).encode() if row is not None else next(bad))
    return b"".join(line + b"\n" for line in lines)


def _accounted(data: bytes, name: str, good: list[dict[str, Any]], expected_rows: int) -> None:
    """Parse ``data`` as the file ``name``: every row accounted for once, every good row stored."""
    read = stored = rejected = duplicates = skipped = 0
    numbers: list[Any] = []
    stored_ids: set[str] = set()
    for chunk in make_chunks(read_rows(io.BytesIO(data), name), ParseOptions(suffix="\tf\t1", chunk_rows=7)):
        assert (
            len(chunk.row_numbers) + len(chunk.rejections) + chunk.duplicates + sum(chunk.skipped.values())
            == chunk.rows_read
        )
        read += chunk.rows_read
        stored += len(chunk.row_numbers)
        rejected += len(chunk.rejections)
        duplicates += chunk.duplicates
        skipped += sum(chunk.skipped.values())
        numbers += chunk.row_numbers + [r.row_number for r in chunk.rejections]
        stored_ids |= {line.split(b"\t", 1)[0].decode() for line in bytes(chunk.blob).split(b"\n")[:-1]}
    assert read == expected_rows
    assert len(numbers) == len(set(numbers))  # no row both stored and rejected, none twice
    loaded = {r["id"] for r in good if r["type"].upper() in ("EVENT", "GENERATION")}
    assert loaded <= stored_ids
    # junk may hold a type that is not loaded, counted as skipped too
    assert skipped >= sum(1 for r in good if r["type"].upper() not in ("EVENT", "GENERATION"))
    assert stored == len(stored_ids) and duplicates == 0


@given(export(), st.booleans())
def test_jsonl_with_junk_lines(generated: tuple[list[Any], list[bytes]], gz: bool) -> None:
    rows, junk = generated
    data = _jsonl(rows, junk)
    if gz:
        data = gzip.compress(data, mtime=0)
    _accounted(data, "x.jsonl.gz" if gz else "x.jsonl", [r for r in rows if r is not None], len(rows))


@given(st.data(), st.integers(0, 30), st.booleans())
def test_csv_with_junk_records(data: st.DataObject, count: int, gz: bool) -> None:
    good: list[dict[str, Any]] = []
    lines = [",".join(_csv_field(c) for c in COLUMNS)]
    for i in range(count):
        kind = data.draw(st.sampled_from(["good", "bad value", "wrong width", "junk text"]))
        if kind == "good":
            row = data.draw(good_row(i))
            good.append(row)
            lines.append(",".join(_csv_field(row[c]) for c in COLUMNS))
        elif kind == "bad value":
            row = _spoil(data.draw, i)
            lines.append(",".join(_csv_field(row.get(c)) for c in COLUMNS))
        elif kind == "wrong width":
            width = data.draw(st.integers(1, 12).filter(lambda w: w != len(COLUMNS)))
            lines.append(",".join(_csv_field(data.draw(TEXT)) for _ in range(width)))
        else:  # any text as every field, quoted as Langfuse quotes
            lines.append(",".join(_csv_field(data.draw(st.text(max_size=30))) for _ in COLUMNS))
    text = ("\r\n".join(lines) + "\r\n").encode("utf-8", "surrogatepass")
    if gz:
        text = gzip.compress(text, mtime=0)
    _accounted(text, "x.csv.gz" if gz else "x.csv", good, count)


@given(st.data(), st.integers(0, 30))
def test_json_array_with_junk_elements(data: st.DataObject, count: int) -> None:
    good: list[dict[str, Any]] = []
    items: list[Any] = []
    for i in range(count):
        kind = data.draw(st.sampled_from(["good", "bad value", "not an object"]))
        if kind == "good":
            good.append(data.draw(good_row(i)))
            items.append(good[-1])
        elif kind == "bad value":
            items.append(_spoil(data.draw, i))
        else:
            items.append(data.draw(st.one_of(st.none(), INTEGER, TEXT, st.lists(INTEGER, max_size=3))))
    _accounted(json.dumps(items).encode(), "x.json", good, count)


#: Numbers as written in a file: any integer, and fractions with more digits than a float holds.
NUMBER = st.one_of(
    st.integers(),
    st.decimals(allow_nan=False, allow_infinity=False),
    st.decimals(min_value=-1, max_value=1, places=30, allow_nan=False),
)
COST = st.decimals(min_value=0, max_value=Decimal("999999999.999999"), allow_nan=False)


@given(
    st.lists(st.tuples(st.dictionaries(TEXT, NUMBER, max_size=4), st.none() | COST), max_size=12),
    st.booleans(),
)
def test_json_array_numbers_keep_every_digit(values: list[tuple[dict[str, Any], Any]], gz: bool) -> None:
    # yajl, asked for floats, once failed the whole file on an integer beyond 64 bits ("integer overflow"),
    # and rounded fractions to a float's digits.
    elements = []
    for i, (metadata, cost) in enumerate(values):
        numbers = ", ".join(f"{json.dumps(k)}: {v}" for k, v in metadata.items())
        elements.append(
            f'{{"id": "n{i}", "trace_id": "t", "type": "EVENT", "start_time": "2026-11-24 10:00:00.000000", '
            f'"total_cost": {"null" if cost is None else cost}, "metadata": {{{numbers}}}}}'
        )
    data = ("[" + ",\n".join(elements) + "]").encode()
    if gz:
        data = gzip.compress(data, mtime=0)
    stored: dict[str, tuple[dict[str, Any], Any]] = {}
    at = {name: COPY_COLUMNS.index(name) for name in ("id", "total_cost", "metadata")}
    for chunk in make_chunks(
        read_rows(io.BytesIO(data), "x.json.gz" if gz else "x.json"), ParseOptions(suffix="\tf\t1")
    ):
        assert not chunk.rejections
        for line in bytes(chunk.blob).decode().split("\n")[:-1]:
            parts = line.split("\t")
            metadata = json.loads(unescape_copy_text(parts[at["metadata"]]), parse_float=Decimal)
            cost = Decimal(parts[at["total_cost"]]) if parts[at["total_cost"]] else None
            stored[parts[at["id"]]] = (metadata, cost)
    assert stored == {f"n{i}": (metadata, cost) for i, (metadata, cost) in enumerate(values)}


@given(st.data(), st.integers(0, 30))
def test_parquet_with_junk_values(data: st.DataObject, count: int) -> None:
    good: list[dict[str, Any]] = []
    rows: list[dict[str, Any]] = []
    for i in range(count):
        if data.draw(st.booleans()):
            good.append(data.draw(good_row(i)))
            rows.append(good[-1])
        else:
            rows.append(_spoil(data.draw, i))
    columns = {c: pa.array([r.get(c) for r in rows], pa.string()) for c in COLUMNS if c != "metadata"}
    columns["metadata"] = pa.array([json.dumps(r.get("metadata")) for r in rows], pa.string())
    out = io.BytesIO()
    pq.write_table(pa.table(columns), out)
    _accounted(out.getvalue(), "x.parquet", good, count)
