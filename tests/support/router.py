"""Helpers shared by the router's tests: a simulated router on a manual clock, span capture, Redis access."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator, Mapping
from typing import Any

import pytest
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from router import AutoPickerLLM, Behaviour, Catalog, ManualClock, SimulatedProvider
from router.tracing import Tracing, unique_public_key

START = 1_763_000_000.0  # a fixed moment (2025-11-13 02:13:20 UTC) so calendar rules are reproducible
QUIET = Behaviour(latency=0.5, latency_spread=0.0, output_tokens=(40, 40))


def simulated_llm(
    models: list[str],
    *,
    clock: ManualClock | None = None,
    behaviours: Mapping[str, Behaviour] | None = None,
    overrides: Mapping[str, Mapping[str, Any]] | None = None,
    tracing: Tracing | bool = False,
    **options: Any,
) -> tuple[AutoPickerLLM, SimulatedProvider, ManualClock]:
    """A router over the simulated provider and a manual clock; limits come from the catalog and overrides."""
    clock = clock or ManualClock(START)
    provider = SimulatedProvider(seed=1, clock=clock, behaviours=behaviours, default=QUIET)
    catalog = Catalog.load(overrides=overrides, use_env=False)
    llm = AutoPickerLLM(models, catalog=catalog, provider=provider, clock=clock, tracing=tracing, **options)
    return llm, provider, clock


def ask(tokens: int = 100) -> list[dict[str, str]]:
    """A one-message chat whose estimate is about ``tokens`` tokens."""
    return [{"role": "user", "content": "abcd" * max(tokens - 7, 1)}]


class SpanCapture:
    """Tracing as in production (recorded, replayed into the SDK in the background) through a Langfuse client
    of its own public key whose spans land in OpenTelemetry's in-memory exporter."""

    def __init__(self, **client_options: Any) -> None:
        self.exporter = InMemorySpanExporter()
        self._tracing = Tracing.langfuse(
            public_key=unique_public_key("pk-test"),
            secret_key="sk-test",
            base_url="http://127.0.0.1:9",
            span_exporter=self.exporter,
            **client_options,
        )
        self.replayer = self._tracing.replayer

    def tracing(self, clock: ManualClock | None = None, **options: Any) -> Tracing:
        return Tracing(None, clock=clock, replayer=self.replayer, **options)

    def spans(self) -> list[ReadableSpan]:
        self._tracing.flush()
        return list(self.exporter.get_finished_spans())

    def close(self) -> None:
        self._tracing.shutdown()


def metadata(span: ReadableSpan) -> dict[str, Any]:
    """A span's Langfuse metadata, decoded from the JSON the SDK encodes every value as."""
    import json

    prefix = "langfuse.observation.metadata."
    return {
        key[len(prefix) :]: json.loads(value)
        for key, value in (span.attributes or {}).items()
        if key.startswith(prefix)
    }


def redis_url_or_skip() -> str:
    """REDIS_URL when a Redis answers there; otherwise skip, or fail where REQUIRE_REDIS=1 (CI)."""
    import redis

    url = os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/0")
    try:
        client = redis.Redis.from_url(url, socket_connect_timeout=2, socket_timeout=2)
        client.ping()
        client.close()
    except redis.RedisError as exc:
        message = f"no Redis answers at {url} ({exc}); set REDIS_URL to run the shared-limiter tests"
        if os.environ.get("REQUIRE_REDIS") == "1":
            pytest.fail(message)
        pytest.skip(message)
    return url


def redis_test_prefix() -> Iterator[tuple[str, str]]:
    """A Redis URL and a key prefix of one test's own; the keys are deleted afterwards."""
    import redis

    url = redis_url_or_skip()
    prefix = f"autopicker-test:{uuid.uuid4().hex}:"
    yield url, prefix
    client = redis.Redis.from_url(url)
    keys = list(client.scan_iter(match=f"{prefix}*"))
    if keys:
        client.delete(*keys)
    client.close()
