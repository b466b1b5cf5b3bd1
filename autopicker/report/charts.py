"""The chart widgets of the guide's dashboards, drawn with Vega-Lite through altair.

Each builder takes the report's data and returns a :class:`Drawn` chart, or the sentence to show instead
when the data cannot support the chart: no chart claims more than the data holds. Days before the first
request seen are left out of the time series rather than drawn as zero, a cost nobody knows is not drawn
as $0, and a success rate over no fallback is not a gauge at 0 %.

Colours come from the Okabe-Ito palette, which stays distinguishable for the common kinds of colour
blindness, and every series is also named in its legend or label, so colour is never the only cue. Times
are UTC, and the axes say so.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import date
from typing import Any

import altair as alt

from autopicker.report.data import ReportData, Row

#: Okabe-Ito: orange, sky blue, bluish green, yellow, blue, vermillion, reddish purple, black.
PALETTE = ("#E69F00", "#56B4E9", "#009E73", "#F0E442", "#0072B2", "#D55E00", "#CC79A7", "#000000")
FALLBACK_TYPES = ("rate_limit_fallback", "context_length_fallback")
TYPE_LABELS = {"rate_limit_fallback": "Rate limit", "context_length_fallback": "Context length"}
TYPE_COLOURS = ["#D55E00", "#0072B2"]
#: Requests without a fallback, beside the two fallback types' colours.
NORMAL_COLOUR = "#009E73"
KIND_COLOURS = dict(zip(FALLBACK_TYPES, TYPE_COLOURS, strict=True)) | {"normal": NORMAL_COLOUR}
WIDTH, HEIGHT = 560, 260
#: Pie slices beyond this many model pairs are summed into one "other pairs" slice.
MAX_SLICES = 7


@dataclass(frozen=True)
class Widget:
    """One widget of a dashboard: its id (also its file name), title and the chart it names."""

    id: str
    dashboard: str
    title: str
    kind: str
    build: Callable[[ReportData], Drawn]


@dataclass(frozen=True)
class Drawn:
    """A chart ready to render (``chart``), or why there is none (``empty``); ``note`` qualifies a chart."""

    chart: alt.TopLevelMixin | None = None
    empty: str = ""
    note: str = ""


def _number(value: Any) -> float | None:
    return None if value is None else float(value)


def _day(value: date) -> str:
    return value.isoformat()


def _time_axis() -> alt.X:
    return alt.X(
        "date:T",
        title="Date (UTC)",
        scale=alt.Scale(type="utc"),
        axis=alt.Axis(format="%b %d", labelAngle=0, tickCount="day"),
    )


def _chart(values: list[dict[str, Any]], title: str, subtitle: str = "") -> alt.Chart:
    return alt.Chart(
        alt.Data(values=values),
        title=alt.TitleParams(title, subtitle=subtitle or alt.Undefined, anchor="start"),
        width=WIDTH,
        height=HEIGHT,
    )


def _first_day(data: ReportData) -> date | None:
    days = data.days_with_requests
    return days[0] if days else None


def fallbacks_over_time(data: ReportData) -> Drawn:
    """Line: fallbacks per UTC day, one series per fallback type."""
    first = _first_day(data)
    if first is None:
        return Drawn(empty="No requests in the dashboards' window yet, so there is nothing to draw.")
    values = [
        {
            "date": _day(row["date"]),
            "type": TYPE_LABELS.get(row["fallback_type"], row["fallback_type"]),
            "fallbacks": int(row["fallback_count"]),
        }
        for row in data.rows("monitoring_fallbacks_daily")
        if row["date"] >= first
    ]
    chart = (
        _chart(values, "Fallbacks over time", "per UTC day, from the first day with requests")
        .mark_line(point=True)
        .encode(
            x=_time_axis(),
            y=alt.Y("fallbacks:Q", title="Fallbacks (events per day)"),
            color=alt.Color(
                "type:N",
                title="Fallback type",
                scale=alt.Scale(domain=[TYPE_LABELS[t] for t in FALLBACK_TYPES], range=TYPE_COLOURS),
            ),
            tooltip=[alt.Tooltip("date:T", title="Day (UTC)", format="%Y-%m-%d"), "type:N", "fallbacks:Q"],
        )
    )
    return Drawn(chart)


def pie_slices(rows: list[Row]) -> list[dict[str, Any]]:
    """The pie's slices: the largest model pairs, and the rest summed into one "N other pairs" slice."""
    ordered = sorted(rows, key=lambda r: (-int(r["fallback_count"]), r["model_pair"]))
    slices: list[dict[str, Any]] = [
        {"pair": r["model_pair"], "fallbacks": int(r["fallback_count"])} for r in ordered
    ]
    if len(slices) > MAX_SLICES:
        rest = slices[MAX_SLICES - 1 :]
        other = {"pair": f"{len(rest)} other pairs", "fallbacks": sum(s["fallbacks"] for s in rest)}
        slices = [*slices[: MAX_SLICES - 1], other]
    return slices


def fallback_distribution(data: ReportData) -> Drawn:
    """Pie: fallbacks per original -> fallback model pair."""
    slices = pie_slices(data.rows("monitoring_fallback_distribution"))
    total = sum(s["fallbacks"] for s in slices)
    if total == 0:
        return Drawn(empty="No fallbacks in the dashboards' window.")
    for s in slices:
        s["share"] = f"{100 * s['fallbacks'] / total:.1f} %"
    base = _chart(
        slices, "Fallback distribution", f"{total:,} fallbacks by original -> fallback model"
    ).encode(
        theta=alt.Theta("fallbacks:Q", stack=True),
        color=alt.Color(
            "pair:N",
            title="Model pair",
            sort=[s["pair"] for s in slices],
            scale=alt.Scale(domain=[s["pair"] for s in slices], range=list(PALETTE[: len(slices)])),
            legend=alt.Legend(orient="right", labelLimit=360, titleLimit=360),
        ),
        order=alt.Order("fallbacks:Q", sort="descending"),
        tooltip=["pair:N", "fallbacks:Q", "share:N"],
    )
    pie = base.mark_arc(outerRadius=110, stroke="#ffffff")
    labels = base.mark_text(radius=132, size=12, color="#000000").encode(text="share:N")
    return Drawn(pie + labels)


def cost_by_fallback_type(data: ReportData) -> Drawn:
    """Bar: total cost of the requests with each kind of fallback (USD); unknown costs are said, not drawn."""
    rows = data.rows("cost_by_fallback_type")
    if not rows or all(int(r["requests"]) == 0 for r in rows):
        return Drawn(empty="No requests with a fallback in the dashboards' window.")
    values: list[dict[str, Any]] = []
    for row in rows:
        known = int(row["costed_requests"]) > 0
        cost = _number(row["total_cost_usd"]) if known else None
        values.append(
            {
                "type": TYPE_LABELS.get(row["fallback_type"], row["fallback_type"]),
                "cost": cost,
                "label": f"${cost:,.4f}" if cost is not None else "cost unknown",
                "requests": int(row["requests"]),
                "costed": int(row["costed_requests"]),
            }
        )
    if all(v["cost"] is None for v in values):
        return Drawn(empty="No cost is known for the requests with a fallback in the window.")
    base = _chart(values, "Cost by fallback type", "total cost of the requests with each kind of fallback")
    bars = base.mark_bar(width=80).encode(
        x=alt.X("type:N", title="Fallback type", axis=alt.Axis(labelAngle=0)),
        y=alt.Y("cost:Q", title="Total cost (USD)"),
        color=alt.Color(
            "type:N",
            legend=None,
            scale=alt.Scale(domain=[TYPE_LABELS[t] for t in FALLBACK_TYPES], range=TYPE_COLOURS),
        ),
        tooltip=[
            "type:N",
            alt.Tooltip("cost:Q", title="Total cost (USD)", format="$,.4f"),
            alt.Tooltip("requests:Q", title="Requests"),
            alt.Tooltip("costed:Q", title="Requests with a known cost"),
        ],
    )
    text = base.mark_text(dy=-8, baseline="bottom").encode(
        x="type:N", y=alt.Y("cost:Q", impute=alt.ImputeParams(value=0)), text="label:N"
    )
    partial = [v for v in values if v["costed"] < v["requests"]]
    note = "; ".join(
        f"{v['type']}: cost known for {v['costed']:,} of {v['requests']:,} requests" for v in partial
    )
    return Drawn(bars + text, note=f"{note}." if note else "")


def cost_trend(data: ReportData) -> Drawn:
    """Line: cost per UTC day of normal requests and of each kind of fallback (USD)."""
    first = _first_day(data)
    if first is None:
        return Drawn(empty="No requests in the dashboards' window yet, so there is nothing to draw.")
    values: list[dict[str, Any]] = []
    for row in data.rows("cost_trend_daily"):
        if row["date"] < first:
            continue
        known = int(row["costed_requests"]) > 0 or int(row["requests"]) == 0
        values.append(
            {
                "date": _day(row["date"]),
                "series": row["series"],
                "cost": _number(row["cost_usd"]) if known else None,
                "requests": int(row["requests"]),
            }
        )
    if all(v["cost"] in (None, 0.0) for v in values) and all(
        int(r["costed_requests"]) == 0 for r in data.rows("cost_trend_daily")
    ):
        return Drawn(empty="No cost is known for any request in the dashboards' window.")
    kinds = {row["series"]: row["request_kind"] for row in data.rows("cost_trend_daily")}
    series = sorted({v["series"] for v in values})
    colours = [KIND_COLOURS.get(kinds[name], PALETTE[7]) for name in series]
    chart = (
        _chart(values, "Cost trend", "cost per UTC day; a day whose cost is unknown is a gap, not $0")
        .mark_line(point=True)
        .encode(
            x=_time_axis(),
            y=alt.Y("cost:Q", title="Cost (USD per day)"),
            color=alt.Color(
                "series:N",
                title="Requests",
                scale=alt.Scale(domain=series, range=colours),
            ),
            tooltip=[
                alt.Tooltip("date:T", title="Day (UTC)", format="%Y-%m-%d"),
                "series:N",
                alt.Tooltip("cost:Q", title="Cost (USD)", format="$,.4f"),
                "requests:Q",
            ],
        )
    )
    return Drawn(chart)


def success_rate_gauge(data: ReportData) -> Drawn:
    """Gauge: percent of fallbacks that succeeded, over the bands the guide sets (red, yellow, green)."""
    rows = data.rows("performance_success_rate")
    row = rows[0] if rows else None
    if row is None or not row["fallbacks"] or row["success_rate_percent"] is None:
        return Drawn(empty="No fallbacks in the dashboards' window, so there is no success rate to show.")
    red, green = float(row["red_below_percent"]), float(row["green_above_percent"])
    rate = float(row["success_rate_percent"])
    bands: list[dict[str, Any]] = [
        {"from": 0.0, "to": red, "band": f"red: below {red:g} %"},
        {"from": red, "to": green, "band": f"yellow: {red:g} to {green:g} %"},
        {"from": green, "to": 100.0, "band": f"green: above {green:g} %"},
    ]
    scale = alt.Scale(domain=[0, 100], range=[-1.5708, 1.5708])  # a half circle, in radians
    band_chart = (
        alt.Chart(alt.Data(values=bands))
        .mark_arc(innerRadius=90, outerRadius=120)
        .encode(
            theta=alt.Theta("from:Q", scale=scale),
            theta2="to:Q",
            color=alt.Color(
                "band:N",
                title="Band",
                sort=[b["band"] for b in bands],
                scale=alt.Scale(domain=[b["band"] for b in bands], range=["#D55E00", "#F0E442", "#009E73"]),
            ),
        )
    )
    needle = (
        alt.Chart(alt.Data(values=[{"from": 0.0, "to": rate}]))
        .mark_arc(innerRadius=60, outerRadius=86, color="#000000")
        .encode(theta=alt.Theta("from:Q", scale=scale), theta2="to:Q")
    )
    caption = f"{int(row['successful_fallbacks']):,} of {int(row['fallbacks']):,} fallbacks succeeded"
    text = (
        alt.Chart(alt.Data(values=[{"label": f"{rate:.2f} %"}]))
        .mark_text(size=28, fontWeight="bold", dy=-10)
        .encode(text="label:N")
    )
    sub = (
        alt.Chart(alt.Data(values=[{"caption": caption}])).mark_text(size=12, dy=18).encode(text="caption:N")
    )
    chart = alt.layer(band_chart, needle, text, sub).properties(
        title=alt.TitleParams("Fallback success rate", subtitle=f"band: {row['band']}", anchor="start"),
        width=WIDTH,
        height=HEIGHT,
    )
    return Drawn(chart)


def latency_impact(data: ReportData) -> Drawn:
    """Box plot: request latency with and without a fallback (seconds), from the view's quantiles."""
    rows = [
        r
        for r in data.rows("performance_latency_impact")
        if int(r["requests"]) > 0 and r["p50_seconds"] is not None
    ]
    if not rows:
        return Drawn(empty="No request with a known latency in the dashboards' window.")
    values = [
        {
            "type": f"{row['request_type']} ({int(row['requests']):,} requests)",
            **{key: _number(row[f"{key}_seconds"]) for key in ("min", "p25", "p50", "p75", "p95", "max")},
        }
        for row in rows
    ]
    base = _chart(values, "Latency impact", "seconds from a request's first call to its answer").encode(
        y=alt.Y("type:N", title=None, axis=alt.Axis(labelLimit=300))
    )
    x = alt.X("min:Q", title="Latency (seconds)")
    whisker = base.mark_rule(color="#000000").encode(x=x, x2="max:Q")
    box = base.mark_bar(size=28, color="#56B4E9").encode(x="p25:Q", x2="p75:Q")
    median = base.mark_tick(color="#000000", size=28, thickness=3).encode(x="p50:Q")
    p95 = base.mark_point(shape="diamond", color="#D55E00", filled=True, size=80).encode(
        x="p95:Q",
        tooltip=[
            "type:N",
            alt.Tooltip("min:Q", format=".3f"),
            alt.Tooltip("p25:Q", format=".3f"),
            alt.Tooltip("p50:Q", format=".3f", title="median"),
            alt.Tooltip("p75:Q", format=".3f"),
            alt.Tooltip("p95:Q", format=".3f"),
            alt.Tooltip("max:Q", format=".3f"),
        ],
    )
    chart = alt.layer(whisker, box, median, p95).properties(height=max(120, 70 * len(values)))
    return Drawn(
        chart, note="Box: 25th to 75th percentile; bar: median; diamond: 95th percentile; line: min to max."
    )


WIDGETS: tuple[Widget, ...] = (
    Widget("fallbacks-over-time", "monitoring", "Fallbacks over time", "line", fallbacks_over_time),
    Widget("fallback-distribution", "monitoring", "Fallback distribution", "pie", fallback_distribution),
    Widget("cost-by-fallback-type", "cost", "Cost by fallback type", "bar", cost_by_fallback_type),
    Widget("cost-trend", "cost", "Cost trend", "line", cost_trend),
    Widget("fallback-success-rate", "performance", "Fallback success rate", "gauge", success_rate_gauge),
    Widget("latency-impact", "performance", "Latency impact", "box plot", latency_impact),
)
