with

pairs as (

    select
        original_model,
        fallback_model,
        sum(fallback_count) as fallback_count
    from ({{ dashboard_window_rows(ref('int_fallbacks_hourly'), 'fallback_date') }}) as window_rows
    group by original_model, fallback_model

),

final as (

    select
        {{ model_pair_label('original_model', 'fallback_model') }} as model_pair,
        original_model,
        fallback_model,
        fallback_count::bigint as fallback_count,
        round(100.0 * fallback_count / sum(fallback_count) over (), 2)::numeric(5, 2) as share_percent
    from pairs

)

select * from final
order by fallback_count desc, model_pair
