"""The Python package of the command line and of the small pieces router and ingest share."""
