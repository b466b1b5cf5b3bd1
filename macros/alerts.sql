{#-
    The guide's three alerts, measured. Each macro is a query returning exactly one row: what the alert
    measures, its threshold and whether it fires (`fires`). The singular tests tests/dbt/alert_*.sql keep
    the row when it fires (severity warn); the view fallback_alerts shows all three rows. Both call these
    macros, so the test and the view cannot drift apart.

    Windows run from `reporting_now()` minus the alert's window to any later time, as the guide's
    `created_at >= NOW() - INTERVAL ...`. They read the incremental models (indexed on the times they
    filter on), which are as fresh as the last `dbt run`: `dbt build` refreshes them before the tests run.
-#}

{% macro _alert_window_start(window_var) -%}
    ({{ reporting_now() }} - interval '1 minute' * {{ var(window_var) }})
{%- endmacro %}


{#- Alert 1, "High Fallback Rate": more than `alert_fallback_rate_max` of the requests of the last
    `alert_fallback_rate_window_minutes` fell back. A request is a trace with at least one generation in the
    window, a fallback request a trace with a fallback event in it. The comparison does not divide: with no
    request at all, any fallback fires. -#}
{% macro alert_high_fallback_rate_measured() -%}
    {%- set window_start = _alert_window_start('alert_fallback_rate_window_minutes') -%}
    with

    recent_requests as (

        select * from {{ ref('int_requests') }}
        where last_seen_at >= {{ window_start }}

    ),

    measured as (

        select
            count(*) filter (where last_fallback_at >= {{ window_start }}) as fallback_requests,
            count(*) filter (where last_generation_at >= {{ window_start }}) as total_requests,
            {{ var('alert_fallback_rate_max') }} as threshold
        from recent_requests

    )

    select
        'high_fallback_rate' as alert,
        fallback_requests,
        total_requests,
        round(fallback_requests::numeric / nullif(total_requests, 0), 4) as fallback_rate,
        threshold,
        round(fallback_requests::numeric / nullif(total_requests, 0), 4) as current_value,
        {{ var('alert_fallback_rate_window_minutes') }} as window_minutes,
        fallback_requests > threshold * total_requests as fires,
        case
            when total_requests = 0
                then fallback_requests || ' fallback request' || case when fallback_requests = 1 then '' else 's' end
                    || ' and no request with a generation'
            else fallback_requests || ' of ' || total_requests || ' requests fell back'
        end as details
    from measured
{%- endmacro %}


{#- Alert 2, "Expensive Fallback Pattern": the requests with a fallback in the last
    `alert_fallback_cost_window_minutes` cost more than `alert_fallback_cost_max_usd` together. Each request
    counts once with all its generations (the guide's join counted a request once per fallback event), a
    generation's cost being metadata cost_usd, else Langfuse's total cost. -#}
{% macro alert_expensive_fallbacks_measured() -%}
    {%- set window_start = _alert_window_start('alert_fallback_cost_window_minutes') -%}
    with

    measured as (

        select
            count(*) as fallback_requests,
            coalesce(sum(cost_usd), 0) as fallback_cost_usd,
            {{ var('alert_fallback_cost_max_usd') }} as threshold_usd
        from {{ ref('int_requests') }}
        where last_seen_at >= {{ window_start }}
            and last_fallback_at >= {{ window_start }}

    )

    select
        'expensive_fallbacks' as alert,
        fallback_requests,
        fallback_cost_usd,
        threshold_usd,
        fallback_cost_usd as current_value,
        threshold_usd as threshold,
        {{ var('alert_fallback_cost_window_minutes') }} as window_minutes,
        fallback_cost_usd > threshold_usd as fires,
        '$' || {{ decimal_plain_text('fallback_cost_usd') }} || ' for ' || fallback_requests || ' request'
            || case when fallback_requests = 1 then '' else 's' end || ' with a fallback' as details
    from measured
{%- endmacro %}


{#- Alert 3, "Context Limit Frequently Hit": more than `alert_context_fallbacks_max` context-length
    fallbacks in the last `alert_context_fallbacks_window_minutes`. -#}
{% macro alert_context_limit_frequently_hit_measured() -%}
    {%- set window_start = _alert_window_start('alert_context_fallbacks_window_minutes') -%}
    with

    measured as (

        select
            count(*) as context_fallbacks,
            {{ var('alert_context_fallbacks_max') }} as threshold
        from {{ ref('int_fallback_events_enriched') }}
        where fallback_type = 'context_length_fallback'
            -- the date condition lets the index on created_date find the few recent days
            and created_date >= {{ utc_date(window_start) }}
            and created_at >= {{ window_start }}

    )

    select
        'context_limit_frequently_hit' as alert,
        context_fallbacks,
        threshold,
        context_fallbacks as current_value,
        {{ var('alert_context_fallbacks_window_minutes') }} as window_minutes,
        context_fallbacks > threshold as fires,
        context_fallbacks || ' context-length fallback'
            || case when context_fallbacks = 1 then '' else 's' end as details
    from measured
{%- endmacro %}
