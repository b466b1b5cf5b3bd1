{#-
    dbt's grants, skipping roles that do not exist.

    The views in schema analytics are granted to the roles of var `bi_roles` (default `autopicker_bi`, the
    name `autopicker bi-role` suggests). A warehouse built before any BI role exists would otherwise fail
    its build on "role does not exist"; here such a role is left out of the grant (logged at debug level),
    and the next build after `autopicker bi-role` grants it. Everything else is dbt's own apply_grants.
-#}
{% macro postgres__apply_grants(relation, grant_config, should_revoke=True) %}
    {%- set existing_grants = {} -%}
    {%- if grant_config and execute -%}
        {%- set wanted = [] -%}
        {%- for grantees in grant_config.values() -%}
            {%- do wanted.extend(grantees if grantees is not string else [grantees]) -%}
        {%- endfor -%}
        {%- set found = [] -%}
        {%- if wanted -%}
            {%- set roles_query -%}
                select rolname from pg_roles
                where rolname in ({% for role in wanted %}'{{ role | replace("'", "''") }}'{{ ", " if not loop.last }}{% endfor %})
            {%- endset -%}
            {%- do found.extend(run_query(roles_query).columns[0].values()) -%}
        {%- endif -%}
        {%- for privilege, grantees in grant_config.items() -%}
            {%- set present = [] -%}
            {%- for role in (grantees if grantees is not string else [grantees]) -%}
                {%- if role in found -%}
                    {%- do present.append(role) -%}
                {%- else -%}
                    {%- do log('grants: role ' ~ role ~ ' does not exist; ' ~ privilege ~ ' on ' ~ relation ~ ' not granted to it') -%}
                {%- endif -%}
            {%- endfor -%}
            {%- do existing_grants.update({privilege: present}) -%}
        {%- endfor -%}
    {%- endif -%}
    {{ return(default__apply_grants(relation, existing_grants if grant_config else grant_config, should_revoke)) }}
{% endmacro %}
