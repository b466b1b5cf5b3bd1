{#-
    What an incremental build tests: the rows it loaded or recomputed, not the whole warehouse.

    dbt's generic tests (unique, not_null, accepted_values, relationships, ...) read their model through
    `get_where_subquery`, overridden here. On the few relations that grow with traffic (the raw table, the
    staging views over it, and the per-request and per-event models), a build without --full-refresh
    tests only the rows loaded or recomputed in the last `incremental_test_hours` (var, default 48: the
    nightly runs and a missed night), so its tests cost what its models cost, not a scan of every
    observation. `dbt build --full-refresh` (and `autopicker build --full-refresh`) tests every row; so does
    any build with `--vars '{incremental_test_hours: null}'`. A test's own `where` config still applies.
-#}

{% macro get_where_subquery(relation) -%}
    {%- set conditions = [] -%}
    {%- set where = config.get('where', '') -%}
    {%- if where -%}
        {%- do conditions.append('(' ~ where ~ ')') -%}
    {%- endif -%}
    {%- set scope = tested_rows_condition(relation) -%}
    {%- if scope -%}
        {%- do conditions.append(scope) -%}
    {%- endif -%}
    {%- if conditions -%}
        {%- do return('(select * from ' ~ relation ~ ' where ' ~ conditions | join(' and ') ~ ') dbt_subquery') -%}
    {%- else -%}
        {%- do return(relation) -%}
    {%- endif -%}
{%- endmacro %}


{#- The condition that keeps an incremental build's rows of `relation`, or '' to test all of them. -#}
{% macro tested_rows_condition(relation) -%}
    {#- each relation that grows with traffic, and the column saying when its row was loaded or recomputed -#}
    {%- set stamped = {
        'observations': '_loaded_at',
        'stg_langfuse__events': 'loaded_at',
        'stg_langfuse__generations': 'loaded_at',
        'int_trace_spans': 'trace_loaded_at',
        'int_requests': 'dbt_refreshed_at',
        'int_fallback_events_enriched': 'dbt_refreshed_at',
    } -%}
    {%- set hours = var('incremental_test_hours', none) -%}
    {%- set identifier = relation.identifier if relation is not string else none -%}
    {%- if flags.FULL_REFRESH or hours is none or identifier not in stamped -%}
        {{ return('') }}
    {%- endif -%}
    {{ return(stamped[identifier] ~ ' > ' ~ dbt.dateadd('hour', -1 * (hours | int), dbt.current_timestamp())) }}
{%- endmacro %}
