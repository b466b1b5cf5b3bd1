{#-
    dbt's grants, skipping roles that do not exist.

    The views in schema analytics are granted to the roles of var `bi_roles` (default `autopicker_bi`, the
    name `autopicker bi-role` suggests). A warehouse built before any BI role exists would otherwise fail
    its build on "role does not exist"; here such a role is left out of the grant (logged at debug level),
    and the next build after `autopicker bi-role` grants it.

    Views are replaced in place (macros/view_materialization.sql), so dbt revokes whatever a view holds
    beyond its grants config. A role that the default privileges of the views' owner grant SELECT in the
    view's schema (how `autopicker bi-role` gives access) is what a new view would hold, so it counts as
    wanted too: a build leaves each view with what a freshly created one would have. Everything else is
    dbt's own apply_grants.
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
        {%- if 'select' in existing_grants -%}
            {%- set defaults_query -%}
                select distinct grantee.rolname
                from pg_default_acl d
                left join pg_namespace n on n.oid = d.defaclnamespace
                cross join lateral aclexplode(d.defaclacl) a
                join pg_roles grantee on grantee.oid = a.grantee
                where d.defaclrole = (select oid from pg_roles where rolname = current_user)
                  and d.defaclobjtype = 'r'
                  and (d.defaclnamespace = 0 or n.nspname = '{{ relation.schema | replace("'", "''") }}')
                  and a.privilege_type = 'SELECT'
                order by 1
            {%- endset -%}
            {%- for role in run_query(defaults_query).columns[0].values() -%}
                {%- if role not in existing_grants['select'] -%}
                    {%- do existing_grants['select'].append(role) -%}
                {%- endif -%}
            {%- endfor -%}
        {%- endif -%}
    {%- endif -%}
    {{ return(default__apply_grants(relation, existing_grants if grant_config else grant_config, should_revoke)) }}
{% endmacro %}


{#- Spark: table access is the cluster's business (a metastore's or platform's permissions, which Spark SQL
    alone has not); no grant is attempted. -#}
{% macro spark__apply_grants(relation, grant_config, should_revoke=True) %}
    {%- if grant_config -%}
        {%- do log('grants: not applied on Spark (' ~ relation ~ ')') -%}
    {%- endif -%}
{% endmacro %}
