{#-
    Time arithmetic in UTC whatever the session's time zone.

    PostgreSQL's date(), date_trunc() with two arguments and "+ interval '1 day'" all follow the
    session's TimeZone setting, so the same query gives other days to a BI tool in Europe than to one
    in California, and days of 23 or 25 hours around daylight-saving changes. Every day and time bucket
    in this project goes through these macros instead.
-#}

{#- The instant `text` names ('YYYY-MM-DD HH:MM:SS', UTC) as a timestamptz. -#}
{% macro utc_timestamp(text) -%}
    {{ return(adapter.dispatch('utc_timestamp', 'autopicker')(text)) }}
{%- endmacro %}

{% macro default__utc_timestamp(text) -%}
    cast('{{ text }}+00' as timestamptz)
{%- endmacro %}


{#- The UTC calendar date of a timestamptz. -#}
{% macro utc_date(ts) -%}
    {{ return(adapter.dispatch('utc_date', 'autopicker')(ts)) }}
{%- endmacro %}

{% macro default__utc_date(ts) -%}
    cast({{ ts }} at time zone 'UTC' as date)
{%- endmacro %}


{#- The start of the UTC bucket of `length` (an interval literal such as '1 hour' or '24 hours' that divides
    a day) holding ts: buckets are aligned on UTC midnight. -#}
{% macro utc_bin(length, ts) -%}
    {{ return(adapter.dispatch('utc_bin', 'autopicker')(length, ts)) }}
{%- endmacro %}

{% macro default__utc_bin(length, ts) -%}
    {{ exceptions.raise_compiler_error("utc_bin has no implementation for the " ~ target.type ~ " adapter; add a " ~ target.type ~ "__utc_bin macro.") }}
{%- endmacro %}

{% macro postgres__utc_bin(length, ts) -%}
    date_bin(interval '{{ length }}', {{ ts }}, timestamptz '2000-01-01 00:00:00+00')
{%- endmacro %}
