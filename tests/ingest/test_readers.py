"""Format readers: detection by name, streaming, CSV's rules, one sentence for a file that cannot be read."""

from __future__ import annotations

import gzip
import io
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from ingest.readers import BadRow, CsvRecord, FileFormat, UnreadableFile, detect_format, read_rows
from tests.support.cli import HANG_TIMEOUT, REPO
from tests.support.export_files import v2_rows, write_csv, write_json_array, write_jsonl, write_parquet


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("2026-11-24T12-00-00.jsonl.gz", FileFormat("jsonl", True)),
        ("x.ndjson", FileFormat("jsonl")),
        ("x.JSON", FileFormat("json")),
        ("x.json.gz", FileFormat("json", True)),
        ("1764000000000-lf-observations-export-proj.csv", FileFormat("csv")),
        ("x.csv.gz", FileFormat("csv", True)),
        ("x.parquet", FileFormat("parquet")),
        ("x.parquet.gz", None),
        ("x.txt", None),
        ("jsonl", None),
    ],
)
def test_format_from_name(name: str, expected: FileFormat | None) -> None:
    assert detect_format(name) == expected


class _Tracked(io.RawIOBase):
    """A byte stream that remembers how much of it has been read."""

    def __init__(self, data: bytes) -> None:
        self._data, self.offset = data, 0

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        chunk = self._data[self.offset : self.offset + min(len(buffer), 65536)]
        buffer[: len(chunk)] = chunk
        self.offset += len(chunk)
        return len(chunk)


def _big_rows(count: int) -> list[dict[str, Any]]:
    # Random text, so that gzip cannot shrink the file below the readers' buffers.
    return [
        {
            "id": f"r{i}",
            "trace_id": "t",
            "type": "EVENT",
            "start_time": "x",
            "status_message": os.urandom(200).hex(),
        }
        for i in range(count)
    ]


@pytest.mark.parametrize("kind", ["jsonl", "jsonl.gz", "json", "json.gz", "csv", "csv.gz"])
def test_readers_stream(kind: str, tmp_path: Path) -> None:
    base, _, gz = kind.partition(".")
    writer = {"jsonl": write_jsonl, "json": write_json_array, "csv": write_csv}[base]
    path = writer(tmp_path / f"rows.{base}", _big_rows(20_000), gz=bool(gz))
    stream = _Tracked(path.read_bytes())
    rows = read_rows(stream, path.name)  # type: ignore[arg-type]
    number, first = next(rows)
    assert number == 1
    assert len(stream._data) > 4_000_000
    assert stream.offset < len(stream._data) / 2  # the first row came before most of the file was read
    assert sum(1 for _ in rows) == 19_999


def test_jsonl_line_numbers_skip_blank_lines_and_bom() -> None:
    data = b"\xef\xbb\xbf" + b'{"id": 1}\n\n   \n{"id": 2}\r\n{"id": 3}'
    assert [(n, json.loads(t)) for n, t in read_rows(io.BytesIO(data), "x.jsonl")] == [
        (1, {"id": 1}),
        (4, {"id": 2}),
        (5, {"id": 3}),
    ]


def test_gzip_is_recognised_by_its_bytes() -> None:
    data = gzip.compress(b'{"id": 1}\n')
    assert [json.loads(t) for _, t in read_rows(io.BytesIO(data), "mislabelled.jsonl")] == [{"id": 1}]


def test_json_file_holding_jsonl_is_read_as_jsonl() -> None:
    data = b'  {"id": 1}\n{"id": 2}\n'
    assert [json.loads(t) for _, t in read_rows(io.BytesIO(data), "x.json")] == [{"id": 1}, {"id": 2}]


def test_json_array_elements_in_order() -> None:
    data = json.dumps([{"id": 1, "x": 1.5}, "not an object", {"id": 2}]).encode()
    assert list(read_rows(io.BytesIO(data), "x.json")) == [
        (1, {"id": 1, "x": 1.5}),
        (2, "not an object"),
        (3, {"id": 2}),
    ]


def test_csv_rules() -> None:
    huge = "x" * 300_000  # beyond the csv module's default field limit
    text = (
        '"id","name","status_message","metadata","traceId","type","startTime"\r\n'
        '"1","a, with comma","line one\nline two","{""k"": ""v""}","t","EVENT","s"\r\n'
        f'"2",,"{huge}","","t","EVENT","s"\r\n'
        '"3","too","many","fields","here"\r\n'
    )
    rows = list(read_rows(io.BytesIO(text.encode()), "x.csv"))
    assert rows[0] == (
        1,
        {
            "id": "1",
            "name": "a, with comma",
            "status_message": "line one\nline two",
            "metadata": '{"k": "v"}',
            "traceId": "t",
            "type": "EVENT",
            "startTime": "s",
        },
    )
    assert isinstance(rows[0][1], CsvRecord)
    assert rows[1][1]["name"] is None and rows[1][1]["metadata"] is None  # empty means null
    assert rows[1][1]["status_message"] == huge
    number, bad = rows[2]
    assert number == 3 and isinstance(bad, BadRow)
    assert bad.error == "the record has 5 fields, the header has 7"
    assert bad.raw == '"3","too","many","fields","here"'


def test_parquet_rows(tmp_path: Path) -> None:
    path = write_parquet(tmp_path / "x.parquet", v2_rows())
    with open(path, "rb") as handle:
        rows = list(read_rows(handle, path.name))
    assert [n for n, _ in rows] == [1, 2, 3, 4, 5, 6]
    first = rows[1][1]
    assert first["metadata"][0] == ("original_model", '"openai/gpt-4o-mini"')  # a map: (key, value) pairs


@pytest.mark.parametrize(
    ("name", "data", "reason"),
    [
        ("a.jsonl.gz", gzip.compress(b'{"id": 1}\n' * 5000, mtime=0)[:-100], "truncated"),
        ("b.csv.gz", b"not gzip at all", "cannot be read"),
        ("c.json", b'[{"id": 1}, {"id": ', "cannot be read"),
        ("d.parquet", b"PAR1garbage", "cannot be read"),
    ],
    ids=["truncated-gzip", "not-gzip", "truncated-json", "bad-parquet"],
)
def test_unreadable_files_raise_one_sentence(name: str, data: bytes, reason: str) -> None:
    with pytest.raises(UnreadableFile) as caught:
        list(read_rows(io.BytesIO(data), name))
    message = str(caught.value)
    assert message.startswith(f"{name} cannot be read: ") and reason in message
    assert "\n" not in message


def test_unknown_format_is_unreadable() -> None:
    with pytest.raises(UnreadableFile, match="cannot tell the format"):
        list(read_rows(io.BytesIO(b""), "x.txt"))


@pytest.mark.parametrize("chosen", [None, "system"], ids=["default", "user-chosen"])
def test_parquet_is_read_with_jemalloc_unless_the_user_chose_arrows_allocator(
    tmp_path: Path, chosen: str | None
) -> None:
    rows = v2_rows()
    path = write_parquet(tmp_path / "x.parquet", rows)
    script = (
        "import sys, pyarrow\n"
        "from ingest.readers import FileFormat, read_rows\n"
        "with open(sys.argv[1], 'rb') as handle:\n"
        "    read = list(read_rows(handle, 'x.parquet', FileFormat('parquet'), with_io=False))\n"
        "print(pyarrow.default_memory_pool().backend_name, sum(b.rows_read for _, b in read))\n"
    )
    env = {k: v for k, v in os.environ.items() if k != "ARROW_DEFAULT_MEMORY_POOL"}
    if chosen:
        env["ARROW_DEFAULT_MEMORY_POOL"] = chosen
    done = subprocess.run(
        [sys.executable, "-c", script, str(path)],
        env=env,
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=HANG_TIMEOUT,
        check=True,
    )
    assert done.stdout.split() == [chosen or "jemalloc", str(len(rows))]
