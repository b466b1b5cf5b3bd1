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
        bucket_day as date
    from window_rows
    group by fallback_type, original_model, fallback_model, bucket_day
    having sum(fallback_count) > 0

)

select * from final
order by date desc, total_fallbacks desc, fallback_type, original_model, fallback_model
