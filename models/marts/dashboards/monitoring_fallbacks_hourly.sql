with

hours as (

    {{ dashboard_hours_series() }}

),

fallback_types as (

    {{ fallback_type_rows() }}

),

-- one row per hour and type with a fallback: the roll-up's own grain, nothing left to add up
counted as (

    select hour_start, fallback_type, fallback_count
    from ({{ dashboard_window_rows(ref('int_fallbacks_hourly_by_type'), 'fallback_date') }}) as window_rows

),

-- every hour of the window for both types, so a line chart draws an hour without fallbacks at 0
final as (

    select
        hours.hour_start,
        fallback_types.fallback_type,
        coalesce(counted.fallback_count, 0)::bigint as fallback_count
    from hours
    cross join fallback_types
    left join counted
        on hours.hour_start = counted.hour_start
        and fallback_types.fallback_type = counted.fallback_type

)

select * from final
order by hour_start, fallback_type
