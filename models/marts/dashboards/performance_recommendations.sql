{%- set days = var('dashboard_days') | int -%}
{%- set green_above = var('success_rate_green_above_percent') -%}
{%- set red_below = var('success_rate_red_below_percent') -%}

with

fallback_rows as (

    {{ dashboard_window_rows(ref('int_fallbacks_hourly'), 'fallback_date') }}

),

request_rows as (

    {{ dashboard_window_rows(ref('int_requests_daily'), 'request_date') }}

),

requests as (

    select
        coalesce(sum(requests), 0) as requests,
        coalesce(sum(requests_with_rate_limit_fallback), 0) as rate_limit_requests,
        coalesce(sum(requests_with_context_length_fallback), 0) as context_length_requests,
        coalesce(sum(requests) filter (where request_kind <> 'normal'), 0) as fallback_requests,
        coalesce(sum(cost_usd_sum), 0) as cost_usd,
        coalesce(sum(cost_usd_sum) filter (where request_kind <> 'normal'), 0) as fallback_cost_usd
    from request_rows

),

fallbacks as (

    select
        coalesce(sum(fallback_count), 0) as fallbacks,
        coalesce(sum(successful_fallbacks), 0) as successful_fallbacks,
        100.0 * sum(successful_fallbacks) / nullif(sum(fallback_count), 0) as success_rate
    from fallback_rows

),

-- the most frequent model pair of each fallback type, named in that type's advice
top_pairs as (

    {{ top_pair_per_fallback_type('fallback_rows') }}

),

-- the pair whose fallbacks succeed least often (the most used on a tie)
weakest_pair as (

    select
        {{ model_pair_label('original_model', 'fallback_model') }} as model_pair,
        sum(fallback_count) as fallbacks,
        100.0 * sum(successful_fallbacks) / sum(fallback_count) as success_rate
    from fallback_rows
    group by original_model, fallback_model
    having sum(fallback_count) > 0
    order by success_rate, fallbacks desc, model_pair
    limit 1

),

latency_histogram as (

    select
        case when request_kind = 'normal' then 'normal' else 'fallback' end as request_type,
        latency_bucket,
        sum(requests) as requests,
        min(min_seconds) as min_seconds,
        max(max_seconds) as max_seconds
    from ({{ dashboard_window_rows(ref('int_request_latency_daily'), 'request_date') }}) as window_rows
    where latency_bucket is not null
    group by 1, 2

),

-- medians from the daily latency histograms, as performance_latency_impact (within 1 % + 0.5 ms)
medians as (

    {{ latency_percentiles('latency_histogram', [0.5]) }}

),

latency as (

    select
        max(case when request_type = 'normal' then seconds end) as normal_p50,
        max(case when request_type = 'fallback' then seconds end) as fallback_p50
    from medians

),

measures as (

    select
        requests.*,
        fallbacks.*,
        100.0 * requests.rate_limit_requests / nullif(requests.requests, 0) as rate_limit_share,
        100.0 * requests.context_length_requests / nullif(requests.requests, 0) as context_length_share,
        100.0 * requests.fallback_cost_usd / nullif(requests.cost_usd, 0) as fallback_cost_share,
        latency.normal_p50,
        latency.fallback_p50,
        latency.fallback_p50 / nullif(latency.normal_p50, 0) as latency_ratio,
        (select model_pair from top_pairs where fallback_type = 'rate_limit_fallback') as rate_limit_pair,
        (select model_pair from top_pairs where fallback_type = 'context_length_fallback') as context_length_pair,
        weakest_pair.model_pair as weakest_pair,
        weakest_pair.fallbacks as weakest_pair_fallbacks,
        weakest_pair.success_rate as weakest_pair_success_rate
    from requests
    cross join fallbacks
    cross join latency
    left join weakest_pair on true

),

insights as (

    -- Troubleshooting, "Fallbacks Failing"
    select
        1 as priority,
        'fallbacks_failing' as insight,
        case when success_rate < {{ red_below }} then 'critical' else 'warning' end as severity,
        'Fallbacks are failing' as title,
        'Only ' || {{ percent_text('success_rate') }} || ' % of the ' || fallbacks
            || ' fallbacks of the last {{ days }} days got an answer (green above {{ green_above }} %); '
            || 'the weakest pair is ' || weakest_pair || ' (' || {{ percent_text('weakest_pair_success_rate') }}
            || ' % of ' || weakest_pair_fallbacks || '). Add more diverse fallback models, check that the '
            || 'fallback models are available in your tier, and verify the fallback model configuration.'
            as recommendation,
        'fallback_success_rate' as metric,
        success_rate as metric_value,
        {{ green_above }} as threshold,
        'percent' as unit
    from measures
    where success_rate <= {{ green_above }}

    union all

    -- Troubleshooting, "Too Many Rate Limit Fallbacks"; Best Practices, "Cost Optimization"
    select
        2,
        'frequent_rate_limit_fallbacks',
        'warning',
        'Rate-limit fallbacks are frequent',
        rate_limit_requests || ' of ' || requests || ' requests (' || {{ percent_text('rate_limit_share') }}
            || ' %) of the last {{ days }} days fell back because a model was rate-limited, most often '
            || rate_limit_pair || '. Upgrade the API tier for higher limits, add more fallback models, '
            || 'queue or batch requests, or raise max_wait_seconds so that requests wait for the primary '
            || 'model instead of falling back.',
        'rate_limit_request_share',
        rate_limit_share,
        {{ var('recommend_rate_limit_share_percent') }},
        'percent'
    from measures
    where rate_limit_share > {{ var('recommend_rate_limit_share_percent') }}

    union all

    -- Troubleshooting, "Frequent Context Fallbacks"; Best Practices, "Cost Optimization"
    select
        3,
        'frequent_context_fallbacks',
        'warning',
        'Context-length fallbacks are frequent',
        context_length_requests || ' of ' || requests || ' requests ('
            || {{ percent_text('context_length_share') }}
            || ' %) of the last {{ days }} days did not fit their model''s context window, most often '
            || context_length_pair || '. Use a larger primary model (e.g. gemini/gemini-2.5-pro), remove '
            || 'unnecessary context from the inputs, or preprocess and compress them.',
        'context_length_request_share',
        context_length_share,
        {{ var('recommend_context_length_share_percent') }},
        'percent'
    from measures
    where context_length_share > {{ var('recommend_context_length_share_percent') }}

    union all

    -- Best Practices, "Performance Tuning"
    select
        4,
        'slow_fallbacks',
        'warning',
        'Fallbacks slow requests down',
        'Requests with a fallback take ' || {{ decimal_text('fallback_p50', 2) }} || ' s at the median '
            || 'against ' || {{ decimal_text('normal_p50', 2) }} || ' s without one ('
            || {{ decimal_text('latency_ratio', 1) }} || ' times as long) over the last {{ days }} days. '
            || 'Order fallbacks fastest first and consider pre-warming the fallback models.',
        'fallback_to_normal_median_latency_ratio',
        latency_ratio,
        {{ var('recommend_latency_ratio') }},
        'ratio'
    from measures
    where latency_ratio > {{ var('recommend_latency_ratio') }}

    union all

    -- Best Practices, "Capacity Planning" and "Cost Optimization"
    select
        5,
        'expensive_fallbacks',
        'warning',
        'Fallbacks drive the cost',
        'Requests with a fallback cost $' || {{ usd_text('fallback_cost_usd') }} || ' of the $'
            || {{ usd_text('cost_usd') }} || ' spent over the last {{ days }} days ('
            || {{ percent_text('fallback_cost_share') }} || ' %). Budget for fallback model costs, order '
            || 'fallbacks cheapest first, and plan tier upgrades from the rate-limit trend.',
        'fallback_cost_share',
        fallback_cost_share,
        {{ var('recommend_fallback_cost_share_percent') }},
        'percent'
    from measures
    where fallback_cost_share > {{ var('recommend_fallback_cost_share_percent') }}

),

-- Best Practices, "Regular Monitoring": when nothing stands out, say so rather than show nothing
quiet as (

    select
        6 as priority,
        case when requests = 0 then 'no_requests' else 'all_clear' end as insight,
        'info' as severity,
        case when requests = 0 then 'No requests yet' else 'Nothing stands out' end as title,
        case
            when requests = 0
                then 'No request was recorded in the last {{ days }} days, so there is nothing to recommend yet.'
            else 'Fallbacks stay within every threshold over the last {{ days }} days: ' || fallback_requests
                || ' of ' || requests || ' requests fell back. Keep checking the fallback dashboard daily, '
                || 'review the weekly pattern and investigate unexpected spikes.'
        end as recommendation,
        'requests' as metric,
        requests as metric_value,
        cast(null as {{ exact_numeric() }}) as threshold,
        'requests' as unit
    from measures
    where not exists (select 1 from insights)

),

final as (

    select
        priority::integer as priority,
        insight,
        severity,
        title,
        recommendation,
        metric,
        {{ round_decimals('metric_value', 4) }} as metric_value,
        {{ round_decimals('threshold', 4) }} as threshold,
        unit,
        {{ days }} as window_days
    from (
        select * from insights
        union all
        select * from quiet
    ) as all_insights

)

select * from final
order by priority
