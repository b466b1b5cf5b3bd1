"""A test module's schemas on the shared Spark Thrift server: dbt on the ``spark`` target, and queries."""

from __future__ import annotations

import json
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass, field
from itertools import count
from pathlib import Path
from typing import Any

from ingest.warehouse import spark

#: The tests' server compiles no Java code per query: Spark's generated code (whole-stage and per expression)
#: gives the answers its interpreted evaluation gives, and on the tests' small tables compiling it costs more
#: than it saves: the demo's build on Spark took about 12 % less time and 13 % less of the server's CPU
#: without it (docs/benchmarks.md).
TEST_SETTINGS = {"spark.sql.codegen.wholeStage": "false", "spark.sql.codegen.factoryMode": "NO_CODEGEN"}


@dataclass
class DbtRun:
    exit_code: int
    results: dict[str, tuple[str, int | None]]  # node name (a unit test's own name) -> (status, failures)


@dataclass
class SparkWarehouse:
    """One test module's schemas on the shared server, and its dbt target and log folders."""

    server: spark.ThriftServer
    schema: str  # the dbt target schema; the source view lives in <schema>_raw
    root: Path
    _runs: Iterator[int] = field(default_factory=count)

    @property
    def raw_schema(self) -> str:
        return f"{self.schema}_raw"

    def dbt(self, *args: str, export: str | None = None, variables: dict[str, Any] | None = None) -> DbtRun:
        """One dbt command on the ``spark`` target, in this module's schemas, over ``export``, with dbt vars
        ``variables``."""
        run = self.root / f"run-{next(self._runs):02d}"
        files = ["--target-path", str(self.root / "target"), "--log-path", str(run)]
        code = spark.run_dbt_spark(
            [*args, *files],
            self.server,
            export=export,
            variables={"raw_schema": self.raw_schema, **(variables or {})},
            env={"AUTOPICKER_SPARK_SCHEMA": self.schema},
        ).code
        results_file = self.root / "target" / "run_results.json"
        results = {}
        if results_file.exists():
            for result in json.loads(results_file.read_text())["results"]:
                kind, _, *parts = result["unique_id"].split(".")
                name = parts[-1] if kind == "unit_test" else parts[0]
                results[name] = (result["status"], result.get("failures"))
            results_file.unlink()
        return DbtRun(code, results)

    def query(self, sql: str) -> tuple[list[str], list[tuple[Any, ...]]]:
        """Column names and rows of one query."""
        return spark.query(self.server, sql)


@dataclass(frozen=True)
class SparkDemo:
    """What ``autopicker demo --target spark`` printed and left: its state folder (``home``, where the
    report is) and the schemas it built (the views in ``schema``, the export's source view in
    ``raw_schema``)."""

    run: subprocess.CompletedProcess[str]
    home: Path
    server: spark.ThriftServer
    schema: str
    raw_schema: str = "langfuse_raw"  # the demo's dbt vars are a user's: the source in the default schema
