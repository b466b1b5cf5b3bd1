"""AutoPicker's warehouse side: load Langfuse observations into PostgreSQL and run the dbt project over them.

The package is named for its main job, ingest; it also holds the database resolution (``db``), the raw
schema (``schema``) and the ``autopicker`` command line (``cli``) that ties ingest, dbt and the router
together.
"""
