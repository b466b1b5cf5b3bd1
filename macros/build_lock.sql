{#-
    Hooks of every model (dbt_project.yml): two builds of the same warehouse at once take turns model by
    model instead of racing.

    On PostgreSQL the pre-hook takes a session-level advisory lock keyed on the model's relation before dbt
    opens the model's transaction, and the post-hook releases it after the transaction has committed and dbt
    has dropped its `__dbt_backup` relation. A second build's run of the same model waits for the first to
    finish the model completely, then reads what it wrote: an incremental model's delete+insert never
    inserts a key the other build inserted meanwhile (the duplicate key two concurrent builds hit once), and
    a view's or table's swap never meets the other build's backup relation not yet dropped (the "relation
    ... __dbt_backup already exists" a transaction-level lock let through: dbt drops the backup after the
    commit). A model that fails releases its lock when dbt closes the model's connection. `autopicker build` also holds a lock for its whole run (ingest/warehouse/dbt.py).
-#}
{% macro build_lock() -%}
    {{ return(adapter.dispatch('build_lock', 'autopicker')()) }}
{%- endmacro %}

{% macro build_unlock() -%}
    {{ return(adapter.dispatch('build_unlock', 'autopicker')()) }}
{%- endmacro %}

{#- Engines without advisory locks: no statement (dbt skips an empty hook). -#}
{% macro default__build_lock() -%}
{%- endmacro %}

{% macro default__build_unlock() -%}
{%- endmacro %}

{#- 1096111170 is "AUTB", the key of the build lock -#}
{% macro postgres__build_lock() -%}
    select pg_advisory_lock(1096111170, hashtext('{{ this | replace("'", "''") }}'))
{%- endmacro %}

{% macro postgres__build_unlock() -%}
    select pg_advisory_unlock(1096111170, hashtext('{{ this | replace("'", "''") }}'))
{%- endmacro %}
