"""The report: the guide's three dashboards, the five fallback views and the alerts as one HTML page.

:func:`~autopicker.report.data.collect` reads the views of schema ``analytics`` (the same ones BI tools read)
in one transaction; :mod:`~autopicker.report.charts` draws each chart widget with Vega-Lite (altair);
:func:`~autopicker.report.page.write_report` renders them offline (vl-convert: SVG inlined in the page, and
each chart beside it as SVG and PNG) and writes ``index.html``, which needs no network and no JavaScript.
"""
