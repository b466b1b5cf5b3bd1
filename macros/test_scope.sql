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
    {%- set rows = tested_rows_by_index(relation, every_column=(where is not none and where != '')) -%}
    {%- if rows or conditions -%}
        {%- set filter = ' where ' ~ conditions | join(' and ') if conditions else '' -%}
        {#- the alias tells the tests below that only the changed rows are read -#}
        {%- set alias = 'dbt_changed_rows' if rows or scope else 'dbt_subquery' -%}
        {%- do return('(select * from ' ~ (rows or relation) ~ filter ~ ') ' ~ alias) -%}
    {%- else -%}
        {%- do return(relation) -%}
    {%- endif -%}
{%- endmacro %}


{#- dbt's `relationships` test on PostgreSQL. When it reads only the rows a build changed, and its parent is
    indexed by the field (a staging view, through the raw table's primary key, or the fallback events' unique
    index), each child row looks its parent up by that index: PostgreSQL does not flatten a view written with
    CTEs into a join, so dbt's own anti-join read every raw row of the parent's type to check a few thousand
    (2.5 s at 10,000,000 observations, 0.3 s looked up), and it hashed every fallback event to check the
    buckets a build changed. Otherwise, dbt's own test. -#}
{% macro postgres__test_relationships(model, column_name, to, field) -%}
    {%- set indexed_by = {
        'stg_langfuse__events': 'event_id',
        'stg_langfuse__generations': 'generation_id',
        'int_fallback_events_enriched': 'event_id',
    } -%}
    {%- if model is string and model.endswith(') dbt_changed_rows') and to is not string
          and indexed_by.get(to.identifier) == field -%}
with child as (
    select {{ column_name }} as from_field
    from {{ model }}
    where {{ column_name }} is not null
)

select
    from_field

from child

where (select 1 from {{ to }} as parent where parent.{{ field }} = child.from_field limit 1) is null
    {%- else -%}
    {{ return(dbt.default__test_relationships(model, column_name, to, field)) }}
    {%- endif -%}
{%- endmacro %}


{#- The condition that keeps the rows of `relation` a build changed, or '' to test all of them. -#}
{% macro tested_rows_condition(relation) -%}
    {#- the tables that grow with traffic and are not read through `tested_rows_by_index` (stored in load
        order, so the planner uses their load time's B-tree), and the column saying when a row was loaded -#}
    {%- set loaded = {
        'int_trace_observations': 'loaded_at',
    } -%}
    {#- ... or when this build recomputed it -#}
    {%- set recomputed = {
        'int_requests': 'dbt_refreshed_at',
        'int_fallback_events_enriched': 'dbt_refreshed_at',
    } -%}
    {#- ... or the roll-up's rows its last run wrote: each row it inserts or updates carries the newest refresh
        of the events it has summed (`events_refreshed_through`, the same value for all of them, and the
        greatest in the table; a run that changed nothing leaves the last run's rows, tested again). Its key
        columns are tested not null, so its MERGE finds every stored row with a changed row's key, and a day it
        rebuilds is written whole: a duplicate key always lies among the rows the run wrote. -#}
    {%- set rolled_up = {
        'int_fallback_events_bucketed': 'events_refreshed_through',
    } -%}
    {%- set identifier = relation.identifier if relation is not string else none -%}
    {%- if not tests_changed_rows_only() -%}
        {{ return('') }}
    {%- elif identifier in loaded -%}
        {{ return(loaded[identifier] ~ ' > ' ~ dbt.dateadd('hour', -1 * (var('incremental_test_hours') | int), dbt.current_timestamp())) }}
    {%- elif identifier in recomputed -%}
        {{ return(recomputed[identifier] ~ " >= cast('" ~ run_started_at.isoformat() ~ "' as timestamp with time zone)") }}
    {%- elif identifier in rolled_up -%}
        {#- read when the test runs, after the model: as a literal, the planner finds the few rows by the
            column's B-tree, where a subquery's value, unknown when planning, made it scan the table -#}
        {%- set newest = run_query('select max(' ~ rolled_up[identifier] ~ ')::text from ' ~ relation).columns[0].values()[0] if execute else none -%}
        {%- if newest is none -%}
            {{ return(rolled_up[identifier] ~ ' is null') }}
        {%- endif -%}
        {{ return(rolled_up[identifier] ~ " = cast('" ~ newest ~ "' as timestamp with time zone)") }}
    {%- endif -%}
    {{ return('') }}
{%- endmacro %}


{#- The rows of `relation` a build tests, read through `autopicker_rows_loaded_after` (the raw table, its
    staging views and `int_trace_spans`), or '' for another relation or a build that tests every row. A
    staging view computes only the column the test reads (a generic test on one column), the others null;
    `every_column` (a test with a `where` of its own, which may read other columns) computes them all. -#}
{% macro tested_rows_by_index(relation, every_column=false) -%}
    {%- set loaded = {
        'observations': '_loaded_at',
        'stg_langfuse__events': 'loaded_at',
        'stg_langfuse__generations': 'loaded_at',
        'int_trace_spans': 'trace_loaded_at',
    } -%}
    {%- if tests_changed_rows_only() and relation is not string and relation.identifier in loaded
          and (relation.identifier != 'observations' or relation.schema == var('raw_schema', 'langfuse_raw')) -%}
        {%- set tested = ((model or {}).get('test_metadata') or {}).get('kwargs', {}).get('column_name') -%}
        {%- set columns = "array['" ~ tested ~ "']" if tested and relation.identifier.startswith('stg_')
                          and tested is string and "'" not in tested and not every_column else 'null' -%}
        {{ return(adapter.quote(target.schema) ~ '.autopicker_rows_loaded_after(null::' ~ relation ~ ", '"
                  ~ loaded[relation.identifier] ~ "', " ~ (var('incremental_test_hours') | int) ~ ', '
                  ~ columns ~ ')') }}
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


{#-
    on-run-start: `<warehouse schema>.autopicker_rows_loaded_after(null::<relation>, <column>, hours, wanted)`,
    the relation's rows loaded in the last `hours`, with only the columns in `wanted` computed (null: all;
    the others are null), read with `enable_seqscan` off: a function's own setting, which a test (one
    statement) cannot make. The tests of the raw table, its staging views and `int_trace_spans` read it.
    Left alone, PostgreSQL's planner often scans those whole: it costs a bitmap heap scan over the raw
    table's block-range index on `_loaded_at` as if the rows wanted were scattered over the table (it does
    not use the column's correlation there), so with a few percent of the rows in the window the two plans
    cost about the same, in parallel or not, while reading the window alone takes a fraction of the time;
    and in a warehouse whose last full build predates `int_trace_spans`' load order (its model says why)
    the traces lie in no order of load time, so its load time's B-tree looks no better (docs/benchmarks.md).
    A staging view computes only the tested column: all of them, for every row, cost its generations' tests
    5-10 s each at 10,000,000 observations.

    Created only by the builds that scope their tests; two builds creating it at once are fine, since it is
    only replaced by the same definition.
-#}
{% macro create_test_scope_functions() -%}
    {%- if tests_changed_rows_only() -%}
    do $$
    begin
        create schema if not exists {{ adapter.quote(target.schema) }};
        create or replace function {{ adapter.quote(target.schema) }}.autopicker_rows_loaded_after(
            relation anyelement, loaded_column text, hours integer, wanted text[]
        )
        returns setof anyelement
        language plpgsql stable parallel unsafe
        set enable_seqscan = off
        set jit = off
        as $function$
        declare
            columns text;
        begin
            select string_agg(
                case
                    when wanted is null or attname = any(wanted) then quote_ident(attname)
                    else 'null::' || format_type(atttypid, atttypmod)
                end,
                ', ' order by attnum
            )
            into columns
            from pg_attribute
            where attrelid = (select typrelid from pg_type where oid = pg_typeof(relation))
                and attnum > 0 and not attisdropped;
            return query execute format(
                'select %s from %s where %I > now() - make_interval(hours => $1)',
                columns, pg_typeof(relation), loaded_column
            ) using hours;
        end
        $function$;
    exception when others then
        -- another build replacing it at the same moment ("tuple concurrently updated"): it is there
        if to_regprocedure('{{ adapter.quote(target.schema) }}.autopicker_rows_loaded_after(anyelement, text, integer, text[])') is null then
            raise;
        end if;
    end
    $$
    {%- endif -%}
{%- endmacro %}
