"""The ``autopicker`` command line: it parses, delegates to ``router`` and ``ingest``, and prints.

One module per command group (``db``, ``ingest``, ``warehouse`` for build/dbt/show/bi-role, ``nightly``,
``fallbacks``, ``demo``, ``router`` for simulate/chat); :mod:`autopicker.cli.app` ties them together. No
loading, routing or SQL lives here.
"""
