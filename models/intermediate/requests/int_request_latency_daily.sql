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

bucketed as (

    select
        request_date,
        request_kind,
        {{ latency_bucket('latency_seconds') }} as latency_bucket,
        latency_seconds
    from requests
    {% if is_incremental() %}
        where request_date in (select day from days_to_rebuild)
    {% endif %}

),

-- a request without a latency has bucket null: it is counted, so the day's requests tie out with
-- int_requests, and left out of every latency figure
histogram as (

    select
        request_date,
        request_kind,
        latency_bucket,
        count(*) as requests,
        min(latency_seconds) as min_seconds,
        max(latency_seconds) as max_seconds,
        sum(latency_seconds) as sum_seconds
    from bucketed
    group by request_date, request_kind, latency_bucket

),

final as (

    select
        *,
        (select max(dbt_refreshed_at) from {{ ref('int_requests') }}) as rows_refreshed_through
    from histogram

)

select * from final
