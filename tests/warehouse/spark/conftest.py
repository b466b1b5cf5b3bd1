"""Spark for the tests: one local Spark Thrift server per test session, shared by every Spark test.

A JVM takes half a minute to start, so the server is started once (by the first test that needs it) and each
test module works in schemas of its own on it. Spark test modules carry ``pytest.mark.xdist_group("spark")``:
with ``--dist loadgroup`` they all run on one worker, so one server is started in the whole run.

A build on Spark takes minutes whatever the data (each statement pays Spark's fixed cost), so modules that
need the same build share it: ``autopicker demo --target spark`` runs once (:func:`spark_demo`), for the
demo's own checks and for the report's.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from ingest.warehouse import spark
from tests.support.cli import run_cli
from tests.support.spark import TEST_SETTINGS, SparkDemo, SparkWarehouse


@pytest.fixture(scope="session")
def spark_state(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The shared Thrift server's state folder."""
    return tmp_path_factory.mktemp("spark-state")


@pytest.fixture(scope="session")
def spark_server(spark_state: Path) -> Iterator[spark.ThriftServer]:
    """A local Spark Thrift server with its state in a temporary folder (settings :data:`TEST_SETTINGS`);
    stopped after the session."""
    server = spark.start_thrift_server(spark_state, settings=TEST_SETTINGS)
    try:
        yield server
    finally:
        stopped = spark.stop_thrift_server(spark_state)
        assert stopped and spark.running_thrift_server(spark_state) is None, "the Thrift server did not stop"


@pytest.fixture(scope="module")
def spark_warehouse(
    spark_server: spark.ThriftServer, request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> SparkWarehouse:
    """Schemas of this module's own on the shared server (named after the module)."""
    name = request.module.__name__.split(".")[-1].removeprefix("test_")
    return SparkWarehouse(spark_server, f"t_{name}", tmp_path_factory.mktemp(f"dbt-{name}"))


@pytest.fixture(scope="session")
def spark_demo(spark_server: spark.ThriftServer, tmp_path_factory: pytest.TempPathFactory) -> SparkDemo:
    """``autopicker demo --target spark`` over three days of simulated traffic (400 requests, seed 11), run
    once, on the shared server, in schema ``t_demo``, as a user runs it: the simulated export, ``dbt build
    --full-refresh`` of every model and test over it in place, the views printed and the report written."""
    folder = tmp_path_factory.mktemp("spark-demo")
    home, schema = folder / "home", "t_demo"
    env = {
        "PATH": "/usr/bin:/bin",
        "HOME": str(folder),
        "AUTOPICKER_HOME": str(home),
        "AUTOPICKER_SPARK_SCHEMA": schema,
        **spark_server.dbt_env(),
    }
    arguments = ("--requests", "400", "--days", "3", "--seed", "11")
    run = run_cli("demo", "--target", "spark", *arguments, env=env, timeout=3600)
    return SparkDemo(run, home, spark_server, schema)
