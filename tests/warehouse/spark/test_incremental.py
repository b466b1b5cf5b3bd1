"""Incremental builds on Spark: day partitions rebuilt by insert_overwrite give what a full refresh gives.

A first export (simulated traffic over three days, the first run as Parquet, and a trace alone on its day)
is built on Spark. Then files arrive, a day later by their modification time: the run held back (new
traces), and a run of late rows (a generation and a fallback event added to traces of the first day) and
corrected rows (newer ``updated_at``: other levels and costs, and the lone trace moved to the day before).
An incremental ``dbt build`` (models and data tests) picks them up, rewriting only the days they touch; its
intermediate models and views are then compared, row by row, with a ``--full-refresh`` of the same export.
"""

from __future__ import annotations

import os
import shutil
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import pytest

from router.simulate import simulate
from tests.support.export_files import add_run, parquet_run, read_jsonl_gz, shifted
from tests.support.spark import SparkWarehouse
from tests.warehouse.spark.test_parity import VIEWS, correct

pytestmark = [pytest.mark.dbt, pytest.mark.xdist_group("spark")]

END = datetime(2026, 11, 24, 12, 0, tzinfo=UTC)
VARIABLES = {"reporting_now": "2026-11-24 12:20:00"}
PROJECT = "incremental"
#: The files' modification times: the first load's a day apart up to this, the second load's a day later.
FIRST_LOAD = datetime(2026, 11, 24, 13, 0, tzinfo=UTC).timestamp()
SECOND_LOAD = FIRST_LOAD + 86_400
LONE_TRACE = "1" * 32
LONE_DAY, LONE_DAY_AFTER = date(2026, 11, 19), date(2026, 11, 18)
#: Intermediate models and their key; columns that say when a build ran differ between builds.
MODELS = {
    "int_trace_spans": "trace_id",
    "int_requests": "trace_id",
    "int_fallback_events_enriched": "event_id",
    "int_fallback_events_bucketed": "bucket_day",
    "int_requests_daily": "request_date",
    "int_fallbacks_hourly": "fallback_date",
    "int_fallbacks_hourly_by_type": "fallback_date",
    "int_request_latency_daily": "request_date",
}
BUILD_TIME = {"dbt_refreshed_at", "rows_refreshed_through", "events_refreshed_through"}


def _touch(path: Path, moment: float) -> None:
    os.utime(path, (moment, moment))


def _lone_trace(rows: list[dict[str, Any]], day: date) -> list[dict[str, Any]]:
    """A fallback event and a generation of one trace, alone on ``day``, from a simulated pair."""
    event = next(r for r in rows if r["name"].endswith("_fallback"))
    generation = next(r for r in rows if r["trace_id"] == event["trace_id"] and r["type"] == "GENERATION")
    moved = []
    for index, source in enumerate((event, generation)):
        at = f"{day.isoformat()} 10:00:0{index}.000000"
        moved.append(
            source
            | {
                "id": f"1{index:015x}",
                "trace_id": LONE_TRACE,
                "parent_observation_id": "",
                "start_time": at,
                "end_time": at,
                "created_at": at,
                "updated_at": shifted(at, hours=24 * (date(2026, 11, 24) - day).days + 1),
                "completion_start_time": None,
            }
        )
    return moved


class Export:
    """The export folder, as it is before and after the second load."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.project = root / PROJECT
        self.held = root.parent / f"{root.name}-held"

    def first_load(self) -> None:
        simulate(self.root, requests=150, seed=5, days=3, end=END.timestamp(), project_id=PROJECT)
        runs = sorted((self.project / "observations_v2").glob("*.jsonl.gz"))
        assert len(runs) >= 3
        self.first_rows = read_jsonl_gz(runs[0])
        parquet_run(self.project, runs[0])
        # the last run arrives with the second load
        self.held.mkdir()
        last = runs[-1].name.removesuffix(".jsonl.gz")
        for path in (runs[-1], self.project / "manifests" / f"{last}.json"):
            shutil.move(path, self.held / path.name)
        add_run(self.project, "2026-11-19T12-00-00", _lone_trace(self.first_rows, LONE_DAY))
        # one run a day: only the newest is within the incremental models' overlap at the next build
        files = sorted((self.project / "observations_v2").iterdir())
        for age, path in enumerate(reversed(files)):
            _touch(path, FIRST_LOAD - age * 86_400)

    def second_load(self) -> None:
        held = next(self.held.glob("*.jsonl.gz"))
        shutil.move(held, self.project / "observations_v2" / held.name)
        shutil.move(next(self.held.glob("*.json")), self.project / "manifests")
        first_day = [r for r in self.first_rows if r["type"] in {"GENERATION", "EVENT"}]
        late_generation = next(r for r in first_day if r["type"] == "GENERATION")
        late_event = next(r for r in first_day if r["name"].endswith("_fallback"))
        late = [
            late_generation
            | {"id": "2000000000000001", "start_time": shifted(late_generation["start_time"], hours=0.01)},
            late_event | {"id": "2000000000000002", "trace_id": late_generation["trace_id"]},
        ]
        generations = [r for r in first_day if r["type"] == "GENERATION"]
        corrections = [correct(r) for r in generations[1::9]]
        lone_moved = [
            r
            | {
                "start_time": shifted(r["start_time"], hours=-24),
                "created_at": shifted(r["created_at"], hours=-24),
                "end_time": shifted(r["end_time"], hours=-24),
                "updated_at": shifted(r["updated_at"], hours=48),
            }
            for r in _lone_trace(self.first_rows, LONE_DAY)
        ]
        later = add_run(self.project, "2026-11-25T12-00-00", late + corrections + lone_moved)
        _touch(self.project / "observations_v2" / held.name, SECOND_LOAD)
        _touch(later, SECOND_LOAD)


def read_all(warehouse: SparkWarehouse) -> dict[str, list[tuple[Any, ...]]]:
    """Every row of every intermediate model (build times left out) and every view, sorted."""
    tables = {}
    for model in MODELS:
        names, rows = warehouse.query(f"select * from {warehouse.schema}_intermediate.{model}")
        kept = [i for i, name in enumerate(names) if name not in BUILD_TIME]
        tables[model] = sorted((tuple(row[i] for i in kept) for row in rows), key=repr)
    for view in VIEWS:
        _, rows = warehouse.query(f"select * from {warehouse.schema}.{view}")
        tables[view] = sorted((tuple(row) for row in rows), key=repr)
    return tables


@pytest.fixture(scope="module")
def builds(spark_warehouse: SparkWarehouse, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """The first build, the incremental one after the second load, and a full refresh; what each left."""
    export = Export(tmp_path_factory.mktemp("incremental-export"))
    export.first_load()
    first = spark_warehouse.dbt("run", export=str(export.root), variables=VARIABLES)
    assert first.exit_code == 0, first.results
    refreshed = (
        f"select request_date, max(dbt_refreshed_at) from {spark_warehouse.schema}_intermediate.int_requests"
        " group by request_date"
    )
    before = dict(spark_warehouse.query(refreshed)[1])

    export.second_load()
    second = spark_warehouse.dbt("build", export=str(export.root), variables=VARIABLES)
    failed = {name: result for name, result in second.results.items() if result[0] not in {"success", "pass"}}
    assert second.exit_code == 0, failed
    after = dict(spark_warehouse.query(refreshed)[1])
    incremental = read_all(spark_warehouse)

    full = spark_warehouse.dbt("run", "--full-refresh", export=str(export.root), variables=VARIABLES)
    assert full.exit_code == 0, full.results
    return {"before": before, "after": after, "incremental": incremental, "full": read_all(spark_warehouse)}


@pytest.mark.parametrize("relation", [*MODELS, *VIEWS])
def test_incremental_build_equals_a_full_refresh(relation: str, builds: dict[str, Any]) -> None:
    assert builds["incremental"][relation] == builds["full"][relation]
    assert builds["full"][relation], f"{relation} is empty: nothing compared"


def test_only_the_days_touched_were_rewritten(builds: dict[str, Any]) -> None:
    before, after = builds["before"], builds["after"]
    kept = {day for day in before if day in after and after[day] == before[day]}
    rewritten = {day for day in after if day not in before or after[day] > before[day]}
    assert kept, "every day was rebuilt: the build was not incremental"
    # the late and corrected rows' first day, the lone trace's new day, and the held-back run's last day
    assert {LONE_DAY_AFTER, END.date()} <= rewritten
    # the lone trace's old day, left empty, is gone
    assert LONE_DAY in before and LONE_DAY not in after
