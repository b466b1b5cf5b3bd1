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
    {%- set rows = tested_rows_by_index(relation) -%}
    {%- if rows or conditions -%}
        {%- set filter = ' where ' ~ conditions | join(' and ') if conditions else '' -%}
        {%- do return('(select * from ' ~ (rows or relation) ~ filter ~ ') dbt_subquery') -%}
    {%- else -%}
        {%- do return(relation) -%}
    {%- endif -%}
{%- endmacro %}


{#- The condition that keeps the rows of `relation` a build changed, or '' to test all of them. -#}
{% macro tested_rows_condition(relation) -%}
    {#- the relations that grow with traffic, and the column saying when a row was loaded -#}
    {%- set loaded = {
        'stg_langfuse__events': 'loaded_at',
        'stg_langfuse__generations': 'loaded_at',
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


{#- The rows of `relation` a build tests, read through `autopicker_rows_loaded_after` (the raw table and
    `int_trace_spans`), or '' for another relation or a build that tests every row. -#}
{% macro tested_rows_by_index(relation) -%}
    {%- set loaded = {
        'observations': '_loaded_at',
        'int_trace_spans': 'trace_loaded_at',
    } -%}
    {%- if tests_changed_rows_only() and relation is not string and relation.identifier in loaded
          and (relation.identifier != 'observations' or relation.schema == var('raw_schema', 'langfuse_raw')) -%}
        {{ return(adapter.quote(target.schema) ~ '.autopicker_rows_loaded_after(null::' ~ relation ~ ", '"
                  ~ loaded[relation.identifier] ~ "', " ~ (var('incremental_test_hours') | int) ~ ')') }}
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


{#- The function the tests' condition on the load time calls (created by `create_test_scope_functions`). -#}
{% macro tested_loads_start() -%}
    {{ return(adapter.quote(target.schema) ~ '.autopicker_tested_loads_start') }}
{%- endmacro %}


{#-
    on-run-start: the two functions the scoped tests call, in the warehouse's schema. Both exist to steer
    PostgreSQL's planner to the index on the load time. Left alone, it often prefers a scan of the whole raw
    table, in parallel or not: it costs a bitmap heap scan over the block-range index on `_loaded_at` as if
    the rows wanted were scattered over the table (it does not use the column's correlation there), so with
    a few percent of the rows in the window the two plans cost about the same, while reading the window
    alone takes a fraction of the time (docs/benchmarks.md).

    - `autopicker_rows_loaded_after(null::<relation>, <column>, hours)`: the relation's rows loaded in the
      last `hours`, read with `enable_seqscan` off (a function's own setting; a test is one statement and
      cannot set it). The tests of the raw table and of `int_trace_spans` read it (the full build writes the
      latter in no particular order of load time, so the planner scans it whole rather than use its load
      time's B-tree): always the index, at the cost of handing over whole rows.
    - `autopicker_tested_loads_start(hours)`: now minus `hours`, a stable function (worked out when the plan
      is made, so the planner sees how few rows qualify) marked PARALLEL UNSAFE, which keeps parallel plans
      away from the tests that call it, and cheap (cost 1). The tests of the staging views (and of
      `int_trace_observations`, whose rows are stored in load order) call it: through
      the other function a view would compute every column of every row (its generations' tests took 5-10 s
      each that way at 10,000,000 observations), while without parallel workers the index wins as long as
      the window is a small share of the table (docs/benchmarks.md says where it stops winning).

    Created only by the builds that scope their tests; two builds creating them at once are fine, since they
    are only replaced by the same definitions.
-#}
{% macro create_test_scope_functions() -%}
    {%- if tests_changed_rows_only() -%}
    do $$
    begin
        create schema if not exists {{ adapter.quote(target.schema) }};
        create or replace function {{ tested_loads_start() }}(hours integer)
        returns timestamp with time zone
        language plpgsql stable parallel unsafe cost 1
        as $function$ begin return now() - make_interval(hours => hours); end $function$;
        create or replace function {{ adapter.quote(target.schema) }}.autopicker_rows_loaded_after(
            relation anyelement, loaded_column text, hours integer
        )
        returns setof anyelement
        language plpgsql stable parallel unsafe
        set enable_seqscan = off
        set jit = off
        as $function$
        begin
            return query execute format(
                'select * from %s where %I > now() - make_interval(hours => $1)', pg_typeof(relation), loaded_column
            ) using hours;
        end
        $function$;
    exception when others then
        -- another build replacing them at the same moment ("tuple concurrently updated"): they are there
        if to_regprocedure('{{ tested_loads_start() }}(integer)') is null
            or to_regprocedure('{{ adapter.quote(target.schema) }}.autopicker_rows_loaded_after(anyelement, text, integer)') is null then
            raise;
        end if;
    end
    $$
    {%- endif -%}
{%- endmacro %}
