{#-
    Time arithmetic in UTC whatever the session's time zone.

    PostgreSQL's date(), date_trunc() with two arguments and "+ interval '1 day'" all follow the
    session's TimeZone setting, so the same query gives other days to a BI tool in Europe than to one
    in California, and days of 23 or 25 hours around daylight-saving changes. Every day and hour
    boundary in this project goes through these macros instead.
-#}

{#- The UTC calendar date of a timestamptz. -#}
{% macro utc_date(ts) -%}
    {{ return(adapter.dispatch('utc_date', 'autopicker')(ts)) }}
{%- endmacro %}

{% macro default__utc_date(ts) -%}
    cast({{ ts }} at time zone 'UTC' as date)
{%- endmacro %}


{#- The start of the UTC hour or day holding ts. -#}
{% macro utc_trunc(grain, ts) -%}
    {{ return(adapter.dispatch('utc_trunc', 'autopicker')(grain, ts)) }}
{%- endmacro %}

{% macro default__utc_trunc(grain, ts) -%}
    {{ exceptions.raise_compiler_error("utc_trunc has no implementation for the " ~ target.type ~ " adapter; add a " ~ target.type ~ "__utc_trunc macro.") }}
{%- endmacro %}

{% macro postgres__utc_trunc(grain, ts) -%}
    date_trunc('{{ _utc_grain(grain) }}', {{ ts }}, 'UTC')
{%- endmacro %}


{#- The first UTC hour or day boundary at or after ts (ts itself when it is on a boundary). -#}
{% macro utc_ceil(grain, ts) -%}
    ({{ utc_trunc(grain, '(' ~ ts ~ ") - interval '1 microsecond'") }} + {{ utc_grain_length(grain) }})
{%- endmacro %}


{#- A day is 24 hours here: '1 day' would follow the session's daylight-saving rules. -#}
{% macro utc_grain_length(grain) -%}
    {%- if _utc_grain(grain) == 'hour' -%} interval '1 hour' {%- else -%} interval '24 hours' {%- endif -%}
{%- endmacro %}


{% macro _utc_grain(grain) -%}
    {%- if grain not in ('hour', 'day') -%}
        {{ exceptions.raise_compiler_error("UTC grain must be 'hour' or 'day', not '" ~ grain ~ "'.") }}
    {%- endif -%}
    {{ grain }}
{%- endmacro %}
