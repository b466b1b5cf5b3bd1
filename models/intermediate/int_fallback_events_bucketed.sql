{{
    config(
        materialized='incremental',
        incremental_strategy='delete+insert',
        unique_key='bucket_day',
        on_schema_change='fail',
        indexes=[
            {'columns': ['window_start_range'], 'type': 'gist'},
            {'columns': ['bucket_day']},
        ],
        post_hook=[
            "{{ delete_days_without_events(this, ref('int_fallback_events_enriched')) }}",
            'analyze {{ this }}',
        ],
    )
}}

with

events as (

    select * from {{ ref('int_fallback_events_enriched') }}

),

{% if is_incremental() %}

-- A day is rebuilt whole (all its rows) when one of its events was recomputed since this model's last run,
-- or when its event count no longer matches: an event whose own time was corrected leaves its old day,
-- which then has to be rebuilt too (or, once empty, deleted by the post-hook).
watermark as (

    select coalesce(max(events_refreshed_through), '-infinity'::timestamptz) as refreshed_after
    from {{ this }}

),

event_days as (

    select created_date, count(*) as fallback_count
    from events
    group by created_date

),

bucket_days as (

    select bucket_day, sum(fallback_count) as fallback_count
    from {{ this }}
    where bucket_grain = 'day'
    group by bucket_day

),

days_to_rebuild as (

    select created_date as bucket_day
    from events
    where dbt_refreshed_at > (select refreshed_after from watermark)

    union

    select event_days.created_date
    from event_days
    left join bucket_days
        on event_days.created_date = bucket_days.bucket_day
    where event_days.fallback_count is distinct from bucket_days.fallback_count

),

{% endif %}

events_to_bucket as (

    select
        *,
        {{ utc_trunc('day', 'created_at') }} as day_start,
        {{ utc_trunc('hour', 'created_at') }} as hour_start
    from events
    {% if is_incremental() %}
        where created_date in (select bucket_day from days_to_rebuild)
    {% endif %}

),

-- Every event twice: in its UTC day and in its UTC hour. A day is in the window when the window starts at
-- or before the day's start; an hour when the window starts inside the hour's day, at or before the hour.
in_day_and_hour as (

    select
        'day' as bucket_grain,
        day_start as bucket_start,
        tstzrange(null, day_start, '(]') as window_start_range,
        events_to_bucket.*
    from events_to_bucket

    union all

    select
        'hour' as bucket_grain,
        hour_start as bucket_start,
        tstzrange(day_start, hour_start, '(]') as window_start_range,
        events_to_bucket.*
    from events_to_bucket

),

day_and_hour_buckets as (

    select
        bucket_grain,
        created_date as bucket_day,
        bucket_start,
        null::text as event_id,
        window_start_range,
        fallback_type,
        original_model,
        fallback_model,
        count(*) as fallback_count,
        count(*) filter (where last_ok_generation_at >= bucket_start) as successful_fallbacks,
        sum(estimated_tokens) as estimated_tokens_sum,
        count(estimated_tokens) as estimated_tokens_count,
        sum(original_max_context) as original_max_context_sum,
        count(original_max_context) as original_max_context_count,
        sum(fallback_max_context) as fallback_max_context_sum,
        count(fallback_max_context) as fallback_max_context_count,
        count(*) filter (where is_latest_in_trace_group) as affected_traces,
        sum(trace_cost_usd) filter (where is_latest_in_trace_group) as cost_usd_sum,
        count(trace_cost_usd) filter (where is_latest_in_trace_group) as costed_traces
    from in_day_and_hour
    group by
        bucket_grain, created_date, bucket_start, window_start_range,
        fallback_type, original_model, fallback_model

),

-- Single events: used when the window starts inside the event's hour, at or before the event.
event_rows as (

    select
        'event' as bucket_grain,
        created_date as bucket_day,
        created_at as bucket_start,
        event_id,
        tstzrange(hour_start, created_at, '(]') as window_start_range,
        fallback_type,
        original_model,
        fallback_model,
        1::bigint as fallback_count,
        (coalesce(last_ok_generation_at >= created_at, false))::int::bigint as successful_fallbacks,
        estimated_tokens::numeric as estimated_tokens_sum,
        (estimated_tokens is not null)::int::bigint as estimated_tokens_count,
        original_max_context::numeric as original_max_context_sum,
        (original_max_context is not null)::int::bigint as original_max_context_count,
        fallback_max_context::numeric as fallback_max_context_sum,
        (fallback_max_context is not null)::int::bigint as fallback_max_context_count,
        is_latest_in_trace_group::int::bigint as affected_traces,
        case when is_latest_in_trace_group then trace_cost_usd end as cost_usd_sum,
        (is_latest_in_trace_group and trace_cost_usd is not null)::int::bigint as costed_traces
    from events_to_bucket

),

-- The rows above count a success only when the trace's last successful generation is at or after the
-- row's own start (day, hour or event). A success before that (an event recorded after its answer) still
-- counts for a window starting at or before it: one extra success for exactly those window starts.
success_corrections as (

    select
        'success_correction' as bucket_grain,
        created_date as bucket_day,
        created_at as bucket_start,
        event_id,
        tstzrange(
            case
                when last_ok_generation_at < day_start then null
                when last_ok_generation_at < hour_start then day_start
                else hour_start
            end,
            last_ok_generation_at,
            '(]'
        ) as window_start_range,
        fallback_type,
        original_model,
        fallback_model,
        0::bigint as fallback_count,
        1::bigint as successful_fallbacks,
        null::numeric as estimated_tokens_sum,
        0::bigint as estimated_tokens_count,
        null::numeric as original_max_context_sum,
        0::bigint as original_max_context_count,
        null::numeric as fallback_max_context_sum,
        0::bigint as fallback_max_context_count,
        0::bigint as affected_traces,
        null::numeric as cost_usd_sum,
        0::bigint as costed_traces
    from events_to_bucket
    where last_ok_generation_at < created_at

),

unioned as (

    select * from day_and_hour_buckets
    union all
    select * from event_rows
    union all
    select * from success_corrections

),

final as (

    select
        *,
        (select max(dbt_refreshed_at) from events) as events_refreshed_through
    from unioned
    -- a row no window start can select (an hour starting at midnight, an event on the hour) is left out
    where not isempty(window_start_range)

)

-- stored by grain and time, so the few rows one window needs sit together on disk
select * from final
order by bucket_grain, bucket_start
