{#-
    What an incremental build tests: the rows it loaded or recomputed, not the whole warehouse.

    dbt's generic tests (unique, not_null, accepted_values, relationships, ...) read their model through
    `get_where_subquery`, overridden here. On the few relations that grow with traffic, a `dbt build` without
    --full-refresh tests only what it changed: the raw rows (and their staging views, and the trace spans)
    loaded in the last `incremental_test_hours` (var, default 48: the nightly runs and a missed night), and
    the requests and fallback events this build recomputed. So its tests cost what its models cost, not a
    scan of every observation. `dbt build --full-refresh` (and `autopicker build --full-refresh`), `dbt test`,
    and any build with `--vars '{incremental_test_hours: null}'` test every row, as does every build on
    Spark (whose tables have no index to find the changed rows by). A test's own `where` config still applies.
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


{#- The condition that keeps the rows of `relation` a build changed, or '' to test all of them. -#}
{% macro tested_rows_condition(relation) -%}
    {#- the relations that grow with traffic, and the column saying when a row was loaded -#}
    {%- set loaded = {
        'observations': '_loaded_at',
        'stg_langfuse__events': 'loaded_at',
        'stg_langfuse__generations': 'loaded_at',
        'int_trace_spans': 'trace_loaded_at',
        'int_trace_observations': 'loaded_at',
    } -%}
    {#- ... or when this build recomputed it -#}
    {%- set recomputed = {
        'int_requests': 'dbt_refreshed_at',
        'int_fallback_events_enriched': 'dbt_refreshed_at',
    } -%}
    {%- set hours = var('incremental_test_hours', none) -%}
    {%- set identifier = relation.identifier if relation is not string else none -%}
    {#- Spark: without an index, a scan of the rows changed costs a scan of all -#}
    {%- if flags.WHICH != 'build' or flags.FULL_REFRESH or hours is none or target.type == 'spark' -%}
        {{ return('') }}
    {%- elif identifier in loaded -%}
        {{ return(loaded[identifier] ~ ' > ' ~ dbt.dateadd('hour', -1 * (hours | int), dbt.current_timestamp())) }}
    {%- elif identifier in recomputed -%}
        {{ return(recomputed[identifier] ~ " >= cast('" ~ run_started_at.isoformat() ~ "' as timestamp with time zone)") }}
    {%- endif -%}
    {{ return('') }}
{%- endmacro %}
