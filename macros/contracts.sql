{#-
    Model contracts on Spark: the column names, in order. The contracts' types are PostgreSQL's (text,
    numeric(1000, 10)...), checked on PostgreSQL; Spark names its types otherwise (string, decimal(38, 18)),
    and the same rows are checked value by value against PostgreSQL's by the tests.
-#}
{% macro spark__get_assert_columns_equivalent(sql) -%}
    {%- set built = get_column_schema_from_query(sql) | map(attribute='name') | map('lower') | list -%}
    {%- set declared = model['columns'].values() | map(attribute='name') | map('lower') | list -%}
    {%- if built != declared -%}
        {%- do exceptions.raise_contract_error(
            'columns ' ~ (declared | join(', ')),
            'columns ' ~ (built | join(', '))
        ) -%}
    {%- endif -%}
{%- endmacro %}
