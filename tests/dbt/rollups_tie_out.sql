{#-
    The dashboards' roll-ups tie out with the rows they sum: for every UTC day, int_requests_daily counts
    as many requests as int_requests holds, and int_fallbacks_hourly and int_fallbacks_hourly_by_type as
    many fallbacks as int_fallback_events_enriched. Returns the days that disagree; run `dbt build --full-refresh` if it ever
    fails.
-#}

with

requests as (

    select request_date as day, count(*) as upstream
    from {{ ref('int_requests') }}
    group by request_date

),

requests_rolled_up as (

    select request_date as day, sum(requests) as rolled_up
    from {{ ref('int_requests_daily') }}
    group by request_date

),

fallbacks as (

    select created_date as day, count(*) as upstream
    from {{ ref('int_fallback_events_enriched') }}
    group by created_date

),

fallbacks_rolled_up as (

    select fallback_date as day, sum(fallback_count) as rolled_up
    from {{ ref('int_fallbacks_hourly') }}
    group by fallback_date

),

fallbacks_by_type_rolled_up as (

    select fallback_date as day, sum(fallback_count) as rolled_up
    from {{ ref('int_fallbacks_hourly_by_type') }}
    group by fallback_date

),

compared as (

    select 'int_requests_daily' as roll_up, coalesce(r.day, u.day) as day, r.upstream, u.rolled_up
    from requests as r
    full outer join requests_rolled_up as u on r.day = u.day

    union all

    select 'int_fallbacks_hourly', coalesce(f.day, u.day), f.upstream, u.rolled_up
    from fallbacks as f
    full outer join fallbacks_rolled_up as u on f.day = u.day

    union all

    select 'int_fallbacks_hourly_by_type', coalesce(f.day, u.day), f.upstream, u.rolled_up
    from fallbacks as f
    full outer join fallbacks_by_type_rolled_up as u on f.day = u.day

)

select * from compared
where upstream is distinct from rolled_up
