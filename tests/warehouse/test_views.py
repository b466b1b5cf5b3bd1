"""The dbt project end to end: raw Langfuse rows in, the five views out, answers worked out by hand.

One database per module and few dbt invocations (each costs seconds), as module fixtures:

1. ``dbt run`` on an empty raw schema: the views exist and are empty (``autopicker show`` says so);
2. the first load, then ``dbt build`` (models, unit tests, data tests, alerts): every view's exact rows,
   and a build log without warnings other than the alerts';
3. ``dbt test --select tag:alert`` with other thresholds: every alert fires once and stays quiet once;
4. a second load (a later generation, a corrected row, a new trace), then ``dbt run``: the incremental
   models pick the changes up and leave untouched traces alone;
5. ``dbt run --full-refresh`` of the incremental models: the same answers as the incremental runs.

Timestamps are relative to the server's ``now()`` when the fixture is written, and every dbt run takes that
instant for now (var ``reporting_now``): the answers hold however long a loaded machine takes over the module.
"""

from __future__ import annotations

import json
import os
import subprocess
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from decimal import Decimal
from itertools import count
from pathlib import Path

import pytest
import yaml

from ingest.db import Database
from ingest.raw import ensure_raw_schema
from ingest.warehouse.dbt import run_dbt
from tests.support.cli import REPO
from tests.support.cli import run_cli as run_autopicker
from tests.support.clock import reporting_now
from tests.support.dbt_results import GREEN_BUILD, statuses_by_kind
from tests.support.raw_rows import load_observations

pytestmark = [pytest.mark.dbt, pytest.mark.xdist_group("dbt_views")]


VIEWS = (
    "fallback_rate_limit_daily",
    "fallback_context_length",
    "fallback_all_daily",
    "fallback_cost_impact",
    "fallback_success_rate",
)
ALERTS = ("alert_high_fallback_rate", "alert_expensive_fallbacks", "alert_context_limit_frequently_hit")

GPT_MINI = "openai/gpt-4o-mini"
FLASH_LITE = "gemini/gemini-2.5-flash-lite"
PRO = "gemini/gemini-2.5-pro"
HAIKU = "anthropic/claude-3-5-haiku"
FLASH = "gemini/gemini-2.5-flash"
RL = "rate_limit_fallback"
CL = "context_length_fallback"

D = Decimal


# --------------------------------------------------------------------------------------------------- raw rows


@dataclass
class Observations:
    """Rows for langfuse_raw.observations as the loaders write them (metadata holds natural JSON values)."""

    rows: list[dict[str, object]] = field(default_factory=list)
    _ids: Iterator[int] = field(default_factory=count)

    def generation(
        self,
        trace: str,
        at: datetime,
        *,
        level: str = "DEFAULT",
        cost_usd: float | None = None,
        total_cost: str | None = None,
        model: str = GPT_MINI,
        id_: str | None = None,
        updated_at: datetime | None = None,
    ) -> str:
        metadata = {} if cost_usd is None else {"cost_usd": cost_usd}
        return self._add(
            trace, "GENERATION", "llm_call", at, level, metadata, total_cost, model, id_, updated_at
        )

    def event(self, trace: str, at: datetime, name: str, **metadata: object) -> str:
        return self._add(trace, "EVENT", name, at, "DEFAULT", metadata, None, None, None, None)

    def _add(
        self,
        trace: str,
        type_: str,
        name: str,
        at: datetime,
        level: str,
        metadata: dict[str, object],
        total_cost: str | None,
        model: str | None,
        id_: str | None,
        updated_at: datetime | None,
    ) -> str:
        id_ = id_ or f"{trace}-{next(self._ids)}"
        self.rows.append(
            {
                "id": id_,
                "trace_id": trace,
                "type": type_,
                "name": name,
                "level": level,
                "model": model,
                "start_time": at,
                "end_time": at,
                "created_at": at + timedelta(seconds=3),
                "updated_at": updated_at or at + timedelta(seconds=3),
                "total_cost": total_cost,
                "metadata": json.dumps(metadata),
                "_source_file": "fixture.jsonl",
                "_batch_id": 1,
            }
        )
        return id_

    def load(self, database: Database) -> None:
        load_observations(database, self.rows)


@dataclass
class Clock:
    """The fixture's timeline: the server's now() when the fixture is written."""

    now: datetime

    @property
    def window_start(self) -> datetime:
        return self.now - timedelta(days=7)

    def day(self, days_ago: int, hour: int, minute: int = 0, seconds: float = 0.0) -> datetime:
        """A time of day on the UTC date ``days_ago`` days before now (1 to 6: always a whole window day)."""
        midnight = datetime.combine((self.now - timedelta(days=days_ago)).date(), time(0), UTC)
        return midnight + timedelta(hours=hour, minutes=minute, seconds=seconds)

    def ago(self, **delta: float) -> datetime:
        return self.now - timedelta(**delta)


def first_load(clock: Clock) -> Observations:
    """Fifteen traces; each comment says what the trace is for."""
    o = Observations()
    # T1: rate-limit gpt-4o-mini -> flash-lite; the attempt fails (ERROR, $0), the fallback answers ($0.002).
    o.generation("T1", clock.day(2, 12), level="ERROR", cost_usd=0)
    o.event(
        "T1",
        clock.day(2, 12, seconds=0.2),
        RL,
        original_model=GPT_MINI,
        fallback_model=FLASH_LITE,
        reason="rate_limit_or_error",
    )
    o.generation("T1", clock.day(2, 12, seconds=0.3), cost_usd=0.002, model=FLASH_LITE)
    # T2: same pair, same day; the answer has no metadata cost_usd, only Langfuse's total ($0.004).
    o.generation("T2", clock.day(2, 13), level="ERROR", cost_usd=0)
    o.event("T2", clock.day(2, 13, seconds=0.2), RL, original_model=GPT_MINI, fallback_model=FLASH_LITE)
    o.generation("T2", clock.day(2, 13, seconds=0.3), total_cost="0.004", model=FLASH_LITE)
    # T3: same pair; the fallback fails as well (ERROR): not a success (the guide's SQL would count it).
    o.generation("T3", clock.day(3, 12), level="ERROR", cost_usd=0)
    o.event("T3", clock.day(3, 12, seconds=0.2), RL, original_model=GPT_MINI, fallback_model=FLASH_LITE)
    o.generation(
        "T3", clock.day(3, 12, seconds=0.3), level="ERROR", cost_usd=0, model=FLASH_LITE, id_="T3-fallback"
    )
    # T4: context-length gpt-4o-mini -> pro, 150,000 tokens; answered ($0.01).
    o.event(
        "T4",
        clock.day(3, 14),
        CL,
        original_model=GPT_MINI,
        fallback_model=PRO,
        estimated_tokens=150000,
        original_max_context=128000,
        fallback_max_context=1048576,
    )
    o.generation("T4", clock.day(3, 14, seconds=0.1), cost_usd=0.01, model=PRO)
    # T5: same pair, 300,000 tokens; no generation at all (yet): not a success, cost unknown.
    o.event(
        "T5",
        clock.day(4, 12),
        CL,
        original_model=GPT_MINI,
        fallback_model=PRO,
        estimated_tokens=300000,
        original_max_context=128000,
        fallback_max_context=1048576,
    )
    # T6: context-length haiku -> flash; the size is not a number; answered, cost unknown everywhere.
    o.event(
        "T6",
        clock.day(4, 15),
        CL,
        original_model=HAIKU,
        fallback_model=FLASH,
        estimated_tokens="lots",
        original_max_context=200000,
        fallback_max_context=1048576,
    )
    o.generation("T6", clock.day(4, 15, seconds=0.1), model=FLASH)
    # T7: rate-limit gpt-4o-mini -> flash, 30 minutes inside the window's start; answered ($0.001).
    o.event(
        "T7", clock.window_start + timedelta(minutes=30), RL, original_model=GPT_MINI, fallback_model=FLASH
    )
    o.generation("T7", clock.window_start + timedelta(minutes=30, seconds=0.3), cost_usd=0.001, model=FLASH)
    # T8: the same, 30 minutes before the window's start: in no view.
    o.event(
        "T8", clock.window_start - timedelta(minutes=30), RL, original_model=GPT_MINI, fallback_model=FLASH
    )
    o.generation("T8", clock.window_start - timedelta(minutes=29), cost_usd=0.5, model=FLASH)
    # T9: rate-limit gpt-4o-mini -> flash-lite 20 minutes ago (the alerts' hour); answered ($0.003).
    o.generation("T9", clock.ago(minutes=20), level="ERROR", cost_usd=0)
    o.event(
        "T9",
        clock.ago(minutes=20) + timedelta(seconds=0.2),
        RL,
        original_model=GPT_MINI,
        fallback_model=FLASH_LITE,
    )
    o.generation("T9", clock.ago(minutes=20) + timedelta(seconds=0.3), cost_usd=0.003, model=FLASH_LITE)
    # T10: context-length gpt-4o-mini -> pro 30 seconds ago (the alerts' 10 minutes), 200,000 tokens ($0.02).
    o.event(
        "T10",
        clock.ago(seconds=30),
        CL,
        original_model=GPT_MINI,
        fallback_model=PRO,
        estimated_tokens=200000,
        original_max_context=128000,
        fallback_max_context=1048576,
    )
    o.generation("T10", clock.ago(seconds=29), cost_usd=0.02, model=PRO)
    # T12: rate-limit haiku -> pro 40 minutes inside the window; its answer (at +10 minutes) was recorded
    # before the event: still a success, the answer being inside the window ($0.005).
    o.event("T12", clock.window_start + timedelta(minutes=40), RL, original_model=HAIKU, fallback_model=PRO)
    o.generation("T12", clock.window_start + timedelta(minutes=10), cost_usd=0.005, model=PRO)
    # T13: rate-limit haiku -> flash-lite 50 minutes inside the window; its only good answer came 20 minutes
    # before the window (outside), then an attempt failed inside it: not a success. Cost $0.006 + $0.
    o.event(
        "T13", clock.window_start + timedelta(minutes=50), RL, original_model=HAIKU, fallback_model=FLASH_LITE
    )
    o.generation("T13", clock.window_start - timedelta(minutes=20), cost_usd=0.006, model=FLASH_LITE)
    o.generation("T13", clock.window_start + timedelta(minutes=50, seconds=1), level="ERROR", cost_usd=0)
    # T14: rate-limit gpt-4o-mini -> flash-lite, two events (two fallbacks, one request); answered ($0.001).
    o.generation("T14", clock.day(6, 12), level="ERROR", cost_usd=0)
    o.event("T14", clock.day(6, 12, seconds=0.2), RL, original_model=GPT_MINI, fallback_model=FLASH_LITE)
    o.generation("T14", clock.day(6, 12, seconds=1), level="ERROR", cost_usd=0, model=FLASH_LITE)
    o.event("T14", clock.day(6, 12, seconds=5), RL, original_model=GPT_MINI, fallback_model=FLASH_LITE)
    o.generation("T14", clock.day(6, 12, seconds=6), cost_usd=0.001, model=FLASH_LITE)
    # T15: an event that is not a fallback: in no view.
    o.event("T15", clock.day(2, 9), "cache_hit")
    # N1-N4: ordinary requests in the last hour (one generation each), the alerts' denominator.
    for i, minutes in enumerate((10, 25, 35, 45), start=1):
        o.generation(f"N{i}", clock.ago(minutes=minutes), cost_usd=0.001)
    return o


def second_load(clock: Clock) -> Observations:
    """A later export: a late generation, a corrected row and a new trace."""
    o = Observations()
    # T5 gets its generation late: now a success, cost $0.03.
    o.generation("T5", clock.day(4, 12, seconds=0.1), cost_usd=0.03, model=PRO)
    # T3's fallback attempt is re-exported corrected: it did answer (DEFAULT, $0.0025).
    o.generation(
        "T3",
        clock.day(3, 12, seconds=0.3),
        cost_usd=0.0025,
        model=FLASH_LITE,
        id_="T3-fallback",
        updated_at=clock.now,
    )
    # T16: a new rate-limit fallback yesterday, answered ($0.004).
    o.event("T16", clock.day(1, 12), RL, original_model=GPT_MINI, fallback_model=FLASH_LITE)
    o.generation("T16", clock.day(1, 12, seconds=0.3), cost_usd=0.004, model=FLASH_LITE)
    return o


# ---------------------------------------------------------------------------------------------- dbt harness


@dataclass
class DbtRun:
    exit_code: int
    results: dict[str, tuple[str, int | None]]  # unique id -> (status, failures)
    log_events: list[dict[str, object]]

    def status(self, name: str) -> tuple[str, int | None]:
        """The result of the node called ``name`` (a test, a model)."""
        (found,) = [result for uid, result in self.results.items() if uid.split(".")[2] == name]
        return found

    def warnings(self) -> list[tuple[str, str]]:
        """(event name, node name) of every warn-level event in the log."""
        found = []
        for event in self.log_events:
            info = event["info"]
            if info["level"] == "warn":  # type: ignore[index]
                node = (event.get("data") or {}).get("node_info", {}).get("node_name", "")  # type: ignore[union-attr]
                found.append((info["name"], node))  # type: ignore[index]
        return found


@dataclass
class Warehouse:
    """The module's database and its dbt target/log folders (one per xdist worker: pytest's tmp folders)."""

    database: Database
    root: Path
    clock: Clock
    _runs: Iterator[int] = field(default_factory=count)

    def dbt(self, *args: str) -> DbtRun:
        """One dbt command; its views take the fixture's clock for now (merged into any ``--vars`` given)."""
        run = self.root / f"run-{next(self._runs):02d}"
        code = run_dbt(
            [
                *self._with_clock(args),
                "--target-path",
                str(self.root / "target"),
                "--log-path",
                str(run),
                "--log-format-file",
                "json",
            ],
            self.database,
        )
        results_file = self.root / "target" / "run_results.json"
        results = {}
        if results_file.exists():
            for result in json.loads(results_file.read_text())["results"]:
                results[result["unique_id"]] = (result["status"], result.get("failures"))
            results_file.unlink()
        log = run / "dbt.log"
        events = (
            [json.loads(line) for line in log.read_text().splitlines() if line.strip()]
            if log.exists()
            else []
        )
        return DbtRun(code, results, events)

    def _with_clock(self, args: tuple[str, ...]) -> list[str]:
        pinned = {"reporting_now": reporting_now(self.clock.now)}
        given = list(args)
        if "--vars" not in given:
            return [*given, "--vars", json.dumps(pinned)]
        at = given.index("--vars") + 1
        given[at] = json.dumps({**pinned, **json.loads(given[at])})
        return given

    def views(self) -> dict[str, list[tuple[object, ...]]]:
        """Every view's rows, in the view's order, read in one transaction."""
        with self.database.connect() as conn:
            return {view: conn.execute(f"select * from analytics.{view}").fetchall() for view in VIEWS}

    def query(self, sql: str) -> list[tuple[object, ...]]:
        with self.database.connect() as conn:
            return conn.execute(sql).fetchall()

    def show(self, *args: str) -> subprocess.CompletedProcess[str]:
        return run_cli("show", *args, database=self.database)


def run_cli(*args: str, database: Database) -> subprocess.CompletedProcess[str]:
    """The real ``autopicker`` command against ``database``, wide enough for the tables."""
    env = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "DATABASE_URL": database.url,
        "AUTOPICKER_PROJECT_DIR": str(REPO),
        "COLUMNS": "200",
        "DBT_SEND_ANONYMOUS_USAGE_STATS": "false",
    }
    return run_autopicker(*args, env=env)


@dataclass
class Stage:
    run: DbtRun
    views: dict[str, list[tuple[object, ...]]]
    show: subprocess.CompletedProcess[str] | None = None


@pytest.fixture(scope="module")
def warehouse(module_database: Database, tmp_path_factory: pytest.TempPathFactory) -> Warehouse:
    ensure_raw_schema(module_database)
    with module_database.connect() as conn:
        now = conn.execute("select now()").fetchone()[0]  # type: ignore[index]
    return Warehouse(module_database, tmp_path_factory.mktemp("dbt"), Clock(now))


@pytest.fixture(scope="module")
def empty_stage(warehouse: Warehouse) -> Stage:
    run = warehouse.dbt("run")
    return Stage(run, warehouse.views(), warehouse.show())


@pytest.fixture(scope="module")
def first_stage(warehouse: Warehouse, empty_stage: Stage) -> Stage:
    first_load(warehouse.clock).load(warehouse.database)
    run = warehouse.dbt("build")
    return Stage(run, warehouse.views(), warehouse.show("--limit", "2"))


@pytest.fixture(scope="module")
def alert_stages(warehouse: Warehouse, first_stage: Stage) -> tuple[DbtRun, DbtRun]:
    """The first build's alert results (default thresholds) and a run with other thresholds."""
    other = {
        "alert_fallback_rate_max": 0.5,
        "alert_fallback_cost_max_usd": 0.02,
        "alert_context_fallbacks_max": 0,
    }
    return first_stage.run, warehouse.dbt("test", "--select", "tag:alert", "--vars", json.dumps(other))


REFRESHED = (
    "select event_id, trace_id, dbt_refreshed_at from analytics_intermediate.int_fallback_events_enriched"
)


@pytest.fixture(scope="module")
def second_stage(warehouse: Warehouse, first_stage: Stage) -> tuple[Stage, list[tuple[object, ...]]]:
    """After the second load and an incremental run; plus each event's refresh time before that run.

    The run re-reads no earlier load (overlap 0): the first load happened moments ago, well inside the
    default one-hour overlap, which would recompute its traces again (harmlessly) and blur which traces the
    new rows touched.
    """
    before = warehouse.query(REFRESHED)
    second_load(warehouse.clock).load(warehouse.database)
    run = warehouse.dbt("run", "--vars", json.dumps({"incremental_overlap_minutes": 0}))
    return Stage(run, warehouse.views()), before


@pytest.fixture(scope="module")
def refreshed_stage(warehouse: Warehouse, second_stage: tuple[Stage, list[tuple[object, ...]]]) -> Stage:
    run = warehouse.dbt("run", "--full-refresh", "--select", "int_fallback_events_enriched+")
    return Stage(run, warehouse.views())


# ------------------------------------------------------------------------------------------------- answers


def utc_date(ts: datetime) -> date:
    return ts.astimezone(UTC).date()


def expected_after_first_load(clock: Clock) -> dict[str, list[tuple[object, ...]]]:
    d2, d3, d4, d6 = (clock.day(k, 12).date() for k in (2, 3, 4, 6))
    t7 = utc_date(clock.window_start + timedelta(minutes=30))
    t9 = utc_date(clock.ago(minutes=20))
    t10 = utc_date(clock.ago(seconds=30))
    t12 = utc_date(clock.window_start + timedelta(minutes=40))
    t13 = utc_date(clock.window_start + timedelta(minutes=50))
    return {
        # (original, fallback, fallback_count, date)
        "fallback_rate_limit_daily": [
            (GPT_MINI, FLASH_LITE, 2, d2),  # T1, T2
            (GPT_MINI, FLASH_LITE, 1, d3),  # T3
            (GPT_MINI, FLASH_LITE, 2, d6),  # T14's two events
            (GPT_MINI, FLASH_LITE, 1, t9),  # T9
            (GPT_MINI, FLASH, 1, t7),  # T7 (T8 is outside the window)
            (HAIKU, PRO, 1, t12),  # T12
            (HAIKU, FLASH_LITE, 1, t13),  # T13
        ],
        # (original, fallback, fallback_count, avg_input_tokens, original_context_limit,
        #  fallback_context_limit)
        "fallback_context_length": [
            # T4, T5, T10: (150,000 + 300,000 + 200,000) / 3 = 216,666.67
            (GPT_MINI, PRO, 3, D("216666.67"), D("128000"), D("1048576")),
            # T6: its size is not a number, so no average size
            (HAIKU, FLASH, 1, None, D("200000"), D("1048576")),
        ],
        # (type, original, fallback, total_fallbacks, date)
        "fallback_all_daily": [
            (RL, GPT_MINI, FLASH_LITE, 2, d2),
            (RL, GPT_MINI, FLASH_LITE, 1, d3),
            (RL, GPT_MINI, FLASH_LITE, 2, d6),
            (RL, GPT_MINI, FLASH_LITE, 1, t9),
            (RL, GPT_MINI, FLASH, 1, t7),
            (RL, HAIKU, PRO, 1, t12),
            (RL, HAIKU, FLASH_LITE, 1, t13),
            (CL, GPT_MINI, PRO, 1, d3),  # T4
            (CL, GPT_MINI, PRO, 1, d4),  # T5
            (CL, GPT_MINI, PRO, 1, t10),  # T10
            (CL, HAIKU, FLASH, 1, d4),  # T6
        ],
        # (type, original, fallback, affected_traces, total_cost, avg_cost_per_request)
        "fallback_cost_impact": [
            # T4 $0.01 + T10 $0.02, T5 unknown: 3 traces, $0.03, average over the 2 known: $0.015
            (CL, GPT_MINI, PRO, 3, D("0.03"), D("0.015")),
            # T1 $0.002 + T2 $0.004 (Langfuse's total) + T3 $0 + T9 $0.003 + T14 $0.001 (counted once)
            (RL, GPT_MINI, FLASH_LITE, 5, D("0.010"), D("0.002")),
            (RL, HAIKU, FLASH_LITE, 1, D("0.006"), D("0.006")),  # T13: all its generations, $0.006 + $0
            (RL, HAIKU, PRO, 1, D("0.005"), D("0.005")),  # T12
            (RL, GPT_MINI, FLASH, 1, D("0.001"), D("0.001")),  # T7
            (CL, HAIKU, FLASH, 1, None, None),  # T6: no cost known, sorted last
        ],
        # (type, original, fallback, total_fallbacks, successful_fallbacks, success_rate_percent)
        "fallback_success_rate": [
            (RL, GPT_MINI, FLASH_LITE, 6, 5, D("83.33")),  # T1, T2, T9, T14 twice succeed; T3 does not
            (CL, GPT_MINI, PRO, 3, 2, D("66.67")),  # T4, T10 succeed; T5 has no generation
            (RL, GPT_MINI, FLASH, 1, 1, D("100.00")),  # T7
            (RL, HAIKU, PRO, 1, 1, D("100.00")),  # T12: answer before the event, inside the window
            (RL, HAIKU, FLASH_LITE, 1, 0, D("0.00")),  # T13: good answer only before the window
            (CL, HAIKU, FLASH, 1, 1, D("100.00")),  # T6
        ],
    }


def per_day(rows: list[tuple[object, ...]]) -> list[tuple[object, ...]]:
    """Daily rows ``(*pair, count, date)`` with the counts of one pair and date added up: a row written
    minutes before now falls on yesterday's date in the first minutes of a UTC day."""
    counts: Counter[tuple[object, ...]] = Counter()
    for *pair, fallbacks, day in rows:
        counts[(*pair, day)] += fallbacks  # type: ignore[operator]
    return [(*key[:-1], total, key[-1]) for key, total in counts.items()]


def expected_after_second_load(clock: Clock) -> dict[str, list[tuple[object, ...]]]:
    expected = expected_after_first_load(clock)
    d1 = clock.day(1, 12).date()
    expected["fallback_rate_limit_daily"].append((GPT_MINI, FLASH_LITE, 1, d1))  # T16
    expected["fallback_all_daily"].append((RL, GPT_MINI, FLASH_LITE, 1, d1))  # T16
    for view in ("fallback_rate_limit_daily", "fallback_all_daily"):  # T16 and T9 share a day after midnight
        expected[view] = per_day(expected[view])
    cost = expected["fallback_cost_impact"]
    # T5 now costs $0.03: $0.06 over 3 known traces
    cost[0] = (CL, GPT_MINI, PRO, 3, D("0.06"), D("0.02"))
    # T3 now costs $0.0025 and T16 $0.004 joins: 6 traces, $0.0165, $0.00275 each
    cost[1] = (RL, GPT_MINI, FLASH_LITE, 6, D("0.0165"), D("0.00275"))
    success = expected["fallback_success_rate"]
    success[0] = (RL, GPT_MINI, FLASH_LITE, 7, 7, D("100.00"))  # T3 corrected to a success, T16 new
    success[1] = (CL, GPT_MINI, PRO, 3, 3, D("100.00"))  # T5 answered late
    return expected


def assert_views(
    actual: dict[str, list[tuple[object, ...]]], expected: dict[str, list[tuple[object, ...]]]
) -> None:
    for view in VIEWS:
        assert sorted(actual[view], key=repr) == sorted(expected[view], key=repr), view


# ------------------------------------------------------------------------------------------------- the tests


def test_views_are_empty_before_any_data(empty_stage: Stage) -> None:
    assert empty_stage.run.exit_code == 0
    assert all(rows == [] for rows in empty_stage.views.values())


def test_build_gives_each_views_rows_worked_out_by_hand(warehouse: Warehouse, first_stage: Stage) -> None:
    assert first_stage.run.exit_code == 0
    assert_views(first_stage.views, expected_after_first_load(warehouse.clock))


def test_views_keep_the_guides_order(first_stage: Stage) -> None:
    daily = first_stage.views["fallback_all_daily"]
    assert [row[4] for row in daily] == sorted((row[4] for row in daily), reverse=True)
    costs = [row[4] for row in first_stage.views["fallback_cost_impact"]]
    assert costs == sorted(costs[:-1], reverse=True) + [None]
    assert [row[3] for row in first_stage.views["fallback_success_rate"]] == [6, 3, 1, 1, 1, 1]


def test_build_runs_every_model_unit_test_and_data_test(first_stage: Stage) -> None:
    results = first_stage.run.results
    assert statuses_by_kind(results) == GREEN_BUILD
    # every model and every unit test of the project, whichever folder declares them
    models = REPO / "models"
    declared = [yaml.safe_load(path.read_text()).get("unit_tests", []) for path in models.rglob("*.yml")]
    assert sum(uid.startswith("model.") for uid in results) == len(list(models.rglob("*.sql")))
    assert sum(uid.startswith("unit_test.") for uid in results) == sum(map(len, declared))
    assert first_stage.run.status("bucketed_days_tie_out") == ("pass", 0)


def test_build_log_has_no_warning_but_the_alerts(first_stage: Stage) -> None:
    warnings = first_stage.run.warnings()
    assert warnings, "the high fallback rate alert fires on this fixture, so the log has its warnings"
    assert [w for w in warnings if not w[1].startswith("alert_")] == []


def test_alerts_fire_above_their_thresholds_and_not_below(alert_stages: tuple[DbtRun, DbtRun]) -> None:
    default, other = alert_stages
    # Last hour: 2 fallback requests (T9, T10) of 6 requests (T9, T10, N1-N4): 33 % > 20 %.
    # Their cost: $0.003 + $0.02 = $0.023 <= $10. Context fallbacks in 10 minutes: 1 (T10) <= 10.
    assert {name: default.status(name) for name in ALERTS} == {
        "alert_high_fallback_rate": ("warn", 1),
        "alert_expensive_fallbacks": ("pass", 0),
        "alert_context_limit_frequently_hit": ("pass", 0),
    }
    # Thresholds 50 %, $0.02 and 0: the rate stays below, the cost and the context count go above.
    assert other.exit_code == 0
    assert {name: other.status(name) for name in ALERTS} == {
        "alert_high_fallback_rate": ("pass", 0),
        "alert_expensive_fallbacks": ("warn", 1),
        "alert_context_limit_frequently_hit": ("warn", 1),
    }
    assert [w for w in other.warnings() if not w[1].startswith("alert_")] == []


def test_incremental_run_picks_up_late_and_corrected_rows(
    warehouse: Warehouse, second_stage: tuple[Stage, list[tuple[object, ...]]]
) -> None:
    stage, _ = second_stage
    assert stage.run.exit_code == 0
    assert_views(stage.views, expected_after_second_load(warehouse.clock))


def test_incremental_run_leaves_untouched_traces_alone(
    warehouse: Warehouse, second_stage: tuple[Stage, list[tuple[object, ...]]]
) -> None:
    _, before = second_stage
    then = {event: at for event, _, at in before}
    recomputed = {trace for event, trace, at in warehouse.query(REFRESHED) if then.get(event) != at}
    # T3 (corrected row) and T5 (late generation) are recomputed, T16 is new; nothing else is touched.
    assert recomputed == {"T3", "T5", "T16"}


def test_full_refresh_gives_the_same_answers(
    warehouse: Warehouse, refreshed_stage: Stage, second_stage: tuple[Stage, list[tuple[object, ...]]]
) -> None:
    assert refreshed_stage.run.exit_code == 0
    assert refreshed_stage.views == second_stage[0].views
    assert_views(refreshed_stage.views, expected_after_second_load(warehouse.clock))


# ------------------------------------------------------------------------------------------- autopicker show


def test_show_on_a_warehouse_never_built(database: Database) -> None:
    result = run_cli("show", database=database)
    assert result.returncode == 1
    assert (
        result.stderr.strip()
        == "error: Schema analytics has no fallback views yet: run `autopicker build` first."
    )
    assert "Traceback" not in result.stderr


def test_show_json_prints_every_row_of_the_five_views(warehouse: Warehouse, first_stage: Stage) -> None:
    shown = warehouse.show("--format", "json")
    assert shown.returncode == 0, shown.stderr
    document = json.loads(shown.stdout)
    assert list(document) == list(VIEWS)
    views = warehouse.views()  # now: later stages of this module may have loaded more
    for view in VIEWS:
        rows = views[view]
        assert [tuple(row.values()) for row in document[view]] == [
            tuple(
                float(v) if isinstance(v, Decimal) else v.isoformat() if isinstance(v, date) else v
                for v in row
            )
            for row in rows
        ]
    assert list(document["fallback_success_rate"][0]) == [
        "fallback_type",
        "original_model",
        "fallback_model",
        "total_fallbacks",
        "successful_fallbacks",
        "success_rate_percent",
    ]


def test_show_refuses_an_unknown_format_or_target(warehouse: Warehouse, first_stage: Stage) -> None:
    shown = warehouse.show("--format", "csv")
    assert shown.returncode != 0
    assert shown.stderr.strip() == "error: --format must be table or json, not 'csv'."
    shown = warehouse.show("--target", "mysql")
    assert shown.returncode != 0
    assert shown.stderr.strip() == "error: --target must be default or spark, not 'mysql'."


def test_show_says_when_the_views_are_empty(empty_stage: Stage) -> None:
    assert empty_stage.show is not None
    assert empty_stage.show.returncode == 0, empty_stage.show.stderr
    assert empty_stage.show.stdout.count("(no rows)") == 5
    assert "the five views are empty" in empty_stage.show.stdout


def test_show_prints_every_view_with_its_columns_and_truncates(first_stage: Stage) -> None:
    shown = first_stage.show
    assert shown is not None and shown.returncode == 0, shown and shown.stderr
    out = shown.stdout
    for view in VIEWS:
        assert f"analytics.{view}" in out
    assert "Fallback success rate (the guide's Query 5)" in out
    for column in ("original_model", "avg_cost_per_request", "success_rate_percent", "avg_input_tokens"):
        assert column in out
    # --limit 2: of the 7 rate-limit rows 2 show (5 more), of the 11 daily rows 2 (9 more), of the 6 cost and
    # the 6 success-rate rows 2 (4 more); the 2 context-length rows fit.
    assert out.count("… 5 more rows") == 1
    assert out.count("… 9 more rows") == 1
    assert out.count("… 4 more rows") == 2
    assert out.count("more rows") == 4
    # the first success-rate row, in the view's order
    assert "83.33" in out and "216666.67" in out
