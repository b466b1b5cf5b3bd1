"""Langfuse export files for the ingest tests: the hand-made fixtures, and the same rows written in every
format Langfuse uses (JSONL, JSON array, CSV, Parquet, gzipped text)."""

from __future__ import annotations

import gzip
import json
import shutil
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "ingest"
V2_FIXTURE = FIXTURES / "observations_v2.jsonl"
UI_FIXTURE = FIXTURES / "1764000000000-lf-observations-export-proj-fixture.jsonl"
REJECTS_FIXTURE = FIXTURES / "rejects.jsonl"
LEGACY_FIXTURE = FIXTURES / "legacy"
SAMPLE_EXPORT = FIXTURES / "export"


def read_jsonl(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def read_jsonl_gz(path: Path) -> list[dict[str, Any]]:
    with gzip.open(path, "rt", encoding="utf-8") as handle:
        return [json.loads(line) for line in handle if line.strip()]


def add_run(project: Path, name: str, rows: list[dict[str, Any]]) -> Path:
    """A finished export run of ``rows`` in the project folder ``project``: ``observations_v2/{name}.jsonl``
    (plain JSONL) and the manifest listing it; returns the data file."""
    path = write_jsonl(project / "observations_v2" / f"{name}.jsonl", rows)
    manifest = {
        "version": 1,
        "projectId": project.name,
        "tables": ["observations_v2"],
        "files": [
            {
                "key": f"{project.name}/observations_v2/{path.name}",
                "table": "observations_v2",
                "fileType": "JSONL",
                "format": "jsonl",
                "compressed": False,
                "rowCount": len(rows),
            }
        ],
    }
    (project / "manifests" / f"{name}.json").write_text(json.dumps(manifest, indent=2))
    return path


def shifted(moment: str, *, hours: float) -> str:
    """An export row's time (``YYYY-MM-DD HH:MM:SS.ffffff``) ``hours`` later."""
    return (datetime.fromisoformat(moment) + timedelta(hours=hours)).strftime("%Y-%m-%d %H:%M:%S.%f")


def parquet_run(project: Path, data: Path) -> Path:
    """Rewrite the export run file ``data`` (JSONL.gz, as the offline sink writes it) as Parquet, as Langfuse
    writes by default, and make its manifest name the new file; returns it."""
    rows = read_jsonl_gz(data)
    parquet = write_parquet(data.with_name(data.name.removesuffix(".jsonl.gz") + ".parquet"), rows)
    data.unlink()
    for manifest in sorted((project / "manifests").glob("*.json")):
        document = json.loads(manifest.read_text())
        for entry in document["files"]:
            if entry["key"].endswith(f"/{data.name}"):
                entry |= {
                    "key": f"{project.name}/observations_v2/{parquet.name}",
                    "fileType": "PARQUET",
                    "format": "parquet",
                    "compressed": False,
                    "contentType": "application/vnd.apache.parquet",
                    "sizeBytes": parquet.stat().st_size,
                }
                manifest.write_text(json.dumps(document, indent=2))
    return parquet


def v2_rows() -> list[dict[str, Any]]:
    return read_jsonl(V2_FIXTURE)


def _text(path: Path, text: str, gz: bool) -> Path:
    if gz:
        path = path.with_name(path.name + ".gz")
        with gzip.open(path, "wt", encoding="utf-8") as handle:
            handle.write(text)
    else:
        path.write_text(text, encoding="utf-8")
    return path


def write_jsonl(path: Path, rows: list[dict[str, Any]], gz: bool = False) -> Path:
    return _text(path, "".join(json.dumps(r) + "\n" for r in rows), gz)


def write_json_array(path: Path, rows: list[dict[str, Any]], gz: bool = False) -> Path:
    return _text(path, json.dumps(rows, indent=1), gz)


def _csv_field(value: Any) -> str:
    # Langfuse's CSV: every field quoted, objects and arrays as JSON text, null as an empty (unquoted) field.
    if value is None:
        return ""
    if isinstance(value, dict | list):
        value = json.dumps(value)
    elif isinstance(value, bool):
        value = "true" if value else "false"
    return '"' + str(value).replace('"', '""') + '"'


def write_csv(path: Path, rows: list[dict[str, Any]], gz: bool = False) -> Path:
    header = list(rows[0])
    lines = [",".join(_csv_field(h) for h in header)]
    lines += [",".join(_csv_field(r.get(h)) for h in header) for r in rows]
    return _text(path, "\r\n".join(lines) + "\r\n", gz)


def _moment(text: str | None) -> datetime | None:
    return None if text is None else datetime.fromisoformat(text)


def write_parquet(path: Path, rows: list[dict[str, Any]]) -> Path:
    """observations_v2 rows as Langfuse writes Parquet: typed timestamps, map columns for the objects."""
    string_map = pa.map_(pa.string(), pa.string())
    columns = {
        "id": pa.array([r["id"] for r in rows], pa.string()),
        "trace_id": pa.array([r["trace_id"] for r in rows], pa.string()),
        "project_id": pa.array([r["project_id"] for r in rows], pa.string()),
        "parent_observation_id": pa.array([r["parent_observation_id"] for r in rows], pa.string()),
        "type": pa.array([r["type"] for r in rows], pa.string()),
        "name": pa.array([r["name"] for r in rows], pa.string()),
        "level": pa.array([r["level"] for r in rows], pa.string()),
        "status_message": pa.array([r["status_message"] for r in rows], pa.string()),
        "environment": pa.array([r["environment"] for r in rows], pa.string()),
        "provided_model_name": pa.array([r["provided_model_name"] for r in rows], pa.string()),
        "model_parameters": pa.array([r["model_parameters"] for r in rows], pa.string()),
        "usage_details": pa.array(
            [list(r["usage_details"].items()) for r in rows], pa.map_(pa.string(), pa.uint64())
        ),
        "cost_details": pa.array(
            [list(r["cost_details"].items()) for r in rows], pa.map_(pa.string(), pa.float64())
        ),
        "total_cost": pa.array([r["total_cost"] for r in rows], pa.float64()),
        "metadata": pa.array([list(r["metadata"].items()) for r in rows], string_map),
        "input": pa.array([r["input"] for r in rows], pa.string()),
        "output": pa.array([r["output"] for r in rows], pa.string()),
        "latency": pa.array([r["latency"] for r in rows], pa.float64()),
        "time_to_first_token": pa.array([r["time_to_first_token"] for r in rows], pa.float64()),
    }
    for name in ("start_time", "end_time", "completion_start_time", "created_at", "updated_at"):
        columns[name] = pa.array([_moment(r[name]) for r in rows], pa.timestamp("us"))
    pq.write_table(pa.table(columns), path)
    return path


def copy_export(destination: Path) -> Path:
    """A writable copy of the sample blob-storage export; returns its prefix folder."""
    shutil.copytree(SAMPLE_EXPORT, destination)
    for item in destination.rglob("*"):
        item.chmod(0o755 if item.is_dir() else 0o644)
    return destination


def synthetic_rows(count: int, *, prefix: str = "c", start: int = 0) -> list[dict[str, Any]]:
    """``count`` small observations_v2 events with distinct ids."""
    return [
        {
            "id": f"{prefix}{i:015x}",
            "trace_id": f"{i:032x}",
            "type": "EVENT",
            "name": "rate_limit_fallback",
            "start_time": f"2026-11-24 10:{(i // 60) % 60:02d}:{i % 60:02d}.000000",
            "updated_at": "2026-11-24 12:00:00.000000",
            "metadata": {"original_model": '"openai/gpt-4o-mini"', "attempt": str(i % 3)},
        }
        for i in range(start, start + count)
    ]
