with

source as (

    {{ langfuse_observations(source('langfuse', 'observations'), 'EVENT') }}

),

renamed as (

    select

        -- ids
        id as event_id,
        trace_id,
        parent_observation_id,
        project_id,

        -- strings
        name as event_name,
        case
            when name in ('rate_limit_fallback', 'context_length_fallback') then name
        end as fallback_type,
        coalesce(level, 'DEFAULT') as level,
        status_message,
        environment,
        {{ json_text('metadata', 'original_model') }} as original_model,
        {{ json_text('metadata', 'fallback_model') }} as fallback_model,
        {{ json_text('metadata', 'reason') }} as reason,

        -- numerics
        {{ json_tokens('metadata', 'estimated_tokens') }} as estimated_tokens,
        {{ json_tokens('metadata', 'original_max_context') }} as original_max_context,
        {{ json_tokens('metadata', 'fallback_max_context') }} as fallback_max_context,

        -- payload
        metadata,

        -- timestamps
        start_time as created_at,
        {{ utc_date('start_time') }} as created_date,
        created_at as stored_at,
        updated_at,

        -- lineage
        _loaded_at as loaded_at,
        _batch_id as batch_id,
        _source_file as source_file

    from source

)

select * from renamed
