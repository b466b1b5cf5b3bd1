"""`autopicker fallbacks`: the Fallback Tracking guide's Examples 1 and 2, from the Langfuse API and from the
warehouse."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest
from typer.testing import CliRunner

from autopicker.cli.app import app
from autopicker.durations import parse_duration, parse_moment
from autopicker.errors import UsageError
from ingest.db import Database
from ingest.sources.api import ApiIngestOptions, run_api_ingest
from ingest.sources.langfuse_client import Credentials, LangfuseReader
from ingest.warehouse.fallbacks import from_api, from_warehouse
from tests.support.api import RecordingClock, observation
from tests.support.langfuse_api import LangfuseAPIServer, LangfuseState

HOUR = timedelta(hours=1)
MINI, FLASH, PRO = "openai/gpt-4o-mini", "gemini/gemini-2.5-flash-lite", "gemini/gemini-2.5-pro"
EXPECTED = {
    ("rate_limit_fallback", MINI, FLASH): 3,
    ("rate_limit_fallback", MINI, "unknown"): 1,
    ("rate_limit_fallback", FLASH, PRO): 1,
    ("context_length_fallback", MINI, PRO): 2,
}


def fallback(
    oid: str, name: str, start: datetime, original: str, fallback_model: str | None, encoded: bool = True
) -> dict:
    metadata = {"original_model": json.dumps(original) if encoded else original, "reason": '"rate_limit"'}
    if fallback_model is not None:
        metadata["fallback_model"] = json.dumps(fallback_model) if encoded else fallback_model
    return observation(oid, "EVENT", start, name=name, metadata=metadata)


@pytest.fixture
def server() -> Iterator[LangfuseAPIServer]:
    now = datetime.now(UTC)
    state = LangfuseState()
    state.observations += [
        fallback("e1", "rate_limit_fallback", now - HOUR, MINI, FLASH),
        fallback("e2", "rate_limit_fallback", now - 2 * HOUR, MINI, FLASH),
        fallback("e3", "rate_limit_fallback", now - 3 * HOUR, MINI, FLASH, encoded=False),  # plain strings
        fallback("e4", "rate_limit_fallback", now - 4 * HOUR, MINI, None),  # no fallback model: unknown
        fallback("e5", "rate_limit_fallback", now - 5 * HOUR, FLASH, PRO),
        fallback("e6", "context_length_fallback", now - 6 * HOUR, MINI, PRO),
        fallback("e7", "context_length_fallback", now - 23 * HOUR, MINI, PRO),
        fallback("old", "rate_limit_fallback", now - 25 * HOUR, MINI, FLASH),  # outside 24h
        observation("other", "EVENT", now - HOUR, name="cache_hit", metadata={}),
        observation("gen", "GENERATION", now - HOUR),
    ]
    with LangfuseAPIServer(state) as running:
        yield running


def reader_for(server: LangfuseAPIServer, clock: RecordingClock) -> LangfuseReader:
    credentials = Credentials(server.state.public_key, server.state.secret_key, server.base_url)
    return LangfuseReader(credentials, clock=clock, requests_per_minute=1000)


def test_counts_from_the_api_by_type_and_model_pair(server: LangfuseAPIServer) -> None:
    clock = RecordingClock()
    reader = reader_for(server, clock)
    result = from_api(reader, clock.now() - 24 * HOUR, clock.now())
    assert dict(result.counts) == EXPECTED
    names = [r["params"].get("name") for r in server.state.observation_requests()]
    assert names == ["rate_limit_fallback", "context_length_fallback"]  # filtered by the server, not here
    assert all(r["params"]["type"] == "EVENT" for r in server.state.observation_requests())


def test_counts_from_the_warehouse_match_the_api(database: Database, server: LangfuseAPIServer) -> None:
    clock = RecordingClock()
    run_api_ingest(database, reader_for(server, clock), ApiIngestOptions(), clock=clock)
    result = from_warehouse(database, clock.now() - 24 * HOUR, clock.now())
    assert dict(result.counts) == EXPECTED


def test_cli_prints_the_summary_from_the_warehouse(cli_env: Database, server: LangfuseAPIServer) -> None:
    clock = RecordingClock()
    run_api_ingest(cli_env, reader_for(server, clock), ApiIngestOptions(), clock=clock)

    result = CliRunner().invoke(app, ["fallbacks", "--since", "24h", "--from", "warehouse"])

    assert result.exit_code == 0, result.output
    lines = [" ".join(line.split()) for line in result.output.splitlines()]
    assert f"rate_limit_fallback {MINI} -> {FLASH} 3" in lines
    assert f"context_length_fallback {MINI} -> {PRO} 2" in lines
    assert f"rate_limit_fallback {MINI} -> unknown 1" in lines
    assert any("7 fallbacks (rate_limit_fallback 5, context_length_fallback 2)" in line for line in lines)

    narrow = CliRunner().invoke(app, ["fallbacks", "--since", "90m", "--from", "warehouse"])
    assert any(
        "1 fallbacks (rate_limit_fallback 1, context_length_fallback 0)" in " ".join(line.split())
        for line in narrow.output.splitlines()
    ), narrow.output


def test_cli_reads_the_api_when_its_keys_are_set(
    cli_env: Database, server: LangfuseAPIServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("LANGFUSE_PUBLIC_KEY", server.state.public_key)
    monkeypatch.setenv("LANGFUSE_SECRET_KEY", server.state.secret_key)
    monkeypatch.setenv("LANGFUSE_BASE_URL", server.base_url)

    result = CliRunner().invoke(app, ["fallbacks", "--since", "7d"])

    assert result.exit_code == 0, result.output
    assert f"read from the Langfuse API at {server.base_url}" in " ".join(result.output.split())
    assert "8 fallbacks" in result.output  # a week back includes the 25-hour-old one


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("30m", timedelta(minutes=30)),
        ("24h", timedelta(hours=24)),
        ("7d", timedelta(days=7)),
        ("1.5h", timedelta(minutes=90)),
        ("2w", timedelta(weeks=2)),
        ("90s", timedelta(seconds=90)),
    ],
)
def test_durations(text: str, expected: timedelta) -> None:
    assert parse_duration(text, "--since") == expected


def test_moments_and_bad_values() -> None:
    now = datetime(2026, 11, 26, 12, 0, tzinfo=UTC)
    assert parse_moment("2d", "--since", now) == datetime(2026, 11, 24, 12, 0, tzinfo=UTC)
    assert parse_moment("2026-11-01", "--since", now) == datetime(2026, 11, 1, tzinfo=UTC)
    assert parse_moment("2026-11-01T10:00:00+02:00", "--since", now) == datetime(2026, 11, 1, 8, tzinfo=UTC)
    with pytest.raises(UsageError, match="--since must be a duration such as 30m, 24h or 7d"):
        parse_moment("yesterday", "--since", now)
    with pytest.raises(UsageError, match="--overlap must be"):
        parse_duration("15", "--overlap")
