with

window_rows as (

    {{ fallback_window_rows(ref('int_fallback_events_bucketed')) }}

),

final as (

    select
        original_model,
        fallback_model,
        sum(fallback_count)::bigint as fallback_count,
        -- the guide's AVG(): sum / count of the values present, null when none is; to two decimals
        (sum(estimated_tokens_sum) / nullif(sum(estimated_tokens_count), 0))::numeric(20, 2)
            as avg_input_tokens,
        (sum(original_max_context_sum) / nullif(sum(original_max_context_count), 0))::numeric(20, 2)
            as original_context_limit,
        (sum(fallback_max_context_sum) / nullif(sum(fallback_max_context_count), 0))::numeric(20, 2)
            as fallback_context_limit
    from window_rows
    where fallback_type = 'context_length_fallback'
    group by original_model, fallback_model
    having sum(fallback_count) > 0

)

select * from final
order by fallback_count desc, original_model, fallback_model
