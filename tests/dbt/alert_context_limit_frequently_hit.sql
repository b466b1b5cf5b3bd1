{{ config(severity='warn', tags=['alert']) }}

{#-
    The guide's Alert 3, "Context Limit Frequently Hit": warns when more than `alert_context_fallbacks_max`
    (10) context-length fallbacks happened in the last `alert_context_fallbacks_window_minutes` (10).
    Returns one row when it fires. As in the Fallback Tracking guide, on the events' own time.

    The measurement is the macro alert_context_limit_frequently_hit_measured, which the view
    fallback_alerts shares.
-#}

select * from ({{ alert_context_limit_frequently_hit_measured() }}) as measured
where fires
