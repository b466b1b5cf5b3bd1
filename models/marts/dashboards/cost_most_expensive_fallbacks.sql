with

pairs as (

    {{ fallback_pair_totals() }}

),

final as (

    select
        row_number() over (
            order by total_cost_usd desc, fallback_count desc, fallback_type, model_pair
        ) as cost_rank,
        fallback_type,
        model_pair,
        original_model,
        fallback_model,
        fallback_count,
        requests,
        total_cost_usd,
        avg_cost_usd,
        costed_requests
    from pairs

)

select * from final
order by cost_rank
