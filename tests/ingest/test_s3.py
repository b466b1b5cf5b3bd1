"""`autopicker ingest files s3://...` against moto's S3 server (a real S3 protocol server on loopback)."""

from __future__ import annotations

import gzip
import json
import socket
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest
from rich.console import Console
from typer.testing import CliRunner

from autopicker.cli.app import app
from autopicker.cli.progress import Reporter
from ingest.db import Database
from ingest.sources.s3 import ingest_s3
from tests.support.export_files import write_csv, write_jsonl, write_parquet

BUCKET_PREFIX = "langfuse/exports/"


@pytest.fixture(scope="module")
def s3_endpoint() -> Iterator[str]:
    from moto.server import ThreadedMotoServer

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.stop()


@pytest.fixture
def s3(s3_endpoint: str, monkeypatch: pytest.MonkeyPatch, request: pytest.FixtureRequest) -> Any:
    """A client of the moto server, with the standard env vars set the way a user would set them."""
    monkeypatch.setenv("AWS_ENDPOINT_URL", s3_endpoint)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    client = boto3.client("s3")
    client.create_bucket(Bucket=_bucket(request))
    return client


def _bucket(request: pytest.FixtureRequest) -> str:
    return "t-" + request.node.name.replace("_", "-")[:50].lower()


@pytest.fixture
def export(s3: Any, tmp_path: Path, request: pytest.FixtureRequest) -> Export:
    """Writes export runs into this test's bucket."""
    return Export(s3, _bucket(request), tmp_path)


class CallLog:
    """Every S3 call a client makes, with its parameters (botocore's own event hooks)."""

    def __init__(self, client: Any) -> None:
        self.calls: list[tuple[str, dict[str, Any]]] = []
        client.meta.events.register("provide-client-params.s3.*", self._record)

    def _record(self, params: dict[str, Any], model: Any, **_: Any) -> None:
        self.calls.append((model.name, dict(params)))

    def named(self, name: str) -> list[dict[str, Any]]:
        return [params for call, params in self.calls if call == name]


def rows(prefix: str, count: int, project: str) -> list[dict[str, Any]]:
    """observations_v2 rows (events and generations, one span) with every column the writers need."""
    out = []
    for i in range(count):
        typ = "SPAN" if i == 0 else ("EVENT" if i % 2 else "GENERATION")
        out.append(
            {
                "id": f"{prefix}-{i:04d}",
                "trace_id": f"{prefix}-trace-{i // 3}",
                "project_id": project,
                "parent_observation_id": "",
                "type": typ,
                "name": "rate_limit_fallback" if typ == "EVENT" else "x",
                "level": "DEFAULT",
                "status_message": None,
                "environment": "default",
                "provided_model_name": "openai/gpt-4o-mini" if typ == "GENERATION" else None,
                "model_parameters": None,
                "usage_details": {"input": 10},
                "cost_details": {"total": 0.001},
                "total_cost": 0.001,
                "metadata": {"original_model": '"openai/gpt-4o-mini"'},
                "input": None,
                "output": None,
                "latency": 0.5,
                "time_to_first_token": None,
                "start_time": f"2026-11-24 10:{i % 60:02d}:00.000000",
                "end_time": f"2026-11-24 10:{i % 60:02d}:00.500000",
                "completion_start_time": None,
                "created_at": "2026-11-24 12:00:00.000000",
                "updated_at": "2026-11-24 12:00:00.000000",
            }
        )
    return out


class Export:
    """Writes Langfuse blob-storage export runs into a bucket, as Langfuse does (manifest last)."""

    def __init__(self, client: Any, bucket: str, workdir: Path) -> None:
        self.client, self.bucket, self.workdir = client, bucket, workdir

    def data_file(
        self, project: str, stamp: str, run_rows: list[dict[str, Any]], kind: str
    ) -> dict[str, Any]:
        local = self.workdir / f"{project}-{stamp}"
        if kind == "jsonl.gz":
            path = write_jsonl(local.with_suffix(".jsonl"), run_rows, gz=True)
        elif kind == "csv.gz":
            path = write_csv(local.with_suffix(".csv"), run_rows, gz=True)
        else:
            path = write_parquet(local.with_suffix(".parquet"), run_rows)
        key = f"{BUCKET_PREFIX}{project}/observations_v2/{stamp}.{kind}"
        self.client.upload_file(str(path), self.bucket, key)
        return {
            "key": key,
            "table": "observations_v2",
            "format": kind.split(".")[0],
            "compressed": kind.endswith(".gz"),
            "sizeBytes": path.stat().st_size,
            "rowCount": len(run_rows),
        }

    def manifest(self, project: str, stamp: str, files: list[dict[str, Any]]) -> None:
        document = {
            "version": 1,
            "projectId": project,
            "exportSource": "OBSERVATIONS_V2",
            "tables": ["observations_v2"],
            "files": files,
        }
        self.client.put_object(
            Bucket=self.bucket,
            Key=f"{BUCKET_PREFIX}{project}/manifests/{stamp}.json",
            Body=json.dumps(document).encode(),
        )

    def run(
        self,
        project: str,
        stamp: str,
        run_rows: list[dict[str, Any]],
        kind: str = "jsonl.gz",
        with_manifest: bool = True,
    ) -> list[dict[str, Any]]:
        files = [self.data_file(project, stamp, run_rows, kind)]
        if with_manifest:
            self.manifest(project, stamp, files)
        return files

    def two_file_run(self, first: list[dict[str, Any]], second: list[dict[str, Any]]) -> list[dict[str, Any]]:
        """The data files of one run of proj-a (its manifest is the caller's business)."""
        return [
            self.data_file("proj-a", "2026-11-24T10-00-00", first, "jsonl.gz"),
            self.data_file("proj-a", "2026-11-24T10-00-01", second, "jsonl.gz"),
        ]


def loaded_ids(database: Database) -> set[str]:
    with database.connect() as conn:
        return {r[0] for r in conn.execute("SELECT id FROM langfuse_raw.observations")}


def export_state(database: Database) -> dict[str, tuple[Any, ...]]:
    with database.connect() as conn:
        found = conn.execute(
            "SELECT location, last_manifest_key, runs_loaded, failed_manifests FROM langfuse_raw.export_state"
        ).fetchall()
    return {r[0].rsplit("/", 2)[-2]: r[1:] for r in found}


def loadable(run_rows: list[dict[str, Any]]) -> set[str]:
    return {r["id"] for r in run_rows if r["type"] != "SPAN"}


def reporter() -> Reporter:
    return Reporter(Console(file=open("/dev/null", "w")), Console(stderr=True))  # noqa: SIM115


def test_complete_runs_load_in_order_and_a_run_loads_once_its_manifest_exists(
    database: Database, export: Export
) -> None:
    bucket = export.bucket
    run1, run2, run3, other = (
        rows("a1", 40, "proj-a"),
        rows("a2", 30, "proj-a"),
        rows("a3", 20, "proj-a"),
        rows("b1", 25, "proj-b"),
    )
    export.run("proj-a", "2026-11-24T10-00-00", run1, "jsonl.gz")
    export.run("proj-a", "2026-11-24T11-00-00", run2, "parquet")
    pending = export.run("proj-a", "2026-11-24T12-00-00", run3, "jsonl.gz", with_manifest=False)
    export.run("proj-b", "2026-11-24T10-00-00", other, "csv.gz")
    url = f"s3://{bucket}/{BUCKET_PREFIX}"

    first = ingest_s3(database, [url], reporter=reporter())

    assert first.exit_code == 0, first.errors
    assert loaded_ids(database) == loadable(run1) | loadable(run2) | loadable(other)
    assert first.totals.skipped["SPAN"] == 3
    state = export_state(database)
    assert state["proj-a"][:2] == (f"{BUCKET_PREFIX}proj-a/manifests/2026-11-24T11-00-00.json", 2)
    assert state["proj-b"][1] == 1

    # Langfuse finishes the pending run: its manifest appears. The next ingest lists only what is new.
    export.manifest("proj-a", "2026-11-24T12-00-00", pending)
    client = boto3.client("s3")
    calls = CallLog(client)

    second = ingest_s3(database, [url], reporter=reporter(), client=client)

    assert second.exit_code == 0, second.errors
    assert loaded_ids(database) == loadable(run1) | loadable(run2) | loadable(run3) | loadable(other)
    assert [f.task.name for f in second.files] == [f"s3://{bucket}/{pending[0]['key']}"]
    listings = calls.named("ListObjectsV2")
    assert listings[0] == {"Bucket": bucket, "Prefix": BUCKET_PREFIX, "Delimiter": "/"}
    manifest_listings = {p["Prefix"]: p.get("StartAfter") for p in listings[1:]}
    assert manifest_listings == {
        f"{BUCKET_PREFIX}proj-a/manifests/": f"{BUCKET_PREFIX}proj-a/manifests/2026-11-24T11-00-00.json",
        f"{BUCKET_PREFIX}proj-b/manifests/": f"{BUCKET_PREFIX}proj-b/manifests/2026-11-24T10-00-00.json",
    }
    read = {p["Key"] for p in calls.named("GetObject")}
    assert read == {f"{BUCKET_PREFIX}proj-a/manifests/2026-11-24T12-00-00.json", pending[0]["key"]}
    assert export_state(database)["proj-a"][1] == 3

    third = ingest_s3(database, [url], reporter=reporter())
    assert third.files == [] and third.exit_code == 0


def test_a_run_that_fails_its_checks_keeps_its_good_rows_and_is_tried_again_until_it_loads(
    database: Database, s3: Any, export: Export, tmp_path: Path
) -> None:
    bucket = export.bucket
    good, short = rows("g", 12, "proj-a"), rows("s", 10, "proj-a")
    files = export.two_file_run(good, short)
    files[1]["rowCount"] = 11  # the manifest disagrees with the file
    files.append(
        {
            "key": f"{BUCKET_PREFIX}proj-a/observations_v2/gone.jsonl.gz",
            "table": "observations_v2",
            "rowCount": 3,
        }
    )
    export.manifest("proj-a", "2026-11-24T10-00-00", files)
    later = rows("l", 8, "proj-a")
    export.run("proj-a", "2026-11-24T11-00-00", later)
    url = f"s3://{bucket}/{BUCKET_PREFIX}proj-a"  # one project's folder, without the trailing slash

    first = ingest_s3(database, [url], reporter=reporter())

    assert first.exit_code == 1
    assert any(
        "lists langfuse/exports/proj-a/observations_v2/gone.jsonl.gz, but that file is missing" in e
        for e in first.errors
    )
    assert any("has 10 rows but manifest" in e and "says 11" in e for e in first.errors)
    assert loaded_ids(database) == loadable(good) | loadable(short) | loadable(later)  # nothing good is lost
    failed_manifest = f"{BUCKET_PREFIX}proj-a/manifests/2026-11-24T10-00-00.json"
    assert export_state(database)["proj-a"] == (
        f"{BUCKET_PREFIX}proj-a/manifests/2026-11-24T11-00-00.json",
        1,
        [failed_manifest],
    )

    # Still broken: tried again, still an error.
    assert ingest_s3(database, [url], reporter=reporter()).exit_code == 1
    # Repaired (the missing file restored, the manifest rewritten): it loads and leaves the failed list.
    restored = rows("r", 3, "proj-a")
    local = write_jsonl(tmp_path / "gone.jsonl", restored, gz=True)
    s3.upload_file(str(local), bucket, files[2]["key"])
    files[1]["rowCount"] = 10
    export.manifest("proj-a", "2026-11-24T10-00-00", files)

    fixed = ingest_s3(database, [url], reporter=reporter())

    assert fixed.exit_code == 0, fixed.errors
    assert loaded_ids(database) >= loadable(restored)
    assert export_state(database)["proj-a"] == (
        f"{BUCKET_PREFIX}proj-a/manifests/2026-11-24T11-00-00.json",
        2,
        [],
    )


def test_an_ingest_interrupted_mid_run_does_not_load_finished_files_again(
    database: Database, s3: Any, export: Export, tmp_path: Path
) -> None:
    bucket = export.bucket
    first_rows, second_rows = rows("p", 10, "proj-a"), rows("q", 10, "proj-a")
    files = export.two_file_run(first_rows, second_rows)
    export.manifest("proj-a", "2026-11-24T10-00-00", files)
    # The second file is corrupt while the first ingest runs (truncated gzip): the run stops half-way.
    s3.put_object(
        Bucket=bucket,
        Key=files[1]["key"],
        Body=gzip.compress(b"".join(json.dumps(r).encode() + b"\n" for r in second_rows))[:40],
    )
    url = f"s3://{bucket}/{BUCKET_PREFIX}"
    assert ingest_s3(database, [url], reporter=reporter()).exit_code == 1
    local = write_jsonl(tmp_path / "second.jsonl", second_rows, gz=True)
    s3.upload_file(str(local), bucket, files[1]["key"])
    client = boto3.client("s3")
    calls = CallLog(client)

    again = ingest_s3(database, [url], reporter=reporter(), client=client)

    assert again.exit_code == 0, again.errors
    assert loaded_ids(database) == loadable(first_rows) | loadable(second_rows)
    assert files[0]["key"] not in {p["Key"] for p in calls.named("GetObject")}


def test_cli_loads_an_s3_location_and_a_missing_bucket_is_one_sentence(
    cli_env: Database, export: Export
) -> None:
    bucket = export.bucket
    run_rows = rows("c", 15, "proj-c")
    export.run("proj-c", "2026-11-24T10-00-00", run_rows, "parquet")

    result = CliRunner().invoke(app, ["ingest", "files", f"s3://{bucket}/{BUCKET_PREFIX}"])

    assert result.exit_code == 0, result.output
    assert "rows loaded: 14" in result.output
    assert loaded_ids(cli_env) == loadable(run_rows)

    missing = CliRunner().invoke(app, ["ingest", "files", "s3://no-such-bucket-here/exports/"])
    assert missing.exit_code == 1
    assert "error: s3://no-such-bucket-here/exports/ cannot be listed: NoSuchBucket" in missing.output
