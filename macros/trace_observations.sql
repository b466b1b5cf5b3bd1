{#-
    PostgreSQL: int_requests and int_fallback_events_enriched read the rows of the traces they recompute from
    int_trace_observations (models/intermediate/int_trace_observations.sql), through its index on
    `trace_id`, on an incremental run. A full build reads the staging views (every row anyway); Spark reads
    its staging tables by day (macros/touched_traces.sql).
-#}

{#- Whether an incremental model reads its traces' rows from int_trace_observations. -#}
{% macro reads_trace_observations() -%}
    {{ return(target.type != 'spark' and is_incremental()) }}
{%- endmacro %}


{#- The rows of int_trace_observations of kind `observation_type` ('GENERATION' or 'EVENT') of the traces in
    the CTE `touched`. -#}
{% macro touched_trace_observations(observation_type, touched='touched_traces') -%}
    select * from {{ ref('int_trace_observations') }}
    where observation_type = '{{ observation_type }}'
        and trace_id in (select trace_id from {{ touched }})
{%- endmacro %}


{#- A condition on `loaded_at` keeping the staging rows loaded since the newest load the model `model`
    (`this`) holds, minus `incremental_overlap_minutes`: worked out when the model is compiled and written
    as a constant, so the raw table's block-range index on `_loaded_at` is used. -#}
{% macro loaded_since_last_run(model) -%}
    {%- set since_sql -%}
        select max(loaded_at) - interval '1 minute' * {{ incremental_overlap_minutes() }} from {{ model }}
    {%- endset -%}
    {%- set since = run_query(since_sql).rows[0][0] if execute else none -%}
    {%- if since is none -%}
    true
    {%- else -%}
    loaded_at > '{{ since.isoformat() }}'::timestamptz
    {%- endif -%}
{%- endmacro %}


{#- PostgreSQL's incremental runs of int_trace_observations: the rows to write in the order of `column`, the
    key of its index on trace ids. Trace ids are random, so in another order each insert lands on a page of
    that index far from the last one, and with the index larger than the server's buffers, pages were read
    and written again; in key order each is visited once (at 10,000,000 observations, 120,000 rows took
    2.0-2.3 s to insert instead of 2.7). -#}
{% macro in_index_order(column) -%}
    {%- if target.type != 'spark' and is_incremental() %}
order by {{ column }}
    {%- endif -%}
{%- endmacro %}
