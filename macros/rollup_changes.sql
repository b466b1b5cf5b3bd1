{#-
    PostgreSQL: roll-ups kept up to date by differences instead of rebuilt by day.

    A correction anywhere in the last 90 days touches every UTC day, so rebuilding the days a changed row
    falls on rebuilds nearly all of every roll-up. Instead, the row-level models a roll-up sums (int_requests,
    int_fallback_events_enriched) keep the rows an incremental run replaced, and the rows it wrote, in a
    change table beside them (`<model>__changes`: the model's columns and `change_sign`, -1 for an old
    version, +1 for a new one), and the roll-up adds the signed sums of those rows to its own (strategy
    `rollup`, below): a run reads only the rows that changed.

    The change table holds the last run's changes only. Its window (`<model>__changes_window`) says which:
    the newest `dbt_refreshed_at` the model held before that run and after it. A roll-up adds the changes
    only when its own watermark (the newest upstream refresh it has summed) is the window's start and the
    model still holds what the window's end says; otherwise (the first run, a full refresh of the upstream
    model alone, a run of the upstream model without its roll-ups, a concurrent build in between) it rebuilds
    the days that changed as before (macros/rollup_days.sql). Both tables are unlogged: after a crash they
    are empty, and the roll-ups rebuild by day once. Spark keeps the day-partition rebuild.
-#}

{% macro changes_relation(model) -%}
    {{ return(model.incorporate(path={'identifier': model.identifier ~ '__changes'})) }}
{%- endmacro %}

{% macro changes_window_relation(model) -%}
    {{ return(model.incorporate(path={'identifier': model.identifier ~ '__changes_window'})) }}
{%- endmacro %}


{#- Strategy `logged_delete_insert` (int_requests, int_fallback_events_enriched on PostgreSQL): delete+insert
    on the unique key, keeping the deleted and the inserted rows in the change table. -#}
{% macro get_incremental_logged_delete_insert_sql(arg_dict) -%}
    {%- set target_relation = arg_dict['target_relation'] -%}
    {%- set temp_relation = arg_dict['temp_relation'] -%}
    {%- set key = arg_dict['unique_key'] -%}
    {%- set columns = get_quoted_csv(arg_dict['dest_columns'] | map(attribute='name')) -%}
    {%- set changes = changes_relation(target_relation) -%}
    {%- set window = changes_window_relation(target_relation) -%}
    drop table if exists {{ changes }};
    drop table if exists {{ window }};
    create unlogged table {{ window }} as
        select max(dbt_refreshed_at) as refreshed_after, max(dbt_refreshed_at) as refreshed_through
        from {{ target_relation }};
    create unlogged table {{ changes }} as
        select cast(-1 as smallint) as change_sign, {{ columns }} from {{ target_relation }} where false;
    with removed as (
        delete from {{ target_relation }}
        where {{ key }} in (select {{ key }} from {{ temp_relation }})
        returning {{ columns }}
    )
    insert into {{ changes }} select -1, {{ columns }} from removed;
    insert into {{ target_relation }} ({{ columns }}) select {{ columns }} from {{ temp_relation }};
    insert into {{ changes }} select 1, {{ columns }} from {{ temp_relation }};
    update {{ window }} set refreshed_through = (select max(dbt_refreshed_at) from {{ target_relation }});
    analyze {{ changes }}
{%- endmacro %}


{#- The change table of `upstream` when the roll-up `rollup` (`this`) can add it, else none (rebuild by
    day). The roll-up's column holding the newest upstream refresh it has summed is its `meta.rollup`'s
    `watermark`. -#}
{% macro rollup_changes(rollup, upstream) -%}
    {%- if not execute or target.type != 'postgres' or not is_incremental()
        or (rollup | string).startswith('__dbt__cte__') -%}
        {{ return(none) }}
    {%- endif -%}
    {%- set watermark = config.get('meta')['rollup']['watermark'] -%}
    {%- set changes = changes_relation(upstream) -%}
    {%- set window = changes_window_relation(upstream) -%}
    {#- dbt's relation cache does not know tables the strategy created: asked of the database -#}
    {%- set exists -%}
        select to_regclass('{{ changes }}') is not null and to_regclass('{{ window }}') is not null
    {%- endset -%}
    {%- if not run_query(exists).rows[0][0] -%}
        {{ return(none) }}
    {%- endif -%}
    {%- set check -%}
        select coalesce(bool_and(
            change_window.refreshed_after = (select max({{ watermark }}) from {{ rollup }})
            and change_window.refreshed_through = (select max(dbt_refreshed_at) from {{ upstream }})
        ), false)
        from {{ window }} as change_window
    {%- endset -%}
    {{ return(changes if run_query(check).rows[0][0] else none) }}
{%- endmacro %}


{#- The rows a roll-up reads: the upstream model's (each counted once), or its change table's (each counted
    by its `change_sign`). -#}
{% macro rows_or_changes(upstream, changes) -%}
    {%- if changes -%}
    select * from {{ changes }}
    {%- else -%}
    select * from {{ upstream }}
    {%- endif -%}
{%- endmacro %}

{#- count(*), with a filter when `condition` is given; over the change table, the sum of the signs. -#}
{% macro signed_count(changes, condition=none) -%}
    {%- if changes -%}
    coalesce(sum(change_sign){% if condition %} filter (where {{ condition }}){% endif %}, 0)
    {%- else -%}
    count(*){% if condition %} filter (where {{ condition }}){% endif %}
    {%- endif -%}
{%- endmacro %}

{#- sum(expression), with a filter when `condition` is given; over the change table, signed. -#}
{% macro signed_sum(changes, expression, condition=none) -%}
    {%- if changes -%}
    sum(change_sign * {{ expression }}){% if condition %} filter (where {{ condition }}){% endif %}
    {%- else -%}
    sum({{ expression }}){% if condition %} filter (where {{ condition }}){% endif %}
    {%- endif -%}
{%- endmacro %}

{#- A row's own value as a one-row count or sum: the value, or over the change table, the value signed. -#}
{% macro signed_value(changes, expression) -%}
    {%- if changes -%}
    change_sign * ({{ expression }})
    {%- else -%}
    {{ expression }}
    {%- endif -%}
{%- endmacro %}


{#- Strategy `rollup` (the roll-ups on PostgreSQL). When the model read the change table (rollup_changes),
    its rows are differences: merged into the roll-up on its group key, adding the additive columns and
    setting the others, and deleting a row whose counts all reach zero. Otherwise delete+insert of the days it
    rebuilt. The model's `meta.rollup` says how:

    - `of`: the upstream model, and `watermark`: the column with its newest refresh summed;
    - `key`: the group key's columns that are never null (hashed), `nullable_key`: the others;
    - `counts`: the count columns (a row exists while one of them is not zero);
    - `sums`: each summed column and the count of its non-null values (null when that count is zero), or
      none when the column has no such count (null when both sides are);
    - every other column not in the key is set from the difference row (the model works out its value). -#}
{% macro get_incremental_rollup_sql(arg_dict) -%}
    {%- set target_relation = arg_dict['target_relation'] -%}
    {%- set rollup = config.get('meta')['rollup'] -%}
    {%- set upstream = target_relation.incorporate(path={'identifier': rollup['of']}) -%}
    {%- if rollup_changes(target_relation, upstream) is none -%}
        {{ return(get_incremental_delete_insert_sql(arg_dict)) }}
    {%- endif -%}
    {%- set key = rollup['key'] -%}
    {%- set nullable_key = rollup.get('nullable_key', []) -%}
    {%- set counts = rollup['counts'] -%}
    {%- set sums = rollup.get('sums', {}) -%}
    {%- set names = arg_dict['dest_columns'] | map(attribute='name') | list -%}
    {%- set zero_counts -%}
        {%- for column in counts %}t.{{ column }} + d.{{ column }} = 0{{ ' and ' if not loop.last }}{% endfor -%}
    {%- endset -%}
    merge into {{ target_relation }} as t
    using {{ arg_dict['temp_relation'] }} as d
    on {% for column in key %}t.{{ column }} = d.{{ column }}{{ ' and ' if not loop.last }}{% endfor %}
        {%- for column in nullable_key %} and t.{{ column }} is not distinct from d.{{ column }}{% endfor %}
    when matched and {{ zero_counts }} then delete
    when matched then update set
        {%- for column in names if column not in key and column not in nullable_key %}
        {%- set added = 'coalesce(t.' ~ column ~ ', 0) + coalesce(d.' ~ column ~ ', 0)' %}
        {{ column }} =
            {%- if column in counts %} t.{{ column }} + d.{{ column }}
            {%- elif column in sums %}
            case
                when {% if sums[column] %}t.{{ sums[column] }} + d.{{ sums[column] }} = 0 or {% endif -%}
                    (t.{{ column }} is null and d.{{ column }} is null) then null
                else {{ added }}
            end
            {%- else %} d.{{ column }}
            {%- endif %}{{ ',' if not loop.last }}
        {%- endfor %}
    when not matched and not ({% for column in counts %}d.{{ column }} = 0{{ ' and ' if not loop.last }}{% endfor %}) then
        insert ({{ get_quoted_csv(names) }})
        values ({% for column in names %}d.{{ column }}{{ ', ' if not loop.last }}{% endfor %})
{%- endmacro %}
