{#- The same measurements as the alert tests (macros/alerts.sql), one row per alert. -#}

with

high_fallback_rate as (

    {{ alert_high_fallback_rate_measured() }}

),

expensive_fallbacks as (

    {{ alert_expensive_fallbacks_measured() }}

),

context_limit_frequently_hit as (

    {{ alert_context_limit_frequently_hit_measured() }}

),

measured as (

    select 1 as alert_order, 'High fallback rate' as title, 'share of requests' as unit, *
    from (
        select alert, current_value, threshold, window_minutes, fires, details from high_fallback_rate
    ) as alert_1

    union all

    select 2, 'Expensive fallback pattern', 'USD', *
    from (
        select alert, current_value, threshold, window_minutes, fires, details from expensive_fallbacks
    ) as alert_2

    union all

    select 3, 'Context limit frequently hit', 'context-length fallbacks', *
    from (
        select alert, current_value, threshold, window_minutes, fires, details
        from context_limit_frequently_hit
    ) as alert_3

),

final as (

    select
        alert,
        title,
        {{ round_decimals('current_value', 4) }} as current_value,
        {{ round_decimals('threshold', 4) }} as threshold,
        unit,
        window_minutes::integer as window_minutes,
        fires,
        details,
        {{ reporting_now() }} as evaluated_at,
        alert_order
    from measured

)

select
    alert,
    title,
    current_value,
    threshold,
    unit,
    window_minutes,
    fires,
    details,
    evaluated_at
from final
order by alert_order
