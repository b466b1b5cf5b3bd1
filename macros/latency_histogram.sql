{#-
    Latency histograms: mergeable per-day summaries from which the dashboards read percentiles without
    reading every request (int_request_latency_daily, performance_latency_impact, performance_recommendations).

    Buckets are fixed and log-spaced, the same for every day, so days merge by adding counts: bucket -1 holds
    latencies below 1 ms, bucket i >= 0 holds [1 ms * 1.02^i, 1 ms * 1.02^(i+1)), and a bucket stands for
    its geometric middle (1 ms * 1.02^(i + 0.5); 0.5 ms for bucket -1). A latency and the value of its
    bucket differ by less than 1 % (sqrt(1.02) - 1 = 0.995 %), or by at most 0.5 ms below 1 ms. A
    percentile interpolates between the values of the two requests around its rank (as percentile_cont
    does), each replaced by the value of its bucket, and is kept within the exact minimum and maximum; so
    it is within 1 % + 0.5 ms of the exact percentile, and within 1 % + 1 ms once rounded to milliseconds.
    Up to 10^7 s (the latency limit) this is at most 1,164 buckets; real traffic fills a few hundred.
-#}

{#- The bucket of a latency in seconds (null for null). -#}
{% macro latency_bucket(seconds) -%}
    case
        when {{ seconds }} < 0.001 then -1
        when {{ seconds }} >= 0.001
            then cast(floor(ln(cast({{ seconds }} as {{ dbt.type_float() }}) / 0.001) / ln(1.02)) as integer)
    end
{%- endmacro %}


{#- The latency a bucket stands for, in seconds. -#}
{% macro latency_bucket_value(bucket) -%}
    case
        when {{ bucket }} < 0 then 0.0005
        else 0.001 * power(cast(1.02 as {{ dbt.type_float() }}), {{ bucket }} + 0.5)
    end
{%- endmacro %}


{#- Percentiles per request type from histogram rows.

    `histogram` is a query (or CTE name) with columns request_type, latency_bucket (not null), requests,
    min_seconds and max_seconds; `percentiles` a list of fractions. Returns one row per request type and
    percentile: request_type, percentile, seconds (unrounded). -#}
{% macro latency_percentiles(histogram, percentiles) -%}
    select
        request_type,
        percentile,
        greatest(
            min_seconds,
            least(
                max_seconds,
                max(case when holds_lower_rank then bucket_value end)
                    + (position - floor(position))
                    * (
                        max(case when holds_upper_rank then bucket_value end)
                        - max(case when holds_lower_rank then bucket_value end)
                    )
            )
        ) as seconds
    from (
        select
            ranked.*,
            cumulative.bucket_value,
            floor(ranked.position) >= cumulative.first_rank
                and floor(ranked.position) < cumulative.next_rank as holds_lower_rank,
            ceil(ranked.position) >= cumulative.first_rank
                and ceil(ranked.position) < cumulative.next_rank as holds_upper_rank
        from (
            select
                totals.request_type,
                totals.min_seconds,
                totals.max_seconds,
                wanted.percentile,
                -- percentile_cont's position among the requests sorted by latency, counted from 0
                wanted.percentile * (totals.requests - 1) as position
            from (
                select
                    request_type,
                    sum(requests) as requests,
                    min(min_seconds) as min_seconds,
                    max(max_seconds) as max_seconds
                from {{ histogram }}
                group by request_type
            ) as totals
            cross join (
                {%- for percentile in percentiles %}
                select {{ percentile }} as percentile{{ ' union all' if not loop.last }}
                {%- endfor %}
            ) as wanted
        ) as ranked
        inner join (
            -- each bucket with the ranks [first_rank, next_rank) of the requests it holds
            select
                request_type,
                {{ latency_bucket_value('latency_bucket') }} as bucket_value,
                running_requests - requests as first_rank,
                running_requests as next_rank
            from (
                select
                    request_type,
                    latency_bucket,
                    requests,
                    sum(requests) over (
                        partition by request_type order by latency_bucket
                        rows between unbounded preceding and current row
                    ) as running_requests
                from (
                    select request_type, latency_bucket, sum(requests) as requests
                    from {{ histogram }}
                    group by request_type, latency_bucket
                ) as buckets
            ) as running
        ) as cumulative
            on ranked.request_type = cumulative.request_type
            and ceil(ranked.position) >= cumulative.first_rank
            and floor(ranked.position) < cumulative.next_rank
    ) as matched
    group by request_type, percentile, position, min_seconds, max_seconds
{%- endmacro %}
