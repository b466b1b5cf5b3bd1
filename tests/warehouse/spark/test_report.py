"""`autopicker report --target spark`: the report of the warehouse built on Spark, checked in a real browser.

Simulated router traffic of the last three days (a Langfuse export, as the offline sink writes it) is built
on the shared Spark Thrift server with `dbt build`, models and tests; the report is then read from the Spark
views, written, and opened in headless Chromium: every widget draws, nothing leaves the page, no error is
logged, the numbers shown are the Spark views' own, and the tables name the views where Spark holds them.
"""

from __future__ import annotations

from datetime import date, datetime
from pathlib import Path

import pytest

from autopicker.report.data import FALLBACK_VIEWS, ReportData, collect_spark
from autopicker.report.page import write_report
from router.simulate import simulate
from tests.report.test_report import MARKS_JS, WIDGETS
from tests.support.browser import chromium, open_file
from tests.support.spark import SparkWarehouse

pytestmark = [pytest.mark.dbt, pytest.mark.xdist_group("spark")]

CAPTIONS_JS = (
    "() => Object.fromEntries([...document.querySelectorAll('table[data-view] > caption code')]"
    ".map(c => [c.closest('table').dataset.view, c.textContent]))"
)
STATES_JS = (
    "() => Object.fromEntries([...document.querySelectorAll('figure[data-widget]')]"
    ".map(f => [f.dataset.widget, f.dataset.state]))"
)


@pytest.fixture(scope="module")
def built(spark_warehouse: SparkWarehouse, tmp_path_factory: pytest.TempPathFactory) -> SparkWarehouse:
    export = tmp_path_factory.mktemp("simulated-export")
    simulate(export, requests=400, seed=11, days=3, project_id="spark-report")
    run = spark_warehouse.dbt("build", export=str(export))
    failed = {name: result for name, result in run.results.items() if result[0] not in {"success", "pass"}}
    assert run.exit_code == 0, failed
    return spark_warehouse


@pytest.fixture(scope="module")
def data(built: SparkWarehouse) -> ReportData:
    return collect_spark(built.server, built.schema, built.raw_schema)


def test_the_spark_views_are_read_typed_as_on_postgresql(built: SparkWarehouse, data: ReportData) -> None:
    assert isinstance(data.loaded_at, datetime) and data.loaded_at.utcoffset() is not None
    assert data.days and all(isinstance(day, date) for day in data.days)
    _, rows = built.query(
        f"select sum(fallback_count), count(*) from {built.schema}.monitoring_fallbacks_daily"
    )
    fallbacks, days = rows[0]
    shown = data.rows("monitoring_fallbacks_daily")
    assert (sum(row["fallback_count"] for row in shown), len(shown)) == (fallbacks, days)
    assert fallbacks > 0


def test_the_report_of_the_spark_warehouse_draws_every_widget(
    built: SparkWarehouse, data: ReportData, tmp_path: Path
) -> None:
    index = write_report(data, tmp_path / "report").index
    with chromium() as browser, open_file(browser, index) as page:
        assert page.outside == [] and page.errors == [] and page.console_errors == []
        states = page.page.evaluate(STATES_JS)
        marks = page.page.evaluate(MARKS_JS)
        captions = page.page.evaluate(CAPTIONS_JS)
        page.page.screenshot(path=str(tmp_path / "report.png"), full_page=True)
    assert states == dict.fromkeys(WIDGETS, "drawn")
    assert all(marks[widget] > 0 for widget in WIDGETS), marks
    # every table names its view where Spark holds it: the target's schema, not PostgreSQL's analytics
    assert data.schema == built.schema != "analytics"
    assert {view: captions[view] for view, _ in FALLBACK_VIEWS} == {
        view: f"{built.schema}.{view}" for view, _ in FALLBACK_VIEWS
    }
    assert all(caption == f"{built.schema}.{view}" for view, caption in captions.items()), captions
