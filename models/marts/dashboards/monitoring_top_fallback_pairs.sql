with

pairs as (

    {{ fallback_pair_totals() }}

),

final as (

    select
        row_number() over (
            order by fallback_count desc, total_cost_usd desc, fallback_type, model_pair
        ) as pair_rank,
        fallback_type,
        model_pair,
        original_model,
        fallback_model,
        fallback_count,
        requests,
        avg_cost_usd,
        costed_requests
    from pairs

)

select * from final
order by pair_rank
