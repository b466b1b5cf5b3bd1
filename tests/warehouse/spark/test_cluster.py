"""A real (standalone) Spark cluster on this machine: a master, two workers and a Thrift server on them
build the staging models over the sample export, and everything started is stopped afterwards."""

from __future__ import annotations

from pathlib import Path

import pytest

from ingest.warehouse import spark
from tests.support.export_files import SAMPLE_EXPORT

pytestmark = [pytest.mark.dbt, pytest.mark.xdist_group("spark")]


def _processes_mentioning(text: str) -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                command = (entry / "cmdline").read_bytes().decode(errors="replace")
            except OSError:
                continue
            if text in command:
                found.append(int(entry.name))
    return found


def test_the_staging_models_build_on_a_standalone_cluster(tmp_path: Path) -> None:
    result = spark.build_on_standalone_cluster(str(SAMPLE_EXPORT.resolve()), tmp_path, workers=2)

    assert result.exit_code == 0
    assert result.master_url.startswith("spark://127.0.0.1:")
    # The sample export: two fallbacks, three generations (a span is not loaded).
    assert result.rows == {"stg_langfuse__events": 2, "stg_langfuse__generations": 3}
    # The work ran on the workers' executors, not in the Thrift server's own process.
    for worker in (1, 2):
        log = (tmp_path / "cluster" / f"worker-{worker}.log").read_text()
        assert "Asked to launch executor" in log, f"worker {worker} ran no executor"
    # Everything started was stopped: no process is left that runs with this state folder.
    assert _processes_mentioning(str(tmp_path)) == []
