"""Langfuse tracing through the real SDK, captured with OpenTelemetry's in-memory exporter."""

from __future__ import annotations

import concurrent.futures
import json
import socket
import uuid
from collections.abc import Iterator

import pytest
from opentelemetry.trace import StatusCode

from router import AllModelsFailed, AutoPickerLLM, Behaviour, ManualClock, SimulatedProvider
from router.tracing import Tracing, unique_public_key
from tests.support.cli import HANG_TIMEOUT
from tests.support.router import SpanCapture, ask, metadata, simulated_llm
from tests.support.router_servers import OtlpReceiver

MINI, LITE, PRO = "openai/gpt-4o-mini", "gemini/gemini-2.5-flash-lite", "gemini/gemini-2.5-pro"
UNLIMITED = {"rpm": 0, "tpm": 0, "rpd": 0}


@pytest.fixture
def capture() -> Iterator[SpanCapture]:
    """The Langfuse SDK's spans, captured in memory."""
    spans = SpanCapture()
    yield spans
    spans.close()


def by_trace(spans: list) -> dict[str, list]:
    traces: dict[str, list] = {}
    for span in spans:
        traces.setdefault(format(span.context.trace_id, "032x"), []).append(span)
    return traces


def kind(span) -> str:  # noqa: ANN001
    return span.attributes["langfuse.observation.type"]


def test_rate_limit_fallback_event_generations_and_one_trace_per_request(capture: SpanCapture) -> None:
    llm, _, _ = simulated_llm(
        [MINI, LITE], overrides={MINI: {"rpm": 1}, LITE: UNLIMITED}, tracing=capture.tracing()
    )
    first = llm.complete(ask(500), max_tokens=64)
    second = llm.complete(ask(500), max_tokens=64)
    traces = by_trace(capture.spans())
    assert set(traces) == {first.trace_id, second.trace_id} and first.trace_id != second.trace_id

    spans = traces[second.trace_id]
    roots = [span for span in spans if span.parent is None]
    assert [root.name for root in roots] == ["autopicker.request"]
    assert all(span.parent.span_id == roots[0].context.span_id for span in spans if span.parent is not None)

    (event,) = [span for span in spans if kind(span) == "event"]
    assert event.name == "rate_limit_fallback"
    meta = metadata(event)
    assert {key: meta[key] for key in ("original_model", "fallback_model", "reason")} == {
        "original_model": MINI,
        "fallback_model": LITE,
        "reason": "rate_limit_or_error",
    }
    assert meta["trigger"] == "rate_limit" and meta["limit"] == "rpm"
    # On the wire every metadata value is JSON-encoded, strings included.
    assert event.attributes["langfuse.observation.metadata.original_model"] == '"openai/gpt-4o-mini"'

    (generation,) = [span for span in spans if kind(span) == "generation"]
    attrs = generation.attributes
    assert attrs["langfuse.observation.model.name"] == LITE
    usage = json.loads(attrs["langfuse.observation.usage_details"])
    cost = json.loads(attrs["langfuse.observation.cost_details"])
    assert usage == {
        "input": second.usage.input_tokens,
        "output": 40,
        "total": second.usage.input_tokens + 40,
    }
    assert cost["total"] == pytest.approx(second.cost.total)
    assert metadata(generation)["cost_usd"] == pytest.approx(second.cost.total)
    assert json.loads(attrs["langfuse.observation.model.parameters"]) == {"max_tokens": 64}
    assert roots[0].attributes["langfuse.trace.name"] == "autopicker"
    assert metadata(roots[0])["served_model"] == LITE


def test_context_length_fallback_event_has_the_seed_metadata(capture: SpanCapture) -> None:
    llm, _, _ = simulated_llm(
        [MINI, PRO], overrides={MINI: UNLIMITED, PRO: UNLIMITED}, tracing=capture.tracing()
    )
    result = llm.complete(ask(150_000), max_tokens=1_000)
    spans = by_trace(capture.spans())[result.trace_id]
    (event,) = [span for span in spans if kind(span) == "event"]
    assert event.name == "context_length_fallback"
    meta = metadata(event)
    assert {
        key: meta[key]
        for key in (
            "original_model",
            "fallback_model",
            "estimated_tokens",
            "original_max_context",
            "fallback_max_context",
        )
    } == {
        "original_model": MINI,
        "fallback_model": PRO,
        "estimated_tokens": 151_000,
        "original_max_context": 128_000,
        "fallback_max_context": 1_048_576,
    }
    assert [kind(span) for span in spans].count("generation") == 1  # the skipped model got no call


def test_a_context_fallback_lands_on_a_model_the_request_fits(capture: SpanCapture) -> None:
    haiku = "anthropic/claude-3-5-haiku"
    llm, _, _ = simulated_llm(
        [MINI, haiku, LITE], overrides={m: UNLIMITED for m in (MINI, haiku, LITE)}, tracing=capture.tracing()
    )
    result = llm.complete(ask(180_000), max_tokens=1_000)
    spans = by_trace(capture.spans())[result.trace_id]
    (event,) = [span for span in spans if kind(span) == "event"]
    meta = metadata(event)
    # Claude's 200k window is too small with its tokenizer margin: it is skipped, not a fallback target.
    assert (event.name, meta["original_model"], meta["fallback_model"]) == (
        "context_length_fallback",
        MINI,
        LITE,
    )
    assert meta["fallback_max_context"] >= meta["estimated_tokens"] > meta["original_max_context"]


def test_a_rate_limited_primary_falls_back_past_a_model_too_small(capture: SpanCapture) -> None:
    haiku = "anthropic/claude-3-5-haiku"
    llm, _, _ = simulated_llm(
        [MINI, haiku, LITE],
        overrides={
            MINI: {"rpm": 1, "tpm": 0, "rpd": 0},
            haiku: UNLIMITED | {"max_input_tokens": 50_000},
            LITE: UNLIMITED,
        },
        tracing=capture.tracing(),
    )
    llm.complete(ask(1_000))  # uses the primary's one request this minute
    result = llm.complete(ask(60_000), max_tokens=1_000)  # fits the primary, not the shrunken Claude
    assert result.model == LITE
    spans = by_trace(capture.spans())[result.trace_id]
    events = [
        (span.name, metadata(span)["original_model"], metadata(span)["fallback_model"])
        for span in spans
        if kind(span) == "event"
    ]
    assert events == [("rate_limit_fallback", MINI, LITE)]


def test_a_request_no_model_fits_fails_without_fallback_events(capture: SpanCapture) -> None:
    llm, _, _ = simulated_llm(
        [MINI, LITE], overrides={MINI: UNLIMITED, LITE: UNLIMITED}, tracing=capture.tracing()
    )
    with pytest.raises(AllModelsFailed):
        llm.complete(ask(1_200_000))
    assert [kind(span) for span in capture.spans()] == ["span"]  # the root only, marked as an error
    assert llm.stats["context_length_fallbacks"] == llm.stats["fallback_requests"] == 0


def test_a_failed_call_is_an_error_generation(capture: SpanCapture) -> None:
    llm, _, _ = simulated_llm(
        [MINI, LITE],
        overrides={MINI: UNLIMITED, LITE: UNLIMITED},
        tracing=capture.tracing(),
        behaviours={MINI: Behaviour(latency=0.1, error_rate=1.0)},
    )
    result = llm.complete(ask())
    spans = by_trace(capture.spans())[result.trace_id]
    failed, served = sorted(
        (span for span in spans if kind(span) == "generation"), key=lambda s: s.start_time
    )
    assert failed.attributes["langfuse.observation.level"] == "ERROR"
    assert failed.attributes["langfuse.observation.status_message"].startswith("500 from openai/gpt-4o-mini")
    assert failed.status.status_code == StatusCode.ERROR
    assert metadata(failed)["cost_usd"] == 0
    assert json.loads(failed.attributes["langfuse.observation.usage_details"]) == {
        "input": 0,
        "output": 0,
        "total": 0,
    }
    assert "langfuse.observation.level" not in served.attributes
    (event,) = [span for span in spans if kind(span) == "event"]
    assert (event.name, metadata(event)["trigger"], metadata(event)["error_type"]) == (
        "rate_limit_fallback",
        "server_error",
        "ProviderServerError",
    )


def test_a_request_every_model_refuses_is_an_error_trace(capture: SpanCapture) -> None:
    llm, _, _ = simulated_llm([MINI], tracing=capture.tracing())
    with pytest.raises(AllModelsFailed):
        llm.complete(ask(200_000))
    (root,) = capture.spans()
    assert root.name == "autopicker.request"
    assert root.attributes["langfuse.observation.level"] == "ERROR"
    assert "all 1 candidate models failed" in root.attributes["langfuse.observation.status_message"]


def test_span_times_follow_the_injected_clock() -> None:
    clock = ManualClock(1_700_000_000.0)
    spans = SpanCapture()
    try:
        llm, _, _ = simulated_llm([MINI], clock=clock, tracing=spans.tracing(clock))
        llm.complete(ask())
        root = next(span for span in spans.spans() if span.parent is None)
        assert root.start_time == 1_700_000_000 * 10**9
        assert root.end_time == int(1_700_000_000.5 * 10**9)  # the simulated call's 0.5 s latency
    finally:
        spans.close()


def test_tracing_is_on_with_langfuse_keys_and_off_without(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in (
        "LANGFUSE_PUBLIC_KEY",
        "LANGFUSE_SECRET_KEY",
        "AUTOPICKER_TRACE_DIR",
        "LANGFUSE_TRACING_ENABLED",
    ):
        monkeypatch.delenv(name, raising=False)
    assert not Tracing.from_env().enabled
    assert AutoPickerLLM(["openai/gpt-4o-mini"]).tracing.enabled is False
    with OtlpReceiver() as receiver:
        public_key = f"pk-lf-{uuid.uuid4().hex[:12]}"
        monkeypatch.setenv("LANGFUSE_PUBLIC_KEY", public_key)
        monkeypatch.setenv("LANGFUSE_SECRET_KEY", "sk-lf-test")
        monkeypatch.setenv("LANGFUSE_BASE_URL", receiver.base_url)
        clock = ManualClock()
        llm = AutoPickerLLM(
            [MINI, LITE], provider=SimulatedProvider(clock=clock), clock=clock, overrides={MINI: {"rpm": 1}}
        )
        assert llm.tracing.enabled
        llm.complete(ask())
        llm.complete(ask())
        llm.tracing.shutdown()
        assert receiver.received.is_set()
    post = receiver.posts[0]
    assert post["path"] == "/api/public/otel/v1/traces"
    assert post["headers"]["authorization"].startswith("Basic ")
    assert post["headers"]["x-langfuse-public-key"] == public_key
    body = b"".join(p["body"] for p in receiver.posts)
    assert b"rate_limit_fallback" in body and b"autopicker.request" in body


@pytest.mark.parametrize("server", ["nothing listens", "never answers"])
def test_a_dead_or_silent_langfuse_never_blocks_a_request(server: str) -> None:
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    port = listener.getsockname()[1]
    if server == "nothing listens":
        listener.close()
    else:
        listener.listen(16)  # accepts connections into the backlog and never reads them
    tracing = Tracing.langfuse(
        public_key=unique_public_key("pk-lf-dead"),
        secret_key="sk-lf-test",
        base_url=f"http://127.0.0.1:{port}",
        timeout=1,
        flush_at=1,
    )
    try:
        clock = ManualClock()
        llm = AutoPickerLLM(
            [MINI, LITE],
            provider=SimulatedProvider(clock=clock),
            clock=clock,
            overrides={MINI: {"rpm": 2}},
            tracing=tracing,
        )
        assert llm.tracing.enabled
        with concurrent.futures.ThreadPoolExecutor(1) as pool:
            # The bound only catches a hang; no timing is asserted.
            results = pool.submit(lambda: [llm.complete(ask()) for _ in range(5)]).result(
                timeout=HANG_TIMEOUT
            )
        assert [result.model for result in results] == [MINI, MINI, LITE, LITE, LITE]
        assert all(result.trace_id for result in results)
    finally:
        # The exporter gives up after its timeout; shutting down here keeps its complaints in this test.
        tracing.shutdown()
        listener.close()
