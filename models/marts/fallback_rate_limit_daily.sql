with

window_rows as (

    {{ fallback_window_rows(ref('int_fallback_events_bucketed')) }}

),

final as (

    select
        original_model,
        fallback_model,
        sum(fallback_count)::bigint as fallback_count,
        bucket_day as date
    from window_rows
    where fallback_type = 'rate_limit_fallback'
    group by original_model, fallback_model, bucket_day
    having sum(fallback_count) > 0

)

select * from final
order by date desc, fallback_count desc, original_model, fallback_model
