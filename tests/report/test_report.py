"""The report in a real browser, over a real warehouse at three stages of its life.

One database for the module, built three times (each dbt build costs seconds):

1. built, with no data loaded: the page says so, and no widget draws an empty chart;
2. one day of requests and no fallback: the time series start on that day, the fallback widgets say there
   is no fallback, and nothing claims a cost or a success rate;
3. fallbacks of both kinds over two days, one model pair with no known cost: every widget draws marks, and
   every number in the page's tables, gauge and bar labels equals the views' rows.

At every stage the page opens from the disk in headless Chromium with no request leaving it and no console
error; a screenshot of each dashboard is kept in the test's temporary folder.
"""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import Browser

from autopicker.report.charts import MAX_SLICES, pie_slices
from autopicker.report.charts import WIDGETS as WIDGET_BUILDERS
from autopicker.report.data import DASHBOARD_VIEWS, FALLBACK_VIEWS, collect
from autopicker.report.page import cell, write_report
from ingest import loader
from ingest.db import Database
from ingest.raw import ensure_raw_schema
from ingest.warehouse.dbt import run_dbt
from tests.support.browser import OpenedPage, chromium, open_file
from tests.support.cli import REPO, run_cli
from tests.support.clock import reporting_now

pytestmark = [pytest.mark.dbt, pytest.mark.xdist_group("report")]

GPT_MINI = "openai/gpt-4o-mini"
FLASH_LITE = "gemini/gemini-2.5-flash-lite"
PRO = "gemini/gemini-2.5-pro"
HAIKU = "anthropic/claude-3-5-haiku"
LOCAL = "local/llama-3.1-8b"
WIDGETS = (
    "fallbacks-over-time",
    "fallback-distribution",
    "cost-by-fallback-type",
    "cost-trend",
    "fallback-success-rate",
    "latency-impact",
)
DASHBOARDS = ("monitoring", "cost", "performance")

#: For every chart widget, the SVG marks that show it was drawn (Vega names its mark groups mark-<type>).
MARKS_JS = """() => Object.fromEntries([...document.querySelectorAll('figure[data-widget]')].map(f => [
    f.dataset.widget,
    [...f.querySelectorAll('g.role-mark path, g.role-mark line, g.role-mark rect')]
        .filter(e => { const b = e.getBBox(); return b.width > 0 || b.height > 0; }).length
]))"""

TABLES_JS = """() => Object.fromEntries([...document.querySelectorAll('table[data-view]')].map(t => [
    t.dataset.view,
    [...t.querySelectorAll('tbody tr')].filter(r => r.querySelector('td[data-column]')).map(r =>
        Object.fromEntries([...r.querySelectorAll('td[data-column]')].map(c =>
            [c.dataset.column, c.textContent.trim()])))
]))"""


def cli_environment(database: Database) -> dict[str, str]:
    """The environment of a user running ``autopicker`` against ``database``, with no browser of theirs."""
    return {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "DATABASE_URL": database.url,
        "AUTOPICKER_PROJECT_DIR": str(REPO),
        "DBT_SEND_ANONYMOUS_USAGE_STATS": "false",
    }


def _ts(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S.%f")


class Traffic:
    """Export rows (observations_v2, SDK v5 metadata: JSON-quoted strings) for the real loader."""

    def __init__(self) -> None:
        self.rows: list[dict[str, Any]] = []

    def _row(self, trace: str, kind: str, name: str, at: datetime, seconds: float, **fields: Any) -> None:
        metadata = {key: json.dumps(value) for key, value in fields.pop("metadata", {}).items()}
        self.rows.append(
            {
                "id": f"{trace}-{len(self.rows)}",
                "trace_id": trace,
                "type": kind,
                "name": name,
                "start_time": _ts(at),
                "end_time": _ts(at + timedelta(seconds=seconds)),
                "created_at": _ts(at + timedelta(seconds=seconds + 1)),
                "updated_at": _ts(at + timedelta(seconds=seconds + 1)),
                "level": fields.pop("level", "DEFAULT"),
                "metadata": metadata,
                **fields,
            }
        )

    def call(
        self, trace: str, at: datetime, model: str, seconds: float, cost: float | None, ok: bool = True
    ) -> None:
        metadata = {} if cost is None else {"cost_usd": cost}
        level = "DEFAULT" if ok else "ERROR"
        self._row(
            trace,
            "GENERATION",
            "llm_call",
            at,
            seconds,
            provided_model_name=model,
            metadata=metadata,
            level=level,
        )

    def fallback(self, trace: str, at: datetime, kind: str, original: str, fallback: str) -> None:
        metadata: dict[str, Any] = {"original_model": original, "fallback_model": fallback}
        if kind == "rate_limit_fallback":
            metadata["reason"] = "rate_limit_or_error"
        else:
            metadata |= {
                "estimated_tokens": 150000,
                "original_max_context": 128000,
                "fallback_max_context": 1048576,
            }
        self._row(trace, "EVENT", kind, at, 0, metadata=metadata)

    def load(self, database: Database, name: str) -> None:
        with database.connect() as conn:
            batch = loader.start_batch(conn, name)
            stats = loader.load_rows(conn, enumerate(self.rows, 1), source=name, batch_id=batch)
            loader.finish_batch(conn, batch, stats)
        assert stats.rejected == 0


@dataclass
class Stage:
    """A built warehouse, its report, and what the browser saw of it."""

    database: Database
    folder: Path
    page: OpenedPage
    marks: dict[str, int]
    tables: dict[str, list[dict[str, str]]]
    states: dict[str, str]

    def views(self) -> dict[str, list[dict[str, Any]]]:
        """The views' rows, read straight from the database (not through the report's own reader)."""
        with self.database.connect() as conn:
            result = {}
            for view in [name for name, _ in FALLBACK_VIEWS] + list(DASHBOARD_VIEWS):
                cursor = conn.execute(f"select * from analytics.{view}")
                names = [c.name for c in cursor.description or ()]
                result[view] = [dict(zip(names, row, strict=True)) for row in cursor.fetchall()]
            return result


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    with chromium() as browser:
        yield browser


@pytest.fixture(scope="module")
def warehouse(
    module_database: Database, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[Database, Path]]:
    ensure_raw_schema(module_database)
    yield module_database, tmp_path_factory.mktemp("report")


#: The instant the module takes for now: every build and report of it (taken at import, when pytest collects).
NOW = datetime.now(UTC).replace(microsecond=0)


def _stage(
    name: str, warehouse: tuple[Database, Path], browser: Browser, traffic: Traffic | None
) -> Iterator[Stage]:
    database, root = warehouse
    if traffic is not None:
        traffic.load(database, f"{name}.jsonl")
    # The views and the report take NOW for now: the answers hold even if a UTC day ends meanwhile.
    pinned = json.dumps({"reporting_now": reporting_now(NOW)})
    paths = ["--target-path", str(root / "target"), "--log-path", str(root / f"{name}-logs")]
    assert run_dbt(["build", *paths, "--vars", pinned], database) == 0
    folder = root / name
    write_report(collect(database, now=NOW), folder)
    with open_file(browser, folder / "index.html") as page:
        for dashboard in DASHBOARDS:
            page.page.locator(f"section[data-dashboard={dashboard}]").screenshot(
                path=str(folder / f"{dashboard}.png")
            )
        yield Stage(
            database,
            folder,
            page,
            page.page.evaluate(MARKS_JS),
            page.page.evaluate(TABLES_JS),
            page.page.evaluate(
                "() => Object.fromEntries([...document.querySelectorAll('figure[data-widget]')]"
                ".map(f => [f.dataset.widget, f.dataset.state]))"
            ),
        )


#: A moment late enough today (UTC) for the calls of one request, early enough not to be in the future.
TODAY = max(NOW.replace(hour=0, minute=5), NOW - timedelta(minutes=30))
YESTERDAY = TODAY - timedelta(days=1)


@pytest.fixture(scope="module")
def empty(warehouse: tuple[Database, Path], browser: Browser) -> Iterator[Stage]:
    yield from _stage("empty", warehouse, browser, None)


@pytest.fixture(scope="module")
def one_day(empty: Stage, warehouse: tuple[Database, Path], browser: Browser) -> Iterator[Stage]:
    traffic = Traffic()
    for i in range(4):
        traffic.call(f"normal-{i}", TODAY + timedelta(seconds=10 * i), GPT_MINI, 0.5 + i / 10, 0.001)
    yield from _stage("one-day", warehouse, browser, traffic)


@pytest.fixture(scope="module")
def full(one_day: Stage, warehouse: tuple[Database, Path], browser: Browser) -> Iterator[Stage]:
    traffic = Traffic()
    for day, at in (("y", YESTERDAY), ("t", TODAY + timedelta(minutes=1))):
        traffic.call(f"rl-{day}", at, GPT_MINI, 0.2, 0.0, ok=False)
        traffic.fallback(f"rl-{day}", at + timedelta(seconds=1), "rate_limit_fallback", GPT_MINI, FLASH_LITE)
        traffic.call(f"rl-{day}", at + timedelta(seconds=1), FLASH_LITE, 1.5, 0.002)
        traffic.fallback(f"cl-{day}", at, "context_length_fallback", GPT_MINI, PRO)
        traffic.call(f"cl-{day}", at, PRO, 4.0, 0.05)
        # a pair whose cost nobody knows: the local model reports none
        traffic.call(f"local-{day}", at, HAIKU, 0.3, None, ok=False)
        traffic.fallback(f"local-{day}", at + timedelta(seconds=1), "rate_limit_fallback", HAIKU, LOCAL)
        traffic.call(f"local-{day}", at + timedelta(seconds=1), LOCAL, 2.0, None)
    # a fallback that did not help: both attempts failed
    traffic.call("failed", TODAY, GPT_MINI, 0.2, 0.0, ok=False)
    traffic.fallback("failed", TODAY + timedelta(seconds=1), "rate_limit_fallback", GPT_MINI, FLASH_LITE)
    traffic.call("failed", TODAY + timedelta(seconds=1), FLASH_LITE, 0.2, 0.0, ok=False)
    yield from _stage("full", warehouse, browser, traffic)


def _clean(stage: Stage) -> None:
    assert stage.page.outside == []
    assert stage.page.errors == []
    assert stage.page.console_errors == []
    assert sorted(stage.states) == sorted(WIDGETS)
    for dashboard in DASHBOARDS:
        assert (stage.folder / f"{dashboard}.png").stat().st_size > 10_000


def test_an_empty_warehouse_says_so_and_draws_no_chart(empty: Stage) -> None:
    _clean(empty)
    assert empty.page.page.locator("[data-fact=no-data]").count() == 1
    assert set(empty.states.values()) == {"empty"}
    assert all(count == 0 for count in empty.marks.values())
    assert list((empty.folder / "charts").iterdir()) == []
    assert empty.page.page.locator("[data-fact=loaded]").inner_text() == "never"


def test_one_day_without_fallbacks_claims_no_fallback_cost_or_rate(one_day: Stage) -> None:
    _clean(one_day)
    assert one_day.states == {
        "fallbacks-over-time": "drawn",
        "fallback-distribution": "empty",
        "cost-by-fallback-type": "empty",
        "cost-trend": "drawn",
        "fallback-success-rate": "empty",
        "latency-impact": "drawn",
    }
    page = one_day.page.page
    assert page.locator("[data-fact=first-day]").inner_text() == TODAY.date().isoformat()
    # the series start on the day data starts: one point per series, not 30 days of zeros
    assert page.locator("#fallbacks-over-time g.mark-symbol.role-mark path").count() == 2
    for widget in ("fallbacks-over-time", "cost-trend", "latency-impact"):
        assert one_day.marks[widget] > 0, widget
        assert (one_day.folder / "charts" / f"{widget}.svg").exists()
        assert (one_day.folder / "charts" / f"{widget}.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_every_widget_draws_and_every_number_shown_is_the_views(full: Stage) -> None:
    _clean(full)
    assert set(full.states.values()) == {"drawn"}
    assert all(full.marks[widget] > 0 for widget in WIDGETS), full.marks
    views = full.views()
    # tables: every cell shown equals the view's value, row for row, in the view's order
    for view, shown in full.tables.items():
        expected = [
            {column: cell(row[column]) for column in shown_row}
            for row, shown_row in zip(views[view], shown, strict=True)
        ]
        assert shown == expected, view
        assert len(shown) == len(views[view]), view
    assert {"monitoring_top_fallback_pairs", "cost_most_expensive_fallbacks"} <= set(full.tables)
    assert {name for name, _ in FALLBACK_VIEWS} <= set(full.tables)
    # the pair with no known cost shows no average cost, not $0
    local = [row for row in full.tables["monitoring_top_fallback_pairs"] if row["fallback_model"] == LOCAL]
    assert [row["avg_cost_usd"] for row in local] == ["—"]
    page = full.page.page
    # each table names its view where the warehouse holds it: schema analytics on PostgreSQL
    captions = page.locator("table[data-view] > caption code").all_text_contents()
    captioned = [view for view in full.tables if view != "fallback_alerts"]  # the alerts' table has none
    assert sorted(captions) == sorted(f"analytics.{view}" for view in captioned)
    gauge = page.locator("#fallback-success-rate svg").text_content() or ""
    rate = views["performance_success_rate"][0]
    assert f"{float(rate['success_rate_percent']):.2f} %" in gauge
    assert f"{rate['successful_fallbacks']:,} of {rate['fallbacks']:,} fallbacks succeeded" in gauge
    bars = page.locator("#cost-by-fallback-type svg").text_content() or ""
    for row in views["cost_by_fallback_type"]:
        assert f"${float(row['total_cost_usd']):,.4f}" in bars
    # the alerts, with their state
    alerts = {row["alert"]: row for row in views["fallback_alerts"]}
    for name, row in alerts.items():
        state = page.locator(f"tr[data-alert={name}] td[data-state]")
        assert state.inner_text() == ("FIRING" if row["fires"] else "ok")
        assert state.get_attribute("data-state") == ("firing" if row["fires"] else "ok")


def test_every_chart_is_valid_vega_lite(full: Stage) -> None:
    data = collect(full.database)
    for widget in WIDGET_BUILDERS:
        drawn = widget.build(data)
        assert drawn.chart is not None, widget.id
        assert drawn.chart.to_dict(validate=True)["$schema"].startswith(
            "https://vega.github.io/schema/vega-lite/"
        )


def test_pie_keeps_the_largest_pairs_and_sums_the_rest() -> None:
    rows = [{"model_pair": f"m{i} → n{i}", "fallback_count": 100 - i} for i in range(MAX_SLICES + 3)]
    slices = pie_slices(list(reversed(rows)))
    assert [s["pair"] for s in slices] == [f"m{i} → n{i}" for i in range(MAX_SLICES - 1)] + ["4 other pairs"]
    assert [s["fallbacks"] for s in slices][-1] == sum(100 - i for i in range(MAX_SLICES - 1, MAX_SLICES + 3))
    assert sum(s["fallbacks"] for s in slices) == sum(r["fallback_count"] for r in rows)


def test_the_command_writes_the_report_says_where_and_opens_it(full: Stage, tmp_path: Path) -> None:
    opened = tmp_path / "opened.txt"
    recorder = tmp_path / "browser.py"
    recorder.write_text(f"import sys, pathlib\npathlib.Path({str(opened)!r}).write_text(sys.argv[1])\n")
    env = cli_environment(full.database) | {"BROWSER": f"{sys.executable} {recorder} %s"}
    out = tmp_path / "out"
    result = run_cli("report", "--out", str(out), "--open", env=env)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == f"report: {out / 'index.html'}"
    assert opened.read_text() == (out / "index.html").as_uri()
    assert sorted(p.name for p in (out / "charts").iterdir()) == sorted(
        f"{widget}.{ext}" for widget in WIDGETS for ext in ("png", "svg")
    )


def test_the_command_on_a_warehouse_never_built_is_one_sentence(database: Database, tmp_path: Path) -> None:
    result = run_cli("report", "--out", str(tmp_path / "out"), env=cli_environment(database))
    assert result.returncode == 1
    assert result.stderr.strip() == "error: Schema analytics has no views yet: run `autopicker build` first."
    assert not (tmp_path / "out").exists()
