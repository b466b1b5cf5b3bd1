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
    {%- set identifier = relation.identifier if relation is not string else none -%}
    {%- if not tests_changed_rows_only() -%}
        {{ return('') }}
    {%- elif identifier in loaded -%}
        {{ return(loaded[identifier] ~ ' > ' ~ tested_loads_start() ~ '(' ~ (var('incremental_test_hours') | int) ~ ')') }}
    {%- elif identifier in recomputed -%}
        {{ return(recomputed[identifier] ~ " >= cast('" ~ run_started_at.isoformat() ~ "' as timestamp with time zone)") }}
    {%- endif -%}
    {{ return('') }}
{%- endmacro %}


{#- Whether this dbt invocation tests only the rows it changed: a `dbt build` without --full-refresh, with
    `incremental_test_hours` set, on PostgreSQL (Spark, without an index to find the changed rows by, tests
    every row, since a scan of the rows changed costs a scan of all). -#}
{% macro tests_changed_rows_only() -%}
    {{ return(flags.WHICH == 'build' and not flags.FULL_REFRESH
              and var('incremental_test_hours', none) is not none and target.type != 'spark') }}
{%- endmacro %}


{#- The function the tests' condition on the load time calls (created by `create_tested_loads_start`). -#}
{% macro tested_loads_start() -%}
    {{ return(adapter.quote(target.schema) ~ '.autopicker_tested_loads_start') }}
{%- endmacro %}


{#-
    on-run-start: the function `<target schema>.autopicker_tested_loads_start(hours)`, the start of the loads
    a build tests (now minus `hours`). Its one job is to be PARALLEL UNSAFE, which makes PostgreSQL plan the
    tests that call it without parallel workers. With workers, the planner prefers a parallel scan of the
    whole raw table to its block-range index on `_loaded_at`: it costs a bitmap heap scan as if the rows
    wanted were scattered over the table (it does not use the column's correlation there), while a parallel
    scan shares its per-row cost among the workers. Without workers, the index's few block ranges win, as
    they should (at 10,000,000 observations, a tenth of the time: docs/benchmarks.md). The function is stable
    (one value per statement, worked out when the plan is made, so the planner sees how few rows qualify),
    and declared cheap (cost 1), so that calling it does not make a plan look expensive. Created only by the builds that scope their tests; two builds creating it
    at once are fine, since it is only replaced by the same definition.
-#}
{% macro create_tested_loads_start() -%}
    {%- if tests_changed_rows_only() -%}
    do $$
    begin
        create schema if not exists {{ adapter.quote(target.schema) }};
        create or replace function {{ tested_loads_start() }}(hours integer)
        returns timestamp with time zone
        language plpgsql stable parallel unsafe cost 1
        as $function$ begin return now() - make_interval(hours => hours); end $function$;
    exception when others then
        -- another build replacing it at the same moment ("tuple concurrently updated"): it is there
        if to_regprocedure('{{ tested_loads_start() }}(integer)') is null then
            raise;
        end if;
    end
    $$
    {%- endif -%}
{%- endmacro %}
