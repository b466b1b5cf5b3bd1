{#-
    Incremental intermediate models on Spark (docs/spark.md, "Incremental on Spark").

    PostgreSQL's models are incremental with `delete+insert`. Spark without Delta or Iceberg cannot delete
    rows; what it has is `insert_overwrite`: a model partitioned by a UTC day column replaces the partitions
    of the days its query returns and keeps the others. So on Spark an incremental run works out, before it
    writes anything, the days to rebuild (the days of the rows loaded since the model's last run, the days
    those rows held before, and the days whose counts no longer match), and recomputes those days whole from
    upstream. A day that ends up with no rows is dropped by the model's post-hook.

    Spark refuses to overwrite a table that the same statement reads, so the days are worked out by a query
    of their own when the model is compiled, and written into its SQL as a list of dates.
-#}

{#- The materialization of an intermediate model: incremental on both engines, except the models that are
    rebuilt whole on Spark (`whole_on_spark`: int_trace_spans, one small row per trace and no day to
    partition by). -#}
{% macro intermediate_materialization(whole_on_spark=false) -%}
    {{ return('table' if whole_on_spark and target.type == 'spark' else 'incremental') }}
{%- endmacro %}


{#- The incremental strategy: insert_overwrite of the day partitions on Spark; on PostgreSQL delete+insert of
    the model's key, or `postgres` (a strategy of macros/rollup_changes.sql: logged_delete_insert for a model
    roll-ups add the changes of, rollup for such a roll-up). -#}
{% macro intermediate_strategy(postgres='delete+insert') -%}
    {{ return('insert_overwrite' if target.type == 'spark' else postgres) }}
{%- endmacro %}


{#- A time before any other, for a watermark of an empty model. -#}
{% macro minus_infinity() -%}
    {{ return(adapter.dispatch('minus_infinity', 'autopicker')()) }}
{%- endmacro %}

{% macro default__minus_infinity() -%}
    '-infinity'::timestamptz
{%- endmacro %}

{% macro spark__minus_infinity() -%}
    timestamp'0001-01-01 00:00:00'
{%- endmacro %}


{#- The dates (text, ISO) the query `days_sql` returns in its first column, run now: at compile time of an
    incremental run on Spark; nothing when dbt only parses. -#}
{% macro spark_days(days_sql) -%}
    {%- if not execute -%}
        {{ return([]) }}
    {%- endif -%}
    {%- set days = [] -%}
    {%- for row in run_query(days_sql) -%}
        {%- if row[0] is not none -%}
            {%- do days.append(row[0] | string) -%}
        {%- endif -%}
    {%- endfor -%}
    {{ return(days | unique | sort) }}
{%- endmacro %}


{#- A query of one column (`column`), one row per date of `days` (none: no row). -#}
{% macro spark_days_rows(days, column='day') -%}
    {%- if days -%}
        select explode(array({% for day in days %}date'{{ day }}'{{ ', ' if not loop.last }}{% endfor %})) as {{ column }}
    {%- else -%}
        select cast(null as date) as {{ column }} where false
    {%- endif -%}
{%- endmacro %}


{#- `column` (a UTC date) is one of the days to rebuild: a condition. -#}
{% macro spark_in_days(column, days) -%}
    {%- if days -%}
        {{ column }} in ({% for day in days %}date'{{ day }}'{{ ', ' if not loop.last }}{% endfor %})
    {%- else -%}
        false
    {%- endif -%}
{%- endmacro %}


{#- The days an incremental run of a trace-keyed model (int_requests on `request_date`,
    int_fallback_events_enriched on `created_date`) rebuilds on Spark: the days holding, in the model, a trace
    with a row loaded since the model's last run (minus the overlap), and every day that trace's rows span
    now (int_trace_spans). -#}
{% macro spark_trace_days_to_rebuild(model, day_column) -%}
    {%- set sql -%}
        with new_traces as (
            {{ default__traces_loaded_since_last_run(model) }}
        )
        select {{ day_column }} as day from {{ model }}
        where trace_id in (select trace_id from new_traces)
        union
        select explode(sequence({{ utc_date('first_at') }}, {{ utc_date('last_at') }})) as day from new_traces
    {%- endset -%}
    {{ return(spark_days(sql)) }}
{%- endmacro %}


{#- Spark: the traces an incremental run recomputes are every trace with a generation or fallback event on
    one of the days to rebuild, so that each of those days is rewritten with all its traces. The model keeps
    only the rows of those days (`spark_rebuilt_days_only`). -#}
{% macro spark__traces_loaded_since_last_run(model, day_column) -%}
    {%- set days = spark_trace_days_to_rebuild(model, day_column) -%}
    select spans.trace_id, spans.first_at, spans.last_at
    from {{ ref('int_trace_spans') }} as spans
    inner join ({{ spark_days_rows(days) }}) as days
        on days.day between {{ utc_date('spans.first_at') }} and {{ utc_date('spans.last_at') }}
{%- endmacro %}


{#- The end of a trace-keyed model's query: on an incremental run on Spark, only the rows of the days to
    rebuild (a recomputed trace can start on another day, whose partition must not be replaced). -#}
{% macro rebuilt_days_only(model, day_column) -%}
    {%- if target.type == 'spark' and is_incremental() %}
    where {{ spark_in_days(day_column, spark_trace_days_to_rebuild(model, day_column)) }}
    {%- endif -%}
{%- endmacro %}


{#- Spark: a day-keyed model's days to rebuild (the query `days_sql`, which reads the model), as a list. -#}
{% macro spark_days_to_rebuild_rows(days_sql, column='day') -%}
    {{ spark_days_rows(spark_days(days_sql), column) }}
{%- endmacro %}


{#- Post-hook of the trace-keyed models on Spark: drop the days whose rows were all recomputed into another
    day (a trace whose first row moved to another day). Such a day had no row left to write, so
    insert_overwrite left it as it was. -#}
{% macro drop_days_recomputed_elsewhere(model, key, day_column) -%}
    {%- if target.type == 'spark' and execute -%}
        {%- set sql -%}
            select distinct old.{{ day_column }}
            from {{ model }} as old
            inner join {{ model }} as new
                on old.{{ key }} = new.{{ key }}
                and old.{{ day_column }} <> new.{{ day_column }}
                and new.dbt_refreshed_at > old.dbt_refreshed_at
        {%- endset -%}
        {{ spark_drop_days(model, day_column, spark_days(sql)) }}
    {%- endif -%}
{%- endmacro %}


{#- `alter table ... drop partition` for each of `days` (a statement, or nothing). -#}
{% macro spark_drop_days(model, day_column, days) -%}
    {%- if days -%}
        alter table {{ model }} drop if exists
        {%- for day in days %} partition ({{ day_column }} = date'{{ day }}'){{ ',' if not loop.last }}{% endfor %}
    {%- endif -%}
{%- endmacro %}
