{#-
    The reporting window of the five fallback views: the last `fallback_lookback_days` days before now()
    (`reporting_now()`), as 24-hour days (the guide's "interval '7 days'" follows the session's
    daylight-saving rules).

    int_fallback_events_bucketed gives each of its rows the range of window starts for which the row is
    part of the window, so a view selects exactly its window with one GiST index lookup (see the
    `fallback_window_design` doc).
-#}
{% macro fallback_window_start() -%}
    ({{ reporting_now() }} - interval '1 hour' * (24 * {{ var('fallback_lookback_days') }}))
{%- endmacro %}


{#- The rows of `bucketed` (int_fallback_events_bucketed) that together cover exactly the window. -#}
{% macro fallback_window_rows(bucketed) -%}
    {{ return(adapter.dispatch('fallback_window_rows', 'autopicker')(bucketed)) }}
{%- endmacro %}

{% macro default__fallback_window_rows(bucketed) -%}
    select * from {{ bucketed }}
    where window_start_range @> {{ fallback_window_start() }}
{%- endmacro %}

{#- Spark: no range index; the rows of days before the window's first are skipped first (cheap), then the
    range is tested. -#}
{% macro spark__fallback_window_rows(bucketed) -%}
    select * from {{ bucketed }}
    where bucket_day >= {{ utc_date(fallback_window_start()) }}
        and (window_start_range.lower is null or window_start_range.lower < {{ fallback_window_start() }})
        and {{ fallback_window_start() }} <= window_start_range.upper
{%- endmacro %}


{#- The window starts (lower, upper] for which a row of int_fallback_events_bucketed is in the window; a null
    lower bound is unbounded. PostgreSQL: a tstzrange, GiST-indexed. Spark: a struct of the two bounds. -#}
{% macro window_start_range(lower, upper) -%}
    {{ return(adapter.dispatch('window_start_range', 'autopicker')(lower, upper)) }}
{%- endmacro %}

{% macro default__window_start_range(lower, upper) -%}
    tstzrange({{ lower }}, {{ upper }}, '(]')
{%- endmacro %}

{% macro spark__window_start_range(lower, upper) -%}
    named_struct('lower', {{ lower }}, 'upper', {{ upper }})
{%- endmacro %}


{#- Whether no window start lies in the range. -#}
{% macro window_range_is_empty(range) -%}
    {{ return(adapter.dispatch('window_range_is_empty', 'autopicker')(range)) }}
{%- endmacro %}

{% macro default__window_range_is_empty(range) -%}
    isempty({{ range }})
{%- endmacro %}

{% macro spark__window_range_is_empty(range) -%}
    coalesce({{ range }}.lower >= {{ range }}.upper, false)
{%- endmacro %}
