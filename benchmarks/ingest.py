"""Ingest throughput next to its practical limit: `autopicker ingest files` against a plain COPY.

    .venv/bin/python benchmarks/ingest.py --rows 1000000 [--files 10] [--keep]

1. Writes N synthetic observations_v2 rows as a blob-storage export (JSONL.gz files with their manifests): 60%
   generations, 35% events, 5% spans, metadata as SDK v5 writes it (JSON-encoded strings, numbers as
   strings), usage and cost, and each file repeating the last rows of the one before (export windows
   overlap), so some ids come twice.
2. On a fresh database, times `autopicker ingest files` as a user runs it: a subprocess (interpreter start
   and schema creation included), sampling the resident memory of its whole process tree.
3. In the same database, loads the same rows as pre-made COPY text with one plain COPY into an unindexed
   table with the observations' columns: the practical limit.

A CHECKPOINT before each phase (when the role may) gives both the same start. Prints both rates and, on the
last line, their ratio. Targets: ratio >= 0.5 at 1,000,000 rows, peak memory of the ingest below 300 MB.
The database (and the files) are dropped afterwards unless --keep.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from datetime import datetime, timedelta
from pathlib import Path

import orjson
import psycopg
from isal import igzip

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from autopicker.export_row import export_row  # noqa: E402
from ingest import db  # noqa: E402
from ingest.normalize import COPY_COLUMNS  # noqa: E402

PROJECT = "proj-bench"
MODELS = (
    "openai/gpt-4o-mini",
    "gemini/gemini-2.5-flash-lite",
    "gemini/gemini-2.5-pro",
    "anthropic/claude-haiku",
)
OVERLAP = 0.005  # share of each file's rows repeated at the start of the next one


def _ts(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%d %H:%M:%S.%f")


def _copy_text(value: object) -> str:
    if value is None:
        return "\\N"
    if isinstance(value, dict):
        value = orjson.dumps(value).decode()
    return str(value).replace("\\", "\\\\").replace("\t", "\\t").replace("\n", "\\n")


def _row(rnd: random.Random, i: int, start: datetime) -> tuple[dict, str | None]:
    """One export row and, for a loaded type, the COPY line the warehouse should end up with."""
    pick = rnd.random()
    kind = "GENERATION" if pick < 0.60 else "EVENT" if pick < 0.95 else "SPAN"
    duration = round(rnd.uniform(0.2, 4.0), 3) if kind != "EVENT" else 0.0
    end = start + timedelta(seconds=duration)
    created = end + timedelta(seconds=rnd.uniform(0.5, 3))
    trace = f"{rnd.getrandbits(128):032x}"
    if kind == "GENERATION":
        tokens_in, tokens_out = rnd.randint(20, 6000), rnd.randint(5, 900)
        cost = round(tokens_in * 1.5e-7 + tokens_out * 6e-7, 8)
        model = rnd.choice(MODELS)
        metadata = {"cost_usd": str(cost), "attempt": str(rnd.randint(1, 3)), "router": '"autopicker"'}
        natural = {"cost_usd": cost, "attempt": int(metadata["attempt"]), "router": "autopicker"}
        usage = {"input": tokens_in, "output": tokens_out, "total": tokens_in + tokens_out}
        cost_details = {
            "input": round(tokens_in * 1.5e-7, 8),
            "output": round(tokens_out * 6e-7, 8),
            "total": cost,
        }
        parameters = {"temperature": 0.2, "max_tokens": 1024}
        name, level = "llm_call", "ERROR" if rnd.random() < 0.06 else "DEFAULT"
        ttft = round(duration / 3, 3)
        completion = start + timedelta(seconds=ttft)
    else:
        original, fallback = rnd.sample(MODELS, 2)
        name = "rate_limit_fallback" if rnd.random() < 0.7 else "context_length_fallback"
        metadata = {
            "original_model": f'"{original}"',
            "fallback_model": f'"{fallback}"',
            "reason": '"rate_limit_or_error"',
            "estimated_tokens": str(rnd.randint(1000, 300000)),
        }
        natural = {
            "original_model": original,
            "fallback_model": fallback,
            "reason": "rate_limit_or_error",
            "estimated_tokens": int(metadata["estimated_tokens"]),
        }
        usage, cost_details, parameters, model, cost, ttft, completion = {}, {}, None, None, None, None, None
        level = "DEFAULT"
        if kind == "SPAN":
            name, metadata, natural = "autopicker.request", {}, {}
    row = export_row(
        id=f"{rnd.getrandbits(64):016x}",
        trace_id=trace,
        start_time=_ts(start),
        end_time=_ts(end),
        project_id=PROJECT,
        parent_observation_id="",
        type=kind,
        name=name,
        level=level,
        environment="production",
        session_id=f"s-{i // 20}",
        is_root_observation=kind == "SPAN",
        completion_start_time=_ts(completion) if completion else None,
        created_at=_ts(created),
        updated_at=_ts(created),
        metadata=metadata,
        provided_model_name=model,
        model_parameters=json.dumps(parameters) if parameters else None,
        usage_details=usage,
        cost_details=cost_details,
        total_cost=cost,
        latency=duration,
        time_to_first_token=ttft,
        trace_name="chat",
    )
    if kind == "SPAN":
        return row, None
    values = {
        **row,
        "model": model,
        "model_parameters": parameters,
        "metadata": natural,
        "parent_observation_id": None,
        "_source_file": "bench",
        "_batch_id": 0,
    }
    return row, "\t".join(_copy_text(values[c]) for c in COPY_COLUMNS)


def export_manifest(key: str, fmt: str, rows: int) -> dict:
    """The manifest of an export run of one file."""
    return {
        "version": 1,
        "projectId": PROJECT,
        "exportSource": "OBSERVATIONS_V2",
        "tables": ["observations_v2"],
        "files": [
            {
                "key": key,
                "table": "observations_v2",
                "format": fmt,
                "compressed": fmt != "parquet",
                "rowCount": rows,
            }
        ],
    }


def write_export(rows: int, files: int, folder: Path) -> tuple[Path, Path, int, int]:
    """Writes the export and the COPY text of its loaded rows: (prefix, copy file, loaded, distinct ids)."""
    rnd = random.Random(20261124)
    project = folder / "export" / PROJECT
    (project / "observations_v2").mkdir(parents=True)
    (project / "manifests").mkdir()
    copy_path = folder / "premade.copy"
    base = datetime(2026, 11, 20)
    per_file = rows // files
    carried: list[tuple[bytes, str | None]] = []
    loaded, ids = 0, set()
    with open(copy_path, "w", encoding="utf-8") as copy_file:
        for f in range(files):
            stamp = (base + timedelta(hours=f + 1)).strftime("%Y-%m-%dT%H-%M-%S")
            key = f"{PROJECT}/observations_v2/{stamp}.jsonl.gz"
            count = per_file if f < files - 1 else rows - per_file * (files - 1)
            fresh = count - len(carried)
            made = []
            for i in range(fresh):
                row, line = _row(rnd, f * per_file + i, base + timedelta(hours=f, seconds=i * 3600 / fresh))
                made.append((orjson.dumps(row) + b"\n", line))
                if line is not None:
                    ids.add(row["id"])
            batch = carried + made
            with igzip.open(project / "observations_v2" / f"{stamp}.jsonl.gz", "wb", compresslevel=1) as out:
                out.write(b"".join(text for text, _ in batch))
            for _, line in batch:
                if line is not None:
                    copy_file.write(line + "\n")
                    loaded += 1
            carried = made[-int(per_file * OVERLAP) :] if f < files - 1 else []
            manifest = export_manifest(key, "jsonl", len(batch))
            (project / "manifests" / f"{stamp}.json").write_text(json.dumps(manifest))
    return folder / "export", copy_path, loaded, len(ids)


def _tree_rss(pid: int) -> int:
    """Resident bytes of a process and its children."""
    pids = [pid]
    for entry in os.scandir("/proc"):
        if entry.name.isdigit():
            try:
                with open(f"/proc/{entry.name}/stat") as handle:
                    if int(handle.read().rsplit(")", 1)[1].split()[1]) == pid:
                        pids.append(int(entry.name))
            except (OSError, ValueError, IndexError):
                continue
    total = 0
    for p in pids:
        try:
            with open(f"/proc/{p}/statm") as handle:
                total += int(handle.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
        except OSError:
            continue
    return total


def _checkpoint(database: db.Database) -> None:
    try:
        with database.connect(autocommit=True) as conn:
            conn.execute("CHECKPOINT")
    except psycopg.Error:
        pass  # not allowed for this role: both phases simply start as they are


def run_ingest(database: db.Database, prefix: Path) -> tuple[float, int, dict]:
    env = {**os.environ, "DATABASE_URL": database.url, "DBT_SEND_ANONYMOUS_USAGE_STATS": "false"}
    peak = 0
    started = time.perf_counter()
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "autopicker",
            "ingest",
            "files",
            str(prefix),
            "--json",
        ],
        env=env,
        cwd=REPO,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    done = threading.Event()

    def sample() -> None:
        nonlocal peak
        while not done.wait(0.05):
            peak = max(peak, _tree_rss(process.pid))

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    out, err = process.communicate()
    elapsed = time.perf_counter() - started
    done.set()
    sampler.join()
    if process.returncode != 0:
        sys.exit(f"the ingest failed (exit {process.returncode}): {err.decode()[-2000:]}")
    return elapsed, peak, json.loads(out)


def run_copy(database: db.Database, copy_path: Path, *, keyed: bool = False) -> float:
    """Seconds of one COPY of the pre-made text into a new table with the observations' columns: unindexed,
    or with ``keyed`` the raw table's primary key and indexes too."""
    table = "bench_keyed_copy" if keyed else "bench_plain_copy"
    like = "INCLUDING ALL" if keyed else "INCLUDING DEFAULTS"
    with database.connect() as conn:
        conn.execute(f"CREATE TABLE {table} (LIKE langfuse_raw.observations {like})")
        conn.commit()
    _checkpoint(database)
    with database.connect() as conn, open(copy_path, "rb") as source:
        started = time.perf_counter()
        with conn.cursor().copy(f"COPY {table} ({', '.join(COPY_COLUMNS)}) FROM STDIN") as copy:
            while block := source.read(1 << 20):
                copy.write(block)
        conn.commit()
        return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--files", type=int, default=10, help="export files (hourly runs) for the rows")
    parser.add_argument("--keep", action="store_true", help="keep the database and the files")
    args = parser.parse_args()
    folder = Path(tempfile.mkdtemp(prefix="autopicker-bench-ingest-"))
    started = time.perf_counter()
    prefix, copy_path, loaded, distinct = write_export(args.rows, args.files, folder)
    print(
        f"rows: {args.rows:,} in {args.files} files ({loaded:,} events and generations, {distinct:,} "
        f"distinct; written in {time.perf_counter() - started:.0f} s)",
        flush=True,
    )

    server = db.resolve()
    name = f"autopicker_bench_ingest_{uuid.uuid4().hex[:8]}"
    with server.connect(autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    database = server.with_dbname(name)
    try:
        _checkpoint(database)
        ingest_seconds, peak, summary = run_ingest(database, prefix)
        with database.connect() as conn:
            stored = conn.execute("SELECT count(*) FROM langfuse_raw.observations").fetchone()
        if stored != (distinct,):
            sys.exit(f"the ingest stored {stored} rows, expected {distinct:,}")
        totals = summary["totals"]
        skipped = sum(totals["skipped_types"].values())
        print(
            f"autopicker ingest files (subprocess): {ingest_seconds:.2f} s, "
            f"{args.rows / ingest_seconds:,.0f} rows/s; {totals['inserted']:,} new, {totals['updated']:,} "
            f"updated, {totals['duplicates']:,} duplicates, {skipped:,} skipped",
            flush=True,
        )
        print(f"peak memory of the ingest (process tree, sampled): {peak / 2**20:.0f} MB (target < 300 MB)")
        copy_seconds = run_copy(database, copy_path)
        print(
            f"plain COPY of the same rows (pre-made text, unindexed table): {copy_seconds:.2f} s, "
            f"{args.rows / copy_seconds:,.0f} rows/s"
        )
        ratio = copy_seconds / ingest_seconds
        print(f"ingest rate / plain COPY rate: {ratio:.2f} (target >= 0.5)")
    finally:
        if args.keep:
            print(f"kept database {name} and files in {folder}", file=sys.stderr)
        else:
            with server.connect(autocommit=True) as conn:
                conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
            shutil.rmtree(folder, ignore_errors=True)


if __name__ == "__main__":
    main()
