"""Benchmark: the dashboard views against the same answers computed straight from the seed's tables.

Uses the synthetic traffic of ``benchmarks/views.py`` (N observations over the last 30 days, loaded with
COPY into ``langfuse_raw`` and into ``events`` and ``generations`` tables shaped as the seed guide assumes,
indexed for its filters and joins; ``generations`` also gets each call's ``end_time``, which latency needs).
After ``dbt run``, each dashboard view below is timed against a direct query over those tables that returns
the same rows (checked first), in one transaction so that ``now()`` is the same for both. The direct
queries are what a careful analyst would write: they aggregate only the traces with a row in the window.

    .venv/bin/python benchmarks/dashboards.py --rows 1000000

The last line is the smallest speedup.
"""

from __future__ import annotations

import logging
import sys

from views import run_benchmark, same_rows, timed

from ingest import db

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

COMPARISONS = [
    ("monitoring_fallbacks_hourly", DIRECT_HOURLY),
    ("cost_trend_daily", DIRECT_COST_TREND),
    ("performance_success_rate", DIRECT_SUCCESS),
    ("performance_latency_impact", DIRECT_LATENCY),
]


def add_end_times(database: db.Database) -> None:
    """The seed's generations table has no end time; latency needs one, so the direct queries get it."""
    with database.connect() as conn:
        conn.execute("alter table generations add column end_time timestamptz")
        conn.execute(
            "update generations set end_time = o.end_time from langfuse_raw.observations o"
            " where o.id = generations.id"
        )
        conn.execute("analyze generations")
        conn.commit()


def compare(database: db.Database, repeat: int) -> int:
    speedups: list[tuple[float, str]] = []
    # prepare_threshold=None: every run is planned afresh, as a BI tool's ad-hoc query is.
    with database.connect(prepare_threshold=None) as conn, conn.cursor() as cur:
        for view, direct_sql in COMPARISONS:
            view_time, view_rows = timed(cur, f"select * from analytics.{view}", repeat)
            direct_time, direct_rows = timed(cur, direct_sql, repeat)
            if not same_rows(view_rows, direct_rows):
                logger.error(
                    "%s and its direct query disagree:\n view: %s\n direct: %s",
                    view,
                    view_rows[:5],
                    direct_rows[:5],
                )
                return 1
            speedup = direct_time / view_time
            speedups.append((speedup, view))
            print(
                f"{view:<30} {len(view_rows):>5} rows  view {view_time * 1000:8.2f} ms  "
                f"direct {direct_time * 1000:9.2f} ms  speedup {speedup:7.1f}x",
                flush=True,
            )
        conn.rollback()
    slowest, view = min(speedups)
    print(f"minimum speedup: {slowest:.1f}x ({view})")
    return 0


def main() -> int:
    return run_benchmark(__doc__.splitlines()[0], compare, days=90, repeat=9, after_load=add_end_times)


if __name__ == "__main__":
    sys.exit(main())
