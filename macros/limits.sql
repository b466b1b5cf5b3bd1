{#-
    The limits agreed with the ingest (docs/ingest.md, "Limits"): the ingest rejects a row whose own
    columns lie outside them, and the models read any value outside them (a metadata number, or a row stored
    before the limits existed) as unknown (null). Every sum in the warehouse is an unbounded numeric, so no
    value inside these limits, in any number of rows, can overflow a model or a view.
-#}

{#- Costs in USD per observation: 0 <= cost < this. -#}
{% macro limit_cost_usd() %}1e9{% endmacro %}

{#- Token counts per observation: 0 <= tokens < this. -#}
{% macro limit_tokens() %}1e12{% endmacro %}

{#- Latency and time to first token, in seconds: 0 <= seconds < this. -#}
{% macro limit_seconds() %}1e7{% endmacro %}


{#- `value` rounded to `places` decimals, without trailing zeros (0.05, not 0.0500000000): an unbounded
    numeric that BI tools show as it is, and that never overflows as a fixed precision would. -#}
{% macro round_decimals(value, places) -%}
    {{ return(adapter.dispatch('round_decimals', 'autopicker')(value, places)) }}
{%- endmacro %}

{% macro default__round_decimals(value, places) -%}
    round(cast({{ value }} as {{ dbt.type_numeric() }}), {{ places }})
{%- endmacro %}

{#- Spark: dbt's numeric there is decimal(28, 6), which would cut the places first. -#}
{% macro spark__round_decimals(value, places) -%}
    round(cast({{ value }} as decimal(38, 18)), {{ places }})
{%- endmacro %}

{% macro postgres__round_decimals(value, places) -%}
    trim_scale(round(cast({{ value }} as numeric), {{ places }}))
{%- endmacro %}
