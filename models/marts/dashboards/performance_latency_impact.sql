{#- Percentiles from the daily latency histograms (macros/latency_histogram.sql): within 1 % + 1 ms of the
    exact interpolated percentiles; the count, minimum, maximum and mean are exact. -#}

with

-- the window's days merged: one row per request type and bucket
histogram as (

    select
        case when request_kind = 'normal' then 'normal' else 'fallback' end as request_type,
        latency_bucket,
        sum(requests) as requests,
        min(min_seconds) as min_seconds,
        max(max_seconds) as max_seconds,
        sum(sum_seconds) as sum_seconds
    from ({{ dashboard_window_rows(ref('int_request_latency_daily'), 'request_date') }}) as window_rows
    where latency_bucket is not null
    group by 1, 2

),

stats as (

    select
        request_type,
        sum(requests) as requests,
        min(min_seconds) as min_seconds,
        max(max_seconds) as max_seconds,
        sum(sum_seconds) / sum(requests) as avg_seconds
    from histogram
    group by request_type

),

-- interpolated percentiles (as percentile_cont), as a box plot draws them
percentiles as (

    {{ latency_percentiles('histogram', [0.25, 0.5, 0.75, 0.95]) }}

),

request_types as (

    select request_type, type_order
    from (values ('normal', 1), ('fallback', 2)) as request_types (request_type, type_order)

),

-- both request types always; their figures are null when the window has no such request
final as (

    select
        request_types.request_type,
        coalesce(stats.requests, 0) as requests,
        {{ round_decimals('stats.min_seconds', 3) }} as min_seconds,
        {{ round_decimals('max(case when percentiles.percentile = 0.25 then percentiles.seconds end)', 3) }}
            as p25_seconds,
        {{ round_decimals('max(case when percentiles.percentile = 0.5 then percentiles.seconds end)', 3) }}
            as p50_seconds,
        {{ round_decimals('max(case when percentiles.percentile = 0.75 then percentiles.seconds end)', 3) }}
            as p75_seconds,
        {{ round_decimals('max(case when percentiles.percentile = 0.95 then percentiles.seconds end)', 3) }}
            as p95_seconds,
        {{ round_decimals('stats.max_seconds', 3) }} as max_seconds,
        {{ round_decimals('stats.avg_seconds', 3) }} as avg_seconds,
        request_types.type_order
    from request_types
    left join stats
        on request_types.request_type = stats.request_type
    left join percentiles
        on request_types.request_type = percentiles.request_type
    group by
        request_types.request_type, request_types.type_order,
        stats.requests, stats.min_seconds, stats.max_seconds, stats.avg_seconds

)

select
    request_type,
    cast(requests as {{ dbt.type_bigint() }}) as requests,
    min_seconds,
    p25_seconds,
    p50_seconds,
    p75_seconds,
    p95_seconds,
    max_seconds,
    avg_seconds
from final
order by type_order
