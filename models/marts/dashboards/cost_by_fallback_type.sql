with

window_rows as (

    {{ dashboard_window_rows(ref('int_requests_daily'), 'request_date') }}

),

all_requests as (

    select sum(cost_usd_sum) as cost_usd_sum
    from window_rows

),

by_type as (

    select
        request_kind as fallback_type,
        sum(requests) as requests,
        sum(cost_usd_sum) as cost_usd_sum,
        sum(costed_requests) as costed_requests
    from window_rows
    where request_kind <> 'normal'
    group by request_kind

),

fallback_types as (

    {{ fallback_type_rows() }}

),

-- both types always, so the bar chart keeps its two bars
final as (

    select
        fallback_types.fallback_type,
        coalesce(by_type.requests, 0)::bigint as requests,
        {{ round_decimals('coalesce(by_type.cost_usd_sum, 0)', 10) }} as total_cost_usd,
        {{ round_decimals('by_type.cost_usd_sum / nullif(by_type.costed_requests, 0)', 10) }} as avg_cost_usd,
        coalesce(by_type.costed_requests, 0)::bigint as costed_requests,
        round(
            100.0 * coalesce(by_type.cost_usd_sum, 0) / nullif(all_requests.cost_usd_sum, 0), 2
        )::numeric(5, 2) as share_of_total_cost_percent
    from fallback_types
    cross join all_requests
    left join by_type
        on fallback_types.fallback_type = by_type.fallback_type

)

select * from final
order by total_cost_usd desc, fallback_type
