"""The Redis limiter: atomic shared windows against the real Redis at REDIS_URL, also across processes."""

from __future__ import annotations

import asyncio
import multiprocessing
import time
from collections.abc import Iterator

import pytest
import redis

from router import Limits, ManualClock
from router.limits_redis import RedisLimiter
from tests.support.cli import HANG_TIMEOUT
from tests.support.router import START, ask, redis_test_prefix, simulated_llm
from tests.support.router_workers import send_requests

MODEL = "openai/gpt-4o-mini"


@pytest.fixture
def redis_prefix() -> Iterator[tuple[str, str]]:
    """The Redis at REDIS_URL and a key prefix of this test's own (skips, or fails under REQUIRE_REDIS=1)."""
    yield from redis_test_prefix()


def test_sliding_windows_block_and_reconcile(redis_prefix: tuple[str, str]) -> None:
    url, prefix = redis_prefix
    limiter = RedisLimiter(url, prefix=prefix)
    limits = Limits(rpm=3, tpm=1_000)
    granted = [limiter.reserve(MODEL, limits, 100, 100, START + i) for i in range(3)]
    assert all(decision.granted for decision in granted)
    refused = limiter.reserve(MODEL, limits, 100, 100, START + 3)
    assert (refused.granted, refused.reason, refused.retry_at) == (False, "rpm", START + 60)
    too_big = limiter.reserve(MODEL, Limits(tpm=1_000), 2_000, 0, START + 3)
    assert (too_big.granted, too_big.reason, too_big.retry_at) == (False, "tpm", float("inf"))

    # Real usage replaces the estimate: 3 x 200 reserved, then reconciled to 3 x 20.
    for decision in granted:
        limiter.reconcile(decision.reservation, 10, 10)
    assert limiter.reserve(MODEL, Limits(tpm=1_000), 900, 0, START + 4).granted

    assert limiter.reserve(MODEL, limits, 1, 1, START + 61).granted  # the first requests left the window
    limiter.block(MODEL, START + 100)
    blocked = limiter.reserve(MODEL, Limits(), 1, 1, START + 70)
    assert (blocked.granted, blocked.reason, blocked.retry_at) == (False, "blocked", START + 100)
    assert limiter.reserve(MODEL, Limits(), 1, 1, START + 100).granted
    limiter.close()


def test_calendar_day_quota_in_redis(redis_prefix: tuple[str, str]) -> None:
    url, prefix = redis_prefix
    from router.limits import day_bounds

    limiter = RedisLimiter(url, prefix=prefix)
    limits = Limits(rpd=1, daily_reset_timezone="America/Los_Angeles")
    _, midnight = day_bounds(START, "America/Los_Angeles")
    assert limiter.reserve(MODEL, limits, 1, 1, midnight - 10).granted
    refused = limiter.reserve(MODEL, limits, 1, 1, midnight - 5)
    assert (refused.reason, refused.retry_at) == ("rpd", midnight)
    assert limiter.reserve(MODEL, limits, 1, 1, midnight + 1).granted
    limiter.close()


def test_two_routers_share_one_budget(redis_prefix: tuple[str, str]) -> None:
    url, prefix = redis_prefix
    clock = ManualClock(START)
    replicas = [
        simulated_llm(
            [MODEL, "gemini/gemini-2.5-flash-lite"],
            clock=clock,
            limiter=RedisLimiter(url, prefix=prefix),
            overrides={MODEL: {"rpm": 3}},
        )[0]
        for _ in range(2)
    ]
    served = [replicas[i % 2].complete(ask(), max_tokens=10).model for i in range(5)]
    assert served.count(MODEL) == 3  # not 3 per replica


def test_the_async_path_uses_the_same_windows(redis_prefix: tuple[str, str]) -> None:
    url, prefix = redis_prefix
    limiter = RedisLimiter(url, prefix=prefix)
    llm, _, _ = simulated_llm(
        [MODEL, "gemini/gemini-2.5-flash-lite"], limiter=limiter, overrides={MODEL: {"rpm": 2}}
    )

    async def go() -> list[str]:
        models = [(await llm.acomplete(ask(), max_tokens=10)).model for _ in range(3)]
        await limiter.aclose()
        return models

    assert asyncio.run(go()) == [MODEL, MODEL, "gemini/gemini-2.5-flash-lite"]
    assert (
        llm.complete(ask(), max_tokens=10).model == "gemini/gemini-2.5-flash-lite"
    )  # sync sees the same state


def test_keys_are_namespaced_and_expire(redis_prefix: tuple[str, str]) -> None:
    url, prefix = redis_prefix
    limiter = RedisLimiter(url, prefix=prefix)
    limiter.reserve(MODEL, Limits(rpm=5), 1, 1, START)
    client = redis.Redis.from_url(url)
    keys = list(client.scan_iter(match=f"{prefix}*"))
    assert keys and all(key.decode().startswith(f"{prefix}{{{MODEL}}}:") for key in keys)
    assert all(0 < client.ttl(key) <= 2 * 86_400 for key in keys)
    client.close()
    limiter.close()


def test_an_unreachable_redis_lets_requests_through(caplog: pytest.LogCaptureFixture) -> None:
    limiter = RedisLimiter("redis://127.0.0.1:1/0")
    decision = limiter.reserve(MODEL, Limits(rpm=1), 1, 1, START)
    assert decision.granted
    assert "rate limits are not enforced" in caplog.text


@pytest.mark.parametrize(
    ("limit", "cap"), [({"rpm": 25, "tpm": 0}, "rpm"), ({"rpm": 0, "tpm": 9_000}, "tpm")]
)
def test_replicas_in_several_processes_never_exceed_the_shared_limit(
    redis_prefix: tuple[str, str], limit: dict[str, int], cap: str
) -> None:
    url, prefix = redis_prefix
    context = multiprocessing.get_context("spawn")
    workers, per_worker = 4, 20
    barrier = context.Barrier(workers)
    results = context.Queue()
    overrides = {"rpd": 0, **limit}
    processes = [
        context.Process(
            target=send_requests, args=(url, prefix, time.time(), per_worker, overrides, barrier, results)
        )
        for _ in range(workers)
    ]
    for process in processes:
        process.start()
    outcomes = [results.get(timeout=HANG_TIMEOUT) for _ in processes]
    for process in processes:
        process.join(HANG_TIMEOUT)
        assert process.exitcode == 0
    served = [tokens for worker_served, _ in outcomes for tokens in worker_served]
    refused = sum(worker_refused for _, worker_refused in outcomes)
    assert len(served) + refused == workers * per_worker
    if cap == "rpm":
        assert len(served) == 25  # exactly the shared budget: no replica got a private one
    else:
        # Each request reserves ~400 tokens (300 prompt + 100 requested output) and really uses ~350.
        assert sum(served) <= 9_000
        assert len(served) >= 9_000 // 410
    assert refused > 0
