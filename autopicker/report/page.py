"""Write the report: ``index.html`` and, beside it in ``charts/``, each chart widget as SVG and PNG.

Charts are rendered offline by vl-convert (no browser, no network) and inlined in the page as SVG, so the
page opens anywhere, with no network and no JavaScript, and can be mailed as one file; the SVG and PNG
files are for pasting a single chart into a chat or an email. Tables carry ``data-view`` and ``data-column``
attributes, so a reader (or a test) can tie every number shown back to the view it came from.
"""

from __future__ import annotations

import logging
import os
import shutil
import tempfile
import time
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import jinja2
import vl_convert

from autopicker.errors import UserError
from autopicker.report.charts import WIDGETS, Drawn, Widget
from autopicker.report.data import FALLBACK_VIEWS, ReportData

logger = logging.getLogger(__name__)

#: PNG files at twice the chart's size, sharp on high-density screens.
PNG_SCALE = 2

DASHBOARDS: tuple[tuple[str, str, str], ...] = (
    ("monitoring", "Fallback Monitoring", "When and where requests fall back."),
    ("cost", "Cost Impact", "What the requests that fell back cost."),
    ("performance", "Performance Analysis", "Whether fallbacks work, and how long they take."),
)

#: Tables of the dashboards: (dashboard, view, title, columns shown).
TABLES: tuple[tuple[str, str, str, tuple[str, ...]], ...] = (
    (
        "monitoring",
        "monitoring_top_fallback_pairs",
        "Top fallback pairs",
        (
            "pair_rank",
            "fallback_type",
            "original_model",
            "fallback_model",
            "fallback_count",
            "avg_cost_usd",
            "costed_requests",
        ),
    ),
    (
        "cost",
        "cost_most_expensive_fallbacks",
        "Most expensive fallbacks",
        (
            "cost_rank",
            "fallback_type",
            "model_pair",
            "fallback_count",
            "requests",
            "total_cost_usd",
            "avg_cost_usd",
            "costed_requests",
        ),
    ),
)


@dataclass
class WrittenReport:
    """Where the report was written and what it holds."""

    index: Path
    charts: list[Path] = field(default_factory=list)
    empty_widgets: list[str] = field(default_factory=list)
    seconds: float = 0.0


def cell(value: Any) -> str:
    """A value as the report prints it: every digit of a decimal, dates and times in UTC, a dash for NULL."""
    if value is None:
        return "—"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, Decimal):
        return format(value, "f")
    if isinstance(value, datetime):
        return value.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S UTC")
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, int):
        return f"{value:,}"
    return str(value)


def _when(moment: datetime | None) -> str:
    return "never" if moment is None else moment.astimezone(UTC).strftime("%Y-%m-%d %H:%M UTC")


def _render(widget: Widget, drawn: Drawn, charts_dir: Path) -> dict[str, Any]:
    figure: dict[str, Any] = {"widget": widget, "empty": drawn.empty, "note": drawn.note, "svg": ""}
    if drawn.chart is None:
        return figure
    # Validated against the Vega-Lite schema by the tests; here that would cost more than the drawing.
    spec = drawn.chart.to_dict(validate=False)
    svg = vl_convert.vegalite_to_svg(spec)
    (charts_dir / f"{widget.id}.svg").write_text(svg, encoding="utf-8")
    # The PNG is the same drawing rasterised, not a second run of Vega.
    (charts_dir / f"{widget.id}.png").write_bytes(vl_convert.svg_to_png(svg, scale=PNG_SCALE))
    figure["svg"] = svg
    return figure


def _environment() -> jinja2.Environment:
    env = jinja2.Environment(
        loader=jinja2.PackageLoader("autopicker.report", "templates"),
        autoescape=jinja2.select_autoescape(["html", "j2"]),
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters["cell"] = cell
    env.filters["when"] = _when
    return env


def write_report(data: ReportData, out: Path) -> WrittenReport:
    """Render the report of ``data`` into folder ``out`` (created if needed; its previous report replaced)."""
    started = time.monotonic()
    try:
        out.mkdir(parents=True, exist_ok=True)
        # Written beside the old report and moved into place, so a reader never sees half a report.
        staging = Path(tempfile.mkdtemp(prefix=".report-", dir=out))
    except OSError as exc:
        raise UserError(f"Cannot write the report into {out}: {exc.strerror or exc}.") from None
    try:
        charts_dir = staging / "charts"
        charts_dir.mkdir()
        figures = [_render(widget, widget.build(data), charts_dir) for widget in WIDGETS]
        days = data.days
        html = (
            _environment()
            .get_template("report.html.j2")
            .render(
                data=data,
                dashboards=DASHBOARDS,
                figures=figures,
                tables=TABLES,
                fallback_views=FALLBACK_VIEWS,
                window=(days[0], days[-1]) if days else None,
                first_day=data.days_with_requests[0] if data.days_with_requests else None,
            )
        )
        (staging / "index.html").write_text(html, encoding="utf-8")
        shutil.rmtree(out / "charts", ignore_errors=True)
        os.replace(charts_dir, out / "charts")
        os.replace(staging / "index.html", out / "index.html")
    except OSError as exc:
        raise UserError(f"Cannot write the report into {out}: {exc.strerror or exc}.") from None
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    report = WrittenReport(
        index=out / "index.html",
        charts=sorted((out / "charts").iterdir()),
        empty_widgets=[f["widget"].id for f in figures if f["empty"]],
        seconds=time.monotonic() - started,
    )
    logger.info("report written to %s in %.1f s", report.index, report.seconds)
    return report
