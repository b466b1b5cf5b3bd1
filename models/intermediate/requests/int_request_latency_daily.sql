{{ rollup_config('request_date', 'int_requests', 'request_date', additive={
    'watermark': 'rows_refreshed_through',
    'key': ['request_date', 'request_kind'],
    'nullable_key': ['latency_bucket'],
    'counts': ['requests'],
    'sums': {'sum_seconds': none},
}) }}

{#- On PostgreSQL, the signed sums of int_requests' last changes when they can be added (macros/rollup_changes.sql). -#}
{%- set changes = rollup_changes(this, ref('int_requests')) %}

with

requests as (

    {{ rows_or_changes(ref('int_requests'), changes) }}

),

{% if is_incremental() and not changes %}

days_to_rebuild as (

    {{ rollup_days_to_rebuild(this, 'request_date', 'requests', ref('int_requests'), 'request_date') }}

),

{% endif %}

bucketed as (

    select
        request_date,
        request_kind,
        {{ latency_bucket('latency_seconds') }} as latency_bucket,
        latency_seconds{% if changes %},
        change_sign{% endif %}
    from requests
    {% if is_incremental() and not changes %}
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
        {{ signed_count(changes) }} as requests,
        {% if changes -%}
        min(latency_seconds) filter (where change_sign > 0) as added_min_seconds,
        max(latency_seconds) filter (where change_sign > 0) as added_max_seconds,
        min(latency_seconds) filter (where change_sign < 0) as removed_min_seconds,
        max(latency_seconds) filter (where change_sign < 0) as removed_max_seconds,
        {%- else -%}
        min(latency_seconds) as min_seconds,
        max(latency_seconds) as max_seconds,
        {%- endif %}
        {{ signed_sum(changes, 'latency_seconds') }} as sum_seconds
    from bucketed
    group by request_date, request_kind, latency_bucket

),

{% if changes %}

-- A bucket's new minimum is the lower of its stored one and the added values', unless a removed value was the
-- stored minimum and no added value is as low (a recomputed request whose latency did not change removes
-- and adds the same value): then it is read again from the bucket's requests (rarely, and through the
-- day's index). The same for the maximum.
{%- set bucket_requests -%}
    from {{ ref('int_requests') }} as bucket_requests
    where bucket_requests.request_date = histogram.request_date
        and bucket_requests.request_kind = histogram.request_kind
        and {{ latency_bucket('bucket_requests.latency_seconds') }} = histogram.latency_bucket
{%- endset %}

differences as (

    select
        histogram.request_date,
        histogram.request_kind,
        histogram.latency_bucket,
        histogram.requests,
        case
            when histogram.removed_min_seconds is null
                or histogram.removed_min_seconds > stored.min_seconds
                or histogram.added_min_seconds <= stored.min_seconds
                then least(stored.min_seconds, histogram.added_min_seconds)
            else (select min(bucket_requests.latency_seconds) {{ bucket_requests }})
        end as min_seconds,
        case
            when histogram.removed_max_seconds is null
                or histogram.removed_max_seconds < stored.max_seconds
                or histogram.added_max_seconds >= stored.max_seconds
                then greatest(stored.max_seconds, histogram.added_max_seconds)
            else (select max(bucket_requests.latency_seconds) {{ bucket_requests }})
        end as max_seconds,
        histogram.sum_seconds
    from histogram
    left join {{ this }} as stored
        on histogram.request_date = stored.request_date
        and histogram.request_kind = stored.request_kind
        and histogram.latency_bucket is not distinct from stored.latency_bucket

),

{% endif %}

final as (

    select
        *,
        (select max(dbt_refreshed_at) from {{ ref('int_requests') }}) as rows_refreshed_through
    from {{ 'differences' if changes else 'histogram' }}

)

select * from final
