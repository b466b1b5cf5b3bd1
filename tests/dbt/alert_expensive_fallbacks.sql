{{ config(severity='warn', tags=['alert']) }}

{#-
    The guide's Alert 2, "Expensive Fallback Pattern": warns when the requests (traces) with a fallback in
    the last `alert_fallback_cost_window_minutes` (60) cost more than `alert_fallback_cost_max_usd` ($10)
    together. Returns one row when it fires.

    The guide joined events to generations, so a trace with two fallback events had its cost counted twice,
    and it ignored generations without metadata cost_usd. Here each trace counts once, and a generation's
    cost is metadata cost_usd, else Langfuse's total cost (as in stg_langfuse__generations.cost_usd).

    The measurement is the macro alert_expensive_fallbacks_measured, which the view fallback_alerts shares.
-#}

select * from ({{ alert_expensive_fallbacks_measured() }}) as measured
where fires
