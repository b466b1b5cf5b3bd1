-- depends_on: {{ ref('int_trace_spans') }}
{% if target.type != 'spark' %}-- depends_on: {{ ref('int_trace_observations') }}{% endif %}
{{
    config(
        materialized=intermediate_materialization(),
        incremental_strategy=intermediate_strategy('logged_delete_insert'),
        unique_key='event_id',
        partition_by='created_date',
        on_schema_change='fail',
        indexes=[
            {'columns': ['event_id'], 'unique': True},
            {'columns': ['created_date']},
            {'columns': ['trace_loaded_at']},
            {'columns': ['dbt_refreshed_at']},
        ],
        post_hook=[
            "{{ drop_days_recomputed_elsewhere(this, 'event_id', 'created_date') }}",
            "{{ analyze_model(this) }}",
        ],
    )
}}

with

-- One row per trace with its generations' outcome and cost (int_requests recomputes the same touched traces
-- earlier in the run).
requests as (

    select * from {{ ref('int_requests') }}

),

{% if is_incremental() %}

-- Traces with any row loaded since this model last saw them are recomputed completely: a later
-- generation or a corrected row (newer _loaded_at) can change a fallback's success and its trace's cost.
touched_traces as (

    {{ traces_loaded_since_last_run(this, 'created_date') }}

),

{% endif %}

-- on PostgreSQL's incremental runs, the touched traces' events through int_trace_observations' trace index
-- (macros/trace_observations.sql); otherwise staging's, found as macros/touched_traces.sql says
fallback_events as (

    {% if reads_trace_observations() -%}
    select observation_id as event_id, * from ({{ touched_trace_observations('EVENT') }}) as observations
    {%- else -%}
    select * from {{ ref('stg_langfuse__events') }}
    where fallback_type is not null
    {% if is_incremental() %}
        and {{ of_touched_traces(this) }}
    {% endif %}
    {%- endif %}

),

enriched as (

    select
        -- ids
        fallback_events.event_id,
        fallback_events.trace_id,

        -- fallback
        fallback_events.fallback_type,
        fallback_events.original_model,
        fallback_events.fallback_model,
        fallback_events.reason,
        fallback_events.estimated_tokens,
        fallback_events.original_max_context,
        fallback_events.fallback_max_context,

        -- timestamps
        fallback_events.created_at,
        fallback_events.created_date,

        -- the trace's generations
        coalesce(requests.generation_count, 0) as generation_count,
        coalesce(requests.error_generation_count, 0) as error_generation_count,
        requests.last_ok_generation_at,
        requests.cost_usd as trace_cost_usd,

        -- Query 4 counts a trace once per fallback type and model pair: at its latest such event
        row_number() over (
            partition by
                fallback_events.trace_id,
                fallback_events.fallback_type,
                fallback_events.original_model,
                fallback_events.fallback_model
            order by fallback_events.created_at desc, fallback_events.event_id desc
        ) = 1 as is_latest_in_trace_group,

        -- lineage
        requests.trace_loaded_at,
        now() as dbt_refreshed_at

    from fallback_events
    left join requests
        on fallback_events.trace_id = requests.trace_id

)

select * from enriched
{{- rebuilt_days_only(this, 'created_date') }}
