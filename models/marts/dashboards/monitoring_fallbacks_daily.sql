with

days as (

    {{ dashboard_days_series() }}

),

fallback_types as (

    {{ fallback_type_rows() }}

),

counted as (

    select
        fallback_date,
        fallback_type,
        sum(fallback_count) as fallback_count
    from ({{ dashboard_window_rows(ref('int_fallbacks_hourly'), 'fallback_date') }}) as window_rows
    group by fallback_date, fallback_type

),

-- every day of the window for both types, so a line chart draws a day without fallbacks at 0
final as (

    select
        days.day as date,
        fallback_types.fallback_type,
        coalesce(counted.fallback_count, 0)::bigint as fallback_count
    from days
    cross join fallback_types
    left join counted
        on days.day = counted.fallback_date
        and fallback_types.fallback_type = counted.fallback_type

)

select * from final
order by date, fallback_type
