{#-
    Typed values out of a jsonb column, never failing on bad input.

    Langfuse metadata is free-form: a number may arrive as a JSON number, as a string ("150000"), as a
    decimal string ("150000.0") or as something that is not a number at all. A plain cast would make the
    whole model fail on one bad row, so these macros return null for anything that is not a number.
-#}

{% macro json_numeric(json_column, key) -%}
    {{ return(adapter.dispatch('json_numeric', 'autopicker')(json_column, key)) }}
{%- endmacro %}

{% macro default__json_numeric(json_column, key) -%}
    {{ exceptions.raise_compiler_error("json_numeric has no implementation for the " ~ target.type ~ " adapter; add a " ~ target.type ~ "__json_numeric macro.") }}
{%- endmacro %}

{% macro postgres__json_numeric(json_column, key) -%}
    case
        when ({{ json_column }} ->> '{{ key }}') ~ '{{ _json_number_pattern() }}'
            then cast({{ json_column }} ->> '{{ key }}' as numeric)
    end
{%- endmacro %}


{#- A whole number (rounded) that fits a bigint, else null. -#}
{% macro json_bigint(json_column, key) -%}
    {{ return(adapter.dispatch('json_bigint', 'autopicker')(json_column, key)) }}
{%- endmacro %}

{% macro default__json_bigint(json_column, key) -%}
    {{ exceptions.raise_compiler_error("json_bigint has no implementation for the " ~ target.type ~ " adapter; add a " ~ target.type ~ "__json_bigint macro.") }}
{%- endmacro %}

{% macro postgres__json_bigint(json_column, key) -%}
    {#- Nested case: PostgreSQL evaluates case branches in order, so the cast only sees numbers. -#}
    case
        when ({{ json_column }} ->> '{{ key }}') ~ '{{ _json_number_pattern() }}'
            then case
                when abs(cast({{ json_column }} ->> '{{ key }}' as numeric)) < 9e18
                    then cast(round(cast({{ json_column }} ->> '{{ key }}' as numeric)) as bigint)
            end
    end
{%- endmacro %}


{#- Decimal or scientific notation; the exponent is capped so the cast cannot overflow numeric. -#}
{% macro _json_number_pattern() -%}
    ^\s*[-+]?([0-9]+\.?[0-9]*|\.[0-9]+)([eE][-+]?[0-9]{1,3})?\s*$
{%- endmacro %}
