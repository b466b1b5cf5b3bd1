"""Routing rules on the simulated provider and a manual clock: fallbacks, limits, waits, cool-downs."""

from __future__ import annotations

import asyncio
import re
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from router import AllModelsFailed, Behaviour, InProcessLimiter, Limits
from router.limits import day_bounds
from tests.support.router import START, ask, simulated_llm

MINI, LITE, PRO, HAIKU = (
    "openai/gpt-4o-mini",
    "gemini/gemini-2.5-flash-lite",
    "gemini/gemini-2.5-pro",
    "anthropic/claude-3-5-haiku",
)
UNLIMITED = {"rpm": 0, "tpm": 0, "rpd": 0, "input_tpm": 0, "output_tpm": 0}


def test_the_primary_serves_and_the_result_says_so() -> None:
    llm, provider, _ = simulated_llm([MINI, LITE])
    result = llm.complete(ask(1_000), max_tokens=100)
    assert (result.model, result.requested_model, result.fell_back) == (MINI, MINI, False)
    assert [(a.model, a.outcome) for a in result.attempts] == [(MINI, "success")]
    assert (result.usage.input_tokens, result.usage.output_tokens) == (1_000, 40)
    assert result.cost.total == pytest.approx(1_000 * 0.15e-6 + 40 * 0.6e-6)
    assert result.latency == pytest.approx(0.5)
    assert llm.stats["total_requests"] == 1 and llm.stats["fallback_rate"] == 0.0


def test_rpm_limit_falls_back_before_calling_and_frees_up_after_a_minute() -> None:
    llm, provider, clock = simulated_llm([MINI, LITE], overrides={MINI: {"rpm": 2}, LITE: UNLIMITED})
    served = [llm.complete(ask(), max_tokens=10).model for _ in range(3)]
    assert served == [MINI, MINI, LITE]
    third = llm.complete(ask(), max_tokens=10)
    skipped = third.attempts[0]
    assert (skipped.model, skipped.outcome, skipped.reason, skipped.limit) == (
        MINI,
        "skipped",
        "rate_limit",
        "rpm",
    )
    assert re.search(r"rpm limit reached, free in \d+\.\d s", skipped.error or "")
    assert provider.calls[MINI] == 2  # proactive: the refused requests never reached the provider
    clock.advance(61)
    assert llm.complete(ask(), max_tokens=10).model == MINI
    stats = llm.stats
    assert (stats["total_requests"], stats["fallback_requests"], stats["rate_limit_fallbacks"]) == (5, 2, 2)
    # The guide's Example 3: fallback_requests / total_requests * 100.
    assert stats["fallback_rate"] == pytest.approx(2 / 5 * 100)


def test_tpm_counts_the_estimate_plus_requested_output_and_reconciles_with_real_usage() -> None:
    llm, provider, clock = simulated_llm(
        [MINI, LITE], overrides={MINI: {"rpm": 0, "tpm": 3_000}, LITE: UNLIMITED}
    )
    # 1,000 prompt + 1,000 requested output reserved; the real answer is 40 tokens, so ~1,960 free again.
    assert llm.complete(ask(1_000), max_tokens=1_000).model == MINI
    assert llm.complete(ask(1_000), max_tokens=900).model == MINI
    refused = llm.complete(ask(1_000), max_tokens=1_000)
    assert refused.model == LITE and refused.attempts[0].limit == "tpm"


def test_a_provider_429_blocks_the_model_until_retry_after() -> None:
    # The catalog allows plenty, the provider only one request a minute: the router learns from its 429.
    llm, provider, clock = simulated_llm(
        [MINI, LITE],
        overrides={MINI: UNLIMITED, LITE: UNLIMITED},
        behaviours={
            MINI: Behaviour(latency=0.5, latency_spread=0, output_tokens=(40, 40), limits=Limits(rpm=1))
        },
    )
    assert llm.complete(ask()).model == MINI
    second = llm.complete(ask())
    assert second.model == LITE
    failed = second.attempts[0]
    assert (failed.outcome, failed.reason, failed.limit) == ("failed", "rate_limit", "429")
    assert provider.calls[MINI] == 2
    third = llm.complete(ask())
    assert third.model == LITE and third.attempts[0].outcome == "skipped"
    assert (
        provider.calls[MINI] == 2
    )  # blocked until Retry-After: no instant retry against the exhausted quota
    clock.advance(61)
    assert llm.complete(ask()).model == MINI


def test_max_wait_seconds_waits_for_the_primary_through_the_clock() -> None:
    llm, provider, clock = simulated_llm(
        [MINI, LITE], overrides={MINI: {"rpm": 1}, LITE: UNLIMITED}, max_wait_seconds=90
    )
    llm.complete(ask())
    before = clock.time()
    waited = llm.complete(ask())
    assert waited.model == MINI and not waited.fell_back
    assert waited.attempts[0].waited == pytest.approx(60 - 0.5, abs=0.01)
    assert clock.time() - before == pytest.approx(
        60.0, abs=0.01
    )  # waited on the injected clock, then answered
    assert llm.stats["waits_for_primary"] == 1

    impatient, _, _ = simulated_llm(
        [MINI, LITE], overrides={MINI: {"rpm": 1}, LITE: UNLIMITED}, max_wait_seconds=5
    )
    impatient.complete(ask())
    assert impatient.complete(ask()).model == LITE


def test_a_short_retry_after_on_the_primary_is_waited_out_within_max_wait() -> None:
    llm, provider, clock = simulated_llm(
        [MINI, LITE],
        overrides={MINI: UNLIMITED, LITE: UNLIMITED},
        max_wait_seconds=70,
        behaviours={
            MINI: Behaviour(latency=0.5, latency_spread=0, output_tokens=(40, 40), limits=Limits(rpm=1))
        },
    )
    llm.complete(ask())
    result = llm.complete(ask())
    assert result.model == MINI
    assert [(a.outcome, a.reason) for a in result.attempts] == [("failed", "rate_limit"), ("success", None)]
    assert llm.stats["rate_limit_fallbacks"] == 0


def test_a_model_that_keeps_failing_cools_down() -> None:
    llm, provider, clock = simulated_llm(
        [MINI, LITE],
        overrides={MINI: UNLIMITED, LITE: UNLIMITED},
        failure_threshold=3,
        cooldown_seconds=30,
        behaviours={MINI: Behaviour(latency=0.2, error_rate=1.0)},
    )
    for _ in range(3):
        result = llm.complete(ask())
        assert result.model == LITE and result.attempts[0].reason == "server_error"
    assert provider.calls[MINI] == 3
    cooled = llm.complete(ask())
    assert (cooled.attempts[0].outcome, cooled.attempts[0].reason) == ("skipped", "circuit_open")
    assert provider.calls[MINI] == 3  # no more time spent on the broken primary
    clock.advance(31)
    llm.complete(ask())
    assert provider.calls[MINI] == 4  # tried again after the cool-down


def test_context_check_covers_every_candidate_with_margins_and_output() -> None:
    llm, provider, _ = simulated_llm(
        [MINI, HAIKU, LITE], overrides={m: UNLIMITED for m in (MINI, HAIKU, LITE)}
    )
    result = llm.complete(ask(180_000), max_tokens=1_000)
    # 180k fits Claude's 200k window by the raw estimate, not with the 1.2 margin for a non-OpenAI tokenizer.
    assert result.model == LITE
    assert [(a.model, a.outcome, a.reason) for a in result.attempts] == [
        (MINI, "skipped", "context_length"),
        (HAIKU, "skipped", "context_length"),
        (LITE, "success", None),
    ]
    assert provider.calls.get(MINI) is None and provider.calls.get(HAIKU) is None
    # One fallback, from the primary to the model that fits: Claude, too small as well, is no hop of its own.
    assert llm.stats["context_length_fallbacks"] == 1
    # Requested output counts: 127,500 + 1,000 does not fit gpt-4o-mini's 128,000.
    assert llm.complete(ask(127_500), max_tokens=1_000).model == HAIKU
    assert llm.complete(ask(127_500), max_tokens=100).model == MINI
    # A max_tokens above the model's output maximum skips it too.
    too_long = llm.complete(ask(), max_tokens=20_000)
    assert too_long.model == LITE and "output tokens" in (too_long.attempts[0].error or "")


def test_a_provider_context_refusal_falls_back_as_a_context_length_fallback() -> None:
    llm, provider, _ = simulated_llm(
        [MINI, LITE],
        overrides={MINI: UNLIMITED, LITE: UNLIMITED},
        behaviours={MINI: Behaviour(latency=0.1, tokenizer_ratio=1.5)},
    )
    result = llm.complete(ask(100_000), max_tokens=100)
    assert result.model == LITE
    assert (result.attempts[0].outcome, result.attempts[0].reason) == ("failed", "context_length")
    assert llm.stats["context_length_fallbacks"] == 1


def test_cheapest_and_fastest_orders() -> None:
    cheapest, _, _ = simulated_llm(
        ["openai/gpt-4o", PRO, MINI],
        order="cheapest",
        overrides={m: UNLIMITED for m in ("openai/gpt-4o", PRO, MINI)},
    )
    assert cheapest.complete(ask()).model == MINI
    fastest, _, clock = simulated_llm(
        [PRO, LITE],
        order="fastest",
        overrides={PRO: UNLIMITED, LITE: UNLIMITED},
        behaviours={
            PRO: Behaviour(latency=3.0, latency_spread=0),
            LITE: Behaviour(latency=0.3, latency_spread=0),
        },
    )
    first = fastest.complete(ask()).model  # nothing observed yet: listed order
    assert first == PRO
    fastest.complete(ask(), models=[LITE])  # LITE's latency gets observed
    assert fastest.complete(ask()).model == LITE
    with pytest.raises(ValueError, match="unknown order"):
        simulated_llm([MINI], order="random")


def test_all_candidates_exhausted_is_one_exception_listing_every_attempt() -> None:
    llm, provider, _ = simulated_llm(
        [MINI, PRO],
        overrides={MINI: {"rpm": 1}, PRO: UNLIMITED},
        behaviours={PRO: Behaviour(latency=0.1, error_rate=1.0)},
    )
    llm.complete(ask(), models=[MINI])
    with pytest.raises(AllModelsFailed) as caught:
        llm.complete(ask())
    attempts = caught.value.attempts
    assert [(a.model, a.outcome, a.reason) for a in attempts] == [
        (MINI, "skipped", "rate_limit"),
        (PRO, "failed", "server_error"),
    ]
    assert "openai/gpt-4o-mini: skipped (rate_limit" in str(caught.value)
    assert "gemini/gemini-2.5-pro: failed (server_error: 500" in str(caught.value)
    stats = llm.stats
    assert (stats["failed_requests"], stats["fallback_requests"], stats["rate_limit_fallbacks"]) == (1, 1, 1)


def test_rolling_daily_limit() -> None:
    limiter = InProcessLimiter()
    limits = Limits(rpd=2)
    assert limiter.reserve("m/x", limits, 1, 1, START).granted
    assert limiter.reserve("m/x", limits, 1, 1, START + 3_600).granted
    refused = limiter.reserve("m/x", limits, 1, 1, START + 7_200)
    assert (refused.granted, refused.reason, refused.retry_at) == (False, "rpd", START + 86_400)
    assert limiter.reserve("m/x", limits, 1, 1, START + 86_400).granted


def test_gemini_daily_quota_resets_at_midnight_pacific() -> None:
    llm, provider, clock = simulated_llm([PRO], overrides={PRO: {"rpm": 0, "tpm": 0, "rpd": 2}})
    pacific = ZoneInfo("America/Los_Angeles")
    _, midnight = day_bounds(START, "America/Los_Angeles")
    clock.set(midnight - 120)  # 23:58 in Los Angeles
    llm.complete(ask())
    llm.complete(ask())
    with pytest.raises(AllModelsFailed, match="rpd limit reached") as caught:
        llm.complete(ask())
    assert caught.value.attempts[0].limit == "rpd"
    from datetime import datetime

    assert datetime.fromtimestamp(midnight, pacific).strftime("%H:%M") == "00:00"
    clock.set(
        midnight + 1
    )  # one second into the new Pacific day: a fresh quota, not 24 h after the first call
    assert llm.complete(ask()).model == PRO


def test_async_twin_routes_the_same_way() -> None:
    def scenario(use_async: bool) -> list[tuple[str, list[tuple[str, str, str | None]]]]:
        llm, _, clock = simulated_llm(
            [MINI, HAIKU, LITE],
            overrides={MINI: {"rpm": 2}, HAIKU: UNLIMITED, LITE: UNLIMITED},
            max_wait_seconds=1,
            behaviours={HAIKU: Behaviour(latency=0.1, error_rate=1.0)},
        )
        prompts = [ask(), ask(), ask(150_000), ask(), ask(300_000)]

        async def run_async() -> list:
            return [await llm.acomplete(p, max_tokens=50) for p in prompts]

        results = asyncio.run(run_async()) if use_async else [llm.complete(p, max_tokens=50) for p in prompts]
        return [(r.model, [(a.model, a.outcome, a.reason) for a in r.attempts]) for r in results]

    sync, asynchronous = scenario(False), scenario(True)
    assert sync == asynchronous
    assert {model for model, _ in sync} == {MINI, LITE}


def test_the_sync_dispatch_loop_mirrors_the_async_one_line_for_line() -> None:
    source = Path(__file__).resolve().parents[2] / "router"
    body = lambda text: text.split('"""', 2)[2]  # noqa: E731 - everything after the module docstring
    async_body = body((source / "dispatch_async.py").read_text())
    expected = re.sub(r"\.a(reserve|reconcile|block|complete)\(", r".\1(", async_body)
    expected = expected.replace(".asleep(", ".sleep(").replace("async def ", "def ").replace("await ", "")
    assert body((source / "dispatch.py").read_text()) == expected


def test_router_arguments_are_checked() -> None:
    llm, _, _ = simulated_llm([MINI])
    with pytest.raises(TypeError, match="models="):
        llm.complete(ask(), model=MINI)
    with pytest.raises(ValueError, match="max_wait_seconds"):
        simulated_llm([MINI], max_wait_seconds=-1)
