"""The staging models on both engines from one Langfuse export: the same columns and the same rows.

The export has what real ones have: Parquet and JSONL (gzipped and plain) files, a legacy ``observations/``
folder, rows repeated across overlapping runs, corrected rows (a newer ``updated_at``) and a stale copy
arriving late, metadata JSON-quoted by SDK v5 and plain, numbers as strings, types the warehouse does not
load, a run still being written (no manifest yet), a file whose latencies are milliseconds, and lines neither
engine can use (not JSON, no trace id).
PostgreSQL gets it through the ingest, in two runs as the export grows; Spark reads the final folder in
place. Both then build the staging models (``dbt build``: models, unit tests, data tests), and every row of
every column is compared, lineage columns aside: ``loaded_at`` (load time there, file time here) and
``batch_id`` (no load runs on Spark).
"""

from __future__ import annotations

import gzip
import json
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from ingest.db import Database
from ingest.warehouse import spark
from ingest.warehouse.dbt import run_dbt
from tests.support.export_files import write_jsonl, write_parquet
from tests.support.ingest_runner import run_ingest
from tests.support.spark import SparkWarehouse

pytestmark = [pytest.mark.dbt, pytest.mark.xdist_group("spark")]

MODELS = {"stg_langfuse__events": "event_id", "stg_langfuse__generations": "generation_id"}
LINEAGE = {"loaded_at", "batch_id"}
JSON_COLUMNS = {"metadata", "model_parameters", "usage_details", "cost_details"}
STAGING = ["build", *spark.STAGING_SELECTION]

GPT_MINI = "openai/gpt-4o-mini"
FLASH_LITE = "gemini/gemini-2.5-flash-lite"
PRO = "gemini/gemini-2.5-pro"


def quoted(value: str) -> str:
    """A metadata value as SDK v5 writes it: JSON-encoded inside the string map."""
    return json.dumps(value)


def row(oid: str, trace: str, type_: str, at: str, **fields: Any) -> dict[str, Any]:
    """An observations_v2 export row with every column Langfuse writes (prompts and answers included)."""
    base: dict[str, Any] = {
        "id": oid,
        "trace_id": trace,
        "start_time": f"2026-11-24 {at}",
        "end_time": f"2026-11-24 {at}",
        "project_id": "proj-a",
        "parent_observation_id": f"{trace[:15]}r",
        "type": type_,
        "name": "llm_call" if type_.upper() == "GENERATION" else "cache_hit",
        "level": "DEFAULT",
        "status_message": None,
        "version": None,
        "environment": "default",
        "completion_start_time": None,
        "created_at": f"2026-11-24 {at}",
        "updated_at": f"2026-11-24 {at}",
        "input": '{"messages": [{"role": "user", "content": "a prompt"}]}',
        "output": '{"role": "assistant", "content": "an answer"}',
        "metadata": {},
        "provided_model_name": GPT_MINI if type_.upper() == "GENERATION" else None,
        "model_parameters": None,
        "usage_details": {},
        "cost_details": {},
        "total_cost": None,
        "latency": 0.0,
        "time_to_first_token": None,
        "tags": [],
        "trace_name": "chat",
    }
    return base | fields


def run_one() -> list[dict[str, Any]]:
    """The first export run (Parquet)."""
    return [
        # A rate-limit fallback: the failed attempt, the JSON-quoted event, the answer on the fallback model.
        row(
            "a000000000000g01",
            "a" * 32,
            "GENERATION",
            "10:00:00.100000",
            level="ERROR",
            status_message="429 Too Many Requests",
            metadata={"cost_usd": "0"},
            end_time="2026-11-24 10:00:00.400000",
            latency=0.3,
            usage_details={"input": 0, "output": 0, "total": 0},
            cost_details={"total": 0.0},
            total_cost=0.0,
        ),
        row(
            "a000000000000e01",
            "a" * 32,
            "EVENT",
            "10:00:00.401000",
            name="rate_limit_fallback",
            metadata={
                "original_model": quoted(GPT_MINI),
                "fallback_model": quoted(FLASH_LITE),
                "reason": quoted("rate_limit_or_error"),
                "attempt": "2",
            },
        ),
        row(
            "a000000000000g02",
            "a" * 32,
            "GENERATION",
            "10:00:00.402000",
            provided_model_name=FLASH_LITE,
            metadata={"cost_usd": "0.000183"},
            end_time="2026-11-24 10:00:02.002000",
            latency=1.6,
            completion_start_time="2026-11-24 10:00:00.902000",
            time_to_first_token=0.5,
            model_parameters='{"temperature": 0.2, "max_tokens": 512}',
            usage_details={"input": 1210, "output": 155, "total": 1365},
            cost_details={"input": 0.000121, "output": 0.000062, "total": 0.000183},
            total_cost=0.000183,
        ),
        # A context-length fallback whose sizes are numbers as strings, one of them JSON-quoted.
        row(
            "b000000000000e01",
            "b" * 32,
            "EVENT",
            "11:30:00.000000",
            name="context_length_fallback",
            parent_observation_id="",
            metadata={
                "original_model": quoted(GPT_MINI),
                "fallback_model": quoted(PRO),
                "estimated_tokens": "150000",
                "original_max_context": quoted("128000"),
                "fallback_max_context": "2097152.0",
                "zip": "00123",
                "flag": "true",
                "nothing": "null",
                "nested": '{"a": [1, 2]}',
                "note": 'quote " and backslash \\ inside',
            },
        ),
        row(
            "b000000000000g01",
            "b" * 32,
            "GENERATION",
            "11:30:00.010000",
            provided_model_name=PRO,
            metadata={"cost_usd": "0.19375"},
            end_time="2026-11-24 11:30:09.500000",
            latency=9.49,
            usage_details={"input": 150000, "output": 625},
            total_cost=0.19375,
        ),
        # A span (not loaded), and a generation corrected in the next run.
        row("c000000000000s01", "c" * 32, "SPAN", "12:00:00.000000", name="autopicker.request"),
        row(
            "c000000000000g01",
            "c" * 32,
            "GENERATION",
            "12:00:00.100000",
            updated_at="2026-11-24 12:00:05.000000",
            level="ERROR",
            metadata={"cost_usd": "0"},
            total_cost=0.0,
        ),
        # A generation whose stale copy arrives in the next run.
        row(
            "c000000000000g02",
            "c" * 32,
            "GENERATION",
            "12:00:01.000000",
            updated_at="2026-11-24 12:30:00.000000",
            metadata={"cost_usd": "0.002"},
            total_cost=0.002,
        ),
    ]


def run_two(first: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The second export run (JSONL, gzipped): overlapping rows, corrections, new traces."""
    by_id = {r["id"]: r for r in first}
    return [
        by_id["b000000000000e01"],  # on both windows' boundary: in both runs, unchanged
        by_id["b000000000000g01"],
        by_id["c000000000000g01"]
        | {
            "updated_at": "2026-11-24 12:10:00.000000",
            "level": "DEFAULT",
            "metadata": {"cost_usd": "0.004"},
            "total_cost": 0.004,
        },
        by_id["c000000000000g02"] | {"updated_at": "2026-11-24 12:05:00.000000", "total_cost": 9.0},
        row(
            "d000000000000e01",
            "d" * 32,
            "event",
            "13:00:00.000000",
            name="context_length_fallback",
            metadata={
                "original_model": GPT_MINI,
                "fallback_model": PRO,
                "estimated_tokens": "lots",
                "original_max_context": "1e30",
                "fallback_max_context": "1.5e6",
            },
            level=None,
            environment="",
        ),
        row(
            "d000000000000g01",
            "d" * 32,
            "GENERATION",
            "13:00:00.100000",
            provided_model_name="",
            metadata={"cost_usd": "n/a", "max_tokens": "2048"},
            total_cost=0.25,
        ),
    ]


def legacy_rows() -> list[dict[str, Any]]:
    """A legacy observations/ file (another project, no manifests): fewer columns, plain JSONL."""
    keep = (
        "id",
        "trace_id",
        "project_id",
        "type",
        "parent_observation_id",
        "start_time",
        "end_time",
        "name",
        "metadata",
        "level",
        "status_message",
        "provided_model_name",
        "usage_details",
        "cost_details",
        "total_cost",
        "latency",
        "created_at",
        "updated_at",
        "environment",
    )
    rows = [
        row(
            "e000000000000e01",
            "e" * 32,
            "EVENT",
            "09:00:00.000000",
            name="rate_limit_fallback",
            metadata={"original_model": quoted(GPT_MINI), "fallback_model": quoted(PRO)},
            project_id="proj-b",
        ),
        row(
            "e000000000000g01",
            "e" * 32,
            "GENERATION",
            "09:00:00.100000",
            provided_model_name=PRO,
            metadata={"cost_usd": "0.01"},
            total_cost=0.01,
            project_id="proj-b",
        ),
    ]
    return [{k: r[k] for k in keep} for r in rows]


def millisecond_rows() -> list[dict[str, Any]]:
    """An observations_v2 file of an integration that writes latencies in milliseconds."""
    return [
        row(
            "f000000000000g01",
            "f" * 32,
            "GENERATION",
            "08:00:00.000000",
            project_id="proj-c",
            end_time="2026-11-24 08:00:01.234000",
            latency=1234.0,
            time_to_first_token=400.0,
        ),
        row(
            "f000000000000e01",
            "f" * 32,
            "EVENT",
            "08:00:01.300000",
            project_id="proj-c",
            name="rate_limit_fallback",
            latency=0.0,
        ),
    ]


def write_manifest(project: Path, name: str, files: list[tuple[Path, int]]) -> None:
    manifests = project / "manifests"
    manifests.mkdir(parents=True, exist_ok=True)
    entries = [
        {
            "key": f"{project.name}/{path.parent.name}/{path.name}",
            "table": path.parent.name,
            "fileType": "PARQUET" if path.suffix == ".parquet" else "JSONL",
            "format": "parquet" if path.suffix == ".parquet" else "jsonl",
            "compressed": path.suffix == ".gz",
            "sizeBytes": path.stat().st_size,
            "rowCount": rows,
        }
        for path, rows in files
    ]
    document = {"version": 1, "projectId": project.name, "tables": ["observations_v2"], "files": entries}
    (manifests / f"{name}.json").write_text(json.dumps(document, indent=2))


@dataclass
class Export:
    root: Path

    @property
    def project_a(self) -> Path:
        return self.root / "proj-a" / "observations_v2"

    def write_run_one(self) -> None:
        self.project_a.mkdir(parents=True)
        first = run_one()
        parquet = write_parquet(self.project_a / "2026-11-24T11-00-00.parquet", first)
        write_manifest(self.project_a.parent, "2026-11-24T11-00-00", [(parquet, len(first))])
        legacy = self.root / "proj-b" / "observations"
        legacy.mkdir(parents=True)
        write_jsonl(legacy / "2026-11-24T10-00-00.jsonl", legacy_rows())
        millis = self.root / "proj-c" / "observations_v2"
        millis.mkdir(parents=True)
        write_jsonl(millis / "2026-11-24T09-00-00.jsonl", millisecond_rows(), gz=True)

    def write_run_two(self) -> None:
        # Two lines neither engine can use, among good ones: not JSON, and a row without a trace id.
        lines = [json.dumps(r) for r in run_two(run_one())]
        lines[2:2] = ["{not json", json.dumps(row("d000000000000x01", "", "EVENT", "13:00:00.000000"))]
        jsonl = self.project_a / "2026-11-24T13-00-00.jsonl.gz"
        with gzip.open(jsonl, "wt") as handle:
            handle.write("".join(line + "\n" for line in lines))
        write_manifest(self.project_a.parent, "2026-11-24T13-00-00", [(jsonl, len(lines))])
        # A run still being written: its file is there, its manifest not yet.
        unfinished = row("z000000000000e01", "z" * 32, "EVENT", "14:00:00.000000", name="rate_limit_fallback")
        with gzip.open(self.project_a / "2026-11-24T14-00-00.jsonl.gz", "wt") as handle:
            handle.write(json.dumps(unfinished) + "\n")


@pytest.fixture(scope="module")
def export(tmp_path_factory: pytest.TempPathFactory) -> Export:
    return Export(tmp_path_factory.mktemp("langfuse-export"))


@pytest.fixture(scope="module")
def postgres_staging(
    export: Export, module_database: Database, tmp_path_factory: pytest.TempPathFactory
) -> dict[str, list[dict[str, Any]]]:
    """The export through the ingest (two runs, as it grows), then the staging models built on PostgreSQL."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("DATABASE_URL", module_database.url)
        patch.setenv("AUTOPICKER_HOME", str(tmp_path_factory.mktemp("autopicker-home")))
        export.write_run_one()
        first = run_ingest(export.root, "--json")
        assert first.exit_code == 0, first.stderr
        export.write_run_two()
        second = run_ingest(export.root, "--json")
        assert second.exit_code == 1, second.stderr  # the two bad lines are rejected, the rest loads
        assert second.summary["totals"]["rejected"] == 2
    target = tmp_path_factory.mktemp("dbt-postgres")
    code = run_dbt([*STAGING, "--target-path", str(target), "--log-path", str(target)], module_database)
    assert code == 0
    staged = {}
    with module_database.connect() as conn:
        for model, key in MODELS.items():
            cursor = conn.execute(f"select * from analytics_staging.{model} order by {key}")
            names = [column.name for column in cursor.description or []]
            staged[model] = [dict(zip(names, values, strict=True)) for values in cursor.fetchall()]
    return staged


@pytest.fixture(scope="module")
def spark_build(
    export: Export, postgres_staging: dict[str, Any], spark_warehouse: SparkWarehouse
) -> Iterator[dict[str, tuple[str, int | None]]]:
    """The staging models built on Spark over the export folder as it is after both runs."""
    run = spark_warehouse.dbt(*STAGING, export=str(export.root))
    assert run.exit_code == 0, run.results
    yield run.results


@pytest.fixture(scope="module")
def spark_staging(
    spark_build: dict[str, Any], spark_warehouse: SparkWarehouse
) -> dict[str, list[dict[str, Any]]]:
    staged = {}
    for model, key in MODELS.items():
        names, rows = spark_warehouse.query(
            f"select * from {spark_warehouse.schema}_staging.{model} order by {key}"
        )
        staged[model] = [dict(zip(names, values, strict=True)) for values in rows]
    return staged


def comparable(column: str, value: Any) -> Any:
    """A value as both engines' drivers can agree on: UTC instants, dates, parsed JSON, exact numbers."""
    if value is None:
        return None
    if column in JSON_COLUMNS:
        return json.loads(value, parse_float=Decimal) if isinstance(value, str) else _decimals(value)
    if isinstance(value, datetime):
        return value.astimezone(UTC).replace(tzinfo=None) if value.tzinfo else value
    if column == "created_date" and isinstance(value, str):
        return date.fromisoformat(value)
    if isinstance(value, Decimal):
        return value.normalize()
    return value


def _decimals(value: Any) -> Any:
    """JSON as psycopg reads it (floats), with numbers made exact as json.loads(parse_float=Decimal) does."""
    if isinstance(value, float):
        return Decimal(repr(value))
    if isinstance(value, dict):
        return {k: _decimals(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_decimals(v) for v in value]
    return value


def test_both_engines_build_staging_green(spark_build: dict[str, tuple[str, int | None]]) -> None:
    expected = {
        "stg_langfuse__events",
        "stg_langfuse__generations",
        "events_extract_fallback_metadata_safely",
        "generations_cost_prefers_metadata_then_langfuse_total",
        "unique_stg_langfuse__events_event_id",
        "unique_stg_langfuse__generations_generation_id",
    }
    assert expected <= set(spark_build)
    assert {status for status, _ in spark_build.values()} <= {"success", "pass"}, spark_build


@pytest.mark.parametrize("model", sorted(MODELS))
def test_same_columns(
    model: str,
    postgres_staging: dict[str, list[dict[str, Any]]],
    spark_staging: dict[str, list[dict[str, Any]]],
) -> None:
    assert list(spark_staging[model][0]) == list(postgres_staging[model][0])


@pytest.mark.parametrize("model", sorted(MODELS))
def test_same_rows(
    model: str,
    postgres_staging: dict[str, list[dict[str, Any]]],
    spark_staging: dict[str, list[dict[str, Any]]],
) -> None:
    def content(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
        return [{k: comparable(k, v) for k, v in r.items() if k not in LINEAGE} for r in rows]

    pg, sp = content(postgres_staging[model]), content(spark_staging[model])
    assert [r[MODELS[model]] for r in sp] == [r[MODELS[model]] for r in pg]
    for pg_row, spark_row in zip(pg, sp, strict=True):
        assert spark_row == pg_row


def test_the_rules_hold(spark_staging: dict[str, list[dict[str, Any]]]) -> None:
    """What the comparison rests on, checked on its own: the ingest's rules where this export tests them."""
    events = {r["event_id"]: r for r in spark_staging["stg_langfuse__events"]}
    generations = {r["generation_id"]: r for r in spark_staging["stg_langfuse__generations"]}
    # EVENT and GENERATION only (any case); the unfinished run's file is left out.
    assert set(events) == {
        "a000000000000e01",
        "b000000000000e01",
        "d000000000000e01",
        "e000000000000e01",
        "f000000000000e01",
    }
    assert "c000000000000s01" not in generations and "d000000000000x01" not in events
    # JSON-quoted metadata is decoded; numbers as strings read as numbers, a non-number as null.
    assert (events["a000000000000e01"]["original_model"], events["a000000000000e01"]["reason"]) == (
        GPT_MINI,
        "rate_limit_or_error",
    )
    assert (
        events["b000000000000e01"]["estimated_tokens"],
        events["b000000000000e01"]["original_max_context"],
    ) == (
        150000,
        128000,
    )
    assert json.loads(events["b000000000000e01"]["metadata"])["zip"] == "00123"
    assert (
        events["d000000000000e01"]["estimated_tokens"],
        events["d000000000000e01"]["fallback_max_context"],
    ) == (
        None,
        1500000,
    )
    # The corrected row wins; a stale copy arriving later does not.
    assert (generations["c000000000000g01"]["level"], generations["c000000000000g01"]["cost_usd"]) == (
        "DEFAULT",
        Decimal("0.004"),
    )
    assert generations["c000000000000g02"]["langfuse_total_cost"] == Decimal("0.002")
    # Milliseconds are read as seconds; a listed file's lineage is its manifest key.
    assert generations["f000000000000g01"]["latency_seconds"] == pytest.approx(1.234)
    assert (
        generations["a000000000000g02"]["source_file"] == "proj-a/observations_v2/2026-11-24T11-00-00.parquet"
    )
