{#-
    Pre-hook of every model (dbt_project.yml): two builds of the same warehouse at once take turns model by
    model instead of racing.

    On PostgreSQL the hook takes a transaction-level advisory lock keyed on the model's relation, inside the
    transaction in which dbt builds the model, before the model's query runs: a second build's run of the
    same model waits for the first to commit, then reads what it wrote. An incremental model's delete+insert
    so never inserts a key the other build inserted meanwhile (the duplicate key two concurrent builds hit
    before). `autopicker build` also holds a lock for its whole run (ingest/warehouse/dbt.py).
-#}
{% macro build_lock() -%}
    {{ return(adapter.dispatch('build_lock', 'autopicker')()) }}
{%- endmacro %}

{#- Engines without transactions have nothing to hold the lock in: no statement. -#}
{% macro default__build_lock() -%}
{%- endmacro %}

{% macro postgres__build_lock() -%}
    {#- 1096111170 is "AUTB", the key of the build lock -#}
    select pg_advisory_xact_lock(1096111170, hashtext('{{ this | replace("'", "''") }}'))
{%- endmacro %}
