"""Benchmark: every dashboard view and the alerts view against the same question asked of the raw rows.

Uses the synthetic traffic of ``benchmarks/views.py`` (N observations over the last 90 days, loaded with
COPY into ``langfuse_raw`` and into ``events`` and ``generations`` tables shaped as the Fallback Tracking
guide assumes, indexed for its filters and joins; ``generations`` also gets each call's ``end_time``, which
latency needs).
After ``dbt run``, each view is timed (median of five runs, each planned afresh) against its baseline in
one transaction, so that ``now()`` is the same for both, after checking both return the same rows.

"The same question asked of the raw rows" is, per view:

- ``monitoring_fallbacks_hourly``, ``cost_trend_daily``, ``performance_success_rate`` and
  ``performance_latency_impact``: a direct query over the guide's tables, as a careful analyst would write
  it (it aggregates only the traces with a row in the window). The latency one computes exact percentiles
  (``percentile_cont`` over every request); the view's come from the daily histograms, so they are
  compared within the stated bound (1 % + 1 ms) and everything else exactly.
- every other view (and these too, as a second check): the view's own SQL with every table the project
  materialises replaced by the query that builds it from the raw rows (``dbt compile --full-refresh``),
  so the answer is computed from ``langfuse_raw.observations`` at query time. Every query is run once to
  warm up, then timed; a baseline slower than a second is timed three times, not five (see
  ``views.SLOW_BASELINE_SECONDS``).

    nice -n 10 .venv/bin/python benchmarks/dashboards.py --rows 10000000

Each view's line gives its median beside the target (under 100 ms) and its speedup beside the target (at
least 50x); the last line is the smallest speedup and the slowest view with their targets.
"""

from __future__ import annotations

import json
import logging
import re
import sys
import tempfile
from decimal import Decimal
from pathlib import Path

from views import report, run_benchmark, same_rows, summary, timed

from ingest import db
from ingest.warehouse.dbt import run_dbt

logger = logging.getLogger("benchmarks.dashboards")

DAYS = 30

# The window of the dashboards (macros/dashboard_window.sql): the last 30 UTC days, today included.
WINDOW = f"""
window_bounds as (
    select
        (now() at time zone 'UTC')::date - {DAYS - 1} as first_day,
        ((now() at time zone 'UTC')::date - {DAYS - 1})::timestamp at time zone 'UTC' as first_ts,
        date_bin(interval '1 hour', now(), timestamptz '2000-01-01 00:00:00+00') as last_hour
)
"""

# One row per request (trace), for the traces with a row in the window; as int_requests defines them.
REQUESTS = """
touched as (
    select trace_id from generations where created_at >= (select first_ts from window_bounds)
    union
    select trace_id from events
    where name in ('rate_limit_fallback', 'context_length_fallback')
        and created_at >= (select first_ts from window_bounds)
),
calls as (
    select
        trace_id,
        min(created_at) as first_start,
        max(end_time) as last_end,
        sum(coalesce((metadata->>'cost_usd')::numeric, total_cost)) as cost_usd
    from generations
    where trace_id in (select trace_id from touched)
    group by trace_id
),
fallbacks as (
    select
        trace_id,
        (array_agg(name order by created_at, name))[1] as first_type,
        min(created_at) as first_at
    from events
    where name in ('rate_limit_fallback', 'context_length_fallback')
        and trace_id in (select trace_id from touched)
    group by trace_id
),
requests as (
    select
        coalesce(fallbacks.first_type, 'normal') as kind,
        calls.cost_usd,
        case when calls.last_end >= calls.first_start
            then extract(epoch from calls.last_end - calls.first_start)::numeric(14, 3) end as latency,
        (least(calls.first_start, fallbacks.first_at) at time zone 'UTC')::date as request_date
    from calls
    full join fallbacks on calls.trace_id = fallbacks.trace_id
)
"""

DIRECT_COST_TREND = f"""
with {WINDOW}, {REQUESTS},
daily as (
    select request_date, kind, count(*) as requests, sum(cost_usd) as cost, count(cost_usd) as costed
    from requests
    where request_date between (select first_day from window_bounds) and (now() at time zone 'UTC')::date
    group by request_date, kind
),
series (kind, label, position) as (
    values ('normal', 'Normal requests', 1), ('rate_limit_fallback', 'Rate limit fallbacks', 2),
        ('context_length_fallback', 'Context fallbacks', 3)
)
select days.day::date, series.label, series.kind, coalesce(daily.requests, 0),
    coalesce(daily.cost, 0)::numeric(20, 10), coalesce(daily.costed, 0)
from generate_series((select first_day from window_bounds)::timestamp,
    (now() at time zone 'UTC')::date::timestamp, interval '1 day') as days (day)
cross join series
left join daily on daily.request_date = days.day::date and daily.kind = series.kind
order by 1, series.position
"""

DIRECT_LATENCY = f"""
with {WINDOW}, {REQUESTS},
timed as (
    select case when kind = 'normal' then 'normal' else 'fallback' end as request_type, latency
    from requests
    where latency is not null
        and request_date between (select first_day from window_bounds) and (now() at time zone 'UTC')::date
),
stats as (
    select request_type, count(*) as n, min(latency) as lo,
        percentile_cont(array[0.25, 0.5, 0.75, 0.95]) within group (order by latency) as q,
        max(latency) as hi, avg(latency) as mean
    from timed group by request_type
)
select t.request_type, coalesce(n, 0), lo::numeric(14, 3), q[1]::numeric(14, 3), q[2]::numeric(14, 3),
    q[3]::numeric(14, 3), q[4]::numeric(14, 3), hi::numeric(14, 3), mean::numeric(14, 3)
from (values ('normal', 1), ('fallback', 2)) as t (request_type, position)
left join stats on stats.request_type = t.request_type
order by t.position
"""

DIRECT_HOURLY = f"""
with {WINDOW},
counted as (
    select date_bin(interval '1 hour', created_at, timestamptz '2000-01-01 00:00:00+00') as hour_start,
        name, count(*) as n
    from events
    where name in ('rate_limit_fallback', 'context_length_fallback')
        and created_at >= (select first_ts from window_bounds)
    group by 1, 2
)
select hours.hour_start, types.name, coalesce(counted.n, 0)
from generate_series((select first_ts from window_bounds), (select last_hour from window_bounds),
    interval '1 hour') as hours (hour_start)
cross join (values ('context_length_fallback'), ('rate_limit_fallback')) as types (name)
left join counted on counted.hour_start = hours.hour_start and counted.name = types.name
order by 1, 2
"""

DIRECT_SUCCESS = f"""
with {WINDOW},
fallbacks as (
    select e.trace_id,
        exists (
            select 1 from generations g where g.trace_id = e.trace_id and g.level is distinct from 'ERROR'
        ) as answered
    from events e
    where e.name in ('rate_limit_fallback', 'context_length_fallback')
        and e.created_at >= (select first_ts from window_bounds)
        and e.created_at < ((now() at time zone 'UTC')::date + 1)::timestamp at time zone 'UTC'
),
rated as (
    select count(*) as n, count(*) filter (where answered) as ok,
        100.0 * count(*) filter (where answered) / nullif(count(*), 0) as rate
    from fallbacks
)
select n, ok, round(rate, 2)::numeric(5, 2),
    case when rate > 95 then 'green' when rate >= 90 then 'yellow' when rate is not null then 'red' end,
    95::numeric(5, 2), 90::numeric(5, 2)
from rated
"""


def add_end_times(database: db.Database) -> None:
    """The guide's generations table has no end time; latency needs one, so the direct queries get it (once:
    a database kept by this benchmark has it, one kept by ``views.py`` has not)."""
    with database.connect() as conn:
        has_it = conn.execute(
            "select 1 from information_schema.columns where table_schema = current_schema()"
            " and table_name = 'generations' and column_name = 'end_time'"
        ).fetchone()
        if has_it:
            return
        # A new table with the column, rather than an UPDATE of every row: at 10,000,000 observations the
        # UPDATE (a new version of each row in four indexes) took over ten minutes, the copy a minute.
        columns = [
            name
            for (name,) in conn.execute(
                "select column_name from information_schema.columns where table_schema = current_schema()"
                " and table_name = 'generations' order by ordinal_position"
            )
        ]
        indexes = [
            definition
            for (definition,) in conn.execute(
                "select pg_get_indexdef(indexrelid) from pg_index"
                " where indrelid = 'generations'::regclass and not indisprimary"
            )
        ]
        conn.execute(
            "create table generations_with_end_time as select "
            + ", ".join(f"g.{name}" for name in columns)
            + ", o.end_time from generations g join langfuse_raw.observations o on o.id = g.id"
        )
        conn.execute("drop table generations")
        conn.execute("alter table generations_with_end_time rename to generations")
        conn.execute("alter table generations add primary key (id)")
        for definition in indexes:
            conn.execute(definition)
        conn.execute("analyze generations")
        conn.commit()


#: The hand-written direct queries (same rows, checked first).
DIRECT = {
    "monitoring_fallbacks_hourly": DIRECT_HOURLY,
    "cost_trend_daily": DIRECT_COST_TREND,
    "performance_success_rate": DIRECT_SUCCESS,
    "performance_latency_impact": DIRECT_LATENCY,
}
#: Every view the dashboards and the alerts read.
VIEWS = (
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
#: Columns of performance_latency_impact compared within the histogram's bound: p25, p50, p75, p95.
LATENCY_PERCENTILE_COLUMNS = (3, 4, 5, 6)


def within_latency_bound(view_rows: list[tuple], exact_rows: list[tuple]) -> bool:
    """The latency view against exact percentiles: percentiles within 1 % + 1 ms, the rest equal."""
    if len(view_rows) != len(exact_rows):
        return False
    for view_row, exact_row in zip(view_rows, exact_rows, strict=True):
        for i, (approx, exact) in enumerate(zip(view_row, exact_row, strict=True)):
            if i in LATENCY_PERCENTILE_COLUMNS and approx is not None and exact is not None:
                if abs(approx - exact) > Decimal("0.01") * exact + Decimal("0.001"):
                    return False
            elif not same_rows([(approx,)], [(exact,)]):
                return False
    return True


def raw_row_queries(database: db.Database) -> dict[str, str]:
    """Each view's SQL with every materialised model inlined as the query that builds it from raw rows."""
    with tempfile.TemporaryDirectory() as scratch:
        code = run_dbt(
            [
                "compile",
                "--full-refresh",
                "--target-path",
                f"{scratch}/target",
                "--log-path",
                f"{scratch}/logs",
            ],
            database,
        )
        if code != 0:
            raise RuntimeError(f"dbt compile failed with exit code {code}")
        manifest = json.loads(Path(scratch, "target", "manifest.json").read_text())
    models = {
        node["relation_name"]: node
        for node in manifest["nodes"].values()
        if node["resource_type"] == "model" and node.get("relation_name")
    }
    materialised = {
        relation: node["compiled_code"]
        for relation, node in models.items()
        if node["config"]["materialized"] in ("incremental", "table")
    }

    def inline(sql: str) -> str:
        # line comments go first: an inlined query must not land inside one (`-- depends_on: ...`)
        sql = re.sub(r"--[^'\n]*$", "", sql, flags=re.MULTILINE)
        for relation, code in materialised.items():
            if relation not in sql:
                continue
            body = inline(code)
            name = relation.split(".")[-1].strip('"')
            # a relation that has an alias keeps it; one that has none gets its own name
            sql = re.sub(
                re.escape(relation) + r"(\s+as\s+)",
                lambda _m, body=body: f"(\n{body}\n)" + _m.group(1),
                sql,
            )
            sql = sql.replace(relation, f"(\n{body}\n) as {name}")
        return sql

    return {
        view: inline(node["compiled_code"]) for node in models.values() if (view := node["name"]) in VIEWS
    }


def compare(database: db.Database, repeat: int) -> int:
    speedups: list[tuple[float, str]] = []
    times: list[tuple[float, str]] = []
    raw_queries = raw_row_queries(database)
    # prepare_threshold=None: every run is planned afresh, as a BI tool's ad-hoc query is.
    with database.connect(prepare_threshold=None) as conn, conn.cursor() as cur:
        for view in VIEWS:
            view_time, view_rows = timed(cur, f"select * from analytics.{view}", repeat)
            baselines = []
            if view in DIRECT:
                direct_time, direct_rows = timed(cur, DIRECT[view], repeat)
                agree = (
                    within_latency_bound(view_rows, direct_rows)
                    if view == "performance_latency_impact"
                    else same_rows(view_rows, direct_rows)
                )
                baselines.append(("direct query", direct_time, direct_rows, agree))
            raw_time, raw_rows = timed(cur, raw_queries[view], repeat)
            baselines.append(("its SQL over raw rows", raw_time, raw_rows, same_rows(view_rows, raw_rows)))
            for label, _, rows, agree in baselines:
                if not agree:
                    logger.error("%s and %s disagree:\n view: %s\n %s", view, label, view_rows[:5], rows[:5])
                    return 1
            # the faster baseline is the one the view has to beat
            label, base_time, _, _ = min(baselines, key=lambda baseline: baseline[1])
            speedups.append((report(view, len(view_rows), view_time, label, base_time), view))
            times.append((view_time, view))
        conn.rollback()
    summary(speedups, times)
    return 0


def main() -> int:
    return run_benchmark(__doc__.splitlines()[0], compare, days=90, repeat=5, after_load=add_end_times)


if __name__ == "__main__":
    sys.exit(main())
