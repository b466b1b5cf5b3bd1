{{ config(severity='warn', tags=['alert']) }}

{#-
    The guide's Alert 1, "High Fallback Rate": warns when more than `alert_fallback_rate_max` (20 %) of the
    requests of the last `alert_fallback_rate_window_minutes` (60) fell back. Returns one row when it fires.

    The guide's SQL does not run on PostgreSQL (an output alias in HAVING) and would divide by zero in an
    hour without generations. It also divided fallback events by generations, but a request that falls
    back has two or more generations, so its rate was too low. Here a request is a trace with at least one
    generation in the window, a fallback request a trace with a fallback event in it, and the comparison
    is made without dividing: with no request at all, any fallback fires the alert.

    The measurement is the macro alert_high_fallback_rate_measured, which the view fallback_alerts shares.
-#}

select * from ({{ alert_high_fallback_rate_measured() }}) as measured
where fires
