"""The dashboard and alert views end to end, and the BI role reading them; answers worked out by hand.

One database for the module and four dbt invocations, as module fixtures:

1. the first load, then ``dbt build`` (models, unit tests, data tests, alerts) with a BI role name in var
   ``bi_roles`` that does not exist: every dashboard view's exact rows; two BI roles made by
   ``autopicker bi-role`` read every view and nothing else;
2. a second load (a corrected row that moves a request to another day, an event moved to another day, a
   late generation, a new request), then ``dbt build`` without unit tests (incremental, every view
   recreated): the views follow, the roll-ups tie out, and both BI roles still read the views, one through
   the default privileges, the other through dbt's grants;
3. ``dbt run --full-refresh`` of the new incremental models: the same answers;
4. ``dbt docs generate``: the catalog has every view with its column comments, and the exposures.

Times are relative to the server's ``now()`` when the fixture is written, and every dbt run takes that instant
for now (var ``reporting_now``), so the answers hold however long the module takes, even past the end of a UTC
hour or day.
"""

from __future__ import annotations

import json
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal

import psycopg
import pytest

from ingest.db import Database
from ingest.raw import ensure_raw_schema
from tests.support.bi_roles import (
    bi_role_cli,
    connect_as,
    drop_role,
    scram_matches,
    stored_verifier,
    unique_role,
)
from tests.support.dbt_results import GREEN_BUILD, statuses_by_kind
from tests.warehouse.test_views import GPT_MINI, HAIKU, PRO, Clock, DbtRun, Observations, Warehouse

pytestmark = [pytest.mark.dbt, pytest.mark.xdist_group("dbt_dashboards")]

D = Decimal
RL = "rate_limit_fallback"
CL = "context_length_fallback"
LITE = "gemini/gemini-2.5-flash-lite"
FLASH = "gemini/gemini-2.5-flash"

DASHBOARD_VIEWS = (
    "monitoring_fallbacks_hourly",
    "monitoring_fallbacks_daily",
    "monitoring_fallback_distribution",
    "monitoring_top_fallback_pairs",
    "cost_by_fallback_type",
    "cost_trend_daily",
    "cost_most_expensive_fallbacks",
    "performance_success_rate",
    "performance_latency_impact",
    "performance_recommendations",
    "fallback_alerts",
)
NEW_INCREMENTAL = (
    "int_requests",
    "int_requests_daily",
    "int_fallbacks_hourly",
    "int_fallbacks_hourly_by_type",
)


def pair(original: str, fallback: str | None) -> str:
    return f"{original} → {fallback or 'unknown'}"


# --------------------------------------------------------------------------------------------------- raw rows


@dataclass
class Timeline:
    """The fixture's instants (UTC), named for the request they belong to."""

    clock: Clock

    def day(self, days_ago: int, hour: int, minute: int = 0, seconds: float = 0.0) -> datetime:
        return self.clock.day(days_ago, hour, minute, seconds)

    @property
    def e1(self) -> datetime:
        return self.clock.ago(minutes=20)

    @property
    def e2(self) -> datetime:
        return self.clock.ago(minutes=5)

    @property
    def n1(self) -> datetime:
        return self.clock.ago(minutes=30)


def call(
    o: Observations,
    trace: str,
    start: datetime,
    seconds: float,
    *,
    model: str = GPT_MINI,
    failed: bool = False,
    cost: float | None = None,
    total_cost: str | None = None,
    id_: str | None = None,
    updated_at: datetime | None = None,
) -> str:
    """A generation from ``start`` lasting ``seconds`` (failed: level ERROR)."""
    id_ = o.generation(
        trace,
        start,
        level="ERROR" if failed else "DEFAULT",
        cost_usd=cost,
        total_cost=total_cost,
        model=model,
        id_=id_,
        updated_at=updated_at,
    )
    o.rows[-1]["end_time"] = start + timedelta(seconds=seconds)
    return id_


def event(
    o: Observations,
    trace: str,
    at: datetime,
    name: str,
    *,
    id_: str | None = None,
    updated_at: datetime | None = None,
    **metadata: object,
) -> None:
    """A fallback event, with a chosen id and version when it is to be re-exported corrected."""
    o.event(trace, at, name, **metadata)
    if id_:
        o.rows[-1]["id"] = id_
    if updated_at:
        o.rows[-1]["updated_at"] = updated_at


def first_load(t: Timeline) -> Observations:
    """Fourteen requests; each comment gives its kind, latency (s), cost ($) and outcome."""
    o = Observations()
    # A1, A2, A3: normal; 2 s $0.001, 4 s $0.003, and a failed call of 1 s at $0.
    call(o, "A1", t.day(2, 12), 2, cost=0.001)
    call(o, "A2", t.day(2, 13), 4, cost=0.003, id_="A2-call")
    call(o, "A3", t.day(3, 9), 1, cost=0, failed=True)
    # N1: normal, half an hour ago (the alerts' hour); 1 s, $0.001.
    call(o, "N1", t.n1, 1, cost=0.001)
    # B1: rate limit gpt-4o-mini -> flash-lite; the first call fails, the fallback answers. 5 s, $0.002.
    call(o, "B1", t.day(2, 12, 30), 1, failed=True, cost=0)
    o.event("B1", t.day(2, 12, 30, 1), RL, original_model=GPT_MINI, fallback_model=LITE)
    call(o, "B1", t.day(2, 12, 30, 1.5), 3.5, model=LITE, cost=0.002)
    # B2: the same; the answer's cost is only Langfuse's total. 9 s, $0.004.
    call(o, "B2", t.day(5, 8), 1, failed=True, cost=0)
    o.event("B2", t.day(5, 8, 0, 1), RL, original_model=GPT_MINI, fallback_model=LITE)
    call(o, "B2", t.day(5, 8, 0, 1.5), 7.5, model=LITE, total_cost="0.004")
    # B3: the same, but the fallback fails too: no answer. 3 s, $0.
    call(o, "B3", t.day(5, 8, 10), 1, failed=True, cost=0)
    o.event("B3", t.day(5, 8, 10, 1), RL, original_model=GPT_MINI, fallback_model=LITE)
    call(o, "B3", t.day(5, 8, 10, 1.5), 1.5, model=LITE, failed=True, cost=0, id_="B3-fallback")
    # C1: context length gpt-4o-mini -> pro; 20 s, $0.01.
    event(o, "C1", t.day(3, 14), CL, original_model=GPT_MINI, fallback_model=PRO, id_="C1-event")
    call(o, "C1", t.day(3, 14, 0, 0.1), 20, model=PRO, cost=0.01)
    # C2: context length to pro, whose call fails, then rate limit pro -> flash: kind context length (its
    # first fallback). 7 s from the first call (the event before it does not count), $0.02.
    o.event("C2", t.day(4, 10), CL, original_model=GPT_MINI, fallback_model=PRO)
    call(o, "C2", t.day(4, 10, 0, 0.1), 0.9, model=PRO, failed=True, cost=0)
    o.event("C2", t.day(4, 10, 0, 1), RL, original_model=PRO, fallback_model=FLASH)
    call(o, "C2", t.day(4, 10, 0, 1.1), 6, model=FLASH, cost=0.02)
    # D1: rate limit gpt-4o-mini -> flash-lite, then context length flash-lite -> pro: kind rate limit.
    # 12 s, $0.03.
    call(o, "D1", t.day(4, 11), 1, failed=True, cost=0)
    o.event("D1", t.day(4, 11, 0, 1), RL, original_model=GPT_MINI, fallback_model=LITE)
    o.event("D1", t.day(4, 11, 0, 2), CL, original_model=LITE, fallback_model=PRO)
    call(o, "D1", t.day(4, 11, 0, 2.5), 9.5, model=PRO, cost=0.03)
    # E1: rate limit gpt-4o-mini -> flash 20 minutes ago; 3 s, $0.005.
    call(o, "E1", t.e1, 1, failed=True, cost=0)
    o.event("E1", t.e1 + timedelta(seconds=1), RL, original_model=GPT_MINI, fallback_model=FLASH)
    call(o, "E1", t.e1 + timedelta(seconds=1.2), 1.8, model=FLASH, cost=0.005)
    # E2: context length haiku -> flash 5 minutes ago (the context alert's 10 minutes); 4 s, $0.006.
    o.event("E2", t.e2, CL, original_model=HAIKU, fallback_model=FLASH)
    call(o, "E2", t.e2 + timedelta(seconds=0.5), 4, model=FLASH, cost=0.006)
    # X1: a rate-limit fallback whose event names no fallback model and no call (yet): no latency, cost or
    # answer.
    o.event("X1", t.day(6, 15), RL, original_model=HAIKU)
    # O1: 40 days ago, outside every window ($1).
    o.event("O1", t.day(40, 12), RL, original_model=GPT_MINI, fallback_model=LITE)
    call(o, "O1", t.day(40, 12, 0, 1), 1, model=LITE, cost=1.0)
    return o


def second_load(t: Timeline) -> Observations:
    """A later export: corrected rows (one moves a request, one an event, to another day), a late call and a
    new request."""
    o = Observations()
    # A2's call is re-exported with its true start, a day earlier: A2 moves from day 2 to day 3.
    call(o, "A2", t.day(3, 23), 4, cost=0.003, id_="A2-call", updated_at=t.clock.now)
    # C1's event is re-exported with its true time, the next day at 14:00 (its call stays on day 3).
    event(
        o,
        "C1",
        t.day(2, 14),
        CL,
        original_model=GPT_MINI,
        fallback_model=PRO,
        id_="C1-event",
        updated_at=t.clock.now,
    )
    # B3's fallback call did answer: re-exported as DEFAULT, $0.0025.
    call(
        o, "B3", t.day(5, 8, 10, 1.5), 1.5, model=LITE, cost=0.0025, id_="B3-fallback", updated_at=t.clock.now
    )
    # X1's call arrives late: answered, 2 s, $0.001.
    call(o, "X1", t.day(6, 15, 0, 0.5), 2, model=FLASH, cost=0.001, id_="X1-late")
    # N2: a new normal request yesterday; 6 s, $0.002.
    call(o, "N2", t.day(1, 9), 6, cost=0.002, id_="N2-call")
    return o


# ------------------------------------------------------------------------------------------------ harness


@dataclass
class Snapshot:
    """Every dashboard view's rows in the view's order, and the instant they took for now."""

    now: datetime
    views: dict[str, list[tuple[object, ...]]]

    def nonzero(self, view: str, count_column: int) -> set[tuple[object, ...]]:
        return {row for row in self.views[view] if row[count_column] != 0}

    @property
    def first_day(self) -> date:
        return self.now.astimezone(UTC).date() - timedelta(days=29)


@dataclass
class Access:
    """What a BI role could do, logged in with its password: each probe's outcome."""

    read: dict[str, bool]  # every relation of schema analytics -> whether select works
    refused: dict[str, str]  # every statement it must not run -> the error class (or "allowed")


@dataclass
class BiRoles:
    by_default_privileges: str  # set up by the command, kept by the default privileges alone
    by_dbt_grants: str  # set up by the command, its default privileges removed: kept by dbt's grants
    password: str
    missing: str  # named in var bi_roles, never created


@dataclass
class Stage:
    run: DbtRun
    snapshot: Snapshot
    access: dict[str, Access]


def snapshot(warehouse: Warehouse) -> Snapshot:
    with warehouse.database.connect() as conn:
        views = {view: conn.execute(f"select * from analytics.{view}").fetchall() for view in DASHBOARD_VIEWS}
    return Snapshot(warehouse.clock.now, views)


def probe(database: Database, role: str, password: str) -> Access:
    with database.connect() as conn:
        relations = [
            row[0]
            for row in conn.execute(
                "select c.relname from pg_class c join pg_namespace n on n.oid = c.relnamespace"
                " where n.nspname = 'analytics' order by 1"
            ).fetchall()
        ]
        raw_tables = [
            row[0]
            for row in conn.execute(
                "select tablename from pg_tables where schemaname = 'langfuse_raw' order by 1"
            ).fetchall()
        ]
    attempts = [f"select * from langfuse_raw.{table} limit 1" for table in raw_tables] + [
        "select * from analytics_staging.stg_langfuse__events limit 1",
        "select * from analytics_intermediate.int_requests limit 1",
        "insert into langfuse_raw.observations (id) values ('x')",
        "delete from langfuse_raw.observations",
        "insert into analytics.fallback_alerts (alert) values ('x')",
        "update analytics.cost_trend_daily set requests = 0",
        "delete from analytics.performance_recommendations",
        "create table analytics.bi_probe (a int)",
        "create view analytics.bi_probe as select 1 as a",
        "create table public.bi_probe (a int)",
        "create schema bi_probe",
    ]
    read: dict[str, bool] = {}
    refused: dict[str, str] = {}
    with connect_as(database, role, password) as conn:
        for relation in relations:
            try:
                conn.execute(f"select * from analytics.{relation} limit 1").fetchall()
                read[relation] = True
            except psycopg.errors.InsufficientPrivilege:
                read[relation] = False
        for statement in attempts:
            try:
                conn.execute(statement)
                refused[statement] = "allowed"
            except psycopg.Error as exc:
                refused[statement] = type(exc).__name__
    return Access(read, refused)


def remove_default_privileges(database: Database, role: str) -> None:
    with database.connect() as conn:
        owner = conn.execute("select current_user").fetchone()[0]  # type: ignore[index]
        conn.execute(
            f'alter default privileges for role "{owner}" in schema analytics'
            f' revoke select on tables from "{role}"'
        )
        conn.commit()


@pytest.fixture(scope="module")
def warehouse(module_database: Database, tmp_path_factory: pytest.TempPathFactory) -> Warehouse:
    """The module's database, its clock and the dbt harness of the five views' tests."""
    ensure_raw_schema(module_database)
    with module_database.connect() as conn:
        clock = Clock(conn.execute("select now()").fetchone()[0])  # type: ignore[index]
    return Warehouse(module_database, tmp_path_factory.mktemp("dbt_dashboards"), clock)


@pytest.fixture(scope="module")
def timeline(warehouse: Warehouse) -> Timeline:
    return Timeline(warehouse.clock)


@pytest.fixture(scope="module")
def bi_roles(warehouse: Warehouse) -> BiRoles:
    return BiRoles(unique_role(), unique_role(), "Bi-pass 1!", unique_role())


@pytest.fixture(scope="module")
def first_stage(warehouse: Warehouse, timeline: Timeline, bi_roles: BiRoles) -> tuple[DbtRun, Snapshot]:
    first_load(timeline).load(warehouse.database)
    run = warehouse.dbt("build", "--vars", json.dumps({"bi_roles": [bi_roles.missing]}))
    return run, snapshot(warehouse)


@pytest.fixture(scope="module")
def roles_created(
    warehouse: Warehouse, first_stage: tuple[DbtRun, Snapshot], bi_roles: BiRoles
) -> Iterator[dict[str, subprocess.CompletedProcess[str]]]:
    """Both roles made by the command after the first build; dropped when the module ends."""
    created = {}
    try:
        for role in (bi_roles.by_default_privileges, bi_roles.by_dbt_grants):
            created[role] = bi_role_cli(warehouse.database, role, password=bi_roles.password)
        remove_default_privileges(warehouse.database, bi_roles.by_dbt_grants)
        yield created
    finally:
        for role in (bi_roles.by_default_privileges, bi_roles.by_dbt_grants):
            drop_role(warehouse.database, role)


@pytest.fixture(scope="module")
def first_access(
    warehouse: Warehouse, bi_roles: BiRoles, roles_created: dict[str, subprocess.CompletedProcess[str]]
) -> dict[str, Access]:
    return {role: probe(warehouse.database, role, bi_roles.password) for role in roles_created}


@pytest.fixture(scope="module")
def second_stage(
    warehouse: Warehouse, timeline: Timeline, bi_roles: BiRoles, first_access: dict[str, Access]
) -> Stage:
    """The second load and an incremental build without the unit tests (overlap 0: the first load is not
    re-read), which recreates every view; var bi_roles names only the role whose default privileges were
    removed."""
    second_load(timeline).load(warehouse.database)
    variables = {"incremental_overlap_minutes": 0, "bi_roles": [bi_roles.by_dbt_grants, bi_roles.missing]}
    run = warehouse.dbt("build", "--exclude", "test_type:unit", "--vars", json.dumps(variables))
    access = {role: probe(warehouse.database, role, bi_roles.password) for role in first_access}
    return Stage(run, snapshot(warehouse), access)


@pytest.fixture(scope="module")
def refreshed_stage(warehouse: Warehouse, second_stage: Stage) -> tuple[DbtRun, Snapshot]:
    run = warehouse.dbt("run", "--full-refresh", "--select", *(f"{model}+" for model in NEW_INCREMENTAL))
    return run, snapshot(warehouse)


@pytest.fixture(scope="module")
def docs_stage(warehouse: Warehouse, refreshed_stage: tuple[DbtRun, Snapshot]) -> tuple[DbtRun, dict, dict]:
    run = warehouse.dbt("docs", "generate")
    target = warehouse.root / "target"
    return (
        run,
        json.loads((target / "catalog.json").read_text()),
        json.loads((target / "manifest.json").read_text()),
    )


# ------------------------------------------------------------------------------------------------- answers


def hour(ts: datetime) -> datetime:
    return ts.astimezone(UTC).replace(minute=0, second=0, microsecond=0)


def day(ts: datetime) -> date:
    return ts.astimezone(UTC).date()


def fallbacks_per_hour(t: Timeline, *, after_second_load: bool) -> set[tuple[object, ...]]:
    """(hour_start, type, count) of the hours with a fallback."""
    c1 = (hour(t.day(2, 14)), CL, 1) if after_second_load else (hour(t.day(3, 14)), CL, 1)
    rows = [
        (hour(t.day(2, 12)), RL, 1),  # B1
        c1,
        (hour(t.day(4, 10)), RL, 1),  # C2's second fallback
        (hour(t.day(4, 10)), CL, 1),  # C2's first
        (hour(t.day(4, 11)), RL, 1),  # D1's first
        (hour(t.day(4, 11)), CL, 1),  # D1's second
        (hour(t.day(5, 8)), RL, 2),  # B2, B3
        (hour(t.day(6, 15)), RL, 1),  # X1
        (hour(t.e1), RL, 1),
        (hour(t.e2), CL, 1),
    ]
    merged: dict[tuple[object, object], int] = {}
    for start, kind, count in rows:  # E1 and E2 share an hour most of the time: still one row per type
        merged[(start, kind)] = merged.get((start, kind), 0) + count
    return {(start, kind, count) for (start, kind), count in merged.items()}


def fallbacks_per_day(t: Timeline, *, after_second_load: bool) -> set[tuple[object, ...]]:
    merged: dict[tuple[object, object], int] = {}
    for start, kind, count in fallbacks_per_hour(t, after_second_load=after_second_load):
        key = (start.date(), kind)  # type: ignore[attr-defined]
        merged[key] = merged.get(key, 0) + count
    return {(d, kind, count) for (d, kind), count in merged.items()}


def top_pairs(*, after_second_load: bool) -> list[tuple[object, ...]]:
    """(rank, type, pair, original, fallback, fallbacks, requests, avg cost, costed requests)."""
    lite = (
        (RL, pair(GPT_MINI, LITE), GPT_MINI, LITE, 4, 4, D("0.009625"), 4)  # B1 .002 B2 .004 B3 .0025 D1 .03
        if after_second_load
        else (RL, pair(GPT_MINI, LITE), GPT_MINI, LITE, 4, 4, D("0.009"), 4)  # $0.036 / 4
    )
    unknown = (
        (RL, pair(HAIKU, None), HAIKU, None, 1, 1, D("0.001"), 1)
        if after_second_load
        else (RL, pair(HAIKU, None), HAIKU, None, 1, 1, None, 0)
    )
    rows = [
        lite,
        (CL, pair(GPT_MINI, PRO), GPT_MINI, PRO, 2, 2, D("0.015"), 2),  # C1 $0.01, C2 $0.02
        (CL, pair(LITE, PRO), LITE, PRO, 1, 1, D("0.03"), 1),  # D1: ranks before the cheaper pairs of 1
        (RL, pair(PRO, FLASH), PRO, FLASH, 1, 1, D("0.02"), 1),  # C2
        (CL, pair(HAIKU, FLASH), HAIKU, FLASH, 1, 1, D("0.006"), 1),  # E2
        (RL, pair(GPT_MINI, FLASH), GPT_MINI, FLASH, 1, 1, D("0.005"), 1),  # E1
        unknown,  # X1
    ]
    return [(rank, *row) for rank, row in enumerate(rows, start=1)]


def most_expensive(*, after_second_load: bool) -> list[tuple[object, ...]]:
    """(rank, type, pair, original, fallback, fallbacks, requests, total, avg, costed requests)."""
    by_pair = {row[2]: row for row in top_pairs(after_second_load=after_second_load)}
    totals = {
        pair(GPT_MINI, LITE): D("0.0385") if after_second_load else D("0.036"),
        pair(GPT_MINI, PRO): D("0.03"),  # ties with flash-lite -> pro at $0.03: more fallbacks first
        pair(LITE, PRO): D("0.03"),
        pair(PRO, FLASH): D("0.02"),
        pair(HAIKU, FLASH): D("0.006"),
        pair(GPT_MINI, FLASH): D("0.005"),
        pair(HAIKU, None): D("0.001") if after_second_load else D("0"),
    }
    rows = []
    for rank, (label, total) in enumerate(totals.items(), start=1):
        _, kind, _, original, fallback, fallbacks, requests, avg, costed = by_pair[label]
        rows.append((rank, kind, label, original, fallback, fallbacks, requests, total, avg, costed))
    return rows


def distribution() -> list[tuple[object, ...]]:
    """(pair, original, fallback, fallbacks, share %) of the 11 fallbacks in the window (both loads)."""
    return [
        (pair(GPT_MINI, LITE), GPT_MINI, LITE, 4, D("36.36")),  # B1, B2, B3, D1
        (pair(GPT_MINI, PRO), GPT_MINI, PRO, 2, D("18.18")),  # C1, C2
        (pair(HAIKU, FLASH), HAIKU, FLASH, 1, D("9.09")),
        (pair(HAIKU, None), HAIKU, None, 1, D("9.09")),
        (pair(LITE, PRO), LITE, PRO, 1, D("9.09")),
        (pair(PRO, FLASH), PRO, FLASH, 1, D("9.09")),
        (pair(GPT_MINI, FLASH), GPT_MINI, FLASH, 1, D("9.09")),
    ]


def cost_trend(t: Timeline, *, after_second_load: bool) -> set[tuple[object, ...]]:
    """(date, series, kind, requests, cost, costed requests) of the days and kinds with a request."""
    normal, rate, context = (
        ("Normal requests", "normal"),
        ("Rate limit fallbacks", RL),
        ("Context fallbacks", CL),
    )
    rows: dict[tuple[object, ...], list[object]] = {}

    def add(at: datetime, series: tuple[str, str], cost: str | None) -> None:
        totals = rows.setdefault((day(at), *series), [0, D(0), 0])
        totals[0] += 1  # type: ignore[operator]
        if cost is not None:
            totals[1] += D(cost)  # type: ignore[operator]
            totals[2] += 1  # type: ignore[operator]

    add(t.day(2, 12), normal, "0.001")  # A1
    add(t.day(3, 23) if after_second_load else t.day(2, 13), normal, "0.003")  # A2
    add(t.day(3, 9), normal, "0")  # A3
    add(t.n1, normal, "0.001")  # N1
    add(t.day(2, 12, 30), rate, "0.002")  # B1
    add(t.day(5, 8), rate, "0.004")  # B2
    add(t.day(5, 8, 10), rate, "0.0025" if after_second_load else "0")  # B3
    add(t.day(4, 11), rate, "0.03")  # D1
    add(t.e1, rate, "0.005")  # E1
    add(t.day(6, 15), rate, "0.001" if after_second_load else None)  # X1
    add(t.day(3, 14), context, "0.01")  # C1 (its call keeps it on day 3 when its event moves)
    add(t.day(4, 10), context, "0.02")  # C2
    add(t.e2, context, "0.006")  # E2
    if after_second_load:
        add(t.day(1, 9), normal, "0.002")  # N2
    return {(*key, totals[0], totals[1], totals[2]) for key, totals in rows.items()}


def cost_by_type(*, after_second_load: bool) -> list[tuple[object, ...]]:
    """(type, requests, total, avg, costed requests, share of all cost %)."""
    if after_second_load:
        # all requests $0.0875: rate limit $0.0445 over 6 (50.86 %), context length $0.036 over 3 (41.14 %)
        return [
            (RL, 6, D("0.0445"), D("0.0074166667"), 6, D("50.86")),
            (CL, 3, D("0.036"), D("0.012"), 3, D("41.14")),
        ]
    # all requests $0.082: rate limit $0.041 (X1's cost unknown, 5 known: $0.0082 each), context $0.036
    return [
        (RL, 6, D("0.041"), D("0.0082"), 5, D("50.00")),
        (CL, 3, D("0.036"), D("0.012"), 3, D("43.90")),
    ]


def assert_latency(shown: list[tuple[object, ...]], exact: list[tuple[object, ...]]) -> None:
    """The latency view against exact figures: requests, min, max and mean equal; the percentiles, read from
    the daily histograms, within the bound the view states (1 % + 1 ms)."""
    assert [(row[0], row[1], row[2], row[7], row[8]) for row in shown] == [
        (row[0], row[1], row[2], row[7], row[8]) for row in exact
    ]
    for shown_row, exact_row in zip(shown, exact, strict=True):
        for approx, value in zip(shown_row[3:7], exact_row[3:7], strict=True):
            assert abs(approx - value) <= D("0.01") * value + D("0.001"), (shown_row, exact_row)  # type: ignore[operator]


def latency(*, after_second_load: bool) -> list[tuple[object, ...]]:
    """(type, requests, min, p25, p50, p75, p95, max, mean) in seconds, exact interpolated percentiles."""
    if after_second_load:
        return [
            # 1 1 2 4 6 (N2 added)
            ("normal", 5, D(1), D(1), D(2), D(4), D("5.6"), D(6), D("2.8")),
            # 2 3 3 4 5 7 9 12 20 (X1 added): p95 at 7.6 -> 12 + 0.6 * 8
            ("fallback", 9, D(2), D(3), D(5), D(9), D("16.8"), D(20), D("7.222")),
        ]
    return [
        # A3 1, N1 1, A1 2, A2 4: p25 at 0.75 -> 1, p50 at 1.5 -> 1.5, p75 at 2.25 -> 2.5, p95 at 2.85 -> 3.7
        ("normal", 4, D(1), D(1), D("1.5"), D("2.5"), D("3.7"), D(4), D(2)),
        # B3 3, E1 3, E2 4, B1 5, C2 7, B2 9, D1 12, C1 20: p25 at 1.75 -> 3.75, p50 at 3.5 -> 6,
        # p75 at 5.25 -> 9.75, p95 at 6.65 -> 17.2; mean 63 / 8
        ("fallback", 8, D(3), D("3.75"), D(6), D("9.75"), D("17.2"), D(20), D("7.875")),
    ]


RECOMMENDATION_TAILS = {
    "fallbacks_failing": "Add more diverse fallback models, check that the fallback models are available in"
    " your tier, and verify the fallback model configuration.",
    "frequent_rate_limit_fallbacks": "Upgrade the API tier for higher limits, add more fallback models, queue"
    " or batch requests, or raise max_wait_seconds so that requests wait for the primary model instead of"
    " falling back.",
    "frequent_context_fallbacks": "Use a larger primary model (e.g. gemini/gemini-2.5-pro), remove"
    " unnecessary context from the inputs, or preprocess and compress them.",
    "slow_fallbacks": "Order fallbacks fastest first and consider pre-warming the fallback models.",
    "expensive_fallbacks": "Budget for fallback model costs, order fallbacks cheapest first, and plan tier"
    " upgrades from the rate-limit trend.",
}


def recommendations() -> list[tuple[object, ...]]:
    """After the first load: (priority, insight, severity, recommendation, metric value, threshold, unit)."""
    return [
        # 9 of 11 fallbacks answered (B3 and X1 did not): 81.8 %, red; X1's pair answered none of 1
        (
            1,
            "fallbacks_failing",
            "critical",
            "Only 81.8 % of the 11 fallbacks of the last 30 days got an answer (green above 95 %);"
            f" the weakest pair is {pair(HAIKU, None)} (0.0 % of 1). ",
            D("81.8182"),
            D(95),
            "percent",
        ),
        # B1 B2 B3 D1 E1 X1 and C2 (rate limit second) of 13 requests
        (
            2,
            "frequent_rate_limit_fallbacks",
            "warning",
            "7 of 13 requests (53.8 %) of the last 30 days fell back because a model was rate-limited,"
            f" most often {pair(GPT_MINI, LITE)}. ",
            D("53.8462"),
            D(10),
            "percent",
        ),
        # C1 C2 E2 and D1 (context length second)
        (
            3,
            "frequent_context_fallbacks",
            "warning",
            "4 of 13 requests (30.8 %) of the last 30 days did not fit their model's context window,"
            f" most often {pair(GPT_MINI, PRO)}. ",
            D("30.7692"),
            D(5),
            "percent",
        ),
        # medians 6 s and 1.5 s, read from the latency histograms as 6.048 s and 1.49 s (each within 1 %)
        (
            4,
            "slow_fallbacks",
            "warning",
            "Requests with a fallback take 6.05 s at the median against 1.49 s without one"
            " (4.1 times as long) over the last 30 days. ",
            D("4.0585"),
            D(2),
            "ratio",
        ),
        # $0.077 of $0.082
        (
            5,
            "expensive_fallbacks",
            "warning",
            "Requests with a fallback cost $0.0770 of the $0.0820 spent over the last 30 days (93.9 %). ",
            D("93.9024"),
            D(25),
            "percent",
        ),
    ]


def alerts(now: datetime) -> list[tuple[object, ...]]:
    """(alert, title, value, threshold, unit, window, fires, details, evaluated at); default thresholds."""
    return [
        # last hour: requests N1, E1, E2; fallback requests E1, E2
        (
            "high_fallback_rate",
            "High fallback rate",
            D("0.6667"),
            D("0.2"),
            "share of requests",
            60,
            True,
            "2 of 3 requests fell back",
            now,
        ),
        (
            "expensive_fallbacks",
            "Expensive fallback pattern",
            D("0.011"),
            D(10),
            "USD",
            60,
            False,
            "$0.011 for 2 requests with a fallback",
            now,
        ),
        # last 10 minutes: E2
        (
            "context_limit_frequently_hit",
            "Context limit frequently hit",
            D(1),
            D(10),
            "context-length fallbacks",
            10,
            False,
            "1 context-length fallback",
            now,
        ),
    ]


def hours_in_window(snap: Snapshot) -> int:
    first = datetime.combine(snap.first_day, datetime.min.time(), UTC)
    return int((hour(snap.now) - first) / timedelta(hours=1)) + 1


# ------------------------------------------------------------------------------------------------- the tests


def test_build_is_green_with_no_warning_but_the_alerts(first_stage: tuple[DbtRun, Snapshot]) -> None:
    run, _ = first_stage
    assert run.exit_code == 0
    assert statuses_by_kind(run.results) == GREEN_BUILD
    built = {uid.split(".")[2] for uid in run.results if uid.startswith("model.")}
    assert built >= set(DASHBOARD_VIEWS) | set(NEW_INCREMENTAL)
    # every new model has at least one unit test (unit_test.autopicker.<model>.<test>)
    tested = {uid.split(".")[2] for uid in run.results if uid.startswith("unit_test.")}
    assert tested >= set(DASHBOARD_VIEWS) | set(NEW_INCREMENTAL)
    # the role named in var bi_roles does not exist: skipped, not a warning
    assert [w for w in run.warnings() if not w[1].startswith("alert_")] == []
    assert run.status("alert_high_fallback_rate") == ("warn", 1)
    assert run.status("rollups_tie_out") == ("pass", 0)


def test_fallbacks_over_time_by_hour_and_day(
    timeline: Timeline, first_stage: tuple[DbtRun, Snapshot]
) -> None:
    _, snap = first_stage
    assert snap.nonzero("monitoring_fallbacks_hourly", 2) == fallbacks_per_hour(
        timeline, after_second_load=False
    )
    assert snap.nonzero("monitoring_fallbacks_daily", 2) == fallbacks_per_day(
        timeline, after_second_load=False
    )
    # every hour and day of the window for both types, in time order
    hourly, daily = snap.views["monitoring_fallbacks_hourly"], snap.views["monitoring_fallbacks_daily"]
    assert len(hourly) == 2 * hours_in_window(snap)
    assert hourly[0][0] == datetime.combine(snap.first_day, datetime.min.time(), UTC)
    assert hourly[-1][0] == hour(snap.now)
    assert [row[0] for row in daily] == [snap.first_day + timedelta(days=i // 2) for i in range(60)]


def test_distribution_and_top_pairs(first_stage: tuple[DbtRun, Snapshot]) -> None:
    _, snap = first_stage
    assert snap.views["monitoring_fallback_distribution"] == distribution()
    assert snap.views["monitoring_top_fallback_pairs"] == top_pairs(after_second_load=False)


def test_cost_views(timeline: Timeline, first_stage: tuple[DbtRun, Snapshot]) -> None:
    _, snap = first_stage
    assert snap.views["cost_by_fallback_type"] == cost_by_type(after_second_load=False)
    assert snap.views["cost_most_expensive_fallbacks"] == most_expensive(after_second_load=False)
    trend = snap.views["cost_trend_daily"]
    assert {row for row in trend if row[3]} == cost_trend(timeline, after_second_load=False)
    assert len(trend) == 90
    # the two fallback series add up to the cost-by-type bars, all three to every request's cost ($0.082)
    for kind, _, total, *_ in snap.views["cost_by_fallback_type"]:
        assert sum(row[4] for row in trend if row[2] == kind) == total
    assert sum(row[4] for row in trend) == D("0.082")


def test_performance_views(first_stage: tuple[DbtRun, Snapshot]) -> None:
    _, snap = first_stage
    # 9 of 11 fallbacks answered: red
    assert snap.views["performance_success_rate"] == [(11, 9, D("81.82"), "red", D(95), D(90))]
    assert_latency(snap.views["performance_latency_impact"], latency(after_second_load=False))
    shown = [
        (priority, insight, severity, text, value, threshold, unit)
        for priority, insight, severity, _, text, _, value, threshold, unit, days in snap.views[
            "performance_recommendations"
        ]
    ]
    expected = [
        (priority, insight, severity, head + RECOMMENDATION_TAILS[insight], value, threshold, unit)
        for priority, insight, severity, head, value, threshold, unit in recommendations()
    ]
    assert shown == expected
    assert {row[9] for row in snap.views["performance_recommendations"]} == {30}


def test_alerts_view_agrees_with_the_alert_tests(first_stage: tuple[DbtRun, Snapshot]) -> None:
    run, snap = first_stage
    assert snap.views["fallback_alerts"] == alerts(snap.now)
    fired = {row[0] for row in snap.views["fallback_alerts"] if row[6]}
    assert {f"alert_{name}" for name in fired} == {
        name
        for name in (
            "alert_high_fallback_rate",
            "alert_expensive_fallbacks",
            "alert_context_limit_frequently_hit",
        )
        if run.status(name)[0] == "warn"
    }


def test_bi_role_reads_every_view_and_nothing_else(
    warehouse: Warehouse,
    bi_roles: BiRoles,
    roles_created: dict[str, subprocess.CompletedProcess[str]],
    first_access: dict[str, Access],
) -> None:
    for role, result in roles_created.items():
        assert result.returncode == 0, result.stderr
        assert f"BI role {role} created" in result.stdout
        assert bi_roles.password not in result.stdout + result.stderr
        assert scram_matches(stored_verifier(warehouse.database, role), bi_roles.password)
    for access in first_access.values():
        assert set(access.read) >= set(DASHBOARD_VIEWS) and len(access.read) == 16  # and the five seed views
        assert all(access.read.values()), access.read
        assert "allowed" not in access.refused.values(), access.refused
        reads_elsewhere = [s for s in access.refused if s.startswith("select")]
        assert {access.refused[s] for s in reads_elsewhere} == {"InsufficientPrivilege"}
        assert len(reads_elsewhere) >= 8  # every raw table, staging, intermediate
    with warehouse.database.connect() as conn:
        writable = conn.execute(
            "select r.rolname, c.relname from pg_class c join pg_namespace n on n.oid = c.relnamespace"
            " cross join pg_roles r where n.nspname = 'analytics' and r.rolname = any(%s)"
            " and has_table_privilege(r.oid, c.oid, 'INSERT, UPDATE, DELETE, TRUNCATE, REFERENCES, TRIGGER')",
            (list(first_access),),
        ).fetchall()
    assert writable == []


def test_incremental_run_follows_late_and_corrected_rows(timeline: Timeline, second_stage: Stage) -> None:
    run = second_stage.run
    assert run.exit_code == 0
    # the roll-ups still tie out with what they sum, and every data test passes on the incremental state
    assert run.status("rollups_tie_out") == ("pass", 0)
    assert {status for uid, (status, _) in run.results.items() if ".alert_" not in uid} <= {
        "success",
        "pass",
        "no-op",
    }
    snap = second_stage.snapshot
    assert snap.nonzero("monitoring_fallbacks_hourly", 2) == fallbacks_per_hour(
        timeline, after_second_load=True
    )
    assert snap.nonzero("monitoring_fallbacks_daily", 2) == fallbacks_per_day(
        timeline, after_second_load=True
    )
    assert snap.views["monitoring_fallback_distribution"] == distribution()
    assert snap.views["monitoring_top_fallback_pairs"] == top_pairs(after_second_load=True)
    assert snap.views["cost_by_fallback_type"] == cost_by_type(after_second_load=True)
    assert snap.views["cost_most_expensive_fallbacks"] == most_expensive(after_second_load=True)
    assert {row for row in snap.views["cost_trend_daily"] if row[3]} == cost_trend(
        timeline, after_second_load=True
    )
    # B3 and X1 answered after all: 11 of 11
    assert snap.views["performance_success_rate"] == [(11, 11, D("100.00"), "green", D(95), D(90))]
    assert_latency(snap.views["performance_latency_impact"], latency(after_second_load=True))
    # 7 and 4 of 14 requests, medians 5 s and 2 s, fallbacks $0.0805 of $0.0875: no failing fallbacks any more
    assert [row[1] for row in snap.views["performance_recommendations"]] == [
        "frequent_rate_limit_fallbacks",
        "frequent_context_fallbacks",
        "slow_fallbacks",
        "expensive_fallbacks",
    ]


def test_bi_roles_still_read_after_a_rebuild(first_access: dict[str, Access], second_stage: Stage) -> None:
    # one role through the default privileges of the views' owner, the other through dbt's grants
    assert second_stage.access == first_access


def test_full_refresh_gives_the_same_answers(
    refreshed_stage: tuple[DbtRun, Snapshot], second_stage: Stage
) -> None:
    run, snap = refreshed_stage
    assert run.exit_code == 0
    for view in DASHBOARD_VIEWS:
        assert snap.views[view] == second_stage.snapshot.views[view], view


def test_docs_generate_documents_every_view_and_the_dashboards(
    docs_stage: tuple[DbtRun, dict, dict],
) -> None:
    run, catalog, manifest = docs_stage
    assert run.exit_code == 0
    for view in DASHBOARD_VIEWS:
        node = catalog["nodes"][f"model.autopicker.{view}"]
        assert node["metadata"]["type"] == "VIEW"
        # persist_docs: the description is the view's comment in PostgreSQL, where BI tools read it
        assert node["metadata"]["comment"], view
        assert all(column["comment"] for column in node["columns"].values()), view
    exposures = {e["name"]: e for e in manifest["exposures"].values()}
    assert set(exposures) == {"fallback_monitoring", "fallback_cost_impact", "fallback_performance_analysis"}
    covered = {ref.split(".")[2] for e in exposures.values() for ref in e["depends_on"]["nodes"]}
    assert covered == set(DASHBOARD_VIEWS)
    assert {e["type"] for e in exposures.values()} == {"dashboard"}
