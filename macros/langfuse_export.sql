{#-
    The source `langfuse.observations` on engines without the Python ingest (Spark): a view over Langfuse's
    blob-storage export, read in place.

    On PostgreSQL the ingest loads the export into a table; the hook only creates that table, empty, on a
    database no ingest has reached yet (so a plain `dbt build` works there). On Spark the hook
    (on-run-start) (re)creates the view `<raw_schema>.observations` over the export at the dbt var
    `langfuse_export_uri`: a folder, or a `file://`, `s3a://` (any Hadoop file system) URI, holding
    `{projectId}/observations_v2/*` and legacy `{projectId}/observations/*` files in Parquet (Langfuse's
    default) or JSONL, gzipped or not (`.jsonl`, `.ndjson`, `.gz`). Its columns are the PostgreSQL raw
    table's, typed as the ingest types them, one row per row of the files: types, duplicates and rows of
    older versions are all there, and the staging models apply the ingest's rules (`langfuse_observations`).

    - Which files: the hook lists the export once (Spark's `binaryFile` source, names only) and reads each
      format with one glob over the project folders that hold it, so a folder without Parquet (or JSONL)
      files costs nothing and an empty export gives an empty view. New files in those folders are read by
      the next query; new project folders by the next dbt run.
    - Complete runs only, as the ingest: in a project with a `manifests/` folder, a file counts once a
      manifest lists it (matched as the ingest does, on `{table}/{file name}`), and `_source_file` is the
      manifest's object key; elsewhere `_source_file` is the file's path.
    - JSONL lines are read as text and parsed with an explicit schema of strings (no inference pass over
      the data); Parquet schemas are merged over the files and each column is converted by its type, so
      typed timestamps, timestamps as text, decimal or float costs and map or JSON-text objects all read.
    - Timestamps without a zone are UTC (the profile sets the session time zone to UTC); values that do not
      read as their type become null (`try_cast`), and rows without id, trace id, type or start time are
      left out by the staging models, as the ingest rejects them.
    - `latency` and `time_to_first_token` in seconds: with var `langfuse_latency_unit` `auto` (default) a
      row with start and end time is read in the unit closer to `end_time - start_time` (ties: seconds),
      other rows in seconds; `s` or `ms` force the unit.
    - `_loaded_at` is the file's modification time (when the export wrote it), `_batch_id` is null.
    - `input` and `output` (prompts and answers) are never read.

    Without `langfuse_export_uri` an existing view is kept (so `dbt test` needs no var); if there is none
    yet, an empty one is created and a warning says so.
-#}

{% macro langfuse_export_source() -%}
    {{ return(adapter.dispatch('langfuse_export_source', 'autopicker')()) }}
{%- endmacro %}

{% macro default__langfuse_export_source() -%}
    {#-
        The ingest loads the export into the table `<raw_schema>.observations` (ingest/schema.py creates and
        upgrades it). On a database no ingest has reached yet, this creates that table empty, with the same
        columns, so a plain `dbt build` works there too; the next ingest adds the rest of the raw schema.
        The lock is the ingest's own, so the two never create it at once.

        Then it summarizes the block ranges that loads added to the table's BRIN indexes since the last
        build: a range not yet summarized matches every condition, so the incremental models' reads
        (macros/touched_traces.sql) would read all of them, and autovacuum summarizes them only once a fifth
        of the table is new. It reads only those new ranges; a role that does not own the table leaves them
        to autovacuum.
    -#}
    {%- set schema = var('raw_schema', 'langfuse_raw') -%}
    do $$
    begin
        if to_regclass('{{ schema }}.observations') is null then
            perform pg_advisory_xact_lock(1096111184);
            create schema if not exists {{ schema }};
            create table if not exists {{ schema }}.observations (
                id text collate "C" primary key,
                trace_id text not null,
                project_id text,
                parent_observation_id text,
                type text not null,
                name text,
                level text,
                status_message text,
                environment text,
                model text,
                model_parameters jsonb,
                usage_details jsonb,
                cost_details jsonb,
                total_cost numeric,
                start_time timestamp with time zone not null,
                end_time timestamp with time zone,
                completion_start_time timestamp with time zone,
                created_at timestamp with time zone,
                updated_at timestamp with time zone not null,
                latency double precision,
                time_to_first_token double precision,
                metadata jsonb not null default '{}'::jsonb,
                input jsonb,
                output jsonb,
                _source_file text not null,
                _loaded_at timestamp with time zone not null default now(),
                _batch_id bigint not null
            );
        end if;
        begin
            perform brin_summarize_new_values(brin.indexrelid)
            from pg_index as brin
            inner join pg_class as index_class on index_class.oid = brin.indexrelid
            inner join pg_am on pg_am.oid = index_class.relam
            where brin.indrelid = '{{ schema }}.observations'::regclass and pg_am.amname = 'brin';
        exception when insufficient_privilege then
            null;
        end;
    end
    $$
{%- endmacro %}

{% macro spark__langfuse_export_source() -%}
    {%- if not execute -%}
        {{ return('') }}
    {%- endif -%}
    {%- set schema = var('raw_schema', 'langfuse_raw') -%}
    {%- set uri = var('langfuse_export_uri', none) -%}
    {%- set existing = adapter.get_relation(database=none, schema=schema, identifier='observations') -%}
    {%- if not uri and existing is not none -%}
        {{ return('') }}
    {%- endif -%}
    {%- do run_query('create schema if not exists ' ~ schema) -%}
    {%- if not uri -%}
        {%- do exceptions.warn(
            'No Langfuse export given (dbt var langfuse_export_uri): ' ~ schema ~ '.observations is empty.'
        ) -%}
    {%- endif -%}
    {%- set body = _export_source_body(_export_root(uri) if uri else none) -%}
    {%- do run_query('create or replace view ' ~ schema ~ '.observations as\n' ~ body) -%}
    {{ return('') }}
{%- endmacro %}


{#- The export's location as Spark reads it: a URI as given, a plain absolute path as a `file:` URI. -#}
{% macro _export_root(uri) -%}
    {%- set root = uri | string | trim -%}
    {%- if root.startswith('/') -%}
        {%- set root = 'file://' ~ root -%}
    {%- elif ':/' not in root -%}
        {%- do exceptions.raise_compiler_error(
            'langfuse_export_uri must be an absolute path or a URI (file://, s3a://, ...), got: ' ~ root
        ) -%}
    {%- endif -%}
    {{ return(root.rstrip('/')) }}
{%- endmacro %}


{#- Columns of the source, in the raw table's order, each with how it is read. -#}
{% macro _export_columns() -%}
    {{ return([
        ('id', 'text'), ('trace_id', 'text'), ('project_id', 'text'), ('parent_observation_id', 'text'),
        ('type', 'text'), ('name', 'text'), ('level', 'text'), ('status_message', 'text'),
        ('environment', 'text'), ('model', 'model'), ('model_parameters', 'json'), ('usage_details', 'json'),
        ('cost_details', 'json'), ('total_cost', 'decimal(38, 18)'), ('start_time', 'timestamp'),
        ('end_time', 'timestamp'), ('completion_start_time', 'timestamp'), ('created_at', 'timestamp'),
        ('updated_at', 'timestamp'), ('latency', 'latency'), ('time_to_first_token', 'latency'),
        ('metadata', 'json'),
    ]) }}
{%- endmacro %}

{#- Export fields read from JSONL lines, all as text (Spark keeps a nested object as its JSON text). -#}
{% macro _jsonl_fields() -%}
    {{ return([
        'id', 'trace_id', 'project_id', 'parent_observation_id', 'type', 'name', 'level', 'status_message',
        'environment', 'provided_model_name', 'model', 'model_parameters', 'usage_details', 'cost_details',
        'total_cost', 'start_time', 'end_time', 'completion_start_time', 'created_at', 'updated_at',
        'latency', 'time_to_first_token', 'metadata',
    ]) }}
{%- endmacro %}


{#- Export field `name`, of Spark type `field_type` (none when the files lack it), read as `kind`. -#}
{% macro _export_value(name, field_type, kind) -%}
    {%- set t = (field_type or '') | lower -%}
    {%- if kind == 'text' -%}
        {%- if not field_type -%}
            cast(null as string)
        {%- else -%}
            nullif({{ name if t == 'string' else 'cast(' ~ name ~ ' as string)' }}, '')
        {%- endif -%}
    {%- elif kind == 'json' -%}
        {%- if not field_type -%}
            cast(null as string)
        {%- elif t.startswith('map') or t.startswith('struct') or t.startswith('array') -%}
            to_json({{ name }})
        {%- else -%}
            nullif(trim(cast({{ name }} as string)), '')
        {%- endif -%}
    {%- elif not field_type -%}
        cast(null as {{ kind }})
    {%- else -%}
        try_cast({{ name }} as {{ kind }})
    {%- endif -%}
{%- endmacro %}


{#- The rows of one format: `relation` to read from (none: no rows), `types` maps field name to Spark type,
    `file_path` and `file_time` are the expressions for the row's file. -#}
{% macro _export_rows_select(relation, file_path, file_time, types) -%}
    select
        {% for name, kind in _export_columns() -%}
        {%- if kind == 'model' -%}
        coalesce(
            {{ _export_value('provided_model_name', types.get('provided_model_name'), 'text') }},
            {{ _export_value('model', types.get('model'), 'text') }}
        ) as model,
        {% elif kind == 'latency' -%}
        {{ _export_value(name, types.get(name), 'double') }} as {{ name }},
        {% else -%}
        {{ _export_value(name, types.get(name), kind) }} as {{ name }},
        {% endif -%}
        {%- endfor -%}
        {{ file_path or 'cast(null as string)' }} as _file_path,
        {{ file_time or 'cast(null as timestamp)' }} as _file_time
    {%- if relation %}
    from {{ relation }}
    {%- else %}
    where false
    {%- endif %}
{%- endmacro %}


{#- A glob for the files matching `pattern` in the `tables` folders of projects `names` under `parent`. -#}
{% macro _export_glob(parent, names, tables, pattern) -%}
    {%- set escaped = [] -%}
    {%- for name in names -%}
        {%- set ns = namespace(text=name) -%}
        {%- for char in ['\\', '{', '}', '[', ']', '*', '?', ','] -%}
            {%- set ns.text = ns.text | replace(char, '\\' ~ char) -%}
        {%- endfor -%}
        {%- do escaped.append(ns.text) -%}
    {%- endfor -%}
    {{ return((parent ~ '/{' ~ escaped | join(',') ~ '}/{' ~ tables ~ '}/' ~ pattern) | replace('`', '``')) }}
{%- endmacro %}


{#- The view's query over the export at `root` (none: an empty view). -#}
{% macro _export_source_body(root) -%}
    {%- set tables = 'observations_v2,observations' -%}
    {%- set found = {'parquet': {}, 'jsonl': {}, 'manifest': {}, 'ignored': {}, 'other': {}} -%}
    {%- set ns = namespace(other=0) -%}
    {%- if root is not none -%}
    {%- set listing_sql -%}
        select
            regexp_extract(path, '^(.*)/([^/]+)/(observations_v2|observations|manifests)/[^/]+$', 1) as parent,
            regexp_extract(path, '^(.*)/([^/]+)/(observations_v2|observations|manifests)/[^/]+$', 2) as project,
            case
                when path rlike '/manifests/[^/]+\\.json$' then 'manifest'
                when path rlike '/manifests/[^/]+$' then 'ignored'
                when path rlike '\\.parquet$' then 'parquet'
                when path rlike '\\.(jsonl|ndjson)(\\.gz)?$' then 'jsonl'
                else 'other'
            end as kind,
            count(*) as files
        from binaryFile.`{{ root | replace('`', '``') }}` with ('recursiveFileLookup' = 'true')
        where path rlike '/[^/]+/(observations_v2|observations|manifests)/[^/]+$'
        group by 1, 2, 3
        order by 1, 2, 3
    {%- endset -%}
    {%- for row in run_query(listing_sql).rows -%}
        {%- do found[row[2]].setdefault(row[0], []).append(row[1]) -%}
        {%- if row[2] == 'other' -%}
            {%- set ns.other = ns.other + row[3] -%}
        {%- endif -%}
    {%- endfor -%}
    {%- endif -%}
    {%- if ns.other -%}
        {%- do log('langfuse export: ' ~ ns.other ~ ' observation file(s) neither Parquet nor JSONL are left out', info=True) -%}
    {%- endif -%}

    {%- set branches = [] -%}
    {%- for parent, names in found['parquet'].items() -%}
        {%- set relation = 'parquet.`' ~ _export_glob(parent, names, tables, '*.parquet') ~ "` with ('mergeSchema' = 'true')" -%}
        {%- set types = {} -%}
        {%- for column in run_query('describe query select * from ' ~ relation).rows -%}
            {%- do types.update({column[0] | lower: column[1]}) -%}
        {%- endfor -%}
        {%- do branches.append(_export_rows_select(relation, '_metadata.file_path', '_metadata.file_modification_time', types)) -%}
    {%- endfor -%}

    {%- set text_types = {} -%}
    {%- for name in _jsonl_fields() -%}
        {%- do text_types.update({name: 'string'}) -%}
    {%- endfor -%}
    {%- for parent, names in found['jsonl'].items() -%}
        {%- set lines -%}
            (
                select line.*, file_path, file_time
                from (
                    select
                        from_json(
                            value,
                            '{% for name in _jsonl_fields() %}`{{ name }}` string{{ ", " if not loop.last }}{% endfor %}',
                            map('allowSingleQuotes', 'false', 'allowNonNumericNumbers', 'false')
                        ) as line,
                        _metadata.file_path as file_path,
                        _metadata.file_modification_time as file_time
                    from text.`{{ _export_glob(parent, names, tables, '*.{jsonl,ndjson,jsonl.gz,ndjson.gz}') }}`
                ) as text_lines
            ) as jsonl_rows
        {%- endset -%}
        {%- do branches.append(_export_rows_select(lines, 'file_path', 'file_time', text_types)) -%}
    {%- endfor -%}
    {%- if not branches -%}
        {%- do branches.append(_export_rows_select(none, none, none, {})) -%}
    {%- endif -%}

    {%- set manifest_projects = [] -%}
    {%- for parent, names in found['manifest'].items() -%}
        {%- for name in names -%}
            {%- do manifest_projects.append(parent ~ '/' ~ name) -%}
        {%- endfor -%}
    {%- endfor -%}
    {%- set unit = var('langfuse_latency_unit', 'auto') -%}
    {%- if unit not in ('auto', 's', 'ms') -%}
        {%- do exceptions.raise_compiler_error('langfuse_latency_unit must be auto, s or ms, got: ' ~ unit) -%}
    {%- endif -%}

    with

    export_rows as (

        {{ branches | join('\n\n        union all\n\n        ') }}

    ),

    {% if manifest_projects -%}
    manifest_files as (

        {#- Manifests are small: read whole, as text. -#}
        select distinct
            regexp_extract(path, '^(.*)/manifests/[^/]+$', 1) as project_dir,
            listed.key,
            regexp_extract(listed.key, '([^/]+/[^/]+)$', 1) as relative
        {% for parent, names in found['manifest'].items() -%}
        {{ 'from (' if loop.first else 'union all' }}
            select path, content from binaryFile.`{{ _export_glob(parent, names, 'manifests', '*.json') }}`
        {% endfor -%}
        ) as manifests
        lateral view explode(
            from_json(cast(content as string), 'struct<files: array<struct<key: string>>>').files
        ) as listed

    ),

    {% endif -%}
    located as (

        select
            *,
            {#- Units of the row's durations per second (see the macro's doc). -#}
            {%- if unit == 'auto' %}
            case
                when latency is not null and latency != 0 and start_time is not null and end_time is not null
                    and abs(latency / 1000 - (unix_micros(end_time) - unix_micros(start_time)) / 1e6)
                        < abs(latency - (unix_micros(end_time) - unix_micros(start_time)) / 1e6)
                    then 1000
                else 1
            end as _units_per_second,
            {%- else %}
            {{ 1000 if unit == 'ms' else 1 }} as _units_per_second,
            {%- endif %}
            regexp_extract(_file_path, '^(.*)/[^/]+/[^/]+$', 1) as _project_dir,
            regexp_extract(_file_path, '([^/]+/[^/]+)$', 1) as _relative
        from export_rows

    )

    select
        {% for name, kind in _export_columns() -%}
        {%- if kind == 'latency' -%}
        located.{{ name }} / located._units_per_second as {{ name }},
        {% elif name == 'metadata' -%}
        coalesce(located.metadata, '{}') as metadata,
        {% else -%}
        located.{{ name }},
        {% endif -%}
        {%- endfor -%}
        {% if manifest_projects -%}
        coalesce(manifest_files.key, regexp_replace(located._file_path, '^file:', '')) as _source_file,
        {%- else -%}
        regexp_replace(located._file_path, '^file:', '') as _source_file,
        {%- endif %}
        located._file_time as _loaded_at,
        cast(null as bigint) as _batch_id
    from located
    {%- if manifest_projects %}
    left join manifest_files
        on located._project_dir = manifest_files.project_dir
        and located._relative = manifest_files.relative
    {#- Complete runs only: in a project with manifests, a file no manifest lists is still being written. #}
    where located._project_dir not in (
        {%- for project in manifest_projects %}'{{ project | replace("\\", "\\\\") | replace("'", "\\'") }}'{{ ', ' if not loop.last }}{% endfor -%}
    )
        or manifest_files.key is not null
    {%- endif %}
{%- endmacro %}
