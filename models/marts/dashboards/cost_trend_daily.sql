with

days as (

    {{ dashboard_days_series() }}

),

series as (

    select request_kind, series, series_order
    from (
        values
            ('normal', 'Normal requests', 1),
            ('rate_limit_fallback', 'Rate limit fallbacks', 2),
            ('context_length_fallback', 'Context fallbacks', 3)
    ) as kinds (request_kind, series, series_order)

),

daily as (

    select
        request_date,
        request_kind,
        sum(requests) as requests,
        sum(cost_usd_sum) as cost_usd_sum,
        sum(costed_requests) as costed_requests
    from ({{ dashboard_window_rows(ref('int_requests_daily'), 'request_date') }}) as window_rows
    group by request_date, request_kind

),

-- every day of the window for the three series, so the lines never break
final as (

    select
        days.day as date,
        series.series,
        series.request_kind,
        coalesce(daily.requests, 0)::bigint as requests,
        {{ round_decimals('coalesce(daily.cost_usd_sum, 0)', 10) }} as cost_usd,
        coalesce(daily.costed_requests, 0)::bigint as costed_requests,
        series.series_order
    from days
    cross join series
    left join daily
        on days.day = daily.request_date
        and series.request_kind = daily.request_kind

)

select
    date,
    series,
    request_kind,
    requests,
    cost_usd,
    costed_requests
from final
order by date, series_order
