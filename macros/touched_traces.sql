{#-
    The traces an incremental run recomputes (int_fallback_events_enriched, int_requests): those with a row
    loaded after the newest `trace_loaded_at` the model holds, minus `incremental_overlap_minutes`. A later
    generation or a corrected row (the loaders replace a row by id and stamp a new `_loaded_at`) changes
    what the model says about its trace, so the whole trace is recomputed. The overlap re-reads rows of
    loads that were still committing during the previous run.

    They come from int_trace_spans, with the time span of each trace's observations, so the rows of those
    traces are read through the raw table's block-range indexes (`of_touched_traces`, below) instead of a
    scan of the whole table (the raw table has no trace index: it would slow every load). A model that calls this needs the line
    `-- depends_on: {{ ref('int_trace_spans') }}`, because dbt does not see refs inside is_incremental().

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
                - interval '1 minute' * {{ var('incremental_overlap_minutes') }}
        from {{ model }}
    )
{%- endmacro %}


{#-
    A filter for staging rows (with trace_id, created_at and loaded_at) of the traces in the CTE `touched`,
    for the incremental model `model` (`this`). On Spark, the rows between the earliest and the latest of
    those traces' times (on Spark the traces are those of whole days, macros/spark_incremental.sql).
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
    PostgreSQL: the raw table's rows are found through its two BRIN indexes, on `_loaded_at` and on
    `start_time`, in one bitmap, so a run reads the block ranges that hold the touched traces' rows and no
    others, however scattered over time those traces are:

    - a touched trace the model does not hold yet had no row of the model's kind when the model last ran, so
      all its rows were loaded since: `loaded_at` after the model's watermark (the same one as
      `traces_loaded_since_last_run`) finds them;
    - a touched trace the model holds (a later row, or a corrected one) has older rows: they lie within its
      span (int_trace_spans), and the spans of all such traces, merged where they are close, are read by
      `created_at`.

    The watermark and the merged spans are worked out when the model is compiled (in `dbt build`, just
    before it runs, after int_trace_spans) and written into its SQL as constants: the planner uses a BRIN
    index well only on constants, one index scan per span. At most `max_spans` spans are written; beyond
    that the closest are merged. A unit test (whose `model` is a fixture, not a table) gets the same
    condition without constants.
-#}
{% macro postgres__of_touched_traces(model, touched, max_spans=32) -%}
    {%- if not execute or (model | string).startswith('__dbt__cte__') -%}
    trace_id in (select trace_id from {{ touched }})
    and (
        loaded_at > (
            select
                coalesce(max(trace_loaded_at), {{ minus_infinity() }})
                    - interval '1 minute' * {{ var('incremental_overlap_minutes') }}
            from {{ model }}
        )
        or trace_id in (select trace_id from {{ model }})
    )
    {%- else -%}
    {%- set spans_sql -%}
        with watermark as (
            select
                coalesce(max(trace_loaded_at), {{ minus_infinity() }})
                    - interval '1 minute' * {{ var('incremental_overlap_minutes') }} as loaded_after
            from {{ model }}
        ),
        held as (
            select spans.first_at, spans.last_at
            from {{ ref('int_trace_spans') }} as spans
            where spans.trace_loaded_at > (select loaded_after from watermark)
                and spans.trace_id in (select trace_id from {{ model }})
        ),
        gaps as (
            select
                first_at,
                last_at,
                first_at - max(last_at) over (
                    order by first_at, last_at rows between unbounded preceding and 1 preceding
                ) as gap
            from held
        ),
        ranked as (
            select *, row_number() over (order by gap desc nulls first) as gap_rank
            from gaps
        ),
        islands as (
            select
                first_at,
                last_at,
                count(*) filter (where gap is null or (gap > interval '0' and gap_rank <= {{ max_spans }}))
                    over (order by first_at, last_at rows unbounded preceding) as island
            from ranked
        )
        -- an empty model's watermark (-infinity) as null: every row
        select 0 as island, nullif(loaded_after, '-infinity') as first_at, null::timestamptz as last_at
        from watermark
        union all
        select island, min(first_at), max(last_at) from islands group by island
        order by island
    {%- endset -%}
    {%- set rows = run_query(spans_sql).rows -%}
    {%- set loaded_after = rows[0][1] -%}
    trace_id in (select trace_id from {{ touched }})
    and (
        {% if loaded_after is none -%}
        true
        {%- else -%}
        loaded_at > '{{ loaded_after.isoformat() }}'::timestamptz
        {%- endif %}
        {%- for row in rows[1:] %}
        or created_at between '{{ row[1].isoformat() }}'::timestamptz and '{{ row[2].isoformat() }}'::timestamptz
        {%- endfor %}
    )
    {%- endif -%}
{%- endmacro %}
