{#-
    The days int_fallback_events_bucketed rebuilds on an incremental run, as the CTEs `watermark`,
    `event_days`, `bucket_days` and `days_to_rebuild` (column bucket_day), each followed by a comma; they
    read int_fallback_events_enriched itself, not the model's CTE `events`, which PostgreSQL would otherwise
    materialize whole for its several readers. On Spark, `days_to_rebuild` lists the same days,
    worked out before the run (macros/spark_incremental.sql).
-#}
{% macro fallback_bucket_days_to_rebuild(model) -%}
    {{ return(adapter.dispatch('fallback_bucket_days_to_rebuild', 'autopicker')(model)) }}
{%- endmacro %}

{% macro spark__fallback_bucket_days_to_rebuild(model) -%}
    {%- set ctes = default__fallback_bucket_days_to_rebuild(model) | trim -%}
    {%- set days_sql -%}
        with {{ ctes[:-1] }}
        select bucket_day from days_to_rebuild
    {%- endset -%}
days_to_rebuild as (

    {{ spark_days_to_rebuild_rows(days_sql, 'bucket_day') }}

),
{%- endmacro %}

{% macro default__fallback_bucket_days_to_rebuild(model) -%}
-- A day is rebuilt whole (all its rows) when one of its events was recomputed since this model's last run,
-- or when its event count no longer matches: an event whose own time was corrected leaves its old day,
-- which then has to be rebuilt too (or, once empty, deleted by the post-hook).
watermark as (

    select coalesce(max(events_refreshed_through), {{ minus_infinity() }}) as refreshed_after
    from {{ model }}

),

event_days as (

    select created_date, count(*) as fallback_count
    from {{ ref('int_fallback_events_enriched') }}
    group by created_date

),

bucket_days as (

    select bucket_day, sum(fallback_count) as fallback_count
    from {{ model }}
    where bucket_grain = 'day'
    group by bucket_day

),

days_to_rebuild as (

    select created_date as bucket_day
    from {{ ref('int_fallback_events_enriched') }}
    where dbt_refreshed_at > (select refreshed_after from watermark)

    union

    select event_days.created_date
    from event_days
    left join bucket_days
        on event_days.created_date = bucket_days.bucket_day
    where event_days.fallback_count is distinct from bucket_days.fallback_count

),
{%- endmacro %}
