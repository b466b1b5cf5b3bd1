{{ config(severity='warn', tags=['alert']) }}

{#-
    The seed's Alert 3, "Context Limit Frequently Hit": warns when more than `alert_context_fallbacks_max`
    (10) context-length fallbacks happened in the last `alert_context_fallbacks_window_minutes` (10).
    Returns one row when it fires. As the seed, on the events' own time.
-#}

with

measured as (

    select
        count(*) as context_fallbacks,
        {{ var('alert_context_fallbacks_max') }} as threshold
    from {{ ref('stg_langfuse__events') }}
    where fallback_type = 'context_length_fallback'
        and created_at >= now() - interval '1 minute' * {{ var('alert_context_fallbacks_window_minutes') }}

)

select * from measured
where context_fallbacks > threshold
