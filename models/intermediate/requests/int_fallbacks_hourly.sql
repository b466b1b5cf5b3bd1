{{ rollup_config('fallback_date', 'int_fallback_events_enriched', 'created_date') }}

with

events as (

    select * from {{ ref('int_fallback_events_enriched') }}

),

{% if is_incremental() %}

days_to_rebuild as (

    {{ rollup_days_to_rebuild(this, 'fallback_date', 'fallback_count', ref('int_fallback_events_enriched'), 'created_date') }}

),

{% endif %}

hourly as (

    select
        created_date as fallback_date,
        {{ utc_bin('1 hour', 'created_at') }} as hour_start,
        fallback_type,
        original_model,
        fallback_model,
        count(*) as fallback_count,
        -- a fallback succeeded when its request got an answer: a generation whose level is not ERROR
        count(*) filter (where last_ok_generation_at is not null) as successful_fallbacks,
        -- a request counts once per fallback type and model pair, at its latest such event (as Query 4)
        count(*) filter (where is_latest_in_trace_group) as requests,
        sum(trace_cost_usd) filter (where is_latest_in_trace_group) as cost_usd_sum,
        count(trace_cost_usd) filter (where is_latest_in_trace_group) as costed_requests
    from events
    {% if is_incremental() %}
        where created_date in (select day from days_to_rebuild)
    {% endif %}
    group by created_date, {{ utc_bin('1 hour', 'created_at') }}, fallback_type, original_model, fallback_model

),

final as (

    select
        *,
        (select max(dbt_refreshed_at) from {{ ref('int_fallback_events_enriched') }}) as rows_refreshed_through
    from hourly

)

select * from final
