{#-
    Typed values out of a jsonb column and range checks, never failing on bad input.

    Langfuse metadata is free-form JSON: a number may arrive as a JSON number, as a string ("150000"), as a
    decimal string ("150000.0"), or as something that is not a number at all (text, a boolean, an object, a
    number with 100,000 digits). A plain cast would make the whole model fail on one bad row, and a number
    beyond the agreed limits (macros/limits.sql) could overflow a sum or an interval further down, so these
    macros return null for anything that is not a number inside its limits: such a value is left out of
    sums and averages, as a missing one is.

    On Spark the JSON columns are JSON text (see langfuse_observations): values are read with
    get_json_object, and numbers with try_cast as decimal(38, 18), which gives null where a cast fails
    (Spark's ANSI mode makes a plain cast raise, and dbt.safe_cast is a plain cast there).
-#}

{#- The value of `key` as text (a string unquoted, other values as JSON text), null when missing or null. -#}
{% macro json_text(json_column, key) -%}
    {{ return(adapter.dispatch('json_text', 'autopicker')(json_column, key)) }}
{%- endmacro %}

{% macro default__json_text(json_column, key) -%}
    {{ json_column }} ->> '{{ key }}'
{%- endmacro %}

{% macro spark__json_text(json_column, key) -%}
    get_json_object({{ json_column }}, '$.{{ key }}')
{%- endmacro %}


{#- A number from `json_column ->> key` with lower <= value < upper, else null. -#}
{% macro json_number_between(json_column, key, lower, upper) -%}
    {{ return(adapter.dispatch('json_number_between', 'autopicker')(json_column, key, lower, upper)) }}
{%- endmacro %}

{% macro default__json_number_between(json_column, key, lower, upper) -%}
    {{ exceptions.raise_compiler_error("json_number_between has no implementation for the " ~ target.type ~ " adapter; add a " ~ target.type ~ "__json_number_between macro.") }}
{%- endmacro %}

{% macro postgres__json_number_between(json_column, key, lower, upper) -%}
    {#- Nested case: PostgreSQL evaluates case branches in order, so the cast only sees short numbers
        (at most 64 characters with an exponent of at most three digits: always inside numeric's range). -#}
    case
        when length({{ json_column }} ->> '{{ key }}') <= 64
            and ({{ json_column }} ->> '{{ key }}') ~ '{{ _json_number_pattern() }}'
            then case
                when cast({{ json_column }} ->> '{{ key }}' as numeric) >= {{ lower }}
                    and cast({{ json_column }} ->> '{{ key }}' as numeric) < {{ upper }}
                    then cast({{ json_column }} ->> '{{ key }}' as numeric)
            end
    end
{%- endmacro %}

{% macro spark__json_number_between(json_column, key, lower, upper) -%}
    {%- set text = spark__json_text(json_column, key) -%}
    {%- set number = 'try_cast(' ~ text ~ ' as decimal(38, 18))' -%}
    case
        when length({{ text }}) <= 64
            and {{ text }} rlike '{{ _json_number_pattern() | replace("\\", "\\\\") }}'
            and {{ number }} >= {{ lower }}
            and {{ number }} < {{ upper }}
            then {{ number }}
    end
{%- endmacro %}


{#- A cost in USD (metadata cost_usd): inside the agreed cost limits, else null. Kept exact (numeric). -#}
{% macro json_cost_usd(json_column, key) -%}
    {{ json_number_between(json_column, key, 0, limit_cost_usd()) }}
{%- endmacro %}


{#- A token count, rounded to a whole number: inside the agreed token limits, else null. -#}
{% macro json_tokens(json_column, key) -%}
    cast(round({{ json_number_between(json_column, key, 0, limit_tokens()) }}) as {{ dbt.type_bigint() }})
{%- endmacro %}


{#- `value` when lower <= value < upper, else null (NaN included: it is not below any upper bound). -#}
{% macro between_limits(value, lower, upper) -%}
    case when {{ value }} >= {{ lower }} and {{ value }} < {{ upper }} then {{ value }} end
{%- endmacro %}


{#- Decimal or scientific notation; the exponent is capped so the cast cannot overflow numeric. -#}
{% macro _json_number_pattern() -%}
    ^\s*[-+]?([0-9]+\.?[0-9]*|\.[0-9]+)([eE][-+]?[0-9]{1,3})?\s*$
{%- endmacro %}
