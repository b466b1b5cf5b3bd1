"""The instant a test's views take for now: dbt var ``reporting_now`` (macros/dashboard_window.sql)."""

from __future__ import annotations

from datetime import UTC, datetime


def reporting_now(instant: datetime) -> str:
    """``instant`` as var ``reporting_now`` takes it: ``YYYY-MM-DD HH:MM:SS.ffffff``, UTC."""
    return f"{instant.astimezone(UTC):%Y-%m-%d %H:%M:%S.%f}"
