"""Spark for the tests: one local Spark Thrift server per test session, shared by every Spark test.

A JVM takes half a minute to start, so the server is started once (by the first test that needs it) and each
test module works in schemas of its own on it. Spark test modules carry ``pytest.mark.xdist_group("spark")``:
with ``--dist loadgroup`` they all run on one worker, so one server is started in the whole run.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from ingest.warehouse import spark
from tests.support.spark import SparkWarehouse


@pytest.fixture(scope="session")
def spark_state(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The shared Thrift server's state folder."""
    return tmp_path_factory.mktemp("spark-state")


@pytest.fixture(scope="session")
def spark_server(spark_state: Path) -> Iterator[spark.ThriftServer]:
    """A local Spark Thrift server with its state in a temporary folder; stopped after the session."""
    server = spark.start_thrift_server(spark_state)
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
