{#-
    The reporting window of the dashboard views: the last `dashboard_days` UTC calendar days (var, default
    30), today included. Whole days, so that a daily chart has no partial first day and every widget of a
    dashboard covers the same period: the bars of one widget add up to the lines of another.

    `reporting_now()` is the one place the views read the clock; unit tests pin it, and so does the var
    `reporting_now` (an instant, UTC: views that read the same rows on two engines give the same answer).
-#}

{% macro reporting_now() -%}
    {%- set pinned = var('reporting_now', none) -%}
    {%- if pinned -%}
        {{ utc_timestamp(pinned) }}
    {%- else -%}
        now()
    {%- endif -%}
{%- endmacro %}


{#- Today's UTC date: the last day of the window. -#}
{% macro dashboard_last_day() -%}
    {{ utc_date(reporting_now()) }}
{%- endmacro %}


{#- The window's first UTC date. -#}
{% macro dashboard_first_day() -%}
    ({{ dashboard_last_day() }} - {{ var('dashboard_days') | int - 1 }})
{%- endmacro %}


{#- The start of the current UTC hour: the last hour of an hourly series. -#}
{% macro dashboard_last_hour() -%}
    {{ utc_bin('1 hour', reporting_now()) }}
{%- endmacro %}


{#- The days of the window, one row each (column `day`), oldest first. -#}
{% macro dashboard_days_series() -%}
    {{ return(adapter.dispatch('dashboard_days_series', 'autopicker')()) }}
{%- endmacro %}

{% macro default__dashboard_days_series() -%}
    select cast(day as date) as day
    from generate_series(
        cast({{ dashboard_first_day() }} as timestamp),
        cast({{ dashboard_last_day() }} as timestamp),
        interval '1 day'
    ) as days (day)
{%- endmacro %}


{#- The UTC hours of the window, one row each (column `hour_start`), oldest first. -#}
{% macro spark__dashboard_days_series() -%}
    select explode(sequence({{ dashboard_first_day() }}, {{ dashboard_last_day() }})) as day
{%- endmacro %}


{% macro dashboard_hours_series() -%}
    {{ return(adapter.dispatch('dashboard_hours_series', 'autopicker')()) }}
{%- endmacro %}

{% macro default__dashboard_hours_series() -%}
    select hour_start
    from generate_series(
        cast({{ dashboard_first_day() }} as timestamp) at time zone 'UTC',
        {{ dashboard_last_hour() }},
        interval '1 hour'
    ) as hours (hour_start)
{%- endmacro %}

{#- Spark: timestamps are instants; the first day's midnight is taken in UTC from the epoch. -#}
{% macro spark__dashboard_hours_series() -%}
    select explode(sequence(
        timestamp_seconds(cast(unix_date({{ dashboard_first_day() }}) as bigint) * 86400),
        {{ dashboard_last_hour() }},
        interval '1' hour
    )) as hour_start
{%- endmacro %}


{#- The rows of `relation` whose UTC date column `day_column` lies in the window. -#}
{% macro dashboard_window_rows(relation, day_column) -%}
    select * from {{ relation }}
    where {{ day_column }} between {{ dashboard_first_day() }} and {{ dashboard_last_day() }}
{%- endmacro %}


{#- The two fallback types, one row each (column `fallback_type`): series that exist even without data. -#}
{% macro fallback_type_rows() -%}
    select fallback_type
    from (values ('rate_limit_fallback'), ('context_length_fallback')) as fallback_types (fallback_type)
{%- endmacro %}


{#- "original → fallback", with `unknown` for a model the event did not name (as the guide's Example 2). -#}
{% macro model_pair_label(original_model, fallback_model) -%}
    coalesce({{ original_model }}, 'unknown') || ' → ' || coalesce({{ fallback_model }}, 'unknown')
{%- endmacro %}


{#- Per fallback type and model pair in the window: fallbacks, requests (each once per type and pair, as
    Query 4), their total cost and average cost per request whose cost is known. -#}
{% macro fallback_pair_totals() -%}
    select
        fallback_type,
        {{ model_pair_label('original_model', 'fallback_model') }} as model_pair,
        original_model,
        fallback_model,
        sum(fallback_count)::bigint as fallback_count,
        sum(requests)::bigint as requests,
        {{ round_decimals('coalesce(sum(cost_usd_sum), 0)', 10) }} as total_cost_usd,
        {{ round_decimals('sum(cost_usd_sum) / nullif(sum(costed_requests), 0)', 10) }} as avg_cost_usd,
        sum(costed_requests)::bigint as costed_requests
    from ({{ dashboard_window_rows(ref('int_fallbacks_hourly'), 'fallback_date') }}) as window_rows
    group by fallback_type, original_model, fallback_model
{%- endmacro %}


{#- Numbers as the recommendations print them. -#}
{#- `value` with `places` decimals (rounded half away from zero), without grouping: to_char's 'FM999990.0'. -#}
{% macro decimal_text(value, places) -%}
    {{ return(adapter.dispatch('decimal_text', 'autopicker')(value, places)) }}
{%- endmacro %}

{% macro default__decimal_text(value, places) -%}
    to_char({{ value }}, 'FM999990.{{ "0" * places }}')
{%- endmacro %}

{% macro spark__decimal_text(value, places) -%}
    cast(round(cast({{ value }} as decimal(38, 12)), {{ places }}) as string)
{%- endmacro %}

{% macro percent_text(value) -%}
    {{ decimal_text(value, 1) }}
{%- endmacro %}

{#- USD with four decimals and thousands separators. -#}
{% macro usd_text(value) -%}
    {{ return(adapter.dispatch('usd_text', 'autopicker')(value)) }}
{%- endmacro %}

{% macro default__usd_text(value) -%}
    to_char({{ value }}, 'FM999,999,999,990.0000')
{%- endmacro %}

{% macro spark__usd_text(value) -%}
    format_number(round(cast({{ value }} as decimal(38, 12)), 4), 4)
{%- endmacro %}


{#- The most frequent model pair of each fallback type in `rows` (int_fallbacks_hourly rows), the first by
    label on a tie: columns fallback_type, model_pair. -#}
{% macro top_pair_per_fallback_type(rows) -%}
    {{ return(adapter.dispatch('top_pair_per_fallback_type', 'autopicker')(rows)) }}
{%- endmacro %}

{% macro default__top_pair_per_fallback_type(rows) -%}
    select distinct on (fallback_type)
        fallback_type,
        {{ model_pair_label('original_model', 'fallback_model') }} as model_pair
    from {{ rows }}
    group by fallback_type, original_model, fallback_model
    order by fallback_type, sum(fallback_count) desc, model_pair
{%- endmacro %}

{% macro spark__top_pair_per_fallback_type(rows) -%}
    select fallback_type, model_pair
    from (
        select
            fallback_type,
            {{ model_pair_label('original_model', 'fallback_model') }} as model_pair,
            row_number() over (
                partition by fallback_type
                order by sum(fallback_count) desc, {{ model_pair_label('original_model', 'fallback_model') }}
            ) as pair_rank
        from {{ rows }}
        group by fallback_type, original_model, fallback_model
    ) as ranked
    where pair_rank = 1
{%- endmacro %}
