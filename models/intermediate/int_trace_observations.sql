{#-
    PostgreSQL: the generations and fallback events, with the few columns int_requests and
    int_fallback_events_enriched read, indexed by trace. The raw table has no trace index (it would slow
    every load), so recomputing a trace there means reading the block ranges its rows lie in, and corrections
    scattered over months touch every block range. Here an incremental run of those models reads the rows of
    the traces it recomputes through the index on `trace_id` (macros/trace_observations.sql), and this
    model itself reads only the rows loaded since its last run. Spark reads the export's staging tables.
-#}
{{
    config(
        enabled=target.type != 'spark',
        materialized='incremental',
        incremental_strategy='delete+insert',
        unique_key='observation_id',
        unlogged=true,
        on_schema_change='fail',
        indexes=[
            {'columns': ['observation_id'], 'unique': True},
            {'columns': ['trace_id']},
            {'columns': ['loaded_at']},
        ],
        post_hook=["{{ analyze_model(this) }}"],
    )
}}

with

generations as (

    select
        -- ids
        generation_id as observation_id,
        trace_id,

        -- kind
        'GENERATION' as observation_type,

        -- generation
        is_error,
        cost_usd,
        latency_seconds,
        end_time,

        -- fallback
        cast(null as text) as fallback_type,
        cast(null as text) as original_model,
        cast(null as text) as fallback_model,
        cast(null as text) as reason,
        cast(null as bigint) as estimated_tokens,
        cast(null as bigint) as original_max_context,
        cast(null as bigint) as fallback_max_context,

        -- timestamps
        created_at,
        created_date,

        -- lineage
        loaded_at

    from {{ ref('stg_langfuse__generations') }}
    {% if is_incremental() %}
    where {{ loaded_since_last_run(this) }}
    {% endif %}

),

fallback_events as (

    select
        -- ids
        event_id as observation_id,
        trace_id,

        -- kind
        'EVENT' as observation_type,

        -- generation
        cast(null as boolean) as is_error,
        cast(null as numeric) as cost_usd,
        cast(null as double precision) as latency_seconds,
        cast(null as timestamptz) as end_time,

        -- fallback
        fallback_type,
        original_model,
        fallback_model,
        reason,
        estimated_tokens,
        original_max_context,
        fallback_max_context,

        -- timestamps
        created_at,
        created_date,

        -- lineage
        loaded_at

    from {{ ref('stg_langfuse__events') }}
    where fallback_type is not null
    {% if is_incremental() %}
        and {{ loaded_since_last_run(this) }}
    {% endif %}

)

select * from generations
union all
select * from fallback_events
{{- in_index_order('trace_id') }}
