{#-
    The traces an incremental run recomputes (int_fallback_events_enriched, int_requests): those with a row
    loaded after the newest `trace_loaded_at` the model holds, minus `incremental_overlap_minutes`. A later
    generation or a corrected row (the loaders replace a row by id and stamp a new `_loaded_at`) changes
    what the model says about its trace, so the whole trace is recomputed. The overlap re-reads rows of
    loads that were still committing during the previous run.

    `model` is the incremental model itself (`this`); `ctes` names the model's CTEs of staging rows, each
    with `trace_id` and `loaded_at`. Returns one column, `trace_id`.
-#}
{% macro traces_loaded_since_last_run(model, ctes) -%}
    {%- for cte in ctes %}
    select trace_id from {{ cte }}
    where loaded_at > (
        select
            coalesce(max(trace_loaded_at), '-infinity'::timestamptz)
                - interval '1 minute' * {{ var('incremental_overlap_minutes') }}
        from {{ model }}
    )
    {% if not loop.last %}
    union
    {% endif %}
    {%- endfor %}
{%- endmacro %}
