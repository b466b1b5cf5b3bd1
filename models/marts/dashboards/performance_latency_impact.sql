with

timed_requests as (

    select
        case when request_kind = 'normal' then 'normal' else 'fallback' end as request_type,
        latency_seconds
    from ({{ dashboard_window_rows(ref('int_requests'), 'request_date') }}) as window_rows
    where latency_seconds is not null

),

stats as (

    select
        request_type,
        count(*) as requests,
        min(latency_seconds) as min_seconds,
        -- interpolated percentiles (percentile_cont), as a box plot draws them
        percentile_cont(array[0.25, 0.5, 0.75, 0.95]) within group (order by latency_seconds) as quartiles,
        max(latency_seconds) as max_seconds,
        avg(latency_seconds) as avg_seconds
    from timed_requests
    group by request_type

),

request_types as (

    select request_type, type_order
    from (values ('normal', 1), ('fallback', 2)) as request_types (request_type, type_order)

),

-- both request types always; their figures are null when the window has no such request
final as (

    select
        request_types.request_type,
        coalesce(stats.requests, 0)::bigint as requests,
        {{ round_decimals('stats.min_seconds', 3) }} as min_seconds,
        {{ round_decimals('stats.quartiles[1]', 3) }} as p25_seconds,
        {{ round_decimals('stats.quartiles[2]', 3) }} as p50_seconds,
        {{ round_decimals('stats.quartiles[3]', 3) }} as p75_seconds,
        {{ round_decimals('stats.quartiles[4]', 3) }} as p95_seconds,
        {{ round_decimals('stats.max_seconds', 3) }} as max_seconds,
        {{ round_decimals('stats.avg_seconds', 3) }} as avg_seconds,
        request_types.type_order
    from request_types
    left join stats
        on request_types.request_type = stats.request_type

)

select
    request_type,
    requests,
    min_seconds,
    p25_seconds,
    p50_seconds,
    p75_seconds,
    p95_seconds,
    max_seconds,
    avg_seconds
from final
order by type_order
