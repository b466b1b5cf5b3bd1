"""`autopicker report --target spark`: the report of the warehouse built on Spark, checked in a real browser.

The warehouse is the one ``autopicker demo --target spark`` built (the session's ``spark_demo``): simulated
router traffic of the last three days, a Langfuse export as the offline sink writes it, built in place on the
shared Spark Thrift server with ``dbt build --full-refresh``, models and tests. The report is read from the
Spark views, written, and opened in headless Chromium: every widget draws, nothing leaves the page, no error
is logged, the numbers shown are the Spark views' own, and the tables name the views where Spark holds them.
"""

from __future__ import annotations

from datetime import date, datetime
from pathlib import Path

import pytest

from autopicker.report.data import FALLBACK_VIEWS, ReportData, collect_spark
from autopicker.report.page import write_report
from ingest.warehouse import spark
from tests.report.test_report import MARKS_JS, WIDGETS
from tests.support.browser import chromium, open_file
from tests.support.spark import SparkDemo

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
def built(spark_demo: SparkDemo) -> SparkDemo:
    """The demo's build, every model and test passed."""
    assert spark_demo.run.returncode == 0, spark_demo.run.stdout[-3000:] + spark_demo.run.stderr
    return spark_demo


@pytest.fixture(scope="module")
def data(built: SparkDemo) -> ReportData:
    return collect_spark(built.server, built.schema, built.raw_schema)


def test_the_spark_views_are_read_typed_as_on_postgresql(built: SparkDemo, data: ReportData) -> None:
    assert isinstance(data.loaded_at, datetime) and data.loaded_at.utcoffset() is not None
    assert data.days and all(isinstance(day, date) for day in data.days)
    _, rows = spark.query(
        built.server, f"select sum(fallback_count), count(*) from {built.schema}.monitoring_fallbacks_daily"
    )
    fallbacks, days = rows[0]
    shown = data.rows("monitoring_fallbacks_daily")
    assert (sum(row["fallback_count"] for row in shown), len(shown)) == (fallbacks, days)
    assert fallbacks > 0


def test_the_report_of_the_spark_warehouse_draws_every_widget(
    built: SparkDemo, data: ReportData, tmp_path: Path
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
