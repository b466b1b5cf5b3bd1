{{ config(severity='warn', tags=['alert']) }}

{#-
    The seed's Alert 2, "Expensive Fallback Pattern": warns when the requests (traces) with a fallback in
    the last `alert_fallback_cost_window_minutes` (60) cost more than `alert_fallback_cost_max_usd` ($10)
    together. Returns one row when it fires.

    The seed joined events to generations, so a trace with two fallback events had its cost counted twice,
    and it ignored generations without metadata cost_usd. Here each trace counts once, and a generation's
    cost is metadata cost_usd, else Langfuse's total cost (as in stg_langfuse__generations.cost_usd).
-#}

with

fallback_traces as (

    select distinct trace_id
    from {{ ref('stg_langfuse__events') }}
    where fallback_type is not null
        and created_at >= now() - interval '1 minute' * {{ var('alert_fallback_cost_window_minutes') }}

),

measured as (

    select
        count(distinct fallback_traces.trace_id) as fallback_requests,
        coalesce(sum(generations.cost_usd), 0) as fallback_cost_usd,
        {{ var('alert_fallback_cost_max_usd') }} as threshold_usd
    from fallback_traces
    left join {{ ref('stg_langfuse__generations') }} as generations
        on fallback_traces.trace_id = generations.trace_id

)

select * from measured
where fallback_cost_usd > threshold_usd
