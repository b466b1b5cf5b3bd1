{#-
    The source CTE of the staging models: the observations of one type, one row per id, as the ingest stores
    them in `langfuse_raw.observations`.

    On PostgreSQL the ingest has applied its rules while loading (docs/ingest.md), so this is a filter on
    the type. On Spark the source is the export itself (`langfuse_export_source`), and the same rules are
    applied here, in SQL:

    - only EVENT and GENERATION rows (any case), and only rows with an id, a trace id and a start time (the
      ingest rejects the others);
    - one row per id, the version with the greatest `updated_at` (missing: `created_at`, then `start_time`),
      whatever its type; on a tie the row of the file whose path sorts first, as the ingest keeps the row it
      stored first and loads files in path order;
    - metadata values made natural JSON values (`natural_metadata`).

    The columns are the raw table's; JSON columns are JSON text on Spark.
-#}

{% macro langfuse_observations(relation, observation_type) -%}
    {{ return(adapter.dispatch('langfuse_observations', 'autopicker')(relation, observation_type)) }}
{%- endmacro %}

{% macro default__langfuse_observations(relation, observation_type) -%}
    select * from {{ relation }}
    where type = '{{ observation_type }}'
{%- endmacro %}

{% macro spark__langfuse_observations(relation, observation_type) -%}
    {%- set columns = [
        'id', 'trace_id', 'project_id', 'parent_observation_id', 'type', 'name', 'level', 'status_message',
        'environment', 'model', 'model_parameters', 'usage_details', 'cost_details', 'total_cost',
        'start_time', 'end_time', 'completion_start_time', 'created_at', 'updated_at', 'latency',
        'time_to_first_token', 'metadata', '_source_file', '_loaded_at', '_batch_id',
    ] -%}
    select
        {% for column in columns -%}
        {%- if column == 'metadata' -%}
        {{ natural_metadata('metadata') }} as metadata{{ ',' if not loop.last }}
        {% else -%}
        {{ column }}{{ ',' if not loop.last }}
        {% endif -%}
        {%- endfor %}
    from (
        select
            *,
            row_number() over (partition by id order by updated_at desc, _source_file) as version_rank
        from (
            select
                {% for column in columns -%}
                {%- if column == 'type' -%}
                upper(type) as type,
                {% elif column == 'updated_at' -%}
                coalesce(updated_at, created_at, start_time) as updated_at,
                {% else -%}
                {{ column }}{{ ',' if not loop.last }}
                {% endif -%}
                {%- endfor %}
            from {{ relation }}
            where upper(type) in ('EVENT', 'GENERATION')
                and id is not null
                and trace_id is not null
                and start_time is not null
        ) as loaded
    ) as versions
    where version_rank = 1 and type = '{{ observation_type }}'
{%- endmacro %}


{#-
    Metadata as JSON text whose values are natural JSON values, as the ingest stores them (Spark). Exports
    carry metadata as a string-to-string map in which SDK v5 JSON-encodes every value: a value that is the
    JSON text of a string, object or array is taken as that value (`"\"openai/gpt-4o-mini\""` becomes
    `"openai/gpt-4o-mini"`), a JSON number literal as that number (`"150000"` becomes `150000`, `"00123"`
    stays text), `true`, `false` and `null` as themselves, anything else as the plain string. Duplicate
    keys keep the last value (the profile's `spark.sql.mapKeyDedupPolicy`), as PostgreSQL's jsonb does;
    metadata that is not a JSON object reads as `{}`.
-#}
{% macro natural_metadata(json_text) -%}
    {%- set value = 'entry.value' -%}
    coalesce(concat(
        '{',
        array_join(
            transform(
                map_entries(from_json(coalesce({{ json_text }}, '{}'), 'map<string, string>')),
                entry -> concat(
                    {{ _json_string_literal('entry.key') }},
                    ':',
                    case
                        when {{ value }} is null then 'null'
                        when {{ value }} rlike '^-?(0|[1-9][0-9]*)(\\.[0-9]+)?([eE][-+]?[0-9]+)?$' then {{ value }}
                        when {{ value }} in ('true', 'false', 'null') then {{ value }}
                        when left({{ value }}, 1) in ('"', '{', '[')
                            and size(from_json(
                                concat('[', {{ value }}, ']'),
                                'array<string>',
                                map('allowSingleQuotes', 'false', 'allowNonNumericNumbers', 'false')
                            )) = 1
                            then {{ value }}
                        else {{ _json_string_literal(value) }}
                    end
                )
            ),
            ','
        ),
        '}'
    ), '{}')
{%- endmacro %}

{#- A string as a JSON string literal (quoted and escaped). -#}
{% macro _json_string_literal(text) -%}
    substr(to_json(array({{ text }})), 2, length(to_json(array({{ text }}))) - 2)
{%- endmacro %}
