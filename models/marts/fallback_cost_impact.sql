with

window_rows as (

    {{ fallback_window_rows(ref('int_fallback_events_bucketed')) }}

),

final as (

    select
        fallback_type,
        original_model,
        fallback_model,
        sum(affected_traces)::bigint as affected_traces,
        {{ round_decimals('sum(cost_usd_sum)', 10) }} as total_cost,
        {{ round_decimals('sum(cost_usd_sum) / nullif(sum(costed_traces), 0)', 10) }} as avg_cost_per_request
    from window_rows
    group by fallback_type, original_model, fallback_model
    having sum(affected_traces) > 0

)

select * from final
order by total_cost desc nulls last, fallback_type, original_model, fallback_model
