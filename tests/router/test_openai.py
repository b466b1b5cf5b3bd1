"""The OpenAI-compatible provider, through the official ``openai`` SDK, against a local test server."""

from __future__ import annotations

import asyncio

import pytest

from autopicker.durations import duration_seconds
from autopicker.retry_after import retry_after
from router import (
    AllModelsFailed,
    AutoPickerLLM,
    Catalog,
    ManualClock,
    ProviderNotConfigured,
    ProviderRateLimited,
)
from router.openai_provider import OpenAICompatibleProvider, exhausted_until
from tests.support.router import START, ask
from tests.support.router_servers import (
    OpenAICompatibleServer,
    Reply,
    context_too_long,
    hanging,
    ok,
    rate_limited,
    server_error,
)

MINI, LITE = "openai/gpt-4o-mini", "gemini/gemini-2.5-flash-lite"


@pytest.fixture
def server():  # noqa: ANN201
    with OpenAICompatibleServer() as running:
        yield running


def router_for(
    server: OpenAICompatibleServer, clock: ManualClock | None = None, timeout: float = 5.0, **options
) -> AutoPickerLLM:  # noqa: ANN003
    clock = clock or ManualClock(START)
    provider = OpenAICompatibleProvider(
        timeout=timeout,
        api_keys={"openai": "sk-test", "gemini": "g-test"},
        api_bases={"openai": server.base_url, "gemini": server.base_url},
        clock=clock,
    )
    return AutoPickerLLM(
        [MINI, LITE],
        catalog=Catalog.load(use_env=False),
        provider=provider,
        clock=clock,
        tracing=False,
        **options,
    )


def test_an_openai_shaped_answer_is_read_with_usage_and_cost(server: OpenAICompatibleServer) -> None:
    server.script("gpt-4o-mini", ok("Paris.", prompt_tokens=20, completion_tokens=3, cached_tokens=8))
    llm = router_for(server)
    result = llm.complete([{"role": "user", "content": "Capital of France?"}], max_tokens=10, temperature=0)
    assert (result.answer, result.model, result.finish_reason) == ("Paris.", MINI, "stop")
    assert (result.usage.input_tokens, result.usage.output_tokens, result.usage.cached_input_tokens) == (
        20,
        3,
        8,
    )
    assert result.cost.total == pytest.approx(12 * 0.15e-6 + 8 * 0.075e-6 + 3 * 0.6e-6)
    (request,) = server.requests
    assert request["body"]["model"] == "gpt-4o-mini"  # the catalog's api_model, not the router's name
    assert request["body"]["max_tokens"] == 10 and request["body"]["temperature"] == 0
    assert request["headers"]["authorization"] == "Bearer sk-test"


def test_a_429_falls_back_at_once_without_sdk_retries(server: OpenAICompatibleServer) -> None:
    server.script("gpt-4o-mini", rate_limited("7"))
    clock = ManualClock(START)
    llm = router_for(server, clock)
    result = llm.complete(ask(), max_tokens=10)
    assert result.model == LITE
    assert (result.attempts[0].reason, result.attempts[0].limit) == ("rate_limit", "429")
    assert server.calls("gpt-4o-mini") == 1  # max_retries=0: one request, then the fallback
    llm.complete(ask(), max_tokens=10)
    assert server.calls("gpt-4o-mini") == 1  # blocked for Retry-After's 7 s
    clock.advance(7.5)
    assert llm.complete(ask(), max_tokens=10).model == MINI


def test_a_429_with_a_short_retry_after_is_waited_out_for_the_primary(server: OpenAICompatibleServer) -> None:
    server.script("gpt-4o-mini", rate_limited(None, retry_after_ms="1500"))
    clock = ManualClock(START)
    result = router_for(server, clock, max_wait_seconds=2).complete(ask(), max_tokens=10)
    assert result.model == MINI and server.calls("gpt-4o-mini") == 2
    assert clock.time() == pytest.approx(START + 1.5, abs=0.01)


def test_server_errors_fall_back_and_open_the_circuit(server: OpenAICompatibleServer) -> None:
    server.script("gpt-4o-mini", server_error(500), server_error(502), server_error(503))
    llm = router_for(server, failure_threshold=3)
    for _ in range(3):
        result = llm.complete(ask(), max_tokens=10)
        assert result.model == LITE and result.attempts[0].reason == "server_error"
    result = llm.complete(ask(), max_tokens=10)
    assert result.attempts[0].reason == "circuit_open"
    assert server.calls("gpt-4o-mini") == 3


def test_a_slow_answer_times_out_and_falls_back(server: OpenAICompatibleServer) -> None:
    server.script("gpt-4o-mini", hanging())
    result = router_for(server, timeout=0.5).complete(ask(), max_tokens=10)
    assert result.model == LITE
    assert (result.attempts[0].outcome, result.attempts[0].reason) == ("failed", "timeout")


def test_a_context_length_error_is_a_context_length_fallback(server: OpenAICompatibleServer) -> None:
    server.script("gpt-4o-mini", context_too_long())
    llm = router_for(server)
    result = llm.complete(ask(), max_tokens=10)
    assert result.model == LITE and result.attempts[0].reason == "context_length"
    assert llm.stats["context_length_fallbacks"] == 1


def test_other_client_errors_are_reported(server: OpenAICompatibleServer) -> None:
    server.script("gpt-4o-mini", Reply(status=401, error={"message": "Incorrect API key provided"}))
    server.script("gemini-2.5-flash-lite", Reply(status=404, error={"message": "model not found"}))
    with pytest.raises(AllModelsFailed) as caught:
        router_for(server).complete(ask(), max_tokens=10)
    assert [(a.reason, a.error) for a in caught.value.attempts] == [
        ("bad_request", "401 from openai/gpt-4o-mini: Incorrect API key provided"),
        ("bad_request", "404 from gemini/gemini-2.5-flash-lite: model not found"),
    ]


def test_exhausted_remaining_requests_header_stops_sending_before_a_429(
    server: OpenAICompatibleServer,
) -> None:
    server.script(
        "gpt-4o-mini",
        ok(headers={"x-ratelimit-remaining-requests": "0", "x-ratelimit-reset-requests": "6m0s"}),
    )
    clock = ManualClock(START)
    llm = router_for(server, clock)
    assert llm.complete(ask(), max_tokens=10).model == MINI
    assert llm.complete(ask(), max_tokens=10).model == LITE
    assert server.calls("gpt-4o-mini") == 1
    clock.advance(361)
    assert llm.complete(ask(), max_tokens=10).model == MINI


def test_the_async_twin_against_the_same_server(server: OpenAICompatibleServer) -> None:
    server.script("gpt-4o-mini", rate_limited("3"), ok("later"))
    server.script("gemini-2.5-flash-lite", ok("from gemini"))
    llm = router_for(server)

    async def go() -> list[str]:
        first = await llm.acomplete(ask(), max_tokens=10)
        await llm.provider.aclose()  # type: ignore[attr-defined]
        return [first.model, first.answer]

    assert asyncio.run(go()) == [LITE, "from gemini"]
    assert server.calls("gpt-4o-mini") == 1


def test_missing_keys_are_not_configured() -> None:
    provider = OpenAICompatibleProvider(api_keys={})
    spec = Catalog.load(use_env=False).get(MINI)
    import os

    if not os.environ.get("OPENAI_API_KEY"):
        assert not provider.configured(spec)
        with pytest.raises(ProviderNotConfigured, match="set OPENAI_API_KEY"):
            provider.complete(spec, ask(), {})


@pytest.mark.parametrize(
    ("text", "seconds"),
    [
        ("20", 20.0),
        ("1.5s", 1.5),
        ("6m0s", 360.0),
        ("20ms", 0.02),
        ("1h2m3s", 3723.0),
        ("soon", None),
        (None, None),
    ],
)
def test_reset_durations(text: str | None, seconds: float | None) -> None:
    assert duration_seconds(text) == (pytest.approx(seconds) if seconds is not None else None)


def test_retry_after_headers() -> None:
    assert retry_after({"retry-after": "Wed, 21 Oct 2015 07:28:10 GMT"}, 1445412480.0) == pytest.approx(10.0)
    assert retry_after({"x-ratelimit-reset-requests": "2s", "x-ratelimit-reset-tokens": "30s"}, 0) == 30.0
    assert retry_after({"anthropic-ratelimit-requests-reset": "2015-10-21T07:28:30Z"}, 1445412480.0) == 30.0
    assert retry_after({}, 0) is None
    assert (
        exhausted_until({"x-ratelimit-remaining-tokens": "0", "x-ratelimit-reset-tokens": "15s"}, 100.0)
        == 115.0
    )
    assert exhausted_until({"x-ratelimit-remaining-requests": "12"}, 100.0) is None
    assert ProviderRateLimited("x", retry_after=3).reason == "rate_limit"
