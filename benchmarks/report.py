"""Benchmark: ``autopicker report`` over a warehouse of N observations, beside reading the same views alone.

Uses the synthetic traffic of ``benchmarks/views.py`` (N observations over the last 30 days), then ``dbt
run``. The report is written three times into a scratch folder (reading the views, drawing the six charts,
rendering each to SVG and PNG, writing the page); the baseline is reading every row of the same views in
one transaction, which is the part of the report that grows with the warehouse. The first report of a
process pays vl-convert's start (a few hundred milliseconds), so the median of three is printed.

    nice -n 10 .venv/bin/python benchmarks/report.py --rows 1000000

The last line gives the report's median beside its target (a few seconds: at most 5 s) and the time of
reading its views alone.
"""

from __future__ import annotations

import logging
import statistics
import sys
import tempfile
import time
from pathlib import Path

from views import run_benchmark

from autopicker.report.data import DASHBOARD_VIEWS, FALLBACK_VIEWS, collect
from autopicker.report.page import write_report
from ingest import db
from ingest.warehouse.views import read_views

logger = logging.getLogger(__name__)

TARGET_SECONDS = 5.0
RUNS = 3


def compare(database: db.Database, repeat: int) -> int:
    names = [name for name, _ in FALLBACK_VIEWS] + list(DASHBOARD_VIEWS)
    reads, reports = [], []
    with tempfile.TemporaryDirectory() as scratch:
        for run in range(max(repeat, RUNS)):
            started = time.perf_counter()
            read_views(database, names)
            reads.append(time.perf_counter() - started)
            started = time.perf_counter()
            written = write_report(collect(database), Path(scratch) / f"report-{run}")
            reports.append(time.perf_counter() - started)
            logger.info("report %d: %.2f s (%d chart files)", run + 1, reports[-1], len(written.charts))
    report_time, read_time = statistics.median(reports), statistics.median(reads)
    print(
        f"report: {report_time:.2f} s, median of {len(reports)} (target <= {TARGET_SECONDS:.0f} s); "
        f"reading its views alone: {read_time * 1000:.0f} ms"
    )
    return 0 if report_time <= TARGET_SECONDS else 1


def main() -> int:
    return run_benchmark(__doc__.splitlines()[0], compare, days=30, repeat=RUNS)


if __name__ == "__main__":
    sys.exit(main())
