{#-
    The traces an incremental run recomputes (int_fallback_events_enriched, int_requests): those with a row
    loaded after the newest `trace_loaded_at` the model holds, minus `incremental_overlap_minutes`. A later
    generation or a corrected row (the loaders replace a row by id and stamp a new `_loaded_at`) changes
    what the model says about its trace, so the whole trace is recomputed. The overlap re-reads rows of
    loads that were still committing during the previous run.

    They come from int_trace_spans, with the time span of each trace's observations. On PostgreSQL the
    rows of those traces are then read by trace from int_trace_observations (macros/trace_observations.sql);
    on Spark between the earliest and the latest of their times (`of_touched_traces`, below). A model that
    calls this needs the line `-- depends_on: {{ ref('int_trace_spans') }}`, because dbt does not see refs
    inside is_incremental().

    `model` is the incremental model itself (`this`). Returns trace_id, first_at, last_at. On Spark
    (macros/spark_incremental.sql) the traces of whole days, `day_column` being the model's day.
-#}
{% macro traces_loaded_since_last_run(model, day_column=none) -%}
    {{ return(adapter.dispatch('traces_loaded_since_last_run', 'autopicker')(model, day_column)) }}
{%- endmacro %}

{% macro default__traces_loaded_since_last_run(model, day_column=none) -%}
    select trace_id, first_at, last_at
    from {{ ref('int_trace_spans') }}
    where trace_loaded_at > (
        select
            coalesce(max(trace_loaded_at), {{ minus_infinity() }})
                - interval '1 minute' * {{ incremental_overlap_minutes() }}
        from {{ model }}
    )
{%- endmacro %}


{#-
    Spark: a filter for staging rows (with trace_id, created_at and loaded_at) of the traces in the CTE
    `touched`, for the incremental model `model` (`this`): the rows between the earliest and the latest of
    those traces' times (the traces of whole days, macros/spark_incremental.sql).
-#}
{% macro of_touched_traces(model, touched='touched_traces') -%}
    {{ return(adapter.dispatch('of_touched_traces', 'autopicker')(model, touched)) }}
{%- endmacro %}

{% macro default__of_touched_traces(model, touched) -%}
    trace_id in (select trace_id from {{ touched }})
    and created_at >= (select min(first_at) from {{ touched }})
    and created_at <= (select max(last_at) from {{ touched }})
{%- endmacro %}


{#-
    How far before the newest load time an incremental model holds it reads again (minutes): the var
    `incremental_overlap_minutes`, or when it is null (the default) 0 on PostgreSQL and 60 on Spark.
    PostgreSQL: a load through `autopicker ingest` begins its transaction only once it holds the database's
    load lock, so its rows' load time (the transaction's start) is later than the commit of every load before
    it (ingest/loader.py). A row committed after a build has read can therefore never carry a load time at
    or below what that build saw, and nothing needs reading twice. Set the var when something else writes the
    raw table while builds run. Spark: a row's load time is its export file's modification time, which says
    nothing about when the file became readable; the hour covers a file written slowly or copied late.
-#}
{% macro incremental_overlap_minutes() -%}
    {%- set minutes = var('incremental_overlap_minutes', none) -%}
    {{ return(minutes if minutes is not none else (60 if target.type == 'spark' else 0)) }}
{%- endmacro %}
