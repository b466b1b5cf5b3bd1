{{ rollup_config('fallback_date', 'int_fallbacks_hourly', 'fallback_date') }}

with

pairs as (

    select * from {{ ref('int_fallbacks_hourly') }}

),

{% if is_incremental() %}

days_to_rebuild as (

    {{ rollup_days_to_rebuild(
        this, 'fallback_date', 'fallback_count', ref('int_fallbacks_hourly'), 'fallback_date',
        refreshed='rows_refreshed_through', upstream_count='sum(fallback_count)'
    ) }}

),

{% endif %}

hourly as (

    select
        fallback_date,
        hour_start,
        fallback_type,
        cast(sum(fallback_count) as bigint) as fallback_count
    from pairs
    {% if is_incremental() %}
        where fallback_date in (select day from days_to_rebuild)
    {% endif %}
    group by fallback_date, hour_start, fallback_type

),

final as (

    select
        *,
        (select max(rows_refreshed_through) from {{ ref('int_fallbacks_hourly') }}) as rows_refreshed_through
    from hourly

)

select * from final
