"""The traffic ``autopicker simulate`` replays: who asks what, how big, and when.

A seeded mix over the last D days: steady background traffic that follows the working day, with prompts from
a few dozen tokens to several hundred thousand (and a rare one beyond every model's window), plus batch-job
bursts packed into one minute: many tiny requests past the primary's requests per minute, or fewer larger
ones past its tokens per minute. The same seed gives the same workload for the same time window.
"""

from __future__ import annotations

import random
from collections.abc import Iterator
from dataclasses import dataclass

#: Relative request volume per UTC hour: quiet nights, busy working hours.
_HOURLY = (1, 1, 1, 1, 1, 2, 3, 5, 8, 10, 10, 9, 8, 9, 10, 10, 9, 7, 5, 4, 3, 2, 2, 1)
#: (weight, smallest, largest) prompt sizes in tokens for background requests.
_PROMPT_SIZES = (
    (0.62, 40, 2_000),
    (0.22, 2_000, 30_000),
    (0.10, 30_000, 120_000),
    (0.045, 130_000, 200_000),
    (0.010, 220_000, 600_000),
    (0.005, 1_100_000, 1_400_000),
)
#: Burst sizes: past gpt-4o-mini's 500 requests a minute, and past its 200,000 tokens a minute.
_RPM_BURST = (520, 620)
_TPM_BURST = (100, 300)
_PROMPT_SIZE_WEIGHTS = tuple((weight, index) for index, (weight, _, _) in enumerate(_PROMPT_SIZES))
_MAX_TOKENS = ((0.35, 256), (0.35, 512), (0.2, 1024), (0.1, 2048))


@dataclass(frozen=True, slots=True)
class SimulatedRequest:
    """One request of the workload."""

    at: float
    prompt_tokens: int
    max_tokens: int
    user_id: str
    session_id: str
    burst: bool = False

    def messages(self) -> list[dict[str, str]]:
        """Chat messages whose estimated size is ``prompt_tokens`` (four ASCII characters per token)."""
        body_tokens = max(self.prompt_tokens - 20, 1)
        return [
            {"role": "system", "content": "You are a helpful assistant."},
            {"role": "user", "content": "lore" * body_tokens},
        ]


def _weighted(rng: random.Random, table: tuple[tuple[float, int], ...]) -> int:
    return rng.choices([value for _, value in table], weights=[weight for weight, _ in table])[0]


def generate(
    requests: int,
    seed: int,
    start: float,
    end: float,
    burst_share: float = 0.35,
) -> Iterator[SimulatedRequest]:
    """``requests`` requests between ``start`` and ``end`` (epoch seconds), in time order."""
    rng = random.Random(seed)
    span = end - start
    days = max(int(span // 86_400), 1)
    planned: list[SimulatedRequest] = []

    bursts_total = int(requests * burst_share)
    many_small = True
    while bursts_total > 0:
        # Bursts alternate between many tiny requests (past the primary's requests per minute) and fewer
        # larger ones (past its tokens per minute); the former need a share large enough to exceed the RPM.
        if many_small and bursts_total >= _RPM_BURST[0]:
            size, prompt, max_tokens = min(rng.randint(*_RPM_BURST), bursts_total), (60, 200), 64
        else:
            size, prompt, max_tokens = min(rng.randint(*_TPM_BURST), bursts_total), (800, 3_000), 1_024
        many_small = not many_small
        bursts_total -= size
        begin = start + rng.random() * max(span - 120.0, 1.0)
        user = f"batch-{rng.randint(1, 3)}"
        for _ in range(size):
            planned.append(
                SimulatedRequest(
                    at=begin + rng.random() * 55.0,
                    prompt_tokens=rng.randint(*prompt),
                    max_tokens=max_tokens,
                    user_id=user,
                    session_id=f"{user}-{int(begin)}",
                    burst=True,
                )
            )

    hours = list(range(24))
    for _ in range(requests - len(planned)):
        day = rng.randrange(days)
        hour = rng.choices(hours, weights=_HOURLY)[0]
        at = start + day * 86_400 + hour * 3_600 + rng.random() * 3_600
        if at >= end:
            at = start + rng.random() * span
        _, low, high = _PROMPT_SIZES[_weighted(rng, _PROMPT_SIZE_WEIGHTS)]
        person = rng.randint(1, 40)
        planned.append(
            SimulatedRequest(
                at=at,
                prompt_tokens=rng.randint(low, high),
                max_tokens=_weighted(rng, _MAX_TOKENS),
                user_id=f"user-{person}",
                session_id=f"user-{person}-{int(at // 3_600)}",
            )
        )

    planned.sort(key=lambda request: request.at)
    return iter(planned)
