with

totals as (

    select
        coalesce(sum(fallback_count), 0) as fallbacks,
        coalesce(sum(successful_fallbacks), 0) as successful_fallbacks
    from ({{ dashboard_window_rows(ref('int_fallbacks_hourly'), 'fallback_date') }}) as window_rows

),

rated as (

    select
        fallbacks,
        successful_fallbacks,
        100.0 * successful_fallbacks / nullif(fallbacks, 0) as success_rate
    from totals

),

final as (

    select
        fallbacks::bigint as fallbacks,
        successful_fallbacks::bigint as successful_fallbacks,
        round(success_rate, 2)::numeric(5, 2) as success_rate_percent,
        -- banded on the unrounded rate: 94.999 % is yellow even though it shows as 95.00
        case
            when success_rate > {{ var('success_rate_green_above_percent') }} then 'green'
            when success_rate >= {{ var('success_rate_red_below_percent') }} then 'yellow'
            when success_rate is not null then 'red'
        end as band,
        {{ var('success_rate_green_above_percent') }}::numeric(5, 2) as green_above_percent,
        {{ var('success_rate_red_below_percent') }}::numeric(5, 2) as red_below_percent
    from rated

)

select * from final
