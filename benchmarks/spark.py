"""The same export on both engines: PostgreSQL (ingest, then build) beside local Spark (build over the files).

    nice -n 10 .venv/bin/python benchmarks/spark.py --rows 1000000

1. Writes N synthetic observations as a blob-storage export (JSONL.gz files with their manifests; the
   export of ``benchmarks/ingest.py``: SDK v5 metadata, overlapping runs repeating rows).
2. PostgreSQL, on a new database: ``autopicker ingest files`` (a subprocess) and ``dbt build --full-refresh``.
3. Spark, on a local Thrift server of its own (``local[2]``, started before the clock runs): ``dbt build``
   over the export read in place.
4. Each of the five fallback views read whole on both engines (the median of ``--repeat`` reads).

Both builds run every model and test. The views look back ``--lookback-days`` (the export's rows are dated
from 2026-11-20). No target: the last line gives the ratio of the two builds (docs/spark.md says what the
figures mean for choosing an engine). The database, the export and the Spark state are removed afterwards.
"""

from __future__ import annotations

import argparse
import importlib.util
import shutil
import statistics
import sys
import tempfile
import time
import uuid
from collections.abc import Callable
from pathlib import Path

HERE = Path(__file__).resolve().parent
# the package `ingest`, not benchmarks/ingest.py beside this script
sys.path[:] = [str(HERE.parent), *(p for p in sys.path if Path(p or ".").resolve() != HERE)]

from ingest import db  # noqa: E402
from ingest.warehouse import spark  # noqa: E402
from ingest.warehouse.dbt import run_dbt  # noqa: E402
from ingest.warehouse.views import FALLBACK_VIEWS  # noqa: E402


def _export_writer() -> object:
    """benchmarks/ingest.py (whose module name the ``ingest`` package takes) as a module."""
    spec = importlib.util.spec_from_file_location("bench_ingest", HERE / "ingest.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def median_seconds(run: Callable[[], object], repeat: int) -> float:
    times = []
    for _ in range(repeat):
        started = time.perf_counter()
        run()
        times.append(time.perf_counter() - started)
    return statistics.median(times)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--files", type=int, default=10, help="export files (hourly runs) for the rows")
    parser.add_argument("--repeat", type=int, default=3, help="reads of each view (median reported)")
    parser.add_argument("--lookback-days", type=int, default=3650, help="the fallback views' window")
    args = parser.parse_args()
    dbt_vars = f'{{"fallback_lookback_days": {args.lookback_days}}}'
    bench = _export_writer()
    folder = Path(tempfile.mkdtemp(prefix="autopicker-bench-spark-"))
    server = db.resolve()
    name = f"autopicker_bench_spark_{uuid.uuid4().hex[:8]}"
    thrift: spark.ThriftServer | None = None
    try:
        prefix, _, loaded, distinct = bench.write_export(args.rows, args.files, folder)  # type: ignore[attr-defined]
        print(
            f"export: {args.rows:,} observations in {args.files} files ({distinct:,} distinct events and "
            f"generations)",
            flush=True,
        )

        with server.connect(autocommit=True) as conn:
            conn.execute(f'CREATE DATABASE "{name}"')
        database = server.with_dbname(name)
        ingest_seconds, _, _ = bench.run_ingest(database, prefix)  # type: ignore[attr-defined]
        started = time.perf_counter()
        code = run_dbt(
            [
                "build",
                "--full-refresh",
                "--vars",
                dbt_vars,
                "--target-path",
                str(folder / "pg"),
                "--log-path",
                str(folder / "pg"),
            ],
            database,
        )
        pg_build = time.perf_counter() - started
        if code != 0:
            sys.exit(f"dbt build on PostgreSQL failed (exit {code})")
        print(
            f"PostgreSQL: ingest {ingest_seconds:.1f} s + build {pg_build:.1f} s = "
            f"{ingest_seconds + pg_build:.1f} s",
            flush=True,
        )

        thrift = spark.start_thrift_server(folder / "spark-state")
        started = time.perf_counter()
        code = spark.run_dbt_spark(
            ["build", "--target-path", str(folder / "spark"), "--log-path", str(folder / "spark")],
            thrift,
            export=str(prefix),
            variables={"fallback_lookback_days": args.lookback_days},
        ).code
        spark_build = time.perf_counter() - started
        if code != 0:
            sys.exit(f"dbt build on Spark failed (exit {code})")
        print(f"Spark (local[2]): build over the files {spark_build:.1f} s", flush=True)

        print(f"{'view':<28} {'rows':>6} {'PostgreSQL ms':>14} {'Spark ms':>10}")
        for view in FALLBACK_VIEWS:
            with database.connect() as conn:
                rows = len(conn.execute(f"select * from analytics.{view}").fetchall())

                def read_pg(conn: object = conn, view: str = view) -> object:
                    return conn.execute(f"select * from analytics.{view}").fetchall()  # type: ignore[attr-defined]

                pg_seconds = median_seconds(read_pg, args.repeat)
            spark_seconds = median_seconds(
                lambda view=view: spark.query(thrift, f"select * from analytics.{view}"), args.repeat
            )
            pg_ms, spark_ms = pg_seconds * 1000, spark_seconds * 1000
            print(f"{view:<28} {rows:>6} {pg_ms:>14.2f} {spark_ms:>10.1f}", flush=True)
        total_pg = ingest_seconds + pg_build
        print(
            f"Spark build / PostgreSQL ingest + build at {args.rows:,} observations: "
            f"{spark_build / total_pg:.2f} ({spark_build:.1f} s / {total_pg:.1f} s)"
        )
        return 0
    finally:
        if thrift is not None:
            spark.stop_thrift_server(folder / "spark-state")
        with server.connect(autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        shutil.rmtree(folder, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
