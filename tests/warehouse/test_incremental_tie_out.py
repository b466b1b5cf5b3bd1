"""An incremental build leaves every intermediate table as a full refresh of the same rows would.

Traffic of a few hundred traces over twelve days is loaded and built, then a second load changes it the
ways production does, scattered over those days: new traces, late traces whose rows land in old hours, late
generations of traces already built (one earlier than the trace's first row, so the request moves to the
day before), and corrected rows (a newer version of a stored row): a generation whose cost changes, one
that moves to another hour or day, a failed attempt that turns into a success, a fallback event that names
another fallback model. After an incremental build (as ``autopicker build`` runs it: no unit tests) the
intermediate tables are read, then rebuilt as ``autopicker build --full-refresh`` does and read again: the
rows must be the same, bar the columns saying when a row was computed. The incremental build re-reads no
earlier load (overlap 0). The traffic is drawn from a seeded generator: the same rows every run.

On PostgreSQL the touched traces' rows are read through int_trace_observations' trace index, and the
roll-ups add the signed sums of the rows their upstream model replaced and wrote
(macros/rollup_changes.sql); when they missed a run of that model they rebuild the changed days instead.
Both ways are built and compared: the changes added, and the upstream models run alone on the second load
before the build.
"""

from __future__ import annotations

import json
import random
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from itertools import count
from pathlib import Path

import pytest

from ingest.db import Database
from ingest.raw import ensure_raw_schema
from ingest.warehouse.dbt import build_args, run_dbt
from tests.support.dbt_results import GREEN_BUILD, statuses_by_kind
from tests.support.raw_rows import load_observations

pytestmark = [pytest.mark.dbt, pytest.mark.xdist_group("dbt_incremental_tie_out")]

MODELS = ("GPT", "FLASH", "PRO", "HAIKU")
FALLBACKS = ("rate_limit_fallback", "context_length_fallback")
#: columns that say when a row was computed, not what it holds
LINEAGE = {"dbt_refreshed_at", "rows_refreshed_through", "events_refreshed_through"}
#: int_trace_spans keeps a span that only widens (a row that moved leaves its old time inside): compared apart
TIE_OUT_TABLES = (
    "int_requests",
    "int_fallback_events_enriched",
    "int_fallback_events_bucketed",
    "int_requests_daily",
    "int_request_latency_daily",
    "int_fallbacks_hourly",
    "int_fallbacks_hourly_by_type",
)
#: the roll-ups that add their upstream's changes when they saw its previous run
ADDING_ROLL_UPS = (
    "int_fallback_events_bucketed",
    "int_requests_daily",
    "int_request_latency_daily",
    "int_fallbacks_hourly",
)


@dataclass
class Traffic:
    """Raw rows as the loaders store them; a row with a stored id replaces it when its updated_at is newer."""

    now: datetime
    rng: random.Random
    rows: list[dict[str, object]] = field(default_factory=list)
    _ids: Iterator[int] = field(default_factory=count)

    def row(self, trace: str, type_: str, name: str, at: datetime, **extra: object) -> dict[str, object]:
        row: dict[str, object] = {
            "id": extra.pop("id", None) or f"{trace}-{next(self._ids)}",
            "trace_id": trace,
            "type": type_,
            "name": name,
            "level": extra.pop("level", "DEFAULT"),
            "model": extra.pop("model", None),
            "start_time": at,
            "end_time": at + timedelta(seconds=extra.pop("seconds", 1.0)),  # type: ignore[operator]
            "created_at": at + timedelta(seconds=5),
            "updated_at": extra.pop("updated_at", at + timedelta(seconds=5)),
            "total_cost": None,
            "metadata": json.dumps(extra.pop("metadata", {})),
            "_source_file": "fixture.jsonl",
            "_batch_id": 1,
        }
        assert not extra, extra
        self.rows.append(row)
        return row

    def request(self, trace: str, at: datetime) -> list[dict[str, object]]:
        """A request: a failed attempt and a fallback event on some, then an answer (or not)."""
        rows = []
        first = self.rng.choice(MODELS)
        if self.rng.random() < 0.4:
            second = self.rng.choice([m for m in MODELS if m != first])
            rows.append(self.generation(trace, at, first, level="ERROR", cost=0))
            metadata = {"original_model": first, "fallback_model": second, "estimated_tokens": 1000}
            rows.append(
                self.row(
                    trace, "EVENT", self.rng.choice(FALLBACKS), at + timedelta(seconds=1), metadata=metadata
                )
            )
            at, first = at + timedelta(seconds=2), second
        if self.rng.random() < 0.9:
            level = "ERROR" if self.rng.random() < 0.1 else "DEFAULT"
            rows.append(self.generation(trace, at, first, level=level, cost=self.rng.randint(1, 900) / 10000))
        return rows

    def generation(
        self, trace: str, at: datetime, model: str, *, level: str, cost: float
    ) -> dict[str, object]:
        seconds = self.rng.randint(1, 40) / 10
        return self.row(
            trace,
            "GENERATION",
            "llm_call",
            at,
            model=model,
            level=level,
            seconds=seconds,
            metadata={"cost_usd": cost},
        )

    def some_time(self, days: float) -> datetime:
        return self.now - timedelta(seconds=self.rng.uniform(600, days * 86400))

    def newer(self, row: dict[str, object], **changes: object) -> dict[str, object]:
        """A corrected version of a stored row."""
        corrected = dict(row) | changes
        corrected["updated_at"] = row["updated_at"] + timedelta(minutes=1)  # type: ignore[operator]
        self.rows.append(corrected)
        return corrected

    def load(self, database: Database) -> None:
        load_observations(database, self.rows)
        self.rows = []


#: Requests of one generation each, two per day in one latency bucket (1.98 s and 2.00 s are both in the
#: bucket of 1.97-2.01 s): the second load moves one of each pair out of it (EXTREMES_MOVED), the highest
#: of the first pair and the lowest of the second, so the bucket's maximum, then its minimum, is read again.
EXTREMES = {"X000": (3, 1.98), "X001": (3, 2.0), "X002": (5, 1.98), "X003": (5, 2.0)}
EXTREMES_MOVED = ("X001", "X002")


def first_load(traffic: Traffic) -> dict[str, list[dict[str, object]]]:
    """300 requests over twelve days, and those of EXTREMES; returns each trace's rows."""
    stored = {f"A{n:03d}": traffic.request(f"A{n:03d}", traffic.some_time(12)) for n in range(300)}
    for trace, (days_ago, seconds) in EXTREMES.items():
        at = traffic.now.replace(hour=12, minute=0, second=0, microsecond=0) - timedelta(days=days_ago)
        cost = {"cost_usd": 0.01}
        stored[trace] = [
            traffic.row(trace, "GENERATION", "llm_call", at, model="GPT", seconds=seconds, metadata=cost)
        ]
    return stored


def second_load(traffic: Traffic, stored: dict[str, list[dict[str, object]]]) -> None:
    rng = traffic.rng
    for n in range(30):  # new requests of the last day
        traffic.request(f"N{n:03d}", traffic.some_time(1))
    for n in range(20):  # late requests: rows loaded now that land in old hours
        traffic.request(f"L{n:03d}", traffic.some_time(12))
    for trace in EXTREMES_MOVED:  # a generation corrected to another latency
        (row,) = stored[trace]
        traffic.newer(row, end_time=row["start_time"] + timedelta(seconds=3))  # type: ignore[operator]
    traces = sorted(t for t in stored if t not in EXTREMES)
    rng.shuffle(traces)
    with_generations = [t for t in traces if any(r["type"] == "GENERATION" for r in stored[t])]
    for trace in with_generations[:10]:  # a late generation of a trace already built, in its hour
        last = max(r["start_time"] for r in stored[trace])  # type: ignore[type-var]
        traffic.generation(trace, last + timedelta(seconds=30), "GPT", level="DEFAULT", cost=0.05)
    for trace in with_generations[10:14]:  # a late generation before the trace's first row: another day
        first = min(r["start_time"] for r in stored[trace])  # type: ignore[type-var]
        traffic.generation(trace, first - timedelta(hours=26), "PRO", level="DEFAULT", cost=0.02)
    for trace in with_generations[14:34]:  # a corrected cost
        row = next(r for r in stored[trace] if r["type"] == "GENERATION")
        traffic.newer(row, metadata=json.dumps({"cost_usd": rng.randint(1, 900) / 1000}))
    for trace in with_generations[34:44]:  # a generation corrected to another time (hours or a day later)
        row = next(r for r in stored[trace] if r["type"] == "GENERATION")
        traffic.newer(row, start_time=row["start_time"] + timedelta(hours=rng.choice([3, 25])))  # type: ignore[operator]
    failed = [t for t in traces if any(r["level"] == "ERROR" for r in stored[t])]
    for trace in failed[:8]:  # a failed attempt corrected to a success
        row = next(r for r in stored[trace] if r["level"] == "ERROR")
        traffic.newer(row, level="DEFAULT")
    fell_back = [t for t in traces if any(r["type"] == "EVENT" for r in stored[t])]
    for trace in fell_back[:8]:  # a fallback event naming another fallback model
        row = next(r for r in stored[trace] if r["type"] == "EVENT")
        metadata = json.loads(row["metadata"])  # type: ignore[arg-type]
        traffic.newer(row, metadata=json.dumps(metadata | {"fallback_model": "FLASH-LITE"}))


@dataclass
class Built:
    database: Database
    root: Path
    _runs: Iterator[int] = field(default_factory=count)

    def dbt(self, *args: str) -> dict[str, tuple[str, object, str]]:
        code = run_dbt(
            [
                *args,
                "--target-path",
                str(self.root / "target"),
                "--log-path",
                str(self.root / f"log-{next(self._runs)}"),
            ],
            self.database,
        )
        results = json.loads((self.root / "target" / "run_results.json").read_text())["results"]
        assert code == 0, [r for r in results if r["status"] not in ("success", "pass", "warn")]
        return {r["unique_id"]: (r["status"], r.get("failures"), r.get("compiled_code", "")) for r in results}

    def tables(self) -> dict[str, list[tuple[object, ...]]]:
        """Each tie-out table's rows (lineage columns left out), sorted."""
        with self.database.connect() as conn:
            read = {}
            for table in TIE_OUT_TABLES:
                columns = [
                    name
                    for (name,) in conn.execute(
                        "select column_name from information_schema.columns where table_schema ="
                        " 'analytics_intermediate' and table_name = %s order by ordinal_position",
                        (table,),
                    )
                    if name not in LINEAGE
                ]
                rows = conn.execute(
                    f"select {', '.join(columns)} from analytics_intermediate.{table}"
                ).fetchall()
                read[table] = sorted(rows, key=repr)
            return read

    def spans(self) -> dict[str, tuple[datetime, datetime]]:
        with self.database.connect() as conn:
            rows = conn.execute(
                "select trace_id, first_at, last_at from analytics_intermediate.int_trace_spans"
            )
            return {trace: (first, last) for trace, first, last in rows}

    def spans_load_times_as_stored(self) -> list[datetime]:
        with self.database.connect() as conn:
            rows = conn.execute(
                "select trace_loaded_at from analytics_intermediate.int_trace_spans order by ctid"
            )
            return [loaded_at for (loaded_at,) in rows]


@dataclass
class Outcome:
    incremental: dict[str, list[tuple[object, ...]]]
    incremental_spans: dict[str, tuple[datetime, datetime]]
    build: dict[str, tuple[str, object, str]]
    refresh: dict[str, tuple[str, object, str]]
    refreshed: dict[str, list[tuple[object, ...]]]
    refreshed_spans: dict[str, tuple[datetime, datetime]]
    refreshed_spans_load_times: list[datetime]  # as stored on disk
    scenario: str


@pytest.fixture(scope="module", params=["roll-ups-add-changes", "roll-ups-missed-a-run"])
def outcome(
    request: pytest.FixtureRequest, module_database: Database, tmp_path_factory: pytest.TempPathFactory
) -> Outcome:
    scenario = request.param
    with module_database.connect() as conn:
        conn.execute("drop schema if exists analytics_intermediate cascade")
        conn.execute("drop schema if exists langfuse_raw cascade")
    ensure_raw_schema(module_database)
    with module_database.connect() as conn:
        now = conn.execute("select now()").fetchone()[0]  # type: ignore[index]
    traffic = Traffic(now.astimezone(UTC), random.Random(9))
    built = Built(module_database, tmp_path_factory.mktemp("dbt"))
    stored = first_load(traffic)
    traffic.load(module_database)
    built.dbt("run")
    second_load(traffic, stored)
    traffic.load(module_database)
    no_overlap = ("--vars", json.dumps({"incremental_overlap_minutes": 0}))
    if scenario == "roll-ups-missed-a-run":
        built.dbt("run", "--select", "+int_requests", "+int_fallback_events_enriched", *no_overlap)
    # as `autopicker build` runs it
    build = built.dbt(*build_args(), *no_overlap)
    incremental, incremental_spans = built.tables(), built.spans()
    refresh = built.dbt(*build_args(full_refresh=True))
    return Outcome(
        incremental,
        incremental_spans,
        build,
        refresh,
        built.tables(),
        built.spans(),
        built.spans_load_times_as_stored(),
        scenario,
    )


def test_incremental_build_is_green_without_the_unit_tests(outcome: Outcome) -> None:
    assert statuses_by_kind(outcome.build) == {k: v for k, v in GREEN_BUILD.items() if k != "unit_test"}


def test_full_refresh_runs_the_unit_tests_too(outcome: Outcome) -> None:
    assert statuses_by_kind(outcome.refresh) == GREEN_BUILD


@pytest.mark.parametrize("table", TIE_OUT_TABLES)
def test_incremental_tables_equal_a_full_refresh(outcome: Outcome, table: str) -> None:
    assert outcome.refreshed[table], table  # the traffic reaches every table
    assert outcome.incremental[table] == outcome.refreshed[table]


@pytest.mark.parametrize("roll_up", ADDING_ROLL_UPS)
def test_roll_ups_add_the_changes_only_of_the_run_they_follow(outcome: Outcome, roll_up: str) -> None:
    (compiled,) = [code for node, (_, _, code) in outcome.build.items() if node.endswith(f".{roll_up}")]
    assert ("__changes" in compiled) == (outcome.scenario == "roll-ups-add-changes"), compiled


@pytest.mark.parametrize("model", ["int_requests", "int_fallback_events_enriched"])
def test_recomputed_traces_are_read_through_the_trace_index(outcome: Outcome, model: str) -> None:
    (compiled,) = [code for node, (_, _, code) in outcome.build.items() if node.endswith(f".{model}")]
    assert '"int_trace_observations"' in compiled and "stg_langfuse__" not in compiled, compiled


def test_trace_spans_hold_every_trace_within_its_span(outcome: Outcome) -> None:
    assert outcome.incremental_spans.keys() == outcome.refreshed_spans.keys()
    for trace, (first, last) in outcome.refreshed_spans.items():
        kept_first, kept_last = outcome.incremental_spans[trace]
        assert kept_first <= first and last <= kept_last, trace


def test_a_full_refresh_stores_the_trace_spans_in_load_order(outcome: Outcome) -> None:
    """The traces of both loads, stored in load order: an incremental build's tests then read the traces
    loaded lately from the table's last pages (models/intermediate/int_trace_spans.sql)."""
    stored = outcome.refreshed_spans_load_times
    assert len(set(stored)) > 1  # the two loads
    assert stored == sorted(stored)
