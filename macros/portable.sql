{#-
    SQL that differs between PostgreSQL and Spark, for the intermediate models and the views (docs/spark.md,
    "One set of models, two engines"). PostgreSQL's variants are the SQL the models used before Spark.
-#}

{#- An exact decimal type for sums of costs and sizes: PostgreSQL's unbounded numeric; on Spark (whose
    `numeric` is decimal(10, 0)) the widest decimal with the staging models' 18 decimals. -#}
{% macro exact_numeric() -%}
    {{ return(adapter.dispatch('exact_numeric', 'autopicker')()) }}
{%- endmacro %}

{% macro default__exact_numeric() -%}
    numeric
{%- endmacro %}

{% macro spark__exact_numeric() -%}
    decimal(38, 18)
{%- endmacro %}


{#- Seconds from `start` to `end` (timestamps), exact to the microsecond. -#}
{% macro seconds_between(end, start) -%}
    {{ return(adapter.dispatch('seconds_between', 'autopicker')(end, start)) }}
{%- endmacro %}

{% macro default__seconds_between(end, start) -%}
    cast(extract(epoch from {{ end }} - {{ start }}) as numeric)
{%- endmacro %}

{% macro spark__seconds_between(end, start) -%}
    (cast(unix_micros({{ end }}) - unix_micros({{ start }}) as decimal(38, 0)) / 1000000)
{%- endmacro %}


{#- Aggregate: the `value` of the row first in `order` (a list of expressions, ascending). -#}
{% macro first_in_order(value, order) -%}
    {{ return(adapter.dispatch('first_in_order', 'autopicker')(value, order)) }}
{%- endmacro %}

{% macro default__first_in_order(value, order) -%}
    (array_agg({{ value }} order by {{ order | join(', ') }}))[1]
{%- endmacro %}

{% macro spark__first_in_order(value, order) -%}
    min_by({{ value }}, struct({{ order | join(', ') }}))
{%- endmacro %}


{#- Post-hook: refresh the planner's statistics of a model (PostgreSQL); nothing on Spark, whose tables are
    rewritten whole and read by full scans. On PostgreSQL only when the table was never analyzed or has
    grown by more than a tenth (in pages) since it was last analyzed, vacuumed or indexed: an incremental run
    that adds a day to months of rows changes no distribution the planner relies on (for the newest values
    of an indexed column it reads the index's ends), and autovacuum analyzes a table whose rows changed by a
    tenth anyway. At 10,000,000 observations this spares an incremental build about a second per large
    model. -#}
{% macro analyze_model(relation) -%}
    {{ return(adapter.dispatch('analyze_model', 'autopicker')(relation)) }}
{%- endmacro %}

{% macro default__analyze_model(relation) -%}
{%- endmacro %}

{% macro postgres__analyze_model(relation) -%}
    do $$
    begin
        if (
            select
                coalesce(pg_stat_get_last_analyze_time(oid), pg_stat_get_last_autoanalyze_time(oid)) is null
                or pg_relation_size(oid) > 1.1 * relpages * current_setting('block_size')::bigint
            from pg_class
            where oid = '{{ relation }}'::regclass
        ) then
            analyze {{ relation }};
        end if;
    end
    $$
{%- endmacro %}


{#- dbt's float type is Spark's `float`, 32 bits; the latency histograms need PostgreSQL's 64-bit float. -#}
{% macro spark__type_float() -%}
    double
{%- endmacro %}


{#- A decimal as text, as PostgreSQL writes a numeric: no exponent, and (on Spark, whose decimals have a fixed
    scale of 18) no trailing zeros. PostgreSQL keeps the scale of the values summed: $0.000200 there is
    $0.0002 on Spark. -#}
{% macro decimal_plain_text(value) -%}
    {{ return(adapter.dispatch('decimal_plain_text', 'autopicker')(value)) }}
{%- endmacro %}

{% macro default__decimal_plain_text(value) -%}
    {{ value }}
{%- endmacro %}

{% macro spark__decimal_plain_text(value) -%}
    regexp_replace(regexp_replace(cast({{ value }} as string), '([.][0-9]*[1-9])0+$', '$1'), '[.]0+$', '')
{%- endmacro %}
