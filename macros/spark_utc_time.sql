{#-
    Spark's variants of the UTC time macros (macros/utc_time.sql says why they exist).

    A Spark timestamp is an instant shown in the session's time zone; the date is computed from the epoch
    instead, so it is the UTC date whatever the session's zone.
-#}

{% macro spark__utc_date(ts) -%}
    date_from_unix_date(cast(floor(unix_micros({{ ts }}) / 86400000000) as int))
{%- endmacro %}


{% macro spark__utc_timestamp(text) -%}
    cast('{{ text }}+00:00' as timestamp)
{%- endmacro %}


{#- `length` is an interval literal such as '1 hour', '6 hours' or '10 minutes'. -#}
{% macro spark__utc_bin(length, ts) -%}
    {%- set parts = length.split() -%}
    {%- set seconds = {'second': 1, 'minute': 60, 'hour': 3600, 'day': 86400} -%}
    {%- set unit = parts[1] | lower | replace('s', '') if parts[1] | lower != 'seconds' else 'second' -%}
    {%- if parts | length != 2 or unit not in seconds -%}
        {%- do exceptions.raise_compiler_error("utc_bin: cannot read the interval '" ~ length ~ "'") -%}
    {%- endif -%}
    {%- set micros = (parts[0] | int) * seconds[unit] * 1000000 -%}
    timestamp_micros(floor(unix_micros({{ ts }}) / {{ micros }}) * {{ micros }})
{%- endmacro %}
