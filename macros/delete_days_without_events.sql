{#-
    Post-hook of int_fallback_events_aggregated: delete the buckets of days that no longer have any event.

    delete+insert only replaces days the model emits rows for; a day whose last event moved away (its own
    time was corrected) emits nothing, so its old buckets are removed here.
-#}
{% macro delete_days_without_events(aggregated, events) -%}
    {{ return(adapter.dispatch('delete_days_without_events', 'autopicker')(aggregated, events)) }}
{%- endmacro %}

{#- Spark: the partitions of those days are dropped. -#}
{% macro spark__delete_days_without_events(aggregated, events) -%}
    {%- if execute -%}
        {%- set days = spark_days(
            'select bucket_day from ' ~ aggregated ~ " where bucket_grain = 'day' except select created_date from "
            ~ events
        ) -%}
        {{ spark_drop_days(aggregated, 'bucket_day', days) }}
    {%- endif -%}
{%- endmacro %}

{#- Each day is looked up in the events' index on their day, not the events read whole. -#}
{% macro default__delete_days_without_events(aggregated, events) -%}
    delete from {{ aggregated }}
    where bucket_day in (
        select days.bucket_day
        from (select distinct bucket_day from {{ aggregated }} where bucket_grain = 'day') as days
        where not exists (select from {{ events }} where {{ events }}.created_date = days.bucket_day)
    )
{%- endmacro %}
