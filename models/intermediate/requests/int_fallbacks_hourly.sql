{{ rollup_config('fallback_date', 'int_fallback_events_enriched', 'created_date', additive={
    'watermark': 'rows_refreshed_through',
    'key': ['fallback_date', 'hour_start', 'fallback_type'],
    'nullable_key': ['original_model', 'fallback_model'],
    'counts': ['fallback_count', 'successful_fallbacks', 'requests', 'costed_requests'],
    'sums': {'cost_usd_sum': 'costed_requests'},
}) }}

{#- On PostgreSQL, the signed sums of the enriched events' last changes when they can be added
    (macros/rollup_changes.sql). -#}
{%- set changes = rollup_changes(this, ref('int_fallback_events_enriched')) %}

with

events as (

    {{ rows_or_changes(ref('int_fallback_events_enriched'), changes) }}

),

{% if is_incremental() and not changes %}

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
        {{ signed_count(changes) }} as fallback_count,
        -- a fallback succeeded when its request got an answer: a generation whose level is not ERROR
        {{ signed_count(changes, 'last_ok_generation_at is not null') }} as successful_fallbacks,
        -- a request counts once per fallback type and model pair, at its latest such event (as Query 4)
        {{ signed_count(changes, 'is_latest_in_trace_group') }} as requests,
        {{ signed_sum(changes, 'trace_cost_usd', 'is_latest_in_trace_group') }} as cost_usd_sum,
        {{ signed_count(changes, 'is_latest_in_trace_group and trace_cost_usd is not null') }} as costed_requests
    from events
    {% if is_incremental() and not changes %}
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
