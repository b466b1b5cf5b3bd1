with

source as (

    {{ langfuse_observations(source('langfuse', 'observations'), 'GENERATION') }}

),

renamed as (

    select

        -- ids
        id as generation_id,
        trace_id,
        parent_observation_id,
        project_id,

        -- strings
        name as generation_name,
        model,
        coalesce(level, 'DEFAULT') as level,
        status_message,
        environment,

        -- booleans
        coalesce(level = 'ERROR', false) as is_error,

        -- numerics
        {{ json_tokens('usage_details', 'input') }} as input_tokens,
        {{ json_tokens('usage_details', 'output') }} as output_tokens,
        {{ json_tokens('usage_details', 'total') }} as total_tokens,
        {{ json_cost_usd('metadata', 'cost_usd') }} as metadata_cost_usd,
        {{ between_limits('total_cost', 0, limit_cost_usd()) }} as langfuse_total_cost,
        coalesce(
            {{ json_cost_usd('metadata', 'cost_usd') }},
            {{ between_limits('total_cost', 0, limit_cost_usd()) }}
        ) as cost_usd,
        {{ between_limits('latency', 0, limit_seconds()) }} as latency_seconds,
        {{ between_limits('time_to_first_token', 0, limit_seconds()) }} as time_to_first_token_seconds,

        -- payload
        metadata,
        model_parameters,
        usage_details,
        cost_details,

        -- timestamps
        start_time as created_at,
        {{ utc_date('start_time') }} as created_date,
        completion_start_time,
        end_time,
        created_at as stored_at,
        updated_at,

        -- lineage
        _loaded_at as loaded_at,
        _batch_id as batch_id,
        _source_file as source_file

    from source

)

select * from renamed
