{#-
    Data test: no two rows share the same values in `columns`, nulls counting as equal values (GROUP BY
    semantics), for keys made of several columns some of which may be null.
-#}
{% test unique_combination(model, columns) %}

select
    {{ columns | join(', ') }},
    count(*) as rows_with_this_key
from {{ model }}
group by {{ columns | join(', ') }}
having count(*) > 1

{% endtest %}
