"""A real (standalone) Spark cluster on this machine: a master, two workers and a Thrift server on them
build the five fallback views and everything they read (staging, the intermediate models they use; their
unit tests) over the sample export, and everything started is stopped afterwards.

Only that lineage (16 of the 26 models) and no data tests, since each statement pays the cluster's fixed
cost: the data tests of every model on Spark are proven by ``test_parity.py`` (every model and test, on the
local Spark), and the whole project's build on a cluster by ``make spark-cluster`` (docs/spark.md)."""

from __future__ import annotations

from pathlib import Path

import pytest

from ingest.warehouse import spark
from ingest.warehouse.views import FALLBACK_VIEWS
from tests.support.export_files import SAMPLE_EXPORT
from tests.support.spark import TEST_SETTINGS

pytestmark = [pytest.mark.dbt, pytest.mark.xdist_group("spark")]

#: The five fallback views and every model and unit test upstream of them (data tests excluded).
FALLBACK_LINEAGE = tuple(f"+{name}" for name in FALLBACK_VIEWS)
DATA_TESTS = ("test_type:data",)


def _processes_mentioning(text: str) -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                command = (entry / "cmdline").read_bytes().decode(errors="replace")
            except OSError:
                continue
            if text in command:
                found.append(int(entry.name))
    return found


def test_the_fallback_views_build_on_a_standalone_cluster(tmp_path: Path) -> None:
    # the sample export is dated 2026-11-24: a window long enough to hold it, whatever the date
    variables = {"fallback_lookback_days": 36500}
    result = spark.build_on_standalone_cluster(
        str(SAMPLE_EXPORT.resolve()),
        tmp_path,
        workers=2,
        variables=variables,
        select=FALLBACK_LINEAGE,
        exclude=DATA_TESTS,
        settings=TEST_SETTINGS,
    )

    assert result.exit_code == 0, result.statuses
    # the 16 models the five views read, from staging on, and the project's two on-run-start hooks (success:
    # the one that makes the source, and the one that has nothing to do on Spark), their unit tests (pass),
    # an exposure (no-op); no data test
    assert set(result.statuses) == {"success", "pass", "no-op"}, result.statuses
    assert result.statuses["success"] == 16 + 2 and result.statuses["no-op"] == 1, result.statuses
    assert result.master_url.startswith("spark://127.0.0.1:")
    # The sample export: two fallbacks (one of each kind) in two requests, three generations (a span is not
    # loaded); every view over them has rows.
    assert {
        name: rows for name, rows in result.rows.items() if "." in name and "_" in name.split(".")[0]
    } == {
        "analytics_staging.stg_langfuse__events": 2,
        "analytics_staging.stg_langfuse__generations": 3,
        "analytics_intermediate.int_requests": 2,
        "analytics_intermediate.int_fallback_events_enriched": 2,
    }
    assert all(result.rows[f"analytics.{name}"] > 0 for name in FALLBACK_VIEWS), result.rows
    # The work ran on the workers' executors, not in the Thrift server's own process.
    for worker in (1, 2):
        log = (tmp_path / "cluster" / f"worker-{worker}.log").read_text()
        assert "Asked to launch executor" in log, f"worker {worker} ran no executor"
    # Everything started was stopped: no process is left that runs with this state folder.
    assert _processes_mentioning(str(tmp_path)) == []
