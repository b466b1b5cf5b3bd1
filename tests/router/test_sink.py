"""The offline sink: the SDK's spans written as a Langfuse observations_v2 blob-storage export."""

from __future__ import annotations

import gzip
import json
import re
from pathlib import Path

import pytest

from autopicker.export_row import NAMES
from router import AutoPickerLLM, ManualClock, SimulatedProvider
from router.tracing import Tracing
from tests.support.router import ask, simulated_llm

# A small export in the layout Langfuse writes.
SAMPLE = Path(__file__).resolve().parents[1] / "fixtures" / "ingest" / "export" / "proj-demo"
MINI, LITE, PRO = "openai/gpt-4o-mini", "gemini/gemini-2.5-flash-lite", "gemini/gemini-2.5-pro"
ROW_TIME = re.compile(r"^\d{4}-\d{2}-\d{2} \d{2}:\d{2}:\d{2}\.\d{6}$")
ISO_MS = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z$")
COLUMNS = list(NAMES)  # the export row, in Langfuse's order


def read_run(out: Path, project: str) -> tuple[list[dict], list[dict]]:
    manifests = sorted((out / project / "manifests").glob("*.json"))
    rows: list[dict] = []
    loaded = []
    for path in manifests:
        manifest = json.loads(path.read_text())
        loaded.append(manifest)
        (entry,) = manifest["files"]
        data = out / entry["key"]
        assert data.stat().st_size == entry["sizeBytes"]
        lines = gzip.decompress(data.read_bytes()).splitlines()
        assert len(lines) == entry["rowCount"]
        rows.extend(json.loads(line) for line in lines)
    return loaded, rows


@pytest.fixture
def offline(tmp_path: Path):  # noqa: ANN201
    clock = ManualClock(1_763_000_000.0)
    tracing = Tracing.offline(tmp_path, project_id="proj-test", clock=clock)
    yield clock, tracing, tmp_path
    tracing.shutdown()


def test_export_matches_langfuse_observations_v2_format(offline) -> None:  # noqa: ANN001
    clock, tracing, out = offline
    llm, _, _ = simulated_llm(
        [MINI, PRO], clock=clock, overrides={MINI: {"rpm": 1}, PRO: {"rpm": 0}}, tracing=tracing
    )
    llm.complete(ask(500), max_tokens=100, user_id="u-1", session_id="s-1", tags=["t"])
    llm.complete(ask(150_000), max_tokens=100)
    llm.complete(ask(500), max_tokens=100)
    clock.advance(5)
    llm.flush()
    manifests, rows = read_run(out, "proj-test")

    (manifest,) = manifests
    assert manifest["version"] == 1 and manifest["projectId"] == "proj-test"
    assert manifest["exportSource"] == "OBSERVATIONS_V2" and manifest["tables"] == ["observations_v2"]
    stamp = manifest["files"][0]["key"].split("/")[-1].removesuffix(".jsonl.gz")
    assert re.fullmatch(r"\d{4}-\d{2}-\d{2}T\d{2}-\d{2}-\d{2}", stamp)
    assert manifest["files"][0] | {"sizeBytes": 0} == {
        "key": f"proj-test/observations_v2/{stamp}.jsonl.gz",
        "table": "observations_v2",
        "fileType": "JSONL",
        "format": "jsonl",
        "compressed": True,
        "contentType": "application/gzip",
        "sizeBytes": 0,
        "rowCount": 8,
    }
    for value in (
        manifest["window"]["minTimestamp"],
        manifest["window"]["maxTimestamp"],
        manifest["createdAt"],
    ):
        assert ISO_MS.match(value)
    assert manifest["window"]["minTimestamp"] == "2025-11-13T02:13:20.000Z"

    assert all(list(row) == COLUMNS for row in rows)
    by_type: dict[str, list[dict]] = {}
    for row in rows:
        by_type.setdefault(row["type"], []).append(row)
        assert ROW_TIME.match(row["start_time"]) and ROW_TIME.match(row["end_time"])
        assert ROW_TIME.match(row["created_at"]) and row["project_id"] == "proj-test"
        assert all(isinstance(value, str) for value in row["metadata"].values())
    assert sorted(by_type) == ["EVENT", "GENERATION", "SPAN"]
    roots = by_type["SPAN"]
    assert all(r["parent_observation_id"] == "" and r["is_root_observation"] for r in roots)
    assert roots[0]["start_time"] == "2025-11-13 02:13:20.000000" and roots[0]["latency"] == pytest.approx(
        0.5
    )
    assert (roots[0]["user_id"], roots[0]["session_id"], roots[0]["tags"]) == ("u-1", "s-1", ["t"])

    rate, context = sorted(by_type["EVENT"], key=lambda r: r["name"])[::-1]
    assert rate["name"] == "rate_limit_fallback" and context["name"] == "context_length_fallback"
    # Metadata values stay JSON-encoded strings, as Langfuse stores what SDK v5 sends.
    assert rate["metadata"]["original_model"] == '"openai/gpt-4o-mini"'
    assert rate["metadata"]["reason"] == '"rate_limit_or_error"'
    assert context["metadata"]["estimated_tokens"] == "150100"
    assert context["metadata"]["fallback_max_context"] == "1048576"
    assert rate["parent_observation_id"] in {r["id"] for r in roots} and not rate["is_root_observation"]

    generation = max(by_type["GENERATION"], key=lambda r: r["usage_details"]["input"])
    assert generation["provided_model_name"] == PRO
    assert generation["usage_details"] == {"input": 150_000, "output": 40, "total": 150_040}
    assert set(generation["cost_details"]) == {"input", "output", "total"}
    assert generation["total_cost"] == pytest.approx(generation["cost_details"]["total"])
    assert float(generation["metadata"]["cost_usd"]) == pytest.approx(generation["total_cost"])
    assert json.loads(generation["model_parameters"]) == {"max_tokens": 100}
    assert generation["latency"] == pytest.approx(0.5)
    assert generation["time_to_first_token"] == pytest.approx(0.15)
    assert ROW_TIME.match(generation["completion_start_time"])
    assert {r["trace_name"] for r in rows} == {"autopicker"}
    assert {r["level"] for r in rows} == {"DEFAULT"}


def test_columns_cover_the_sample_export() -> None:
    sample_rows = [
        json.loads(line)
        for line in gzip.decompress(
            next((SAMPLE / "observations_v2").glob("*.jsonl.gz")).read_bytes()
        ).splitlines()
    ]
    sample_manifest = json.loads(next((SAMPLE / "manifests").glob("*.json")).read_text())
    # Langfuse's own export writes the declared columns, in the declared order.
    assert list(sample_rows[0]) == [c for c in COLUMNS if c in sample_rows[0]]
    assert set(sample_manifest["files"][0]) == {
        "key",
        "table",
        "fileType",
        "format",
        "compressed",
        "contentType",
        "sizeBytes",
        "rowCount",
    }


def test_runs_rotate_by_row_count_and_names_only_grow(tmp_path: Path) -> None:
    clock = ManualClock(1_763_000_000.0)
    tracing = Tracing.offline(tmp_path, project_id="p", clock=clock, max_rows_per_file=4)
    try:
        llm, _, _ = simulated_llm([MINI], clock=clock, tracing=tracing)
        for _ in range(5):
            llm.complete(ask())
        llm.flush()
    finally:
        tracing.shutdown()
    manifests, rows = read_run(tmp_path, "p")
    assert len(rows) == 10 and len({row["id"] for row in rows}) == 10
    assert len(manifests) >= 3 and all(m["files"][0]["rowCount"] <= 5 for m in manifests)
    names = [m["files"][0]["key"] for m in manifests]
    assert names == sorted(names) and len(set(names)) == len(names)
    assert not list(tmp_path.rglob("*.part"))


def test_failed_generations_are_error_rows(offline) -> None:  # noqa: ANN001
    from router import Behaviour

    clock, tracing, out = offline
    llm, _, _ = simulated_llm(
        [MINI, LITE],
        clock=clock,
        tracing=tracing,
        behaviours={MINI: Behaviour(latency=0.1, error_rate=1.0)},
    )
    llm.complete(ask())
    llm.flush()
    _, rows = read_run(out, "proj-test")
    failed = next(r for r in rows if r["type"] == "GENERATION" and r["provided_model_name"] == MINI)
    assert failed["level"] == "ERROR" and failed["status_message"].startswith("500 from openai/gpt-4o-mini")
    assert failed["total_cost"] == 0.0 and failed["metadata"]["cost_usd"] == "0.0"


def test_offline_trace_dir_from_the_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("AUTOPICKER_TRACE_DIR", str(tmp_path))
    monkeypatch.setenv("AUTOPICKER_TRACE_PROJECT", "proj-env")
    clock = ManualClock()
    llm = AutoPickerLLM([MINI], provider=SimulatedProvider(clock=clock), clock=clock)
    llm.complete(ask())
    llm.flush()  # replays the queued trace, drains the SDK's queue and writes a run
    llm.tracing.shutdown()
    (data,) = (tmp_path / "proj-env" / "observations_v2").glob("*.jsonl.gz")
    (manifest,) = (tmp_path / "proj-env" / "manifests").glob("*.json")
    assert data.name.removesuffix(".jsonl.gz") == manifest.name.removesuffix(".json")
    rows = [json.loads(line) for line in gzip.decompress(data.read_bytes()).splitlines()]
    assert {row["type"] for row in rows} == {"SPAN", "GENERATION"}
