"""Ingest on an export shaped like production traffic, in each of Langfuse's formats, against a plain COPY.

    .venv/bin/python benchmarks/ingest_real.py --stored-rows 250000 [--formats jsonl,csv,parquet]
        [--files 10] [--keep | --reuse FOLDER]

1. Writes one blob-storage export per format (JSONL.gz, CSV.gz, Parquet; the same rows in each, with their
   manifests), streamed: rows are made and written one at a time, so memory does not grow with the size.
   The traffic is traces of an agent behind the router: every trace has a root span (the request, with the
   user's messages as `input` and the answer as `output`), most have tool or agent spans, one or two
   generations (the prompt of a few kilobytes as `input`, the completion as `output`), and a quarter of them
   fall back after a failed attempt (an ERROR generation and a fallback event). About 45% of the lines are
   spans. Metadata is JSON-quoted as SDK v5 writes it (`"\\"openai/gpt-4o-mini\\""`, numbers as strings);
   some text is not ASCII. Export windows overlap: each file repeats the last 0.5% of the one before.
   `--stored-rows` counts the events and generations, the rows the ingest keeps.
2. For each format, on a fresh database: times `autopicker ingest files` as a user runs it (a process:
   interpreter start and schema creation included), sampling the resident memory of its process tree, checks
   the stored row count, then times a plain COPY of the same stored rows (pre-made text) into an unindexed
   table with the observations' columns in the same database: the database's limit.

Prints, per format, rows/s over the lines read and over the rows stored, the plain COPY's rate, the ratio of
the two rates over the stored rows, and the peak memory; the last line gives every format's ratio beside the
target (>= 0.5 at 250,000 stored rows, >= 0.7 at 2,500,000; peak memory < 300 MB).

3. Two bounds, in the same run, on what any ingest of these files can reach: the same COPY into a table with
   the raw table's primary key and indexes (an ingest that keeps the key pays for it), and, per gzipped
   format, the files inflated alone on one core, nothing parsed (work an ingest of that format cannot skip),
   each as a time and as the ratio it alone would allow.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import random
import shutil
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson
import pyarrow as pa
import pyarrow.parquet as pq
from isal import igzip

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from autopicker.export_row import FIELDS, NAMES, export_row  # noqa: E402
from ingest import db  # noqa: E402
from ingest.normalize import COPY_COLUMNS  # noqa: E402

_spec = importlib.util.spec_from_file_location("bench_ingest", REPO / "benchmarks" / "ingest.py")
assert _spec is not None and _spec.loader is not None
bench_ingest = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(bench_ingest)  # the timing and the plain COPY, shared with benchmarks/ingest.py

PROJECT = bench_ingest.PROJECT
MODELS = bench_ingest.MODELS
FORMATS = ("jsonl", "csv", "parquet")
OVERLAP = bench_ingest.OVERLAP
PARQUET_BATCH = 10_000
_MASK = (1 << 64) - 1
_PARAGRAPH = (
    "the of and to in is that for it as with was on be by this are from or have an they which one you "
    "were her all she there would their we him been has when who will more no if out so said what up its "
    "about into than them can only other new some could time these two may then do first any my now such "
    "like our over man me even most made after also did many before must through back years where much "
    "your way well down should because each just those people how too little state good very make world "
    "still own see men work long get here between both life being under never day same another know while "
    "last might us great old year off come since against go came right used take three invoice refund "
    "order customer account shipping delivery password reset error timeout latency budget forecast "
    "summary translate résumé café naïve coöperate déjà vu — “quoted” 東京 München São Paulo Zürich €42 ±3 "
    "½ ✓ "
)
_WORDS = _PARAGRAPH.split()


def _sentence_pool(rnd: random.Random, count: int, low: int, high: int) -> list[str]:
    out = []
    for _ in range(count):
        words = rnd.choices(_WORDS, k=rnd.randint(low, high))
        out.append(" ".join(words).capitalize() + ".")
    return out


class Texts:
    """Prompts and answers of realistic size: pools of them made once from sentences (each different, and
    the pools far larger than gzip's window, so they compress as text does), picked per row, each prompt
    ending with the request's own id."""

    POOL = 1024

    def __init__(self, rnd: random.Random) -> None:
        self.rnd = rnd
        self.sentences = _sentence_pool(rnd, 4000, 6, 30)
        self.system = [" ".join(rnd.sample(self.sentences, 8)) for _ in range(16)]
        self._user = [self._messages(rnd.randint(300, 1200)) for _ in range(self.POOL)]
        self._prompts = [self._messages(rnd.randint(800, 4000)) for _ in range(self.POOL)]
        self._answers = [self.answer_text(rnd.randint(100, 1500)) for _ in range(self.POOL)]
        self._tools = [self._tool(rnd.randint(300, 1500)) for _ in range(self.POOL)]

    def _paragraph(self, size: int) -> str:
        parts, total = [], 0
        choice = self.rnd.choice
        while total < size:
            s = choice(self.sentences)
            parts.append(s)
            total += len(s) + 1
        return " ".join(parts)

    def _messages(self, size: int) -> str:
        """A chat prompt as JSON text, about ``size`` characters."""
        turns = [{"role": "system", "content": self.rnd.choice(self.system)}]
        left = max(size - len(turns[0]["content"]), 100)
        while left > 0:
            piece = self._paragraph(min(left, self.rnd.randint(150, 900)))
            turns.append({"role": "user" if len(turns) % 2 else "assistant", "content": piece})
            left -= len(piece) + 30
        return json.dumps(turns, ensure_ascii=False)

    def answer_text(self, size: int) -> str:
        return json.dumps({"role": "assistant", "content": self._paragraph(size)}, ensure_ascii=False)

    def _tool(self, size: int) -> tuple[str, str]:
        query = json.dumps({"query": self._paragraph(min(size, 200))}, ensure_ascii=False)
        result = json.dumps({"results": [self._paragraph(size // 3) for _ in range(3)]}, ensure_ascii=False)
        return query, result

    def user(self, request: str) -> str:
        text = self.rnd.choice(self._user)
        return f"{text[:-3]} (request {request}){text[-3:]}"  # inside the last message's content

    def prompt(self, request: str) -> str:
        text = self.rnd.choice(self._prompts)
        return f"{text[:-3]} (request {request}){text[-3:]}"

    def answer(self) -> str:
        return self.rnd.choice(self._answers)

    def tool(self) -> tuple[str, str]:
        return self.rnd.choice(self._tools)


def _ts(micros: int) -> str:
    return datetime.fromtimestamp(micros / 1e6, UTC).isoformat(" ", "microseconds")[:26]


def _copy_text(value: object) -> str:
    if value is None or value == "":
        return "\\N"
    if isinstance(value, dict):
        value = orjson.dumps(value).decode()
    return str(value).replace("\\", "\\\\").replace("\t", "\\t").replace("\n", "\\n")


class Traffic:
    """Rows of agent traffic, trace by trace: ``(export row, start time in µs, COPY line or None)``."""

    def __init__(self, seed: int, start: datetime) -> None:
        self.rnd = random.Random(seed)
        self.texts = Texts(self.rnd)
        self.next_id = 1
        self.clock = int(start.timestamp() * 1e6)

    def _id(self) -> str:
        self.next_id += 1
        return f"{(self.next_id * 0x9E3779B97F4A7C15) & _MASK:016x}"

    def traces(self, micros_per_trace: int) -> Iterator[tuple[dict[str, Any], int, str | None]]:
        rnd = self.rnd
        while True:
            self.clock += micros_per_trace
            trace = f"{rnd.getrandbits(128):032x}"
            session = f"session-{rnd.getrandbits(24):06x}"
            request = f"{rnd.getrandbits(48):012x}"
            root = self._id()
            at = self.clock
            user = self.texts.user(request)
            rows: list[tuple[dict[str, Any], int, str | None]] = []
            steps = []
            if rnd.random() < 0.7:
                steps.append("tool")
            if rnd.random() < 0.3:
                steps.append("agent")
            calls = 1 + (rnd.random() < 0.4)
            fallback = rnd.random() < 0.25
            t = at + rnd.randint(1000, 5000)
            for step in steps:
                duration = rnd.randint(20_000, 900_000)
                query, result = self.texts.tool()
                rows.append(self._span(step, trace, session, root, t, duration, query, result))
                t += duration
            for call in range(calls):
                model = rnd.choice(MODELS)
                prompt = self.texts.prompt(request)
                if fallback and call == 0:
                    original = model
                    model = rnd.choice([m for m in MODELS if m != original])
                    duration = rnd.randint(50_000, 400_000)
                    rows.append(
                        self._generation(trace, session, root, t, duration, original, prompt, None, True)
                    )
                    t += duration
                    rows.append(self._event(trace, session, root, t, original, model))
                duration = rnd.randint(300_000, 6_000_000)
                answer = self.texts.answer()
                rows.append(self._generation(trace, session, root, t, duration, model, prompt, answer, False))
                t += duration
            end = t + rnd.randint(1000, 20_000)
            root_row = self._row(
                root,
                trace,
                session,
                None,
                "SPAN",
                "autopicker.request",
                at,
                end,
                {},
                user,
                self.texts.answer(),
                model=None,
                usage={},
                cost={},
                total=None,
                ttft=None,
            )
            yield root_row, at, None
            yield from rows

    def _row(
        self,
        oid: str,
        trace: str,
        session: str,
        parent: str | None,
        kind: str,
        name: str,
        start: int,
        end: int,
        metadata: dict[str, str],
        input_text: str | None,
        output_text: str | None,
        *,
        model: str | None,
        usage: dict,
        cost: dict,
        total: float | None,
        ttft: float | None,
        level: str = "DEFAULT",
        status: str | None = None,
        parameters: str | None = None,
    ) -> dict[str, Any]:
        created = end + self.rnd.randint(500_000, 3_000_000)
        return export_row(
            id=oid,
            trace_id=trace,
            start_time=_ts(start),
            end_time=_ts(end),
            project_id=PROJECT,
            parent_observation_id=parent or "",
            type=kind,
            name=name,
            level=level,
            status_message=status,
            environment="production",
            session_id=session,
            user_id=f"user-{int(session[-4:], 16) % 5000}",
            is_root_observation=parent is None,
            completion_start_time=_ts(start + int(ttft * 1e6)) if ttft is not None else None,
            created_at=_ts(created),
            updated_at=_ts(created),
            input=input_text,
            output=output_text,
            metadata=metadata,
            provided_model_name=model,
            model_parameters=parameters,
            usage_details=usage,
            cost_details=cost,
            total_cost=total,
            latency=round((end - start) / 1e6, 3),
            time_to_first_token=ttft,
            trace_name="chat",
            tags=["prod", "agent"],
            release="v2026.11",
        )

    def _span(
        self,
        step: str,
        trace: str,
        session: str,
        root: str,
        start: int,
        duration: int,
        query: str,
        result: str,
    ) -> tuple[dict[str, Any], int, str | None]:
        name = "tool.search" if step == "tool" else "agent.plan"
        metadata = {"step": f'"{step}"', "attempt": "1"}
        row = self._row(
            self._id(),
            trace,
            session,
            root,
            "SPAN",
            name,
            start,
            start + duration,
            metadata,
            query,
            result,
            model=None,
            usage={},
            cost={},
            total=None,
            ttft=None,
        )
        return row, start, None

    def _generation(
        self,
        trace: str,
        session: str,
        root: str,
        start: int,
        duration: int,
        model: str,
        prompt: str,
        answer: str | None,
        failed: bool,
    ) -> tuple[dict[str, Any], int, str | None]:
        rnd = self.rnd
        tokens_in = len(prompt) // 4
        tokens_out = 0 if failed else len(answer or "") // 4
        cost = round(tokens_in * 1.5e-7 + tokens_out * 6e-7, 8)
        ttft = None if failed else round(duration / 3e6, 3)
        metadata = {
            "cost_usd": str(cost),
            "attempt": "2" if failed else "1",
            "router": '"autopicker"',
            "tags": '["prod","agent"]',
        }
        row = self._row(
            self._id(),
            trace,
            session,
            root,
            "GENERATION",
            "llm_call",
            start,
            start + duration,
            metadata,
            prompt,
            answer,
            model=model,
            usage={"input": tokens_in, "output": tokens_out, "total": tokens_in + tokens_out},
            cost={
                "input": round(tokens_in * 1.5e-7, 8),
                "output": round(tokens_out * 6e-7, 8),
                "total": cost,
            },
            total=cost,
            ttft=ttft,
            level="ERROR" if failed else "DEFAULT",
            status="429 Too Many Requests" if failed else None,
            parameters=json.dumps({"temperature": round(rnd.random(), 1), "max_tokens": 1024}),
        )
        natural = {
            "cost_usd": cost,
            "attempt": 2 if failed else 1,
            "router": "autopicker",
            "tags": ["prod", "agent"],
        }
        return row, start, _copy_line(row, model, natural, json.loads(row["model_parameters"]))

    def _event(
        self, trace: str, session: str, root: str, start: int, original: str, fallback: str
    ) -> tuple[dict[str, Any], int, str | None]:
        tokens = self.rnd.randint(1000, 300000)
        name = "rate_limit_fallback" if self.rnd.random() < 0.7 else "context_length_fallback"
        metadata = {
            "original_model": f'"{original}"',
            "fallback_model": f'"{fallback}"',
            "reason": '"rate_limit_or_error"',
            "estimated_tokens": str(tokens),
        }
        natural = {
            "original_model": original,
            "fallback_model": fallback,
            "reason": "rate_limit_or_error",
            "estimated_tokens": tokens,
        }
        row = self._row(
            self._id(),
            trace,
            session,
            root,
            "EVENT",
            name,
            start,
            start,
            metadata,
            None,
            None,
            model=None,
            usage={},
            cost={},
            total=None,
            ttft=None,
        )
        return row, start, _copy_line(row, None, natural, None)


def _copy_line(row: dict[str, Any], model: str | None, metadata: dict, parameters: dict | None) -> str:
    values = {
        **row,
        "model": model,
        "model_parameters": parameters,
        "metadata": metadata,
        "input": None,
        "output": None,
        "_source_file": "bench",
        "_batch_id": 0,
    }
    return "\t".join(_copy_text(values[c]) for c in COPY_COLUMNS)


# -- writers, one per format, each streaming ---------------------------------------------------------------


def _csv_field(value: Any) -> str:
    # Langfuse's CSV: every field quoted, objects and arrays as JSON text, null as an empty (unquoted) field.
    if value is None:
        return ""
    if value.__class__ is str:
        return '"' + value.replace('"', '""') + '"' if '"' in value else '"' + value + '"'
    if value.__class__ is bool:
        return '"true"' if value else '"false"'
    if isinstance(value, dict | list):
        return '"' + orjson.dumps(value).decode().replace('"', '""') + '"'
    return f'"{value}"'


_KINDS = {f.name: f.kind for f in FIELDS}
_TEXT_ONLY = ("input_price", "output_price", "total_price")


def _arrow_type(kind: str, name: str) -> pa.DataType:
    if kind == "timestamp":
        return pa.timestamp("us")
    if kind in ("seconds", "decimal"):
        return pa.float64()
    if kind == "flag":
        return pa.bool_()
    if kind == "strings":
        return pa.map_(pa.string(), pa.string())
    if kind == "numbers":
        return pa.map_(pa.string(), pa.uint64() if name == "usage_details" else pa.float64())
    if kind == "list":
        return pa.list_(pa.string())
    return pa.string()  # text, json_text, object (as JSON text)


_PARQUET_NAMES = tuple(n for n in NAMES if n not in _TEXT_ONLY)
PARQUET_SCHEMA = pa.schema([(n, _arrow_type(_KINDS[n], n)) for n in _PARQUET_NAMES])
_PARQUET_TS = {n for n in _PARQUET_NAMES if _KINDS[n] == "timestamp"}


def _parquet_value(name: str, value: Any) -> Any:
    kind = _KINDS[name]
    if value is None:
        return None
    if name in _PARQUET_TS:
        return datetime.fromisoformat(value)
    if kind in ("strings", "numbers"):
        return list(value.items())
    if kind == "object":
        return orjson.dumps(value).decode()
    return value


class ExportWriter:
    """Writes the rows of one file in one format, streaming."""

    def __init__(self, fmt: str, path: Path) -> None:
        self.fmt, self.path = fmt, path
        if fmt == "parquet":
            self._parquet = pq.ParquetWriter(
                path,
                PARQUET_SCHEMA,
                compression="snappy",
                use_dictionary=[
                    "type",
                    "name",
                    "level",
                    "environment",
                    "project_id",
                    "provided_model_name",
                    "trace_name",
                    "release",
                ],
            )
            self._columns: dict[str, list[Any]] = {n: [] for n in _PARQUET_NAMES}
            self._pending = 0
        else:
            self._out = igzip.open(path, "wb", compresslevel=1)
            if fmt == "csv":
                self._out.write((",".join(f'"{n}"' for n in NAMES) + "\n").encode())

    def write(self, row: dict[str, Any]) -> None:
        if self.fmt == "jsonl":
            self._out.write(orjson.dumps(row) + b"\n")
        elif self.fmt == "csv":
            self._out.write((",".join(_csv_field(row[n]) for n in NAMES) + "\n").encode())
        else:
            columns = self._columns
            for name in _PARQUET_NAMES:
                columns[name].append(_parquet_value(name, row[name]))
            self._pending += 1
            if self._pending == PARQUET_BATCH:
                self._flush()

    def _flush(self) -> None:
        if self._pending:
            arrays = [pa.array(self._columns[n], PARQUET_SCHEMA.field(n).type) for n in _PARQUET_NAMES]
            self._parquet.write_batch(pa.RecordBatch.from_arrays(arrays, schema=PARQUET_SCHEMA))
            for values in self._columns.values():
                values.clear()
            self._pending = 0

    def close(self) -> None:
        if self.fmt == "parquet":
            self._flush()
            self._parquet.close()
        else:
            self._out.close()


def write_exports(stored_rows: int, files: int, folder: Path, formats: tuple[str, ...]) -> dict[str, Any]:
    """Writes the export in each format and the COPY text of its stored rows; returns the counts."""
    base = datetime(2026, 11, 20, tzinfo=UTC)
    per_file = stored_rows // files
    traffic = Traffic(20261206, base)
    rows = traffic.traces(micros_per_trace=3_600_000_000 // max(per_file // 2, 1))
    copy_path = folder / "premade.copy"
    ext = {"jsonl": "jsonl.gz", "csv": "csv.gz", "parquet": "parquet"}
    for fmt in formats:
        (folder / fmt / PROJECT / "observations_v2").mkdir(parents=True)
        (folder / fmt / PROJECT / "manifests").mkdir()
    lines = stored = spans = 0
    carried: list[tuple[dict[str, Any], str | None]] = []
    with open(copy_path, "w", encoding="utf-8") as copy_file:
        for f in range(files):
            stamp = f"2026-11-20T{f + 1:02d}-00-00"
            want = per_file if f < files - 1 else stored_rows - per_file * (files - 1)
            writers = {
                fmt: ExportWriter(fmt, folder / fmt / PROJECT / "observations_v2" / f"{stamp}.{ext[fmt]}")
                for fmt in formats
            }
            count = file_stored = 0
            made: list[tuple[dict[str, Any], str | None]] = []

            for row, _ in carried:  # already stored from the file before: not copied again
                for writer in writers.values():
                    writer.write(row)
            count = len(carried)
            tail_size = int(per_file * 2 * OVERLAP)
            while file_stored < want:
                row, _, line = next(rows)
                for writer in writers.values():
                    writer.write(row)
                count += 1
                if line is not None:
                    copy_file.write(line + "\n")
                    file_stored += 1
                spans += row["type"] == "SPAN"
                made.append((row, line))
                if len(made) > 2 * tail_size:
                    del made[:tail_size]
            carried = made[-tail_size:] if f < files - 1 else []
            for fmt, writer in writers.items():
                writer.close()
                key = f"{PROJECT}/observations_v2/{stamp}.{ext[fmt]}"
                manifest = bench_ingest.export_manifest(key, fmt, count)
                (folder / fmt / PROJECT / "manifests" / f"{stamp}.json").write_text(json.dumps(manifest))
            lines += count
            stored += file_stored
    sizes = {fmt: sum(p.stat().st_size for p in (folder / fmt).rglob("*")) for fmt in formats}
    return {
        "lines": lines,
        "stored": stored,
        "spans": spans,
        "copy_path": copy_path,
        "sizes": sizes,
    }


def inflate_seconds(root: Path) -> float:
    """Seconds to inflate every gzipped file under ``root`` on one core, 1 MiB at a time, parsing nothing
    (with ISA-L, as the ingest inflates)."""
    started = time.perf_counter()
    for path in sorted(root.rglob("*.gz")):
        with igzip.open(path, "rb") as stream:
            while stream.read(1 << 20):
                pass
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--stored-rows", type=int, default=250_000, help="events and generations to store")
    parser.add_argument("--files", type=int, default=10, help="export files (hourly runs) per format")
    parser.add_argument("--formats", default=",".join(FORMATS), help="comma-separated: jsonl, csv, parquet")
    parser.add_argument("--keep", action="store_true", help="keep the files (the databases are dropped)")
    parser.add_argument("--reuse", type=Path, help="time again the files a run with --keep wrote there")
    args = parser.parse_args()
    formats = tuple(f.strip() for f in args.formats.split(",") if f.strip())
    if not formats or set(formats) - set(FORMATS):
        sys.exit(f"--formats takes a comma-separated list of {', '.join(FORMATS)}")
    started = time.perf_counter()
    if args.reuse:
        folder, args.keep = args.reuse, True
        made = json.loads((folder / "export.json").read_text())
        if set(formats) - set(made["sizes"]):
            sys.exit(f"{folder} holds only {', '.join(made['sizes'])}")
    else:
        folder = Path(tempfile.mkdtemp(prefix="autopicker-bench-ingest-real-"))
        made = write_exports(args.stored_rows, args.files, folder, formats)
        (folder / "export.json").write_text(json.dumps(made, default=str))
    lines, stored = made["lines"], made["stored"]
    target = 0.7 if stored >= 2_500_000 else 0.5
    sizes = ", ".join(f"{fmt} {size / 2**20:,.0f} MB" for fmt, size in made["sizes"].items())
    print(
        f"export: {lines:,} lines in {args.files} files per format, {made['spans'] / lines:.0%} spans, "
        f"{stored:,} distinct events and generations to store; {sizes} "
        f"(written in {time.perf_counter() - started:.0f} s)",
        flush=True,
    )
    server = db.resolve()
    ratios: dict[str, float] = {}
    peak_all = 0
    bounds: list[str] = []
    try:
        for fmt in formats:
            name = f"autopicker_bench_ingest_{uuid.uuid4().hex[:8]}"
            with server.connect(autocommit=True) as conn:
                conn.execute(f'CREATE DATABASE "{name}"')
            database = server.with_dbname(name)
            try:
                bench_ingest._checkpoint(database)
                seconds, peak, summary = bench_ingest.run_ingest(database, folder / fmt)
                with database.connect() as conn:
                    count = conn.execute("SELECT count(*) FROM langfuse_raw.observations").fetchone()
                if count != (stored,):
                    sys.exit(f"{fmt}: the ingest stored {count} rows, expected {stored:,}")
                totals = summary["totals"]
                copy_seconds = bench_ingest.run_copy(database, Path(made["copy_path"]))
                if fmt == formats[0]:  # the same rows in every format: one keyed COPY tells the bound for all
                    keyed = bench_ingest.run_copy(database, Path(made["copy_path"]), keyed=True)
                    bounds.append(
                        f"a COPY into a table with the raw table's key and indexes {keyed:.2f} s "
                        f"(ratio {copy_seconds / keyed:.2f})"
                    )
            finally:
                with server.connect(autocommit=True) as conn:
                    conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
            ratios[fmt] = copy_seconds / seconds
            peak_all = max(peak_all, peak)
            skipped = sum(totals["skipped_types"].values())
            print(
                f"{fmt}: autopicker ingest files {seconds:.2f} s = {lines / seconds:,.0f} lines/s read, "
                f"{stored / seconds:,.0f} rows/s stored ({skipped:,} skipped, {totals['duplicates']:,} "
                f"duplicates); plain COPY {copy_seconds:.2f} s = {stored / copy_seconds:,.0f} rows/s; "
                f"ratio {ratios[fmt]:.2f}; peak memory {peak / 2**20:.0f} MB",
                flush=True,
            )
            if fmt != "parquet":
                inflating = inflate_seconds(folder / fmt)
                bounds.append(
                    f"{fmt}.gz inflated alone, nothing parsed, {inflating:.2f} s "
                    f"(ratio {copy_seconds / inflating:.2f})"
                )
        print(f"bounds on the ratio: {'; '.join(bounds)}", flush=True)
    finally:
        if args.keep:
            print(f"kept the files in {folder}", file=sys.stderr)
        else:
            shutil.rmtree(folder, ignore_errors=True)
    shown = ", ".join(f"{fmt} {ratio:.2f}" for fmt, ratio in ratios.items())
    print(
        f"ingest rate / plain COPY rate at {stored:,} stored rows: {shown} (target >= {target}); "
        f"peak memory {peak_all / 2**20:.0f} MB (target < 300 MB)"
    )


if __name__ == "__main__":
    main()
