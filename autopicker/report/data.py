"""What the report shows, read from the warehouse: every row of the views it draws, and when data was loaded.

Everything is read in one transaction, so every widget sees the same data and the same ``now()``. Numbers
stay as the database returns them (``Decimal`` for costs and rates), so the tables show every digit.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from typing import Any

from ingest.db import Database
from ingest.warehouse import spark
from ingest.warehouse.views import SCHEMA, VIEWS, last_loaded_at, read_views

Row = dict[str, Any]

#: The five fallback views, in the order of the guide's queries, with their titles.
FALLBACK_VIEWS: tuple[tuple[str, str], ...] = VIEWS

#: The views behind the dashboards' widgets and the alerts.
DASHBOARD_VIEWS: tuple[str, ...] = (
    "monitoring_fallbacks_daily",
    "monitoring_fallback_distribution",
    "monitoring_top_fallback_pairs",
    "cost_by_fallback_type",
    "cost_trend_daily",
    "cost_most_expensive_fallbacks",
    "performance_success_rate",
    "performance_latency_impact",
    "performance_recommendations",
    "fallback_alerts",
)


@dataclass(frozen=True)
class ReportData:
    """The rows of every view the report shows, when the warehouse last received data, and the schema the
    views were read from (on Spark, the target's database: ``AUTOPICKER_SPARK_SCHEMA``)."""

    generated_at: datetime
    loaded_at: datetime | None
    views: dict[str, list[Row]] = field(default_factory=dict)
    schema: str = SCHEMA

    def rows(self, view: str) -> list[Row]:
        return self.views.get(view, [])

    @property
    def days(self) -> list[date]:
        """The UTC days the dashboards cover (every day of their window, in order)."""
        return sorted({row["date"] for row in self.rows("cost_trend_daily")})

    @property
    def days_with_requests(self) -> list[date]:
        """The days of the window on which any request was seen."""
        return sorted({row["date"] for row in self.rows("cost_trend_daily") if row["requests"]})

    @property
    def requests(self) -> int:
        """Requests in the dashboards' window."""
        return sum(int(row["requests"]) for row in self.rows("cost_trend_daily"))


REPORT_VIEWS: tuple[str, ...] = (*(name for name, _ in FALLBACK_VIEWS), *DASHBOARD_VIEWS)


def collect(database: Database, now: datetime | None = None) -> ReportData:
    """Read everything the report shows from ``database``."""
    views = read_views(database, REPORT_VIEWS)
    return ReportData(generated_at=now or datetime.now(UTC), loaded_at=last_loaded_at(database), views=views)


def collect_spark(
    server: spark.ThriftServer,
    schema: str | None = None,
    raw_schema: str = "langfuse_raw",
    now: datetime | None = None,
) -> ReportData:
    """Read everything the report shows from the warehouse built on Spark (``autopicker build --target
    spark``): the same views, with values typed as PostgreSQL's driver gives them."""
    schema = schema or spark.target_schema()
    views = spark.read_views(server, REPORT_VIEWS, schema)
    loaded = spark.last_loaded_at(server, raw_schema)
    return ReportData(generated_at=now or datetime.now(UTC), loaded_at=loaded, views=views, schema=schema)
