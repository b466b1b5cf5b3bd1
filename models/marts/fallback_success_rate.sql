with

window_rows as (

    {{ fallback_window_rows(ref('int_fallback_events_bucketed')) }}

),

final as (

    select
        fallback_type,
        original_model,
        fallback_model,
        sum(fallback_count)::bigint as total_fallbacks,
        sum(successful_fallbacks)::bigint as successful_fallbacks,
        round(100.0 * sum(successful_fallbacks) / nullif(sum(fallback_count), 0), 2)::numeric(5, 2)
            as success_rate_percent
    from window_rows
    group by fallback_type, original_model, fallback_model
    having sum(fallback_count) > 0

)

select * from final
order by total_fallbacks desc, fallback_type, original_model, fallback_model
