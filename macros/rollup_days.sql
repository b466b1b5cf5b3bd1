{#-
    Daily roll-ups of an incremental model (int_requests_daily and int_request_latency_daily of int_requests,
    int_fallbacks_hourly, and int_fallbacks_hourly_by_type of int_fallbacks_hourly): their config, which UTC
    days an incremental run rebuilds, and which it deletes.

    A roll-up is replaced a whole day at a time (delete+insert on its day column; on Spark, insert_overwrite of
    its day partitions). A day is rebuilt when one of its rows was recomputed upstream since the roll-up's last
    run (`dbt_refreshed_at` after the newest `rows_refreshed_through` the roll-up stored), or when its row count
    no longer matches: a row whose own time was corrected, or whose trace gained an earlier observation, left
    its old day, which has to be rebuilt too or, once empty, deleted by the post-hook.

    A roll-up (int_fallback_events_bucketed too) reads the newest refresh time of its upstream from the
    table itself, not from its own CTE over it: PostgreSQL materializes a CTE read more than once, whole,
    which made an incremental run copy every upstream row however few days it rebuilt.
-#}

{#- The config of a daily roll-up, called at the top of the model: incremental on its UTC day column
    `day_column`, replaced a whole day at a time (PostgreSQL: delete+insert on that column, with an index on
    it; Spark: insert_overwrite of its day partitions, macros/spark_incremental.sql). `rows` names the model
    it rolls up and `row_day` that model's day column: the post-hook deletes the days left without rows.
    `additive` (PostgreSQL): how the roll-up adds the changes of `rows` instead (`meta.rollup` of the
    strategy `rollup`, macros/rollup_changes.sql), or none to rebuild days only. -#}
{% macro rollup_config(day_column, rows, row_day, additive=none) -%}
    {{ config(
        materialized=intermediate_materialization(),
        incremental_strategy=intermediate_strategy('rollup' if additive else 'delete+insert'),
        meta=({'rollup': dict(additive, of=rows)} if additive else {}),
        unique_key=day_column,
        partition_by=day_column,
        on_schema_change='fail',
        indexes=[{'columns': [day_column]}],
        post_hook=[
            "{{ delete_rollup_days_without_rows(this, '" ~ day_column ~ "', ref('" ~ rows ~ "'), '" ~ row_day ~ "') }}",
            "{{ analyze_model(this) }}",
        ],
    ) }}
{%- endmacro %}


{#- The days to rebuild: a query returning one column `day`. `rollup` is the roll-up itself (`this`),
    `counted` its column holding the number of upstream rows it sums. A roll-up of a roll-up names the
    upstream's `refreshed` column (its `rows_refreshed_through`) and how the upstream counts a day's rows
    (`upstream_count`, e.g. the sum of its own `counted` column). -#}
{% macro rollup_days_to_rebuild(
    rollup, rollup_day, counted, rows, row_day, refreshed='dbt_refreshed_at', upstream_count='count(*)'
) -%}
    {{ return(adapter.dispatch('rollup_days_to_rebuild', 'autopicker')(
        rollup, rollup_day, counted, rows, row_day, refreshed, upstream_count
    )) }}
{%- endmacro %}

{#- Spark: the same days, worked out before the run and listed (macros/spark_incremental.sql). -#}
{% macro spark__rollup_days_to_rebuild(rollup, rollup_day, counted, rows, row_day, refreshed, upstream_count) -%}
    {{ spark_days_to_rebuild_rows(default__rollup_days_to_rebuild(
        rollup, rollup_day, counted, rows, row_day, refreshed, upstream_count
    )) }}
{%- endmacro %}

{% macro default__rollup_days_to_rebuild(rollup, rollup_day, counted, rows, row_day, refreshed, upstream_count) -%}
    select {{ row_day }} as day
    from {{ rows }}
    where {{ refreshed }} > (
        select coalesce(max(rows_refreshed_through), {{ minus_infinity() }}) from {{ rollup }}
    )

    union

    select upstream.day
    from (
        select {{ row_day }} as day, {{ upstream_count }} as row_count
        from {{ rows }}
        group by {{ row_day }}
    ) as upstream
    left join (
        select {{ rollup_day }} as day, sum({{ counted }}) as row_count
        from {{ rollup }}
        group by {{ rollup_day }}
    ) as rolled_up
        on upstream.day = rolled_up.day
    where upstream.row_count is distinct from rolled_up.row_count
{%- endmacro %}


{#- Post-hook: delete the roll-up's days that no longer have any upstream row (delete+insert only replaces
    days the run emits rows for). -#}
{% macro delete_rollup_days_without_rows(rollup, rollup_day, rows, row_day) -%}
    {{ return(adapter.dispatch('delete_rollup_days_without_rows', 'autopicker')(rollup, rollup_day, rows, row_day)) }}
{%- endmacro %}

{#- Spark: the partitions of those days are dropped. -#}
{% macro spark__delete_rollup_days_without_rows(rollup, rollup_day, rows, row_day) -%}
    {%- if execute -%}
        {%- set days = spark_days(
            'select ' ~ rollup_day ~ ' from ' ~ rollup ~ ' except select ' ~ row_day ~ ' from ' ~ rows
        ) -%}
        {{ spark_drop_days(rollup, rollup_day, days) }}
    {%- endif -%}
{%- endmacro %}

{#- Each of the roll-up's days is looked up in the upstream's index on its day, not the upstream read whole. -#}
{% macro default__delete_rollup_days_without_rows(rollup, rollup_day, rows, row_day) -%}
    delete from {{ rollup }}
    where {{ rollup_day }} in (
        select days.day
        from (select distinct {{ rollup_day }} as day from {{ rollup }}) as days
        where not exists (select from {{ rows }} as upstream where upstream.{{ row_day }} = days.day)
    )
{%- endmacro %}
