"""`autopicker demo --target spark`: simulated traffic written as an export, built on Spark in place, the five
views printed and the report written, on the shared Spark Thrift server (in a schema of its own; the run is
the session's ``spark_demo``, whose build the report's tests read too)."""

from __future__ import annotations

import re

import pytest

from ingest.warehouse import spark
from ingest.warehouse.views import VIEWS
from tests.support.spark import SparkDemo

pytestmark = [pytest.mark.dbt, pytest.mark.xdist_group("spark")]


def test_the_demo_on_spark_builds_the_export_and_shows_its_fallbacks(spark_demo: SparkDemo) -> None:
    demo = spark_demo.run
    assert demo.returncode == 0, demo.stdout[-3000:] + demo.stderr
    # the note that the build goes to the server named by the environment, not to a local one
    assert "AUTOPICKER_SPARK_HOST is set" in demo.stderr
    steps = re.findall(r"\d/5 [^\n─]+", demo.stdout)
    assert [step.split()[0] for step in steps] == ["1/5", "2/5", "3/5", "4/5", "5/5"]
    assert "ingest" not in " ".join(steps)
    built = re.search(r"dbt build: (.*)", demo.stdout)
    assert built is not None and "error" not in built.group(1) and "fail" not in built.group(1)
    for _, title in VIEWS:
        assert title in demo.stdout
    # the fallbacks the simulation reports are the ones the Spark views count
    simulated = re.search(r"\(([\d,]+) rate-limit and ([\d,]+) context-length fallback events\)", demo.stdout)
    assert simulated is not None
    expected = {
        "rate_limit_fallback": int(simulated.group(1).replace(",", "")),
        "context_length_fallback": int(simulated.group(2).replace(",", "")),
    }
    _, rows = spark.query(
        spark_demo.server,
        f"select fallback_type, sum(total_fallbacks) from {spark_demo.schema}.fallback_all_daily"
        " group by fallback_type",
    )
    assert {kind: int(count) for kind, count in rows} == expected
    assert sum(expected.values()) > 0
    index = spark_demo.home / "report" / "index.html"
    assert demo.stdout.rstrip().endswith(f"report: {index}")
    page = index.read_text()
    assert "<h1>AutoPicker fallback report</h1>" in page
    # the tables' captions name the views where this build put them: the target's schema on Spark
    assert all(f"<code>{spark_demo.schema}.{view}</code>" in page for view, _ in VIEWS)
    assert "<code>analytics." not in page
