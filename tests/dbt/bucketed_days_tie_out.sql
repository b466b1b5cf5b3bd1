{#-
    The daily buckets tie out with the events: every UTC day counts as many fallbacks in
    int_fallback_events_bucketed as int_fallback_events_enriched holds for it. Returns the days that
    disagree; run `dbt build --full-refresh` if it ever fails.
-#}

with

events as (

    select created_date as bucket_day, count(*) as events
    from {{ ref('int_fallback_events_enriched') }}
    group by created_date

),

buckets as (

    select bucket_day, sum(fallback_count) as bucketed
    from {{ ref('int_fallback_events_bucketed') }}
    where bucket_grain = 'day'
    group by bucket_day

)

select
    coalesce(events.bucket_day, buckets.bucket_day) as bucket_day,
    events.events,
    buckets.bucketed
from events
full outer join buckets
    on events.bucket_day = buckets.bucket_day
where events.events is distinct from buckets.bucketed
