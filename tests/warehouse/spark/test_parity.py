"""One Langfuse export built on both engines gives the same views, row by row.

The export is simulated router traffic (both fallback kinds, metadata JSON-quoted as SDK v5 writes it) in
daily runs, the first of them rewritten as Parquet, then a later run in plain JSONL that repeats rows of the
earlier ones (duplicates across runs), corrects some (a newer ``updated_at``, another cost and level) and
carries a stale copy of another (an older ``updated_at``, which must lose). PostgreSQL gets it through
``autopicker ingest files`` and ``dbt build``; Spark reads the folder in place
(``autopicker build --target spark --export-uri``). Both builds take the same instant for now (dbt var
``reporting_now``), so every fallback view, every dashboard view and the alerts are compared whole: every row,
every typed value, floats (latency percentiles from histograms, averages of doubles) within 1e-9 relative.
``autopicker show --format json`` is compared too.
"""

from __future__ import annotations

import json
import math
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from psycopg.rows import dict_row

from ingest.db import Database
from ingest.warehouse.dbt import run_dbt
from ingest.warehouse.views import FALLBACK_VIEWS
from router.simulate import simulate
from tests.support.cli import REPO, run_cli
from tests.support.export_files import add_run, parquet_run, read_jsonl_gz, shifted
from tests.support.ingest_runner import run_ingest
from tests.support.spark import SparkWarehouse

pytestmark = [pytest.mark.dbt, pytest.mark.xdist_group("spark")]

END = datetime(2026, 11, 24, 12, 0, tzinfo=UTC)  # the simulated traffic's last moment
NOW = "2026-11-24 08:35:00"  # what the views take for now: the alerts' windows hold requests and a fallback
PROJECT = "parity"
#: Every view BI tools read: the five fallback views, the dashboards' and the alerts'.
DASHBOARD_VIEWS = tuple(sorted(p.stem for p in (REPO / "models" / "marts" / "dashboards").glob("*.sql")))
VIEWS = (*FALLBACK_VIEWS, *DASHBOARD_VIEWS)
VARIABLES = {"reporting_now": NOW}


def write_export(root: Path) -> dict[str, list[str]]:
    """The export (see the module's doc); returns the ids corrected, repeated and given a stale copy."""
    simulate(root, requests=160, seed=11, days=2, end=END.timestamp(), project_id=PROJECT)
    project = root / PROJECT
    files = sorted((project / "observations_v2").glob("*.jsonl.gz"))
    assert len(files) >= 2
    # The first run as Parquet, as Langfuse writes by default.
    rows = read_jsonl_gz(files[0])
    parquet_run(project, files[0])
    # A later run: corrections, repeats and a stale copy of rows of the earlier runs.
    last = read_jsonl_gz(files[-1])
    generations = [r for r in rows + last if r["type"] == "GENERATION"]
    corrected = [correct(r) for r in generations[::17]]
    corrected_ids = {r["id"] for r in corrected}
    stale = [
        r | {"updated_at": shifted(r["updated_at"], hours=-1), "total_cost": 99.0, "metadata": {}}
        for r in generations[5::23]
        if r["id"] not in corrected_ids
    ]
    changed = corrected_ids | {r["id"] for r in stale}
    repeated = [r for r in rows[3::11] + last[2::13] if r["id"] not in changed]
    later = corrected + repeated + stale
    add_run(project, "2026-11-24T13-00-00", later)
    return {
        "corrected": [r["id"] for r in corrected],
        "repeated": [r["id"] for r in repeated],
        "stale": [r["id"] for r in stale],
    }


def correct(row: dict[str, Any]) -> dict[str, Any]:
    """A corrected version of a generation row: a newer ``updated_at``, another level and cost."""
    cost = round((row["total_cost"] or 0) + 0.0125, 6)
    return row | {
        "updated_at": shifted(row["updated_at"], hours=1),
        "level": "DEFAULT" if row["level"] == "ERROR" else "WARNING",
        "total_cost": cost,
        "metadata": row["metadata"] | {"cost_usd": str(cost)},
    }


Export = tuple[Path, dict[str, list[str]]]


@pytest.fixture(scope="module")
def export(tmp_path_factory: pytest.TempPathFactory) -> Export:
    root = tmp_path_factory.mktemp("parity-export")
    return root, write_export(root)


@pytest.fixture(scope="module")
def postgres(export: Export, module_database: Database, tmp_path_factory: pytest.TempPathFactory) -> Database:
    """The export through the ingest, then every model and test built on PostgreSQL."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("DATABASE_URL", module_database.url)
        patch.setenv("AUTOPICKER_HOME", str(tmp_path_factory.mktemp("autopicker-home")))
        loaded = run_ingest(export[0], "--json")
    assert loaded.exit_code == 0, loaded.stderr
    target = tmp_path_factory.mktemp("dbt-postgres")
    files = ["--target-path", str(target), "--log-path", str(target)]
    assert run_dbt(["build", "--vars", json.dumps(VARIABLES), *files], module_database) == 0
    return module_database


@pytest.fixture(scope="module")
def spark_built(export: Export, postgres: Database, spark_warehouse: SparkWarehouse) -> SparkWarehouse:
    """Every model and test built on Spark over the export folder, as `autopicker build --target spark`
    builds it (the variables aside)."""
    run = spark_warehouse.dbt("build", export=str(export[0]), variables=VARIABLES)
    failed = {name: result for name, result in run.results.items() if result[0] not in {"success", "pass"}}
    assert run.exit_code == 0, failed
    return spark_warehouse


def postgres_rows(database: Database, view: str) -> list[dict[str, Any]]:
    with database.connect() as conn, conn.cursor(row_factory=dict_row) as cur:
        return cur.execute(f"select * from analytics.{view}").fetchall()


def spark_rows(warehouse: SparkWarehouse, view: str) -> list[dict[str, Any]]:
    names, rows = warehouse.query(f"select * from {warehouse.schema}.{view}")
    return [dict(zip(names, row, strict=True)) for row in rows]


def _exact(value: Any) -> Any:
    """A value compared exactly: decimals by value whatever their scale; floats apart (see :func:`_same`)."""
    return value.normalize() if isinstance(value, Decimal) else value


def _order(row: dict[str, Any]) -> tuple[str, ...]:
    return tuple(f"{v:.6g}" if isinstance(v, float) else repr(_exact(v)) for v in row.values())


def _same(left: Any, right: Any) -> bool:
    if isinstance(left, float) and isinstance(right, float):
        return math.isclose(left, right, rel_tol=1e-9, abs_tol=1e-12)
    return type(left) is type(right) and _exact(left) == _exact(right)


@pytest.mark.parametrize("view", VIEWS)
def test_same_rows_on_both_engines(view: str, postgres: Database, spark_built: SparkWarehouse) -> None:
    pg = sorted(postgres_rows(postgres, view), key=_order)
    sp = sorted(spark_rows(spark_built, view), key=_order)
    assert [list(r) for r in sp[:1]] == [list(r) for r in pg[:1]]  # the same columns, in the same order
    assert len(sp) == len(pg)
    for pg_row, spark_row in zip(pg, sp, strict=True):
        differing = {k: (v, spark_row[k]) for k, v in pg_row.items() if not _same(v, spark_row[k])}
        assert differing == {}, f"{view}: PostgreSQL's row {pg_row} differs on Spark (PostgreSQL, Spark)"


def test_the_export_has_what_the_comparison_needs(export: Export, postgres: Database) -> None:
    """Both fallback kinds are in the views; corrections, repeats and stale copies are in the export."""
    kinds = {row["fallback_type"] for row in postgres_rows(postgres, "fallback_all_daily")}
    assert kinds == {"rate_limit_fallback", "context_length_fallback"}
    assert all(export[1].values()), export[1]
    alerts = {row["alert"]: row["current_value"] for row in postgres_rows(postgres, "fallback_alerts")}
    assert alerts["high_fallback_rate"] > 0 and alerts["expensive_fallbacks"] > 0, alerts
    for view in VIEWS:
        assert postgres_rows(postgres, view), f"{view} is empty: nothing compared"


def test_corrected_rows_win_on_both_engines(
    export: Export, postgres: Database, spark_built: SparkWarehouse
) -> None:
    ids = export[1]["corrected"] + export[1]["stale"]
    listed = ", ".join(f"'{i}'" for i in ids)
    sql = "select generation_id, level from {schema}.stg_langfuse__generations where generation_id in ({ids})"
    with postgres.connect() as conn:
        pg = dict(conn.execute(sql.format(schema="analytics_staging", ids=listed)).fetchall())
    _, rows = spark_built.query(sql.format(schema=f"{spark_built.schema}_staging", ids=listed))
    assert dict(rows) == pg
    assert all(pg[i] in {"DEFAULT", "WARNING"} for i in export[1]["corrected"])


def test_show_json_is_the_same_on_both_engines(
    postgres: Database, spark_built: SparkWarehouse, tmp_path: Path
) -> None:
    env = {
        "PATH": "/usr/bin:/bin",
        "HOME": str(tmp_path),
        "AUTOPICKER_HOME": str(tmp_path / "home"),
        "DATABASE_URL": postgres.url,
    }
    pg = run_cli("show", "--format", "json", env=env)
    spark_env = env | spark_built.server.dbt_env() | {"AUTOPICKER_SPARK_SCHEMA": spark_built.schema}
    sp = run_cli("show", "--target", "spark", "--format", "json", env=spark_env)
    assert (pg.returncode, sp.returncode) == (0, 0), pg.stderr + sp.stderr
    pg_views, spark_views = json.loads(pg.stdout), json.loads(sp.stdout)
    assert list(spark_views) == list(pg_views) == list(FALLBACK_VIEWS)
    for view in FALLBACK_VIEWS:
        key = lambda row: json.dumps(row, sort_keys=True)  # noqa: E731
        pg_sorted, spark_sorted = sorted(pg_views[view], key=key), sorted(spark_views[view], key=key)
        assert len(spark_sorted) == len(pg_sorted) > 0
        for pg_row, spark_row in zip(pg_sorted, spark_sorted, strict=True):
            assert list(spark_row) == list(pg_row)
            assert all(_same(v, spark_row[k]) for k, v in pg_row.items()), (view, pg_row, spark_row)
