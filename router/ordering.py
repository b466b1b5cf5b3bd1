"""The order in which a request's candidate models are tried.

``listed`` keeps the user's order; ``cheapest`` sorts by this request's expected price (its estimated input
tokens and requested output at each model's prices, above-200k tiers included); ``fastest`` sorts by observed
latency, an exponentially weighted moving average per model kept in this process. A model never observed
counts as fastest so that it gets measured; ties keep the listed order.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from typing import Literal

from .catalog import ModelSpec

Order = Literal["listed", "cheapest", "fastest"]
ORDERS: tuple[str, ...] = ("listed", "cheapest", "fastest")


class LatencyTracker:
    """Moving average of each model's successful-call latency, in seconds."""

    def __init__(self, alpha: float = 0.2) -> None:
        self.alpha = alpha
        self._average: dict[str, float] = {}
        self._lock = threading.Lock()

    def observe(self, model: str, seconds: float) -> None:
        """Fold one latency into the model's average."""
        with self._lock:
            previous = self._average.get(model)
            self._average[model] = (
                seconds if previous is None else previous + self.alpha * (seconds - previous)
            )

    def get(self, model: str) -> float | None:
        """The model's average latency, or ``None`` before its first success."""
        return self._average.get(model)


def order_candidates(
    specs: Sequence[ModelSpec], order: str, input_tokens: int, output_tokens: int, latency: LatencyTracker
) -> Sequence[ModelSpec]:
    """``specs`` in the order this request tries them."""
    if order == "listed" or len(specs) < 2:
        return specs
    if order == "cheapest":
        return sorted(specs, key=lambda spec: spec.estimated_cost(input_tokens, output_tokens))
    if order == "fastest":
        return sorted(specs, key=lambda spec: latency.get(spec.name) or 0.0)
    raise ValueError(f"unknown order {order!r}; use one of {', '.join(ORDERS)}")
