"""`autopicker ingest files` reads every format Langfuse writes and stores the same typed rows from each."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from ingest.db import Database
from tests.support.export_files import (
    LEGACY_FIXTURE,
    UI_FIXTURE,
    V2_FIXTURE,
    copy_export,
    read_jsonl,
    v2_rows,
    write_csv,
    write_json_array,
    write_jsonl,
    write_parquet,
)
from tests.support.ingest_runner import query, run_ingest, stored

LOADED_IDS = {f"a0000000000000{k}" for k in ("g1", "e1", "g2", "e2", "g3")}


@pytest.fixture(scope="module")
def reference(
    module_database: Database, tmp_path_factory: pytest.TempPathFactory
) -> dict[str, dict[str, Any]]:
    """The rows stored from the observations_v2 JSONL fixture, which every other format must match."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("DATABASE_URL", module_database.url)
        patch.setenv("AUTOPICKER_HOME", str(tmp_path_factory.mktemp("home")))
        run = run_ingest(V2_FIXTURE)
    assert run.exit_code == 0, run.stderr
    return stored(module_database)


def test_reference_rows_are_typed_and_normalised(reference: dict[str, dict[str, Any]]) -> None:
    assert set(reference) == LOADED_IDS  # the SPAN is skipped
    g1, e1, g2, e2, g3 = (reference[f"a0000000000000{k}"] for k in ("g1", "e1", "g2", "e2", "g3"))
    assert (g1["type"], g1["level"], g1["model"]) == ("GENERATION", "ERROR", "openai/gpt-4o-mini")
    assert g1["parent_observation_id"] is None  # "" marks a root row in exports
    assert g1["metadata"] == {"cost_usd": 0}
    assert g1["latency"] == pytest.approx(0.3)
    assert g1["input"] is None and g2["output"] is None  # privacy by default
    assert e1["metadata"] == {
        "original_model": "openai/gpt-4o-mini",
        "fallback_model": "gemini/gemini-2.5-flash-lite",
        "reason": "rate_limit_or_error",
        "attempt": 2,
    }
    assert g2["model_parameters"] == {"temperature": 0.2, "max_tokens": 512}
    assert g2["usage_details"] == {"input": 1210, "output": 155, "total": 1365}
    assert g2["total_cost"] == Decimal("0.000183")
    assert (g2["latency"], g2["time_to_first_token"]) == (pytest.approx(1.6), pytest.approx(0.4))
    assert g2["start_time"].isoformat() == "2026-11-24T10:00:00.402000+00:00"
    assert e2["metadata"] == {
        "original_model": "openai/gpt-4o-mini",
        "fallback_model": "gemini/gemini-2.5-pro",
        "estimated_tokens": 150000,
        "original_max_context": 128000,
        "big": 123456789012345678901234567890,
        "zip": "00123",
        "flag": True,
        "nested": {"a": [1, 2]},
    }
    assert g3["status_message"] == "slow\tprovider\nretried once \\ backslash"
    assert g3["metadata"]["note"] == 'quote " and backslash \\ inside'
    assert g3["level"] == "WARNING"


def test_metadata_reads_naturally_in_sql(
    reference: dict[str, dict[str, Any]], module_database: Database
) -> None:
    rows = query(
        module_database,
        "SELECT id, metadata->>'original_model' AS original, (metadata->>'estimated_tokens')::int AS tokens, "
        "metadata->>'big' AS big, jsonb_typeof(metadata->'estimated_tokens') AS kind "
        "FROM langfuse_raw.observations WHERE type = 'EVENT' ORDER BY id",
    )
    assert [(r["id"], r["original"]) for r in rows] == [
        ("a0000000000000e1", "openai/gpt-4o-mini"),
        ("a0000000000000e2", "openai/gpt-4o-mini"),
    ]
    assert rows[1]["tokens"] == 150000 and rows[1]["kind"] == "number"
    assert rows[1]["big"] == "123456789012345678901234567890"  # every digit kept


def _camel_csv(path: Path) -> Path:
    return write_csv(path, read_jsonl(UI_FIXTURE))


WRITERS: dict[str, Callable[[Path], Path]] = {
    "jsonl": lambda d: write_jsonl(d / "obs.jsonl", v2_rows()),
    "jsonl.gz": lambda d: write_jsonl(d / "obs.jsonl", v2_rows(), gz=True),
    "ndjson": lambda d: write_jsonl(d / "obs.ndjson", v2_rows()),
    "json array": lambda d: write_json_array(d / "obs.json", v2_rows()),
    "json array .gz": lambda d: write_json_array(d / "obs.json", v2_rows(), gz=True),
    "json holding jsonl": lambda d: write_jsonl(d / "obs.json", v2_rows()),
    "csv": lambda d: write_csv(d / "obs.csv", v2_rows()),
    "csv.gz": lambda d: write_csv(d / "obs.csv", v2_rows(), gz=True),
    "parquet": lambda d: write_parquet(d / "obs.parquet", v2_rows()),
    "ui export jsonl (camelCase, ISO times)": lambda d: UI_FIXTURE,
    "ui export csv (camelCase)": lambda d: _camel_csv(d / UI_FIXTURE.with_suffix(".csv").name),
    "legacy observations/ table": lambda d: LEGACY_FIXTURE,
}


@pytest.mark.parametrize("kind", list(WRITERS))
def test_every_format_stores_the_same_rows(
    kind: str, reference: dict[str, dict[str, Any]], cli_env: Database, tmp_path: Path
) -> None:
    path = WRITERS[kind](tmp_path)
    run = run_ingest(path, "--json")
    assert run.exit_code == 0, run.stderr
    totals = run.summary["totals"]
    assert (totals["rows_read"], totals["inserted"], totals["rejected"]) == (6, 5, 0)
    assert totals["skipped_types"] == {"SPAN": 1}
    assert stored(cli_env) == reference


def test_sample_export_with_manifest(cli_env: Database, tmp_path: Path) -> None:
    prefix = copy_export(tmp_path / "export")
    run = run_ingest(prefix, "--json")
    assert run.exit_code == 0, run.stderr
    [file] = run.summary["files"]
    assert file["file"] == "proj-demo/observations_v2/2026-11-24T12-00-00.jsonl.gz"  # the object key
    assert (file["rows_read"], file["inserted"], file["skipped_types"]) == (6, 5, {"SPAN": 1})
    rows = stored(cli_env)
    fallback = rows["e1b2c3d4e5f60718"]
    assert fallback["metadata"]["estimated_tokens"] == 150000
    assert fallback["metadata"]["original_model"] == "openai/gpt-4o-mini"
    assert rows["c1b2c3d4e5f60718"]["metadata"]["fallback_model"] == "gemini/gemini-2.5-flash-lite"
    lineage = query(cli_env, "SELECT DISTINCT _source_file, _batch_id FROM langfuse_raw.observations")
    batches = query(
        cli_env, "SELECT batch_id, rows_loaded, rows_rejected, finished_at FROM langfuse_raw.load_batches"
    )
    assert lineage == [{"_source_file": file["file"], "_batch_id": batches[0]["batch_id"]}]
    assert (batches[0]["rows_loaded"], batches[0]["rows_rejected"]) == (5, 0)
    assert batches[0]["finished_at"] is not None


def test_with_io_keeps_prompts_and_answers(cli_env: Database, tmp_path: Path) -> None:
    run = run_ingest(V2_FIXTURE, "--with-io")
    assert run.exit_code == 0, run.stderr
    g2 = stored(cli_env)["a0000000000000g2"]
    assert g2["input"] == {"messages": [{"role": "user", "content": "hi"}]}
    assert g2["output"] == "hello there"


def test_parquet_metadata_as_json_text_or_struct(cli_env: Database, tmp_path: Path) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    table = pa.table(
        {
            "id": ["p1", "p2"],
            "trace_id": ["t1", "t2"],
            "type": ["EVENT", "EVENT"],
            "start_time": pa.array(
                [datetime(2026, 11, 24, 10, 0, 0, tzinfo=UTC), datetime(2026, 11, 24, 10, 0, 1, tzinfo=UTC)],
                pa.timestamp("us", "UTC"),
            ),
            "metadata_text": ['{"original_model": "\\"m\\"", "n": "5"}', None],
            "metadata_struct": pa.array([None, {"original_model": "m", "n": "5"}]),
        }
    )
    text = table.drop_columns(["metadata_struct"]).rename_columns(
        ["id", "trace_id", "type", "start_time", "metadata"]
    )
    struct = table.drop_columns(["metadata_text"]).rename_columns(
        ["id", "trace_id", "type", "start_time", "metadata"]
    )
    pq.write_table(text.slice(0, 1), tmp_path / "a.parquet")
    pq.write_table(struct.slice(1, 1), tmp_path / "b.parquet")
    run = run_ingest(tmp_path)
    assert run.exit_code == 0, run.stderr
    rows = stored(cli_env)
    assert rows["p1"]["metadata"] == rows["p2"]["metadata"] == {"original_model": "m", "n": 5}
    assert rows["p1"]["start_time"].isoformat() == "2026-11-24T10:00:00+00:00"


def test_folder_skips_traces_and_scores_with_a_note(cli_env: Database, tmp_path: Path) -> None:
    for table in ("observations", "traces", "scores"):
        (tmp_path / "proj" / table).mkdir(parents=True)
    write_jsonl(tmp_path / "proj" / "observations" / "x.jsonl", v2_rows()[:2])
    write_jsonl(tmp_path / "proj" / "traces" / "x.jsonl", [{"id": "t"}])
    write_jsonl(tmp_path / "proj" / "scores" / "x.jsonl", [{"id": "s"}])
    (tmp_path / "1764000000000-lf-traces-export-proj.csv").write_text('"id"\n"t"\n')
    (tmp_path / "README.txt").write_text("not data")
    run = run_ingest(tmp_path, "--json")
    assert run.exit_code == 0, run.stderr
    assert [f["file"] for f in run.summary["files"]] == [str(tmp_path / "proj" / "observations" / "x.jsonl")]
    assert sorted(run.summary["notes"]) == [
        "ignored 1 file(s) of table scores (only observations are loaded)",
        "ignored 1 file(s) with an unknown extension",
        "ignored 2 file(s) of table traces (only observations are loaded)",
    ]
    assert set(stored(cli_env)) == {"a0000000000000g1", "a0000000000000e1"}
