{#-
    The reporting window of the five fallback views: the last `fallback_lookback_days` days before now(),
    as 24-hour days (the guide's "interval '7 days'" follows the session's daylight-saving rules).

    int_fallback_events_bucketed gives each of its rows the range of window starts for which the row is
    part of the window, so a view selects exactly its window with one GiST index lookup (see the
    `fallback_window_design` doc).
-#}
{% macro fallback_window_start() -%}
    (now() - interval '1 hour' * (24 * {{ var('fallback_lookback_days') }}))
{%- endmacro %}


{#- The rows of `bucketed` (int_fallback_events_bucketed) that together cover exactly the window. -#}
{% macro fallback_window_rows(bucketed) -%}
    select * from {{ bucketed }}
    where window_start_range @> {{ fallback_window_start() }}
{%- endmacro %}
