"""The ingest killed (SIGKILL, a real process) at seeded points many times over, then run once more cleanly:
the stored rows equal the truth (the newest version of every id), each bad line is rejected exactly once,
every file is recorded as loaded, and no load run is left unfinished.

``CRASH_ITERATIONS`` kills (a few in ``make test``, many under ``make fuzz``) with points drawn from
``CRASH_SEED``: when the run's batch is recorded, while a COPY into observations runs, or once the run has
recorded K files as loaded. Each kill is also told whether it ran with ``--force`` (files already loaded
load again), so there is always work to interrupt."""

from __future__ import annotations

import gzip
import os
import random
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import orjson
import psycopg
import pytest

from ingest.db import Database
from ingest.raw import ensure_raw_schema
from tests.support.cli import HANG_TIMEOUT, REPO
from tests.support.export_files import synthetic_rows

pytestmark = pytest.mark.crash

ITERATIONS = int(os.environ.get("CRASH_ITERATIONS", "3"))
SEED = int(os.environ.get("CRASH_SEED", "20261206"))
ROWS_PER_FILE = 20_000
DEADLINE = HANG_TIMEOUT  # only a hang reaches it; nothing waits on a fixed sleep
POLL = 0.002
JUNK = [b"not json", b"{}", b'{"id": "no-type", "trace_id": "t", "start_time": "2026-11-24 10:00:00"}']


def _files(folder: Path) -> tuple[dict[str, str], set[tuple[str, int]]]:
    """Three export files whose windows overlap (later files update some ids of earlier ones), with junk
    lines; returns the truth (id -> name of its newest version) and the bad lines (file, line number)."""
    folder.mkdir()
    truth: dict[str, str] = {}
    bad: set[tuple[str, int]] = set()
    names = ["a.jsonl", "b.jsonl.gz", "c.jsonl"]
    for index, name in enumerate(names):
        rows = synthetic_rows(
            ROWS_PER_FILE, start=index * ROWS_PER_FILE // 2
        )  # half overlaps the file before
        lines: list[bytes] = []
        for number, row in enumerate(rows, 1):
            row = {**row, "updated_at": f"2026-11-24 1{index}:00:00.000000", "name": f"v{index}"}
            truth[row["id"]] = row["name"]
            lines.append(orjson.dumps(row))
            if number % 5000 == 0:
                lines.append(JUNK[number // 5000 % len(JUNK)])
        path = folder / name
        data = b"".join(line + b"\n" for line in lines)
        path.write_bytes(gzip.compress(data, mtime=0) if name.endswith(".gz") else data)
        bad |= {(str(path), n) for n, line in enumerate(lines, 1) if line in JUNK}
    return truth, bad


def _wait_for(condition: Callable[[], bool], process: subprocess.Popen[bytes]) -> bool:
    """Poll until ``condition`` holds (True) or the process ends first (False)."""
    deadline = time.monotonic() + DEADLINE
    while not condition():
        if process.poll() is not None:
            return False
        if time.monotonic() > deadline:
            pytest.fail("the ingest neither reached the kill point nor ended")
        time.sleep(POLL)
    return True


def _point(
    watcher: psycopg.Connection, rng: random.Random, batches_before: int
) -> tuple[str, Callable[[], bool]]:
    def one(sql: str, *params: Any) -> Any:
        row = watcher.execute(sql, params).fetchone()
        return None if row is None else row[0]

    kind = rng.choice(["batch", "copy", "files"])
    if kind == "batch":
        return (
            "batch recorded",
            lambda: one("SELECT coalesce(max(batch_id), 0) FROM langfuse_raw.load_batches") > batches_before,
        )
    if kind == "copy":
        skip = rng.randrange(3)  # the how-manieth COPY seen
        seen: list[int] = []

        def copying() -> bool:
            active = one(
                "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() "
                "AND state = 'active' AND query LIKE 'COPY langfuse_raw.observations%%'"
            )
            if active:
                seen.append(1)
            return len(seen) > skip

        return f"during COPY (#{skip + 1} poll seen)", copying
    files = rng.randrange(1, 3)
    return (
        f"after {files} file(s) recorded",
        lambda: (
            one(
                "SELECT count(*) FROM langfuse_raw.loaded_files WHERE _batch_id > %s",
                batches_before,
            )
            >= files
        ),
    )


def test_killed_at_random_points_then_run_again_equals_the_truth(database: Database, tmp_path: Path) -> None:
    truth, bad = _files(tmp_path / "export")
    env = {
        **os.environ,
        "DATABASE_URL": database.url,
        "AUTOPICKER_HOME": str(tmp_path / "home"),
        "AUTOPICKER_PROJECT_DIR": str(REPO),
    }
    command = [sys.executable, "-m", "autopicker", "ingest", "files", str(tmp_path / "export")]
    rng = random.Random(SEED)
    ensure_raw_schema(database)
    kills = 0
    with database.connect(autocommit=True) as watcher:
        for _ in range(ITERATIONS):
            batches = watcher.execute("SELECT coalesce(max(batch_id), 0) FROM langfuse_raw.load_batches")
            before = int(batches.fetchone()[0])  # type: ignore[index]
            what, reached = _point(watcher, rng, before)
            force = ["--force"] if rng.random() < 0.8 else []
            process = subprocess.Popen(
                [*command, *force], env=env, cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
            )
            if _wait_for(reached, process):
                process.send_signal(signal.SIGKILL)
                kills += 1
            process.wait()
            print(f"kill point: {what}{' --force' if force else ''}: exit {process.returncode}")

        recorded_before = watcher.execute("SELECT count(*) FROM langfuse_raw.loaded_files").fetchone()
        left = 3 - int(recorded_before[0])  # type: ignore[index]
        final = subprocess.run(command, env=env, cwd=REPO, capture_output=True, text=True, timeout=DEADLINE)
        # 1: a file it loads has junk lines, rejected; 0: a run that was not killed recorded every file
        # already, and nothing new is not an error (many kills make that likely: it once failed here)
        assert final.returncode == (1 if left else 0), final.stderr
        assert "Traceback" not in final.stderr

        stored = dict(watcher.execute("SELECT id, name FROM langfuse_raw.observations").fetchall())
        assert stored == truth
        rejected = watcher.execute(
            "SELECT source_file, row_number FROM langfuse_raw.rejected_rows"
        ).fetchall()
        assert len(rejected) == len(bad) and set(rejected) == bad  # each once, whatever was killed
        recorded = watcher.execute("SELECT source_file FROM langfuse_raw.loaded_files").fetchall()
        assert sorted(r[0] for r in recorded) == sorted({f for f, _ in bad})
        unfinished = watcher.execute(
            "SELECT count(*) FROM langfuse_raw.load_batches WHERE finished_at IS NULL"
        ).fetchone()
        assert unfinished == (0,)
        statuses = dict(
            watcher.execute(
                "SELECT status, count(*) FROM langfuse_raw.load_batches GROUP BY status"
            ).fetchall()
        )
        assert statuses.get("abandoned", 0) == kills
    print(f"crash test: {ITERATIONS} runs, {kills} killed, stored rows equal the truth")
