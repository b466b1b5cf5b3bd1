{{ config(severity='warn', tags=['alert']) }}

{#-
    The seed's Alert 1, "High Fallback Rate": warns when more than `alert_fallback_rate_max` (20 %) of the
    requests of the last `alert_fallback_rate_window_minutes` (60) fell back. Returns one row when it fires.

    The seed's SQL does not run on PostgreSQL (an output alias in HAVING) and would divide by zero in an
    hour without generations. It also divided fallback events by generations, but a request that falls
    back has two or more generations, so its rate was too low. Here a request is a trace with at least one
    generation in the window, a fallback request a trace with a fallback event in it, and the comparison
    is made without dividing: with no request at all, any fallback fires the alert.
-#}

with

fallback_requests as (

    select count(distinct trace_id) as fallback_requests
    from {{ ref('stg_langfuse__events') }}
    where fallback_type is not null
        and created_at >= now() - interval '1 minute' * {{ var('alert_fallback_rate_window_minutes') }}

),

requests as (

    select count(distinct trace_id) as total_requests
    from {{ ref('stg_langfuse__generations') }}
    where created_at >= now() - interval '1 minute' * {{ var('alert_fallback_rate_window_minutes') }}

),

measured as (

    select
        fallback_requests.fallback_requests,
        requests.total_requests,
        round(fallback_requests.fallback_requests::numeric / nullif(requests.total_requests, 0), 4)
            as fallback_rate,
        {{ var('alert_fallback_rate_max') }} as threshold
    from fallback_requests
    cross join requests

)

select * from measured
where fallback_requests > threshold * total_requests
