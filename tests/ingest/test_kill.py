"""An ingest killed while its COPY runs leaves nothing half-loaded, and running it again ends with exactly
the source's distinct ids. Runs the real command line in a subprocess and SIGKILLs it."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import orjson
import pytest

from ingest.db import Database
from tests.support.cli import HANG_TIMEOUT, REPO
from tests.support.export_files import synthetic_rows

DEADLINE = HANG_TIMEOUT  # only a hang reaches it; nothing waits on a fixed sleep
POLL = 0.005


def _command(path: Path) -> list[str]:
    return [sys.executable, "-m", "autopicker", "ingest", "files", str(path)]


def _children(pid: int) -> set[int]:
    found = set()
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text()
            except OSError:
                continue
            if int(stat.rsplit(")", 1)[1].split()[1]) == pid:
                found.add(int(entry.name))
    return found


def _wait_for(condition: object, what: str) -> None:
    deadline = time.monotonic() + DEADLINE
    while not condition():  # type: ignore[operator]
        if time.monotonic() > deadline:
            pytest.fail(f"timed out waiting for {what}")
        time.sleep(POLL)


def test_killed_during_copy_then_run_again(database: Database, tmp_path: Path) -> None:
    rows = synthetic_rows(150_000)
    newer = [{**r, "updated_at": "2026-11-24 13:00:00.000000", "name": "corrected"} for r in rows[::20]]
    path = tmp_path / "big.jsonl"
    path.write_bytes(b"".join(orjson.dumps(r) + b"\n" for r in rows + newer))
    distinct = {r["id"] for r in rows}
    env = {
        **os.environ,
        "DATABASE_URL": database.url,
        "AUTOPICKER_HOME": str(tmp_path / "home"),
        "AUTOPICKER_PROJECT_DIR": str(REPO),
    }

    with database.connect(autocommit=True) as watcher:

        def copy_backend() -> int | None:
            row = watcher.execute(
                "SELECT pid FROM pg_stat_activity WHERE datname = current_database() AND state = 'active' "
                "AND query LIKE 'COPY langfuse_raw.observations %%'"
            ).fetchone()
            return None if row is None else int(row[0])

        process = subprocess.Popen(
            _command(path), env=env, cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
        )
        backend: list[int] = []

        def copying() -> bool:
            if process.poll() is not None:
                pytest.fail(f"the ingest ended before its COPY was seen: {process.stderr.read()!r}")  # type: ignore[union-attr]
            pid = copy_backend()
            if pid is not None:
                backend.append(pid)
            return bool(backend)

        _wait_for(copying, "the ingest's COPY")
        parsers = _children(process.pid)
        process.send_signal(signal.SIGKILL)
        process.wait()
        assert process.returncode == -signal.SIGKILL

        def backend_gone() -> bool:
            row = watcher.execute("SELECT 1 FROM pg_stat_activity WHERE pid = %s", (backend[0],)).fetchone()
            return row is None

        _wait_for(backend_gone, "the killed ingest's server process to end")
        assert watcher.execute("SELECT count(*) FROM langfuse_raw.observations").fetchone() == (0,)
        assert watcher.execute("SELECT count(*) FROM langfuse_raw.loaded_files").fetchone() == (0,)
        _wait_for(lambda: not any(Path(f"/proc/{pid}").exists() for pid in parsers), "the parser to exit")

        again = subprocess.run(
            _command(path), env=env, cwd=REPO, capture_output=True, text=True, timeout=DEADLINE
        )
        assert again.returncode == 0, again.stderr
        assert "Traceback" not in again.stderr
        ids = [r[0] for r in watcher.execute("SELECT id FROM langfuse_raw.observations").fetchall()]
        assert len(ids) == len(distinct) and set(ids) == distinct
        corrected = watcher.execute(
            "SELECT count(*) FROM langfuse_raw.observations WHERE name = 'corrected'"
        ).fetchone()
        assert corrected == (len(newer),)
