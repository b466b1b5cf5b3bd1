"""Benchmark: an incremental ``autopicker build`` after a day's new rows, against the full build.

Loads N synthetic observations (the traffic of ``benchmarks/views.py``, over the last 90 days) into a new
database, then times, as ``autopicker build`` runs them (``dbt build``):

1. the full build (``--full-refresh``: models, unit tests, data tests), and
2. after adding 1 % new observations (the last day's traffic), 0.1 % late ones (spread over the last 20
   days, loaded now) and correcting 0.1 % of the stored rows (a newer version with another cost), the
   incremental build (models and data tests).

The last line is the incremental build's time as a fraction of the full build's, beside its target (at
most 0.1).

    nice -n 10 .venv/bin/python benchmarks/build.py --rows 10000000
"""

from __future__ import annotations

import json
import logging
import random
import sys
import tempfile
import time
from datetime import UTC, datetime

from views import RAW_COLUMNS, Generator, run_benchmark

from ingest import db
from ingest.warehouse.dbt import build_args, run_dbt

logger = logging.getLogger("benchmarks.build")

TARGET_RATIO = 0.1
NEW_SHARE = 0.01
LATE_SHARE = 0.001
CORRECTED_SHARE = 0.001


def timed_build(database: db.Database, scratch: str, *, full_refresh: bool) -> float:
    """One ``dbt build`` with the arguments ``autopicker build [--full-refresh]`` gives it. Both builds share
    ``scratch`` as dbt's target folder, as ``autopicker build`` keeps its own between runs, so the second
    one parses the project partially, as a user's next build does."""
    args = [*build_args(full_refresh=full_refresh), "--target-path", f"{scratch}/target"]
    started = time.perf_counter()
    code = run_dbt([*args, "--log-path", f"{scratch}/logs"], database)
    elapsed = time.perf_counter() - started
    if code != 0:
        raise RuntimeError(f"{' '.join(args)} failed with exit code {code}")
    log_node_times(f"{scratch}/target/run_results.json")
    return elapsed


def log_node_times(run_results: str) -> None:
    """Log where a build's time went: node time by kind (model, test, unit test) and the slowest nodes."""
    with open(run_results) as file:
        results = json.load(file)["results"]
    by_kind: dict[str, list[float]] = {}
    for result in results:
        kind = result["unique_id"].split(".")[0]
        by_kind.setdefault(kind, []).append(result["execution_time"])
    for kind, times in sorted(by_kind.items()):
        logger.info("  %-10s %4d nodes %8.1f s", kind, len(times), sum(times))
    for result in sorted(results, key=lambda r: -r["execution_time"])[:12]:
        logger.info("  %8.2f s  %s", result["execution_time"], result["unique_id"])


def add_rows(database: db.Database, rows: int, seed: int) -> None:
    """New and late observations, stored as the loaders store them (``_loaded_at`` = now), and corrected
    versions of stored rows."""
    new = Generator(int(rows * NEW_SHARE), 1, datetime.now(UTC), random.Random(seed + 1))
    late = Generator(int(rows * LATE_SHARE), 20, datetime.now(UTC), random.Random(seed + 2))
    columns = ", ".join(RAW_COLUMNS)
    loaded = ", ".join(c for c in RAW_COLUMNS if c != "_loaded_at")
    with database.connect() as conn:
        conn.execute("create temp table arriving (like langfuse_raw.observations including defaults)")
        with conn.cursor() as cur, cur.copy(f"copy arriving ({columns}) from stdin") as copy:
            for generator in (new, late):
                for line in generator.observations():
                    copy.write(line)
        conn.execute(
            f"insert into langfuse_raw.observations ({loaded}, _loaded_at)"
            f" select {loaded}, now() from arriving"
        )
        conn.execute(
            "update langfuse_raw.observations"
            " set updated_at = updated_at + interval '1 second', total_cost = total_cost * 2,"
            " _loaded_at = now()"
            " where id in (select id from langfuse_raw.observations tablesample system (%s))",
            (CORRECTED_SHARE * 100,),
        )
        conn.execute("analyze langfuse_raw.observations")
        conn.commit()


def compare(database: db.Database, rows: int) -> int:
    with tempfile.TemporaryDirectory() as scratch:
        full = timed_build(database, scratch, full_refresh=True)
        logger.info("full build in %.1f s", full)
        started = time.perf_counter()
        # seeded by the row count, so a kept database (--reuse) gets other new ids each time
        add_rows(database, rows, seed=rows)
        logger.info("added the new, late and corrected rows in %.1f s", time.perf_counter() - started)
        incremental = timed_build(database, scratch, full_refresh=False)
    ratio = incremental / full
    print(f"full build {full:.1f} s; incremental build after 1 % new rows {incremental:.1f} s", flush=True)
    print(f"incremental build / full build: {ratio:.3f} (target <= {TARGET_RATIO})")
    return 0


def main() -> int:
    rows: list[int] = []

    def compare_rows(database: db.Database, _repeat: int) -> int:
        (count,) = database.connect().execute(
            "select count(*) from langfuse_raw.observations"
        ).fetchone() or (0,)
        rows.append(count)
        return compare(database, count)

    return run_benchmark(__doc__.splitlines()[0], compare_rows, days=90, repeat=1, build_first=False)


if __name__ == "__main__":
    sys.exit(main())
