{{ rollup_config('request_date', 'int_requests', 'request_date') }}

with

requests as (

    select * from {{ ref('int_requests') }}

),

{% if is_incremental() %}

days_to_rebuild as (

    {{ rollup_days_to_rebuild(this, 'request_date', 'requests', ref('int_requests'), 'request_date') }}

),

{% endif %}

daily as (

    select
        request_date,
        request_kind,
        count(*) as requests,
        count(*) filter (where is_successful) as successful_requests,
        count(*) filter (where rate_limit_fallbacks > 0) as requests_with_rate_limit_fallback,
        count(*) filter (where context_length_fallbacks > 0) as requests_with_context_length_fallback,
        sum(cost_usd) as cost_usd_sum,
        count(cost_usd) as costed_requests
    from requests
    {% if is_incremental() %}
        where request_date in (select day from days_to_rebuild)
    {% endif %}
    group by request_date, request_kind

),

final as (

    select
        *,
        (select max(dbt_refreshed_at) from {{ ref('int_requests') }}) as rows_refreshed_through
    from daily

)

select * from final
