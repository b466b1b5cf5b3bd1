"""`autopicker ingest api` against a local server that speaks Langfuse's public API, into a real PostgreSQL.

Time is a manual clock set to the real time: retries and the request budget "sleep" on it, so nothing here
waits on wall time except the one timeout fault, which waits for the client's (short) timeout.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from datetime import datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from autopicker.cli.app import app
from autopicker.errors import UserError
from ingest.db import Database
from ingest.sources.api import ApiIngestOptions, ApiIngestReport, run_api_ingest
from ingest.sources.langfuse_client import Credentials, LangfuseReader, RetryPolicy
from ingest.sources.request_budget import RequestBudget
from tests.support.api import REPO, RecordingClock, observation, spread, subprocess_env, wait_until
from tests.support.cli import HANG_TIMEOUT
from tests.support.langfuse_api import Fault, LangfuseAPIServer, LangfuseState, iso

MINUTE = timedelta(minutes=1)


@pytest.fixture
def server() -> Iterator[LangfuseAPIServer]:
    with LangfuseAPIServer(LangfuseState()) as running:
        yield running


def reader_for(
    server: LangfuseAPIServer,
    clock: RecordingClock,
    *,
    rpm: int = 10_000,
    timeout: float = 5.0,
    max_retries: int = 6,
    secret: str | None = None,
) -> LangfuseReader:
    credentials = Credentials(server.state.public_key, secret or server.state.secret_key, server.base_url)
    return LangfuseReader(
        credentials,
        clock=clock,
        requests_per_minute=rpm,
        timeout=timeout,
        retry=RetryPolicy(max_retries=max_retries),
    )


def ingest(
    database: Database,
    server: LangfuseAPIServer,
    clock: RecordingClock,
    *,
    page_size: int = 50,
    **kwargs: Any,
) -> tuple[ApiIngestReport, LangfuseReader]:
    reader_kwargs = {k: kwargs.pop(k) for k in ("rpm", "timeout", "max_retries") if k in kwargs}
    reader = reader_for(server, clock, **reader_kwargs)
    try:
        options = ApiIngestOptions(page_size=page_size, **kwargs)
        return run_api_ingest(database, reader, options, clock=clock), reader
    finally:
        reader.close()


def stored(database: Database) -> dict[str, tuple[Any, ...]]:
    with database.connect() as conn:
        rows = conn.execute(
            "SELECT id, type, name, model, total_cost, updated_at, metadata FROM langfuse_raw.observations"
        ).fetchall()
    return {r[0]: r[1:] for r in rows}


def served_ids(server: LangfuseAPIServer) -> set[str]:
    return {r["id"] for r in server.state.observations if r["type"] in ("EVENT", "GENERATION")}


def state_rows(database: Database) -> dict[str, tuple[Any, ...]]:
    with database.connect() as conn:
        rows = conn.execute(
            "SELECT type, watermark, range_from, range_before, range_until FROM langfuse_raw.ingest_state"
        ).fetchall()
    return {r[0]: r[1:] for r in rows}


def parse(value: str) -> datetime:
    return datetime.fromisoformat(value.replace("Z", "+00:00"))


def test_two_incremental_runs_end_with_the_served_rows_and_the_second_reads_little(
    database: Database, server: LangfuseAPIServer
) -> None:
    clock = RecordingClock()
    now1 = clock.now()
    rows = server.state.observations
    rows += spread("ev", "EVENT", 240, now1 - MINUTE, 2 * MINUTE)  # 8 hours of events
    rows += spread("gen", "GENERATION", 160, now1 - MINUTE, 3 * MINUTE)
    rows += [observation(f"span-{i}", "SPAN", now1 - i * MINUTE) for i in range(10)]
    rows.append(observation("too-old", "EVENT", now1 - timedelta(days=31)))

    first, reader1 = ingest(database, server, clock)

    expected = served_ids(server) - {"too-old"}
    assert set(stored(database)) == expected  # 30 days back on the first run; SPAN never asked for
    assert first.stats.inserted == 400 and first.stats.rejected == 0
    assert reader1.rows_received == 400
    state = state_rows(database)
    assert state["EVENT"][0] == now1 and state["EVENT"][1:] == (None, None, None)
    assert state["GENERATION"][0] == now1

    # An hour later: new rows, and rows near the end of the last run that Langfuse updated since.
    clock.advance(3600)
    now2 = clock.now()
    rows += spread("ev-new", "EVENT", 30, now2 - MINUTE, 2 * MINUTE)
    rows += spread("gen-new", "GENERATION", 20, now2 - MINUTE, 3 * MINUTE)
    late = observation("ev-late", "EVENT", now1 - 5 * MINUTE)  # reached Langfuse after run 1 read that minute
    rows.append(late)
    updated = next(r for r in rows if r["id"] == "gen-00002")  # started 7 minutes before run 1
    updated["totalCost"] = 0.5
    updated["updatedAt"] = iso(now2 - MINUTE)
    server.state.requests.clear()

    second, reader2 = ingest(database, server, clock)

    table = stored(database)
    assert set(table) == expected | {r["id"] for r in rows if r["id"].startswith(("ev-new", "gen-new"))} | {
        "ev-late"
    }
    assert float(table["gen-00002"][3]) == 0.5 and table["gen-00002"][4] == parse(updated["updatedAt"])
    # The second run read the new hour plus the 15-minute overlap, nothing older.
    window_start = now1 - timedelta(minutes=15)
    in_window = [
        r for r in rows if r["type"] in ("EVENT", "GENERATION") and parse(r["startTime"]) >= window_start
    ]
    assert reader2.rows_received == len(in_window) < 100
    assert second.stats.inserted == 51 and second.stats.updated == 1
    first_query = server.state.observation_requests()[0]["params"]
    assert parse(first_query["fromStartTime"]) == window_start
    assert parse(first_query["toStartTime"]) == now2
    assert state_rows(database)["EVENT"][0] == now2


def test_faults_are_retried_with_retry_after_and_backoff(
    database: Database, server: LangfuseAPIServer
) -> None:
    clock = RecordingClock()
    server.state.observations += spread("ev", "EVENT", 120, clock.now() - MINUTE, MINUTE)
    server.state.faults.extend(
        [
            Fault("429", retry_after=7),
            Fault("ok"),  # page 1: rate limited, then served
            Fault("500"),
            Fault("ok"),  # page 2: a server error, then served
            Fault("slow"),
            Fault("drop"),  # page 3: no answer before the timeout, then a dropped connection
        ]
    )

    report, reader = ingest(database, server, clock, timeout=0.5, types=("EVENT",))

    assert set(stored(database)) == served_ids(server)
    assert clock.sleeps == [7.0, 1.0, 1.0, 2.0]  # Retry-After as sent, then backoff per request: 1 s, 2 s
    assert reader.retries == 4 and report.retries == 4
    assert report.stats.inserted == 120


def test_a_request_that_keeps_failing_is_one_error_and_the_next_run_resumes(
    database: Database, server: LangfuseAPIServer
) -> None:
    clock = RecordingClock()
    server.state.observations += spread("ev", "EVENT", 150, clock.now() - MINUTE, MINUTE)
    server.state.faults.extend([Fault("ok"), Fault("500"), Fault("500"), Fault("500")])

    with pytest.raises(
        UserError,
        match=r"did not answer GET /api/public/v2/observations after 3 attempts "
        r"\(last: HTTP 500\)",
    ):
        ingest(database, server, clock, max_retries=2, types=("EVENT",))

    assert len(stored(database)) == 50  # the first page is kept
    checkpoint = state_rows(database)["EVENT"]
    assert checkpoint[2] is not None  # range_before: what is left to read
    server.state.requests.clear()

    report, reader = ingest(database, server, clock, types=("EVENT",))

    assert set(stored(database)) == served_ids(server)
    assert report.types["EVENT"].resumed
    resumed_query = server.state.observation_requests()[0]["params"]
    assert parse(resumed_query["toStartTime"]) == checkpoint[2]
    # It read the 100 rows left, the boundary row and a 15-minute overlap, not the first page again.
    assert reader.rows_received <= 100 + 1 + 16


def test_wrong_keys_are_one_sentence_without_the_secret(
    database: Database, server: LangfuseAPIServer
) -> None:
    clock = RecordingClock()
    reader = reader_for(server, clock, secret="sk-lf-wrong-secret")
    with pytest.raises(UserError) as caught:
        run_api_ingest(database, reader, ApiIngestOptions(), clock=clock)
    message = str(caught.value)
    assert "refused the API keys (HTTP 401)" in message and "LANGFUSE_SECRET_KEY" in message
    assert "sk-lf-wrong-secret" not in message
    assert reader.requests == 1  # not retried


def test_a_malformed_row_is_rejected_and_the_rest_of_its_page_loads(
    database: Database, server: LangfuseAPIServer
) -> None:
    clock = RecordingClock()
    now = clock.now()
    rows = spread("gen", "GENERATION", 30, now - MINUTE, MINUTE)
    rows[7]["usageDetails"] = {"input": "lots"}  # the SDK's model wants integers: the whole page fails it
    provided = observation("gen-provided", "GENERATION", now - 90 * MINUTE)
    provided["providedModelName"] = provided.pop("model")  # the published spec's name for the model
    server.state.observations += [*rows, provided]

    report, _ = ingest(database, server, clock, types=("GENERATION",))

    table = stored(database)
    assert set(table) == {r["id"] for r in server.state.observations} - {rows[7]["id"]}
    assert table["gen-provided"][2] == "openai/gpt-4o-mini"
    assert report.stats.rejected == 1
    with database.connect() as conn:
        ((row_number, error, raw),) = conn.execute(
            "SELECT row_number, error, raw FROM langfuse_raw.rejected_rows"
        ).fetchall()
    assert row_number == 8
    assert "usageDetails" in error and "integer" in error
    assert '"id":"gen-00007"' in raw


def test_costs_and_metadata_numbers_keep_every_digit(database: Database, server: LangfuseAPIServer) -> None:
    # The SDK's parsing once made costs floats: 0.12345678901234567890123 was stored as 0.12345678901234568.
    clock = RecordingClock()
    exact = Decimal("0.12345678901234567890123")
    row = observation(
        "gen-exact", "GENERATION", clock.now() - MINUTE, metadata={"n": 12345678901234567890123}
    )
    row["metadata"]["f"] = Decimal("1.000000000000000000001")
    row["totalCost"] = exact
    row["costDetails"] = {"total": exact}
    row["usageDetails"] = {"input": 123456789012345678901234567890}
    server.state.observations.append(row)

    report, _ = ingest(database, server, clock, types=("GENERATION",))

    assert report.stats.inserted == 1 and report.stats.rejected == 0
    with database.connect() as conn:
        stored_row = conn.execute(
            "SELECT total_cost, metadata->>'n', metadata->>'f', cost_details->>'total', "
            "usage_details->>'input' FROM langfuse_raw.observations"
        ).fetchone()
    assert stored_row == (
        exact,
        "12345678901234567890123",
        "1.000000000000000000001",
        str(exact),
        "123456789012345678901234567890",
    )


def test_the_request_budget_lets_at_most_n_requests_start_in_any_minute() -> None:
    clock = RecordingClock()
    budget = RequestBudget(5, clock)
    starts = []
    for _ in range(12):
        budget.acquire()
        starts.append(clock.time())
    assert starts[:5] == [starts[0]] * 5  # a short run never waits
    for i, start in enumerate(starts):
        assert sum(1 for s in starts if start <= s < start + 60) <= 5, i
    assert starts[-1] - starts[0] == pytest.approx(120)  # 12 requests at 5/min: the 11th and 12th wait 2 min


def test_an_ingest_paces_its_requests_to_the_budget(database: Database, server: LangfuseAPIServer) -> None:
    clock = RecordingClock()
    server.state.observations += spread("ev", "EVENT", 95, clock.now() - MINUTE, MINUTE)

    report, reader = ingest(database, server, clock, rpm=3, page_size=10, types=("EVENT",))

    assert reader.requests == 11  # the project, then ten pages
    assert report.stats.inserted == 95
    # 11 requests at 3 per minute: the last one starts three minutes after the first.
    assert sum(clock.sleeps) == pytest.approx(180)
    assert report.budget_wait == pytest.approx(180)


def test_a_run_killed_mid_way_then_run_again_loses_nothing_and_doubles_nothing(
    database: Database, server: LangfuseAPIServer, tmp_path: Path
) -> None:
    clock = RecordingClock()
    server.state.observations += spread("ev", "EVENT", 200, clock.now() - MINUTE, MINUTE)
    server.state.observations += spread("gen", "GENERATION", 60, clock.now() - MINUTE, 5 * MINUTE)
    server.state.faults.extend([Fault("ok"), Fault("hold")])  # the second page never comes
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "autopicker",
            "ingest",
            "api",
            "--page-size",
            "50",
        ],
        env=subprocess_env(database, server, tmp_path),
        cwd=REPO,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        checkpoint = wait_until(lambda: _checkpoint(database), alive=lambda: process.poll() is None)
        assert checkpoint is not None, process.stderr.read() if process.stderr else ""
    finally:
        process.kill()
        process.communicate(timeout=HANG_TIMEOUT)
    assert process.returncode == -9
    assert len(stored(database)) == 50
    server.state.requests.clear()

    report, reader = ingest(database, server, clock, page_size=50)

    table = stored(database)
    assert set(table) == served_ids(server)
    with database.connect() as conn:
        assert conn.execute("SELECT count(*) FROM langfuse_raw.observations").fetchone() == (260,)
    assert report.types["EVENT"].resumed
    assert parse(server.state.observation_requests()[0]["params"]["toStartTime"]) == checkpoint
    # 150 events were left, plus the boundary row and a 15-minute overlap; the 50 loaded were not read again.
    assert reader.rows_received <= 150 + 1 + 16 + 60
    assert report.stats.inserted == 210


def _checkpoint(database: Database) -> datetime | None:
    """What is left to read after the first page, once its transaction (rows and state) is committed."""
    with database.connect() as conn:
        present = conn.execute("SELECT to_regclass('langfuse_raw.ingest_state')").fetchone()
        if not present or not present[0]:
            return None
        row = conn.execute(
            "SELECT range_before FROM langfuse_raw.ingest_state WHERE type = 'EVENT'"
        ).fetchone()
    return row[0] if row else None


def test_cli_prints_a_summary_and_exits_1_when_a_row_was_rejected(
    cli_env: Database, server: LangfuseAPIServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    now = datetime.now().astimezone()
    rows = spread("ev", "EVENT", 20, now - MINUTE, MINUTE)
    rows += spread("gen", "GENERATION", 5, now - MINUTE, MINUTE)
    rows[3]["totalCost"] = "free"  # the SDK's model refuses it; the rest of the page still loads
    server.state.observations += rows
    for key, value in subprocess_env(cli_env, server, Path(os.environ["AUTOPICKER_HOME"])).items():
        monkeypatch.setenv(key, value)

    result = CliRunner().invoke(app, ["ingest", "api"])

    assert result.exit_code == 1, result.output
    assert "Langfuse API, project proj-test" in result.output
    assert "rejected_rows" in result.output
    assert len(stored(cli_env)) == 24


def test_cli_without_keys_says_which_variables_to_set(tmp_path: Path) -> None:
    env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "AUTOPICKER_HOME": str(tmp_path)}
    result = subprocess.run(
        [sys.executable, "-m", "autopicker", "ingest", "api"],
        env=env,
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=HANG_TIMEOUT,
    )
    assert result.returncode == 2  # a missing setting is a usage error (docs/cli.md)
    assert result.stderr.startswith("error: Set LANGFUSE_PUBLIC_KEY and LANGFUSE_SECRET_KEY")
    assert "Traceback" not in result.stderr
