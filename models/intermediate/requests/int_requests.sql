-- depends_on: {{ ref('int_trace_spans') }}
{% if target.type != 'spark' %}-- depends_on: {{ ref('int_trace_observations') }}{% endif %}
{{
    config(
        materialized=intermediate_materialization(),
        incremental_strategy=intermediate_strategy('logged_delete_insert'),
        unique_key='trace_id',
        partition_by='request_date',
        on_schema_change='fail',
        indexes=[
            {'columns': ['trace_id'], 'unique': True},
            {'columns': ['request_date']},
            {'columns': ['last_seen_at']},
            {'columns': ['trace_loaded_at']},
            {'columns': ['dbt_refreshed_at']},
        ],
        post_hook=[
            "{{ drop_days_recomputed_elsewhere(this, 'trace_id', 'request_date') }}",
            "{{ analyze_model(this) }}",
        ],
    )
}}

with

{% if is_incremental() %}

-- As int_fallback_events_enriched: a trace touched by a newer load is recomputed completely, so a later
-- generation or a corrected row changes its cost, latency, outcome and kind.
touched_traces as (

    {{ traces_loaded_since_last_run(this, 'request_date') }}

),

{% endif %}

{%- set indexed = reads_trace_observations() %}

-- on PostgreSQL's incremental runs, the touched traces' rows through int_trace_observations' trace index
-- (macros/trace_observations.sql); otherwise staging's, found as macros/touched_traces.sql says
fallback_events as (

    {% if indexed -%}
    {{ touched_trace_observations('EVENT') }}
    {%- else -%}
    select * from {{ ref('stg_langfuse__events') }}
    where fallback_type is not null
    {%- endif %}

),

generations as (

    {% if indexed -%}
    {{ touched_trace_observations('GENERATION') }}
    {%- else -%}
    select * from {{ ref('stg_langfuse__generations') }}
    {%- endif %}

),

trace_generations as (

    select
        trace_id,
        count(*) as generation_count,
        count(*) filter (where is_error) as error_generation_count,
        min(created_at) as first_generation_at,
        max(created_at) as last_generation_at,
        max(created_at) filter (where not is_error) as last_ok_generation_at,
        -- a generation without end_time ends after its recorded latency; with neither it is left out
        max(coalesce(end_time, created_at + interval '1 second' * latency_seconds)) as last_generation_ended_at,
        sum(cost_usd) as cost_usd,
        max(loaded_at) as generations_loaded_at
    from generations
    {% if is_incremental() and not indexed %}
        where {{ of_touched_traces(this) }}
    {% endif %}
    group by trace_id

),

trace_fallbacks as (

    select
        trace_id,
        count(*) filter (where fallback_type = 'rate_limit_fallback') as rate_limit_fallbacks,
        count(*) filter (where fallback_type = 'context_length_fallback') as context_length_fallbacks,
        -- the fallback that moved the request off its first model; on a tie, context length (the request
        -- could not have been served by that model whatever its limits)
        {{ first_in_order('fallback_type', ['created_at', 'fallback_type']) }} as first_fallback_type,
        min(created_at) as first_fallback_at,
        max(created_at) as last_fallback_at,
        max(loaded_at) as events_loaded_at
    from fallback_events
    {% if is_incremental() and not indexed %}
        where {{ of_touched_traces(this) }}
    {% endif %}
    group by trace_id

),

requests as (

    select
        -- ids
        coalesce(trace_generations.trace_id, trace_fallbacks.trace_id) as trace_id,

        -- classification
        coalesce(trace_fallbacks.first_fallback_type, 'normal') as request_kind,
        trace_fallbacks.first_fallback_type,
        coalesce(trace_fallbacks.rate_limit_fallbacks, 0) as rate_limit_fallbacks,
        coalesce(trace_fallbacks.context_length_fallbacks, 0) as context_length_fallbacks,

        -- outcome
        coalesce(trace_generations.generation_count, 0) as generation_count,
        coalesce(trace_generations.error_generation_count, 0) as error_generation_count,
        trace_generations.last_ok_generation_at is not null as is_successful,

        -- numerics
        trace_generations.cost_usd,
        case
            when trace_generations.last_generation_ended_at >= trace_generations.first_generation_at
                then round(
                    {{ seconds_between(
                        'trace_generations.last_generation_ended_at', 'trace_generations.first_generation_at'
                    ) }},
                    3
                )
        end as latency_seconds,

        -- timestamps
        least(trace_generations.first_generation_at, trace_fallbacks.first_fallback_at) as started_at,
        trace_generations.first_generation_at,
        trace_generations.last_generation_at,
        trace_generations.last_ok_generation_at,
        trace_fallbacks.first_fallback_at,
        trace_fallbacks.last_fallback_at,
        greatest(trace_generations.last_generation_at, trace_fallbacks.last_fallback_at) as last_seen_at,

        -- lineage
        greatest(trace_generations.generations_loaded_at, trace_fallbacks.events_loaded_at) as trace_loaded_at,
        now() as dbt_refreshed_at

    from trace_generations
    full outer join trace_fallbacks
        on trace_generations.trace_id = trace_fallbacks.trace_id

),

final as (

    select
        *,
        {{ utc_date('started_at') }} as request_date
    from requests

)

select * from final
{{- rebuilt_days_only(this, 'request_date') }}
