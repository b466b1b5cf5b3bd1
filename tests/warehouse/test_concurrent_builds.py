"""Two builds of one warehouse at once: both succeed, and the warehouse equals one build's.

Each case builds the warehouse once, loads new and corrected rows, then holds a lock on ``int_requests``
that makes any write to it wait, and starts two builds as separate processes (as two cron jobs or a user
and the nightly job would). Once both processes are waiting on a lock (whatever lock the project makes
the second one wait on), the test lets them go. Before builds took turns, both computed the same new
rows and the second insert failed with a duplicate key in ``int_requests``.
"""

from __future__ import annotations

import subprocess
import sys
import time
from collections.abc import Iterator
from datetime import datetime, timedelta
from pathlib import Path

import psycopg
import pytest

from ingest.db import Database
from ingest.raw import ensure_raw_schema
from ingest.warehouse.dbt import dbt_env, run_dbt
from tests.support.cli import AUTOPICKER, HANG_TIMEOUT, REPO
from tests.warehouse.test_views import Observations

pytestmark = [pytest.mark.dbt, pytest.mark.xdist_group("dbt_concurrent")]

#: How long the two builds may take to reach their lock waits (a loaded machine is slow to start dbt).
REACH_WAITS_WITHIN_S = 240


def traffic(now: datetime, traces: range, *, cost: float) -> Observations:
    o = Observations()
    for n in traces:
        at = now - timedelta(hours=n % 48, minutes=5)
        o.generation(f"C{n}", at, level="ERROR", cost_usd=0, id_=f"C{n}-a")
        o.event(f"C{n}", at, "rate_limit_fallback", original_model="a", fallback_model="b")
        o.generation(f"C{n}", at + timedelta(seconds=1), cost_usd=cost, id_=f"C{n}-b", updated_at=now)
    return o


def build_command(kind: str, scratch: Path) -> list[str]:
    paths = ["--target-path", str(scratch / "target"), "--log-path", str(scratch / "logs")]
    if kind == "autopicker":
        return [*AUTOPICKER, "dbt", "build", *paths]
    dbt = str(Path(sys.executable).parent / "dbt")
    return [dbt, "build", "--project-dir", str(REPO), "--profiles-dir", str(REPO), *paths]


def lock_waiters(conn: psycopg.Connection) -> int:
    row = conn.execute(
        "select count(*) from pg_stat_activity"
        " where datname = current_database() and wait_event_type = 'Lock' and pid <> pg_backend_pid()"
    ).fetchone()
    return int(row[0]) if row else 0


@pytest.fixture
def built_once(database: Database, tmp_path: Path) -> Iterator[Database]:
    ensure_raw_schema(database)
    with database.connect() as conn:
        now = conn.execute("select now()").fetchone()[0]  # type: ignore[index]
    traffic(now, range(0, 40), cost=0.001).load(database)
    scratch = tmp_path / "first"
    assert (
        run_dbt(["run", "--target-path", str(scratch / "t"), "--log-path", str(scratch / "l")], database) == 0
    )
    # new traces, and corrected answers (a newer version with another cost) for the old ones
    traffic(now + timedelta(seconds=5), range(0, 80), cost=0.002).load(database)
    yield database


@pytest.mark.parametrize("kind", ["autopicker", "dbt"])
def test_two_builds_at_once_both_succeed(built_once: Database, tmp_path: Path, kind: str) -> None:
    database = built_once
    env = {"PATH": "/usr/bin:/bin", "DATABASE_URL": database.url, "AUTOPICKER_PROJECT_DIR": str(REPO)}
    env |= dbt_env(database)
    with database.connect() as blocker:
        blocker.execute("lock table analytics_intermediate.int_requests in share mode")
        logs = [tmp_path / "a.log", tmp_path / "b.log"]
        builds = [
            subprocess.Popen(
                build_command(kind, log.with_suffix("")),
                cwd=REPO,
                env=env,
                stdout=log.open("w"),  # a file, not a pipe nobody reads while the build runs
                stderr=subprocess.STDOUT,
            )
            for log in logs
        ]
        try:
            with database.connect(autocommit=True) as watcher:
                deadline = time.monotonic() + REACH_WAITS_WITHIN_S
                while lock_waiters(watcher) < 2:
                    finished = [
                        log.read_text()[-2000:]
                        for b, log in zip(builds, logs, strict=True)
                        if b.poll() is not None
                    ]
                    assert not finished, f"a build ended before both were waiting: {finished}"
                    assert time.monotonic() < deadline, "the two builds never both waited"
                    time.sleep(0.2)
            blocker.rollback()  # let them go
            for build in builds:
                build.wait(timeout=HANG_TIMEOUT)
        finally:
            for build in builds:
                if build.poll() is None:
                    build.kill()
                    build.wait()
    assert [build.returncode for build in builds] == [0, 0], [log.read_text()[-2000:] for log in logs]
    with database.connect() as conn:
        requests = conn.execute(
            "select count(*), count(distinct trace_id), sum(cost_usd)"
            " from analytics_intermediate.int_requests"
        ).fetchone()
        daily = conn.execute("select sum(requests) from analytics_intermediate.int_requests_daily").fetchone()
    assert requests is not None and daily is not None
    # 80 requests, each once; every answer's cost is the corrected 0.002
    assert requests[0] == requests[1] == 80
    assert float(requests[2]) == pytest.approx(80 * 0.002)
    assert daily[0] == 80


def test_views_are_replaced_in_place_and_rebuilt_when_their_columns_changed(
    built_once: Database, tmp_path: Path
) -> None:
    """Views are replaced in place (macros/view_materialization.sql), so a reader never finds one missing;
    when the new columns do not extend the old ones, or a table stands where the view belongs, the build
    still leaves the model's view."""
    database = built_once
    names = ["fallback_all_daily", "fallback_cost_impact", "fallback_success_rate"]
    oid = "select %s::regclass::oid"
    with database.connect() as conn:
        before = conn.execute(oid, ("analytics.fallback_success_rate",)).fetchone()
        conn.execute("drop view analytics.fallback_all_daily")
        conn.execute("create view analytics.fallback_all_daily as select 1 as other_column")
        conn.execute("drop view analytics.fallback_cost_impact")
        conn.execute("create table analytics.fallback_cost_impact (other_column int)")
        conn.commit()
    scratch = tmp_path / "again"
    paths = ["--target-path", str(scratch / "t"), "--log-path", str(scratch / "l")]
    assert run_dbt(["run", "--select", *names, *paths], database) == 0
    with database.connect() as conn:
        after = conn.execute(oid, ("analytics.fallback_success_rate",)).fetchone()
        kinds = dict(
            conn.execute(
                "select c.relname, c.relkind from pg_class c join pg_namespace n on n.oid = c.relnamespace"
                " where n.nspname = 'analytics' and c.relname = any(%s)",
                (names,),
            ).fetchall()
        )
        described = conn.execute("select * from analytics.fallback_all_daily limit 0").description or []
    assert before == after  # the same view, its definition replaced
    assert kinds == dict.fromkeys(names, "v")
    assert [d.name for d in described] == [
        "fallback_type",
        "original_model",
        "fallback_model",
        "total_fallbacks",
        "date",
    ]
