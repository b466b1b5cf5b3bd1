"""A worker process for the shared-limiter test: one router replica sending through a Redis limiter."""

from __future__ import annotations

from typing import Any

from tests.support.cli import HANG_TIMEOUT


def send_requests(
    url: str, prefix: str, start: float, requests: int, overrides: dict[str, Any], barrier: Any, results: Any
) -> None:
    """Wait for the other replicas, send ``requests`` requests at once, report what was served."""
    from router import AllModelsFailed, AutoPickerLLM, Catalog, ManualClock, SimulatedProvider
    from router.limits_redis import RedisLimiter
    from router.simulated import INSTANT

    model = "openai/gpt-4o-mini"
    clock = ManualClock(start)
    limiter = RedisLimiter(url, prefix=prefix)
    llm = AutoPickerLLM(
        [model],
        catalog=Catalog.load(overrides={model: overrides}, use_env=False),
        provider=SimulatedProvider(clock=clock, default=INSTANT),
        limiter=limiter,
        clock=clock,
        tracing=False,
    )
    served: list[int] = []
    refused = 0
    barrier.wait(HANG_TIMEOUT)
    for _ in range(requests):
        try:
            result = llm.complete([{"role": "user", "content": "abcd" * 300}], max_tokens=100)
            served.append(result.usage.total_tokens)
        except AllModelsFailed:
            refused += 1
    limiter.close()
    results.put((served, refused))
