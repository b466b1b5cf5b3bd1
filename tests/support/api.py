"""Helpers of the API-ingest, fallbacks and nightly tests: observations as Langfuse's public API serves them
(camelCase, every field group), a recording manual clock, the environment of a CLI subprocess, and polling."""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, TypeVar

from autopicker.clock import ManualClock
from ingest.db import Database
from tests.support.cli import HANG_TIMEOUT, REPO
from tests.support.langfuse_api import LangfuseAPIServer, iso


class RecordingClock(ManualClock):
    """A manual clock set to the real time that remembers every sleep it was asked for."""

    def __init__(self) -> None:
        super().__init__(time.time())
        self.sleeps: list[float] = []

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        super().sleep(seconds)

    def now(self) -> datetime:
        return datetime.fromtimestamp(self.time(), UTC)


def observation(
    oid: str,
    typ: str,
    start: datetime,
    *,
    project: str = "proj-test",
    name: str | None = None,
    updated: datetime | None = None,
    metadata: dict[str, Any] | None = None,
    model: str = "openai/gpt-4o-mini",
    cost: float = 0.001,
) -> dict[str, Any]:
    """One EVENT or GENERATION row with the fields of every group the warehouse reads."""
    end = start if typ == "EVENT" else start + timedelta(milliseconds=850)
    created = start + timedelta(seconds=2)
    row: dict[str, Any] = {
        "id": oid,
        "traceId": f"trace-{oid}",
        "startTime": iso(start),
        "endTime": iso(end),
        "projectId": project,
        "parentObservationId": None,
        "type": typ,
        "name": name or ("rate_limit_fallback" if typ == "EVENT" else "llm_call"),
        "level": "DEFAULT",
        "statusMessage": None,
        "version": None,
        "environment": "default",
        "completionStartTime": None,
        "createdAt": iso(created),
        "updatedAt": iso(updated or created),
        "metadata": metadata
        if metadata is not None
        else (
            {"original_model": json.dumps("openai/gpt-4o-mini"), "fallback_model": json.dumps("gemini/flash")}
            if typ == "EVENT"
            else {"cost_usd": str(cost)}
        ),
        "latency": 0.0 if typ == "EVENT" else 0.85,
        "timeToFirstToken": None,
        "input": {"messages": [{"role": "user", "content": "hi"}]},
        "output": "hello",
    }
    if typ == "GENERATION":
        row |= {
            "model": model,
            "modelParameters": {"max_tokens": 100},
            "usageDetails": {"input": 10, "output": 5, "total": 15},
            "costDetails": {"input": cost / 2, "output": cost / 2, "total": cost},
            "totalCost": cost,
        }
    return row


def spread(prefix: str, typ: str, count: int, newest: datetime, step: timedelta) -> list[dict[str, Any]]:
    """``count`` rows of one type, the newest at ``newest``, one every ``step`` going back."""
    return [observation(f"{prefix}-{i:05d}", typ, newest - i * step) for i in range(count)]


T = TypeVar("T")


def subprocess_env(database: Database, server: LangfuseAPIServer, home: Path) -> dict[str, str]:
    """The environment of an ``autopicker`` subprocess reading ``server`` into ``database``."""
    return {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "DATABASE_URL": database.url,
        "AUTOPICKER_HOME": str(home),
        "AUTOPICKER_PROJECT_DIR": str(REPO),
        "DBT_SEND_ANONYMOUS_USAGE_STATS": "false",
        "LANGFUSE_PUBLIC_KEY": server.state.public_key,
        "LANGFUSE_SECRET_KEY": server.state.secret_key,
        "LANGFUSE_BASE_URL": server.base_url,
    }


def wait_until(
    condition: Callable[[], T | None],
    *,
    alive: Callable[[], bool] = lambda: True,
    timeout: float = HANG_TIMEOUT,
) -> T | None:
    """Poll ``condition`` until it returns something (or ``alive`` turns false, or ``timeout`` passes)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and alive():
        found = condition()
        if found:
            return found
        time.sleep(0.05)
    return None
