{{ rollup_config('request_date', 'int_requests', 'request_date', additive={
    'watermark': 'rows_refreshed_through',
    'key': ['request_date', 'request_kind'],
    'counts': ['requests', 'successful_requests', 'requests_with_rate_limit_fallback',
               'requests_with_context_length_fallback', 'costed_requests'],
    'sums': {'cost_usd_sum': 'costed_requests'},
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

daily as (

    select
        request_date,
        request_kind,
        {{ signed_count(changes) }} as requests,
        {{ signed_count(changes, 'is_successful') }} as successful_requests,
        {{ signed_count(changes, 'rate_limit_fallbacks > 0') }} as requests_with_rate_limit_fallback,
        {{ signed_count(changes, 'context_length_fallbacks > 0') }} as requests_with_context_length_fallback,
        {{ signed_sum(changes, 'cost_usd') }} as cost_usd_sum,
        {{ signed_count(changes, 'cost_usd is not null') }} as costed_requests
    from requests
    {% if is_incremental() and not changes %}
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
