{#-
    Views on PostgreSQL are replaced in place (`create or replace view`), not swapped.

    dbt's own view materialization builds `<view>__dbt_tmp`, renames the existing view to `<view>__dbt_backup`,
    renames the new one into place, commits, and then drops the backup. A reader (a BI tool's query, or a
    data test of a second build running at the same time) that meets the view during that swap can fail with
    "relation ... does not exist". `create or replace view` keeps the view's identity, so a reader sees the
    old definition or the new one, never neither; the view's grants and the views' dependents stay as they
    are. PostgreSQL replaces a view only when the new columns extend the old ones (same names and types, in
    order, new ones at the end); when they do not (a column renamed, removed or retyped), the view is dropped
    and created again in the same transaction, as dbt would have done.

    Everything else is dbt's view materialization: hooks, grants (macros/grants.sql), docs and contracts.
-#}
{% materialization view, adapter='postgres' %}

  {%- set existing_relation = load_cached_relation(this) -%}
  {%- set target_relation = this.incorporate(type='view') -%}
  {%- set grant_config = config.get('grants') -%}

  {{ run_hooks(pre_hooks, inside_transaction=False) }}

  -- `BEGIN` happens here:
  {{ run_hooks(pre_hooks, inside_transaction=True) }}

  {%- if existing_relation is not none and not existing_relation.is_view -%}
    {#- a table of the same name (a model that used to be materialized as a table) -#}
    {{ adapter.drop_relation(existing_relation) }}
    {%- set existing_relation = none -%}
  {%- endif -%}

  {% call statement('main') -%}
    {%- if existing_relation is none -%}
      {{ get_create_view_as_sql(target_relation, sql) }}
    {%- else -%}
      do $autopicker_view$
      begin
          execute $autopicker_sql$ {{ get_replace_view_sql(target_relation, sql) }} $autopicker_sql$;
      exception when invalid_table_definition then
          -- the new columns do not extend the old ones: drop and create, in this transaction
          execute $autopicker_sql$ drop view {{ target_relation }} cascade $autopicker_sql$;
          execute $autopicker_sql$ {{ get_create_view_as_sql(target_relation, sql) }} $autopicker_sql$;
      end
      $autopicker_view$
    {%- endif -%}
  {%- endcall %}

  {%- set should_revoke = should_revoke(existing_relation, full_refresh_mode=False) -%}
  {%- do apply_grants(target_relation, grant_config, should_revoke=should_revoke) -%}

  {%- do persist_docs(target_relation, model) -%}

  {{ run_hooks(post_hooks, inside_transaction=True) }}

  {{ adapter.commit() }}

  {{ run_hooks(post_hooks, inside_transaction=False) }}

  {{ return({'relations': [target_relation]}) }}

{%- endmaterialization -%}
