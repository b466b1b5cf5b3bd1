{#- Indexes: the GiST index on `window_start_range` is the views' lookup (the ranges holding a window start);
    the B-tree on it is the incremental run's, whose MERGE finds each changed row by its key: at 10,000,000
    observations, 20,000 changed rows took 3.9 s through the GiST index and 0.7 s through the B-tree. The one
    on `events_refreshed_through` finds the newest refresh summed (the incremental run's watermark) and the rows
    the last run wrote, which an incremental build tests (macros/test_scope.sql). -#}
{{
    config(
        materialized=intermediate_materialization(),
        incremental_strategy=intermediate_strategy('rollup'),
        meta={'rollup': {
            'of': 'int_fallback_events_enriched',
            'watermark': 'events_refreshed_through',
            'key': ['bucket_grain', 'bucket_day', 'bucket_start', 'window_start_range', 'fallback_type'],
            'nullable_key': ['event_id', 'original_model', 'fallback_model'],
            'counts': [
                'fallback_count', 'successful_fallbacks', 'estimated_tokens_count', 'original_max_context_count',
                'fallback_max_context_count', 'affected_traces', 'costed_traces',
            ],
            'sums': {
                'estimated_tokens_sum': 'estimated_tokens_count',
                'original_max_context_sum': 'original_max_context_count',
                'fallback_max_context_sum': 'fallback_max_context_count',
                'cost_usd_sum': 'costed_traces',
            },
        }},
        unique_key='bucket_day',
        partition_by='bucket_day',
        on_schema_change='fail',
        indexes=[
            {'columns': ['window_start_range'], 'type': 'gist'},
            {'columns': ['bucket_day']},
            {'columns': ['window_start_range']},
            {'columns': ['events_refreshed_through']},
        ],
        post_hook=[
            "{{ delete_days_without_events(this, ref('int_fallback_events_enriched')) }}",
            "{{ analyze_model(this) }}",
        ],
    )
}}

{#- Coarse to fine; each length divides the one before, so every bucket lies inside one of the coarser grain. -#}
{#- On PostgreSQL, the signed sums of the enriched events' last changes when they can be added
    (macros/rollup_changes.sql); otherwise the days that changed are rebuilt. -#}
{%- set changes = rollup_changes(this, ref('int_fallback_events_enriched')) -%}

{%- set grains = [('day', '24 hours'), ('six_hours', '6 hours'), ('hour', '1 hour'), ('ten_minutes', '10 minutes')] -%}

with

events as (

    {{ rows_or_changes(ref('int_fallback_events_enriched'), changes) }}

),

{% if is_incremental() and not changes %}

{{ fallback_bucket_days_to_rebuild(this) }}

{% endif %}

events_to_bucket as (

    select
        *,
        {%- for grain, length in grains %}
        {{ utc_bin(length, 'created_at') }} as {{ grain }}_start{{ ',' if not loop.last }}
        {%- endfor %}
    from events
    {% if is_incremental() and not changes %}
        where created_date in (select bucket_day from days_to_rebuild)
    {% endif %}

),

-- Every event once per grain. A bucket is in the window when the window starts inside the bucket of the
-- next coarser grain that holds it (any time before, for a day), at or before the bucket's own start.
in_buckets as (
    {% for grain, length in grains %}
    select
        '{{ grain }}' as bucket_grain,
        {{ grain }}_start as bucket_start,
        {{ window_start_range('null' if loop.first else grains[loop.index0 - 1][0] ~ '_start', grain ~ '_start') }}
            as window_start_range,
        events_to_bucket.*
    from events_to_bucket
    {% if not loop.last %}
    union all
    {% endif %}
    {%- endfor %}
),

buckets as (

    select
        bucket_grain,
        created_date as bucket_day,
        bucket_start,
        cast(null as {{ dbt.type_string() }}) as event_id,
        window_start_range,
        fallback_type,
        original_model,
        fallback_model,
        {{ signed_count(changes) }} as fallback_count,
        {{ signed_count(changes, 'last_ok_generation_at >= bucket_start') }} as successful_fallbacks,
        {{ signed_sum(changes, 'estimated_tokens') }} as estimated_tokens_sum,
        {{ signed_count(changes, 'estimated_tokens is not null') }} as estimated_tokens_count,
        {{ signed_sum(changes, 'original_max_context') }} as original_max_context_sum,
        {{ signed_count(changes, 'original_max_context is not null') }} as original_max_context_count,
        {{ signed_sum(changes, 'fallback_max_context') }} as fallback_max_context_sum,
        {{ signed_count(changes, 'fallback_max_context is not null') }} as fallback_max_context_count,
        {{ signed_count(changes, 'is_latest_in_trace_group') }} as affected_traces,
        {{ signed_sum(changes, 'trace_cost_usd', 'is_latest_in_trace_group') }} as cost_usd_sum,
        {{ signed_count(changes, 'is_latest_in_trace_group and trace_cost_usd is not null') }} as costed_traces
    from in_buckets
    group by
        bucket_grain, created_date, bucket_start, window_start_range,
        fallback_type, original_model, fallback_model

),

-- Single events: used when the window starts inside the event's finest bucket, at or before the event.
event_rows as (

    select
        'event' as bucket_grain,
        created_date as bucket_day,
        created_at as bucket_start,
        event_id,
        {{ window_start_range(grains[-1][0] ~ '_start', 'created_at') }} as window_start_range,
        fallback_type,
        original_model,
        fallback_model,
        {{ signed_value(changes, '1::bigint') }} as fallback_count,
        {{ signed_value(changes, '(coalesce(last_ok_generation_at >= created_at, false))::int::bigint') }}
            as successful_fallbacks,
        {{ signed_value(changes, 'estimated_tokens::' ~ exact_numeric()) }} as estimated_tokens_sum,
        {{ signed_value(changes, '(estimated_tokens is not null)::int::bigint') }} as estimated_tokens_count,
        {{ signed_value(changes, 'original_max_context::' ~ exact_numeric()) }} as original_max_context_sum,
        {{ signed_value(changes, '(original_max_context is not null)::int::bigint') }}
            as original_max_context_count,
        {{ signed_value(changes, 'fallback_max_context::' ~ exact_numeric()) }} as fallback_max_context_sum,
        {{ signed_value(changes, '(fallback_max_context is not null)::int::bigint') }}
            as fallback_max_context_count,
        {{ signed_value(changes, 'is_latest_in_trace_group::int::bigint') }} as affected_traces,
        {{ signed_value(changes, 'case when is_latest_in_trace_group then trace_cost_usd end') }} as cost_usd_sum,
        {{ signed_value(changes, '(is_latest_in_trace_group and trace_cost_usd is not null)::int::bigint') }}
            as costed_traces
    from events_to_bucket

),

-- The rows above count a success only when the trace's last successful generation is at or after the
-- row's own start. A success before that (an event recorded after its answer) still counts for a window
-- starting at or before it: one extra success for exactly the window starts whose rows missed it, those
-- after the latest of the event's bucket starts that is not after the success.
success_corrections as (

    select
        'success_correction' as bucket_grain,
        created_date as bucket_day,
        created_at as bucket_start,
        event_id,
        {%- set latest_start_before_success -%}
            case
                {%- for grain, length in grains | reverse %}
                when last_ok_generation_at >= {{ grain }}_start then {{ grain }}_start
                {%- endfor %}
            end
        {%- endset %}
        {{ window_start_range(latest_start_before_success, 'last_ok_generation_at') }} as window_start_range,
        fallback_type,
        original_model,
        fallback_model,
        0::bigint as fallback_count,
        {{ signed_value(changes, '1::bigint') }} as successful_fallbacks,
        null::{{ exact_numeric() }} as estimated_tokens_sum,
        0::bigint as estimated_tokens_count,
        null::{{ exact_numeric() }} as original_max_context_sum,
        0::bigint as original_max_context_count,
        null::{{ exact_numeric() }} as fallback_max_context_sum,
        0::bigint as fallback_max_context_count,
        0::bigint as affected_traces,
        null::{{ exact_numeric() }} as cost_usd_sum,
        0::bigint as costed_traces
    from events_to_bucket
    where last_ok_generation_at < created_at

),

unioned as (

    select * from buckets
    union all
    select * from event_rows
    union all
    select * from success_corrections

),

{% if changes %}

-- an event's old and new versions fall on the same single-event rows: one difference per row
{%- set rollup = config.get('meta')['rollup'] %}
{%- set value_columns = [
    'fallback_count', 'successful_fallbacks', 'estimated_tokens_sum', 'estimated_tokens_count',
    'original_max_context_sum', 'original_max_context_count', 'fallback_max_context_sum',
    'fallback_max_context_count', 'affected_traces', 'cost_usd_sum', 'costed_traces',
] %}

differences as (

    select
        bucket_grain, bucket_day, bucket_start, event_id, window_start_range, fallback_type, original_model,
        fallback_model,
        {%- for column in value_columns %}
        {% if column in rollup['counts'] %}cast(sum({{ column }}) as bigint){% else %}sum({{ column }}){% endif %}
            as {{ column }}{{ ',' if not loop.last }}
        {%- endfor %}
    from unioned
    group by
        bucket_grain, bucket_day, bucket_start, event_id, window_start_range, fallback_type, original_model,
        fallback_model

),

{% endif %}

final as (

    select
        *,
        (select max(dbt_refreshed_at) from {{ ref('int_fallback_events_enriched') }}) as events_refreshed_through
    from {{ 'differences' if changes else 'unioned' }}
    -- a row no window start can select (an hour starting at midnight, an event on a ten-minute mark) is left out
    where not {{ window_range_is_empty('window_start_range') }}

)

-- stored by grain and time, so the few rows one window needs sit together on disk
select * from final
order by bucket_grain, bucket_start
