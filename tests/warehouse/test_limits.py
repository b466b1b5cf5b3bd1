"""Nothing the ingest accepts can break the warehouse.

Rows at the limits agreed with the ingest (docs/ingest.md, "Limits": costs just under 10^9 USD per
observation, durations just under 10^7 s, token counts just under 10^12, 512-byte ids, timestamps in 1970
and 2199, levels and types Langfuse may add) and traces whose metadata and numeric fields hypothesis draws
from hostile values (huge, negative, fractional, text, booleans, nested, numbers with hundreds of digits)
are loaded through the real ingest (:func:`ingest.loader.load_rows`); then one ``dbt build`` must pass
(warnings allowed: a new level warns) and every view in ``analytics`` must be readable.

Hypothesis draws the traces once per module (derandomized, a bounded number of examples), so the module
costs one dbt build.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import psycopg
import pytest
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st

from ingest.db import Database
from ingest.loader import load_rows, start_batch
from ingest.raw import ensure_raw_schema
from tests.warehouse.test_views import Clock, DbtRun, Warehouse, run_cli

pytestmark = [pytest.mark.dbt, pytest.mark.xdist_group("dbt_limits")]

#: Traces drawn by hypothesis (each a fallback event and a few generations).
EXAMPLES = 60

COST_MAX = Decimal("999999999.5")  # just under the 10^9 USD limit, exact in binary floating point too
SECONDS_MAX = 9_999_999.5
TOKENS_MAX = 999_999_999_999
LEVELS = ("DEBUG", "DEFAULT", "WARNING", "ERROR", "INFO", "CRITICAL")
ID_512 = "i" * 508  # + "-NNN": ids of 512 bytes


class Raw(str):
    """A JSON literal written as it is (a number with more digits than a float holds)."""


def to_json(value: Any) -> str:
    if isinstance(value, Raw):
        return str(value)
    if isinstance(value, dict):
        return "{" + ", ".join(f"{json.dumps(k)}: {to_json(v)}" for k, v in value.items()) + "}"
    if isinstance(value, list):
        return "[" + ", ".join(to_json(v) for v in value) + "]"
    return json.dumps(value)


# ----------------------------------------------------------------------------------------------- strategies

TEXT = st.text(alphabet=st.characters(blacklist_categories=("Cs",), blacklist_characters="\x00"), max_size=12)
NUMBER_LITERALS = st.sampled_from(
    [
        "1e308",
        "-1e308",
        "1e400",
        "-1e-400",
        "2e10",
        "1" + "0" * 300,
        "0." + "0" * 200 + "1",
        "12345678901234567890123",
        "0.12345678901234567890123",
        "999999999.999999999",
        "1000000000",
        "999999999999",
        "1000000000000",
        "-0.0",
    ]
).map(Raw)
NUMBER_STRINGS = st.sampled_from(
    ["abc", "", " 12 ", "1e999", "-1e999", "NaN", "Infinity", "0x10", "1_000", "1e30", "150000.0", "true"]
)
#: Any JSON value a metadata field may hold.
HOSTILE = st.recursive(
    st.one_of(
        st.none(),
        st.booleans(),
        st.integers(min_value=-(10**40), max_value=10**40),
        st.floats(allow_nan=False, allow_infinity=False),
        st.decimals(min_value=-(10**12), max_value=10**12, places=12).map(lambda d: Raw(str(d))),
        NUMBER_LITERALS,
        NUMBER_STRINGS,
        TEXT,
    ),
    lambda children: st.one_of(st.lists(children, max_size=3), st.dictionaries(TEXT, children, max_size=3)),
    max_leaves=6,
)
COST = st.decimals(min_value=0, max_value=COST_MAX, places=9, allow_nan=False, allow_infinity=False)
SECONDS = st.floats(min_value=0, max_value=SECONDS_MAX)
TOKENS = st.integers(min_value=0, max_value=TOKENS_MAX)


@dataclass
class Traces:
    """Export rows (observations_v2 style) for the ingest."""

    now: datetime
    rows: list[dict[str, Any]]

    def add(
        self,
        trace: str,
        type_: str,
        name: str,
        at: datetime,
        *,
        level: str = "DEFAULT",
        metadata: dict[str, Any] | None = None,
        **fields: Any,
    ) -> None:
        row: dict[str, Any] = {
            "id": f"{trace}-{len(self.rows):03d}",
            "trace_id": trace,
            "type": type_,
            "name": name,
            "level": level,
            "start_time": at.isoformat().replace("+00:00", "Z"),
            "end_time": at.isoformat().replace("+00:00", "Z"),
            "updated_at": at.isoformat().replace("+00:00", "Z"),
            "metadata": metadata or {},
        }
        row.update(fields)
        self.rows.append(row)


def trace_strategy(traces: Traces, number: int) -> st.SearchStrategy[None]:
    """One trace: a fallback event with hostile metadata, then generations with hostile cost metadata and
    numeric fields anywhere inside the limits."""

    @st.composite
    def draw(data: st.DrawFn) -> None:
        trace = f"hostile-{number:03d}"
        at = traces.now - timedelta(seconds=data(st.integers(min_value=60, max_value=6 * 86_400)))
        kind = data(st.sampled_from(["rate_limit_fallback", "context_length_fallback", "cache_hit"]))
        metadata = {
            key: data(HOSTILE)
            for key in data(
                st.sets(
                    st.sampled_from(
                        [
                            "original_model",
                            "fallback_model",
                            "estimated_tokens",
                            "original_max_context",
                            "fallback_max_context",
                            "reason",
                            "cost_usd",
                        ]
                    )
                )
            )
        }
        traces.add(trace, "EVENT", kind, at, level=data(st.sampled_from(LEVELS)), metadata=metadata)
        for attempt in range(data(st.integers(min_value=0, max_value=3))):
            start = at + timedelta(seconds=attempt)
            latency = data(SECONDS)
            cost_metadata = data(st.one_of(st.just({}), st.builds(lambda v: {"cost_usd": v}, HOSTILE)))
            traces.add(
                trace,
                "GENERATION",
                "llm_call",
                start,
                level=data(st.sampled_from(LEVELS)),
                metadata=cost_metadata,
                model=data(TEXT),
                end_time=(start + timedelta(seconds=data(SECONDS))).isoformat().replace("+00:00", "Z"),
                latency=latency,
                time_to_first_token=data(st.one_of(st.none(), SECONDS)),
                total_cost=data(st.one_of(st.none(), COST.map(lambda d: Raw(str(d))))),
                usage_details={"input": data(TOKENS), "output": data(HOSTILE), "total": data(TOKENS)},
            )

    return draw()


def hostile_traces(traces: Traces) -> None:
    """Add EXAMPLES traces drawn by hypothesis (derandomized: the same traces on every run)."""

    @settings(
        max_examples=EXAMPLES,
        derandomize=True,
        database=None,
        phases=[Phase.generate],
        suppress_health_check=list(HealthCheck),
        deadline=None,
    )
    @given(st.data())
    def collect(data: st.DataObject) -> None:
        data.draw(trace_strategy(traces, len({row["trace_id"] for row in traces.rows})))

    collect()


def traces_at_the_limits(traces: Traces) -> None:
    """Hand-picked rows on the edges of every limit."""
    today = traces.now - timedelta(minutes=5)
    # twelve calls of just under 10^9 USD in one request: 1.2 * 10^10 USD in one day
    for call in range(12):
        traces.add(
            "limit-cost",
            "GENERATION",
            "llm_call",
            today + timedelta(seconds=call),
            total_cost=Raw(str(COST_MAX)),
            latency=SECONDS_MAX,
            usage_details={"input": TOKENS_MAX, "output": TOKENS_MAX, "total": TOKENS_MAX},
        )
    traces.add(
        "limit-cost",
        "EVENT",
        "rate_limit_fallback",
        today,
        metadata={"original_model": "a", "fallback_model": "b", "cost_usd": Raw("1e30")},
    )
    # a metadata cost far beyond the limits, and one that is negative: read as unknown, Langfuse's total used
    traces.add(
        "limit-metadata-cost",
        "GENERATION",
        "llm_call",
        today,
        metadata={"cost_usd": Raw("2e10")},
        total_cost=Raw("0.5"),
    )
    traces.add(
        "limit-metadata-cost",
        "GENERATION",
        "llm_call",
        today + timedelta(seconds=1),
        metadata={"cost_usd": Raw("-1e308")},
        total_cost=Raw("0.25"),
    )
    # a context-length fallback whose sizes are at and beyond the token limit
    traces.add(
        "limit-tokens",
        "EVENT",
        "context_length_fallback",
        today,
        metadata={
            "original_model": "a",
            "fallback_model": "b",
            "estimated_tokens": TOKENS_MAX,
            "original_max_context": Raw("1e12"),
            "fallback_max_context": Raw("1" + "0" * 300),
        },
    )
    # 512-byte ids
    long_trace = ID_512 + "-tr"
    traces.add(long_trace, "EVENT", "rate_limit_fallback", today, metadata={"original_model": "x" * 512})
    traces.add(long_trace, "GENERATION", "llm_call", today + timedelta(seconds=1), total_cost=Raw("1"))
    # the oldest and the latest timestamps, a request spanning them
    first = datetime(1970, 1, 1, tzinfo=UTC)
    last = datetime(2199, 12, 31, 23, 59, 59, tzinfo=UTC)
    traces.add(
        "limit-time", "GENERATION", "llm_call", first, end_time=last.isoformat().replace("+00:00", "Z")
    )
    traces.add("limit-time", "GENERATION", "llm_call", last, latency=SECONDS_MAX)
    traces.add("limit-time", "EVENT", "context_length_fallback", last, metadata={"estimated_tokens": 1})
    # levels and a type Langfuse may add
    traces.add("limit-level", "GENERATION", "llm_call", today, level="INFO", total_cost=Raw("0.001"))
    traces.add("limit-level", "EVENT", "rate_limit_fallback", today, level="CRITICAL")
    traces.add("limit-level", "AGENT", "planner", today)


# ------------------------------------------------------------------------------------------------- fixtures


@dataclass
class Built:
    run: DbtRun
    warehouse: Warehouse
    loaded: int


@pytest.fixture(scope="module")
def built(module_database: Database, tmp_path_factory: pytest.TempPathFactory) -> Built:
    ensure_raw_schema(module_database)
    with module_database.connect() as conn:
        now = conn.execute("select now()").fetchone()[0]  # type: ignore[index]
    traces = Traces(now, [])
    traces_at_the_limits(traces)
    hostile_traces(traces)
    with module_database.connect() as conn:
        source = "hostile.jsonl"
        stats = load_rows(
            conn,
            ((number, to_json(row)) for number, row in enumerate(traces.rows, start=1)),
            source=source,
            batch_id=start_batch(conn, source),
        )
        conn.commit()
    warehouse = Warehouse(module_database, tmp_path_factory.mktemp("dbt"), Clock(now))
    return Built(warehouse.dbt("build"), warehouse, stats.loaded)


def scalar(warehouse: Warehouse, sql: str) -> Any:
    (row,) = warehouse.query(sql)
    return row[0]


# ---------------------------------------------------------------------------------------------------- tests


def test_the_ingest_stored_the_hostile_rows(built: Built) -> None:
    """The rows reach the warehouse (else the build below would prove nothing)."""
    assert built.loaded >= EXAMPLES
    assert (
        scalar(
            built.warehouse, "select count(*) from langfuse_raw.observations where trace_id = 'limit-cost'"
        )
        == 13
    )


def test_build_passes_on_every_accepted_row(built: Built) -> None:
    failed = {uid: status for uid, (status, _) in built.run.results.items() if status in ("error", "fail")}
    assert failed == {}
    assert built.run.exit_code == 0


def test_every_view_is_readable(built: Built) -> None:
    views = [
        name
        for (name,) in built.warehouse.query(
            "select table_name from information_schema.views where table_schema = 'analytics' order by 1"
        )
    ]
    assert len(views) >= 15, views
    for view in views:
        built.warehouse.query(f"select * from analytics.{view}")


def test_an_unknown_level_warns_and_only_error_is_a_failure(built: Built) -> None:
    assert built.run.status(
        "source_accepted_values_langfuse_observations_level__DEBUG__DEFAULT__WARNING__ERROR"
    ) == (
        "warn",
        2,
    )
    assert built.warehouse.query(
        "select level, is_error from analytics_staging.stg_langfuse__generations"
        " where trace_id = 'limit-level'"
    ) == [("INFO", False)]


def test_sums_beyond_any_fixed_precision_are_exact(built: Built) -> None:
    """Twelve calls of just under the cost limit: the day's total is 12 times it, not an overflow."""
    total = scalar(
        built.warehouse,
        "select sum(cost_usd) from analytics.cost_trend_daily",
    )
    assert total >= 12 * COST_MAX
    assert (
        scalar(
            built.warehouse,
            "select cost_usd from analytics_intermediate.int_requests where trace_id = 'limit-cost'",
        )
        == 12 * COST_MAX
    )


def test_numbers_outside_the_limits_are_read_as_unknown(built: Built) -> None:
    rows = built.warehouse.query(
        "select metadata_cost_usd, cost_usd from analytics_staging.stg_langfuse__generations"
        " where trace_id = 'limit-metadata-cost' order by created_at"
    )
    assert rows == [(None, Decimal("0.5")), (None, Decimal("0.25"))]
    assert built.warehouse.query(
        "select estimated_tokens, original_max_context, fallback_max_context"
        " from analytics_staging.stg_langfuse__events where trace_id = 'limit-tokens'"
    ) == [(TOKENS_MAX, None, None)]


def test_latency_percentiles_are_within_the_stated_bound(built: Built) -> None:
    """Latencies hypothesis drew anywhere inside the limits: the percentiles the dashboards read from the
    daily histograms stay within 1 % + 1 ms of percentile_cont over every request of the window."""
    exact = built.warehouse.query(
        "select case when request_kind = 'normal' then 'normal' else 'fallback' end, count(*),"
        " percentile_cont(array[0.25, 0.5, 0.75, 0.95]) within group (order by latency_seconds)"
        " from analytics_intermediate.int_requests"
        " where latency_seconds is not null and request_date"
        " between cast(now() at time zone 'UTC' as date) - 29 and cast(now() at time zone 'UTC' as date)"
        " group by 1"
    )
    shown = {
        row[0]: row for row in built.warehouse.query("select * from analytics.performance_latency_impact")
    }
    assert {request_type for request_type, _, _ in exact} == {"normal", "fallback"}
    for request_type, requests, percentiles in exact:
        row = shown[request_type]
        assert row[1] == requests
        for approx, value in zip(row[3:7], percentiles, strict=True):
            assert abs(float(approx) - value) <= 0.01 * value + 0.001, (request_type, row, percentiles)


LEVEL_TEST = "source_accepted_values_langfuse_observations_level__DEBUG__DEFAULT__WARNING__ERROR"


def test_an_incremental_build_tests_recent_rows_and_dbt_test_every_row(built: Built) -> None:
    """A row loaded three days ago with a level of its own: a later `dbt build` tests only recent loads
    (the two new levels of the fixture), `dbt test` every row (three)."""
    built.warehouse.query(
        "insert into langfuse_raw.observations (id, trace_id, type, level, start_time, updated_at,"
        " _source_file, _batch_id, _loaded_at)"
        " values ('old-level', 'old-level', 'EVENT', 'ANCIENT', now() - interval '3 days',"
        " now() - interval '3 days', 'old.jsonl', 1, now() - interval '3 days') returning id"
    )
    build = built.warehouse.dbt("build", "--select", "source:langfuse")
    test = built.warehouse.dbt("test", "--select", "source:langfuse")
    assert build.status(LEVEL_TEST) == ("warn", 2)
    assert test.status(LEVEL_TEST) == ("warn", 3)


def test_the_tests_of_an_incremental_build_read_recent_rows_by_their_index(built: Built) -> None:
    """An incremental build's tests on the raw table and its staging views read the rows loaded lately
    through `autopicker_rows_loaded_after`, which reads them with sequential scans off, so through the
    block-range index on `_loaded_at` rather than a scan of the table (macros/test_scope.sql); a staging
    view's test has only the column it tests computed."""
    built.warehouse.dbt("build", "--select", "source:langfuse", "stg_langfuse__generations")
    ran = built.warehouse.root / "target" / "run"
    raw_tests = [path.read_text() for path in ran.rglob("source_*.sql")]
    assert len(raw_tests) == 2  # the accepted types and levels
    for raw_test in raw_tests:
        assert '"analytics".autopicker_rows_loaded_after(null::' in raw_test
        assert "'_loaded_at', 48, null)" in raw_test
    # the generations' one test on PostgreSQL, its accepted levels (in a file named by a hash of its name)
    (staging_test,) = (
        text
        for text in (
            path.read_text() for path in ran.rglob("*.sql") if path.parent.name == "_langfuse__models.yml"
        )
        if "stg_langfuse__generations" in text
    )
    assert "'loaded_at', 48, array['level'])" in staging_test
    with built.warehouse.database.connect() as conn:
        (settings,) = conn.execute(
            "select proconfig from pg_proc where proname = 'autopicker_rows_loaded_after'"
        ).fetchone() or (None,)
        rows = conn.execute(
            "select count(*), count(trace_id), count(generation_id), count(level)"
            " from analytics.autopicker_rows_loaded_after("
            "null::analytics_staging.stg_langfuse__generations, 'loaded_at', 48, array['level'])"
        ).fetchone()
        (generations,) = conn.execute(
            "select count(*) from analytics_staging.stg_langfuse__generations"
            " where loaded_at > now() - interval '48 hours'"
        ).fetchone() or (0,)
    assert settings == ["enable_seqscan=off", "jit=off"]
    assert generations > 0
    assert rows == (generations, 0, 0, generations)


@pytest.mark.parametrize("command", [("build",), ("dbt", "build")], ids=["build", "dbt-build"])
def test_build_names_the_raw_value_test_that_warned(built: Built, command: tuple[str, ...]) -> None:
    """`autopicker build` (and dbt's own build through `autopicker dbt`) exits 0 when a test on raw values
    warns, and says which test, on which column of which source: dbt's own log says it among hundreds of
    lines, under a generated name."""
    done = run_cli(*command, "--select", "source:langfuse", database=built.warehouse.database)
    assert done.returncode == 0, done.stderr
    warnings = [line for line in done.stderr.splitlines() if line.startswith("warning: ")]
    assert warnings == ["warning: accepted_values of level in source langfuse.observations (2 rows) warned"]


def test_a_run_takes_a_tables_statistics_again_only_once_it_has_grown(built: Built) -> None:
    """The build took the statistics of its new tables (`analyze_model`, macros/portable.sql); a later run of
    a model that adds nothing to its table leaves them as they were (the planner's view of months of rows
    does not change with a night's), where it used to analyze the table every run."""
    last_analyzed = "select pg_stat_get_last_analyze_time('analytics_intermediate.int_requests'::regclass)"
    first = scalar(built.warehouse, last_analyzed)
    assert first is not None
    run = built.warehouse.dbt("run", "--select", "int_requests")
    assert run.status("int_requests")[0] == "success"
    assert scalar(built.warehouse, last_analyzed) == first


RELATIONSHIPS_TEST = (
    "relationships_int_fallback_events_enriched_event_id__event_id__ref_stg_langfuse__events_"
)


def ran_sql(built: Built) -> str:
    """The SQL the last run of RELATIONSHIPS_TEST ran (dbt names the file by a hash of the long name)."""
    found = (built.warehouse.root / "target" / "run").rglob("relationships_int_fallback_eve_*.sql")
    (text,) = [t for t in (path.read_text() for path in found) if "stg_langfuse__events" in t]
    return text


def test_a_scoped_relationships_test_looks_each_changed_row_up_and_finds_an_orphan(built: Built) -> None:
    """An incremental build's relationships test from the fallback events this build recomputed to the staging
    events looks each one up by the raw table's key (macros/test_scope.sql) instead of dbt's anti-join, which
    read every raw event; it still fails on an event without a parent, as `dbt test` (dbt's own SQL) does."""
    enriched = "analytics_intermediate.int_fallback_events_enriched"
    with built.warehouse.database.connect() as conn:
        # dbt_refreshed_at after the build starts: the scoped test counts the row as recomputed by the build
        conn.execute(f"create temp table orphan as select * from {enriched} limit 1")
        conn.execute(
            "update orphan set event_id = 'orphan-event', dbt_refreshed_at = now() + interval '1 hour'"
        )
        assert conn.execute(f"insert into {enriched} select * from orphan").rowcount == 1
        conn.commit()
    try:
        build = built.warehouse.dbt("build", "--select", RELATIONSHIPS_TEST)
        scoped_sql = ran_sql(built)
        test = built.warehouse.dbt("test", "--select", RELATIONSHIPS_TEST)
        every_row_sql = ran_sql(built)
    finally:
        built.warehouse.query(f"delete from {enriched} where event_id = 'orphan-event' returning 1")
    assert build.status(RELATIONSHIPS_TEST) == ("fail", 1)
    assert "limit 1) is null" in scoped_sql and "dbt_changed_rows" in scoped_sql
    assert test.status(RELATIONSHIPS_TEST) == ("fail", 1)
    assert "left join parent" in every_row_sql and "limit 1" not in every_row_sql


def test_the_fallback_buckets_have_a_b_tree_on_their_window_range_for_the_merge(built: Built) -> None:
    """The roll-up's MERGE finds a changed bucket by its key; the GiST index on `window_start_range` (the
    views' containment lookup) made each of those equality look-ups 40 times slower than a B-tree."""
    methods = built.warehouse.query(
        "select am.amname from pg_index i join pg_class c on c.oid = i.indexrelid"
        " join pg_am am on am.oid = c.relam join pg_attribute a"
        " on a.attrelid = i.indrelid and a.attnum = i.indkey[0]"
        " where i.indrelid = 'analytics_intermediate.int_fallback_events_bucketed'::regclass"
        " and a.attname = 'window_start_range' and i.indnatts = 1 order by 1"
    )
    assert methods == [("btree",), ("gist",)]


BUCKETS = "analytics_intermediate.int_fallback_events_bucketed"


def bucket_test(run: DbtRun, prefix: str) -> tuple[str, int | None]:
    """The result of the one test of the fallback buckets whose name starts with ``prefix``."""
    (found,) = [
        result
        for uid, result in run.results.items()
        if uid.split(".")[2].startswith(prefix) and "int_fallback_events_bucketed" in uid
    ]
    return found


def test_an_incremental_build_tests_the_buckets_its_last_run_wrote(built: Built) -> None:
    """An incremental build's tests of the fallback buckets read the rows the roll-up's last run wrote (the
    greatest `events_refreshed_through`, found by its B-tree) rather than all of them, and look a bucket's
    event up by the fallback events' index: a key written twice and a bucket of an event that does not exist
    still fail, there and in `dbt test` (every row, dbt's own SQL)."""
    newest_at_sql = f"(select max(events_refreshed_through) from {BUCKETS})"
    newest = f"events_refreshed_through = {newest_at_sql}"
    with built.warehouse.database.connect() as conn:
        (newest_at,) = conn.execute(f"select {newest_at_sql}::text").fetchone() or (None,)
        conn.execute(
            f"create temp table original as select * from {BUCKETS}"
            f" where bucket_grain = 'event' and {newest} order by bucket_start limit 1"
        )
        conn.execute("create temp table orphan as select * from original")
        conn.execute("update orphan set event_id = 'orphan-event'")
        assert conn.execute(f"insert into {BUCKETS} select * from original").rowcount == 1  # its key twice
        assert conn.execute(f"insert into {BUCKETS} select * from orphan").rowcount == 1
        conn.commit()
        try:
            build = built.warehouse.dbt(
                "build", "--select", "int_fallback_events_bucketed", "--resource-type", "test"
            )
            ran = built.warehouse.root / "target" / "run" / "autopicker" / "models" / "intermediate"
            texts = [path.read_text() for path in ran.glob("_intermediate__models.yml/*.sql")]
            scoped = [text for text in texts if BUCKETS.split(".")[1] in text]
            test = built.warehouse.dbt("test", "--select", "int_fallback_events_bucketed")
        finally:
            # the row and its copy (the same values), and the orphan
            conn.execute(
                f"delete from {BUCKETS} t using original o"
                " where row(t.*) is not distinct from row(o.*) or t.event_id = 'orphan-event'"
            )
            conn.execute(f"insert into {BUCKETS} select * from original")
            conn.commit()
    for run in (build, test):
        assert bucket_test(run, "unique_combination") == ("fail", 1)
        assert bucket_test(run, "relationships") == ("fail", 1)
    newest_in_sql = f"events_refreshed_through = cast('{newest_at}' as timestamp with time zone)"
    assert scoped and all(newest_in_sql in sql and "dbt_changed_rows" in sql for sql in scoped)
    assert any("limit 1) is null" in sql for sql in scoped)


RAW_ROW = {
    "id": "'constraint-check'",
    "trace_id": "'constraint-check'",
    "type": "'EVENT'",
    "start_time": "now()",
    "updated_at": "now()",
    "_source_file": "'check.jsonl'",
    "_batch_id": "1",
    "_loaded_at": "now()",
}


def raw_insert(values: dict[str, str]) -> str:
    return (
        f"insert into langfuse_raw.observations ({', '.join(values)}) values ({', '.join(values.values())})"
    )


@pytest.mark.parametrize("column", ["id", "trace_id", "type", "start_time", "_loaded_at"])
def test_the_raw_table_holds_what_the_source_does_not_test(built: Built, column: str) -> None:
    """The source has no unique or not_null tests (models/staging/langfuse/_langfuse__sources.yml): the raw
    table refuses a row without these columns, and a second row with the same id."""
    with built.warehouse.database.connect() as conn:
        with pytest.raises(psycopg.errors.NotNullViolation):
            conn.execute(raw_insert(RAW_ROW | {column: "null"}))
        conn.rollback()
        conn.execute(raw_insert(RAW_ROW))
        with pytest.raises(psycopg.errors.UniqueViolation):
            conn.execute(raw_insert(RAW_ROW))
        conn.rollback()


@pytest.mark.parametrize(("view", "kind"), [("events", "EVENT"), ("generations", "GENERATION")])
def test_the_staging_views_hold_what_their_tests_check_on_spark_only(
    built: Built, view: str, kind: str
) -> None:
    """On PostgreSQL the staging views' ids, trace ids, creation times and levels have no unique or not_null
    tests (models/staging/langfuse/_langfuse__models.yml): each view is the raw table's rows of one type, with
    the raw id and trace id, the start time as its creation time, and DEFAULT for a missing level; the raw
    table holds the rest (the test above)."""
    key = "event_id" if kind == "EVENT" else "generation_id"
    row = RAW_ROW | {
        "id": "'staging-check'",
        "trace_id": "'staging-trace'",
        "type": f"'{kind}'",
        "level": "null",
    }
    with built.warehouse.database.connect() as conn:
        (start,) = conn.execute(raw_insert(row) + " returning start_time").fetchone() or (None,)
        shown = conn.execute(
            f"select {key}, trace_id, created_at, level from analytics_staging.stg_langfuse__{view}"
            f" where {key} = 'staging-check'"
        ).fetchall()
        conn.rollback()
    assert start is not None
    assert shown == [("staging-check", "staging-trace", start, "DEFAULT")]
    # the tests of the view in the manifest of the module's builds: enabled ones in nodes, the others apart
    manifest = json.loads((built.warehouse.root / "target" / "manifest.json").read_text())
    model = f"model.autopicker.stg_langfuse__{view}"
    enabled = {n["name"] for n in manifest["nodes"].values() if n.get("attached_node") == model}
    disabled = {
        n["name"] for ns in manifest["disabled"].values() for n in ns if n.get("attached_node") == model
    }
    assert f"accepted_values_stg_langfuse__{view}_level__DEBUG__DEFAULT__WARNING__ERROR" in enabled
    assert not {name for name in enabled if name.startswith(("unique_", "not_null_"))}, enabled
    assert {name.split(f"stg_langfuse__{view}_")[0] for name in disabled} == {"unique_", "not_null_"}
    assert len(disabled) == 5, disabled
