"""A simulated provider: seeded, deterministic model behaviour on an injected clock, with real limits.

Each model gets a :class:`Behaviour`: latency (log-normal around a median), the chance of a 500 or a timeout,
how its tokenizer compares with the router's estimate, how long its answers are, and the quota the "provider"
enforces (by default the catalog's). Past that quota it answers 429 with the wait until capacity frees up,
like a real provider; a prompt longer than the window gets a context-length error. Time passes by sleeping on
the clock, so on a :class:`~autopicker.clock.ManualClock` a simulated minute costs nothing. The same seed and
the same sequence of calls give the same answers, usage, errors and latencies.
"""

from __future__ import annotations

import math
import random
import threading
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from autopicker.clock import Clock, SystemClock

from .catalog import Limits, ModelSpec
from .errors import (
    ProviderContextLength,
    ProviderError,
    ProviderRateLimited,
    ProviderServerError,
    ProviderTimeout,
)
from .limits import InProcessLimiter
from .provider import Messages, ProviderResponse, Usage
from .tokens import prompt_tokens


@dataclass(frozen=True, slots=True)
class Behaviour:
    """How one simulated model behaves."""

    #: Median seconds per answer, and the log-normal spread around it.
    latency: float = 0.8
    latency_spread: float = 0.4
    #: Chance that a call fails with a 500, or hangs until ``timeout`` seconds and times out.
    error_rate: float = 0.0
    timeout_rate: float = 0.0
    timeout: float = 30.0
    #: True token count divided by the router's OpenAI-style estimate (Gemini's tokenizer is not OpenAI's).
    tokenizer_ratio: float = 1.0
    #: Range of answer lengths in tokens (capped by the request's max_tokens).
    output_tokens: tuple[int, int] = (20, 600)
    #: The quota the provider enforces; ``None`` means the catalog's limits for the model.
    limits: Limits | None = None


INSTANT = Behaviour(latency=0.0, latency_spread=0.0, output_tokens=(50, 50), limits=Limits())


class SimulatedProvider:
    """Answers chat requests for any catalog model without a network."""

    def __init__(
        self,
        *,
        seed: int = 0,
        clock: Clock | None = None,
        behaviours: Mapping[str, Behaviour] | None = None,
        default: Behaviour | None = None,
    ) -> None:
        self.clock = clock or SystemClock()
        self.behaviours = dict(behaviours or {})
        self.default = default or Behaviour()
        self.calls: dict[str, int] = {}
        self._random = random.Random(seed)
        self._quota = InProcessLimiter()
        self._lock = threading.Lock()

    def behaviour(self, model: str) -> Behaviour:
        """The behaviour of ``model``."""
        return self.behaviours.get(model, self.default)

    def _decide(
        self, model: ModelSpec, messages: Messages, params: Mapping[str, Any]
    ) -> tuple[float, ProviderResponse | ProviderError]:
        """How long the call takes and how it ends; all randomness is drawn here, under one lock."""
        behaviour = self.behaviour(model.name)
        now = self.clock.time()
        estimate = prompt_tokens(messages)
        true_input = (
            estimate if behaviour.tokenizer_ratio == 1.0 else math.ceil(estimate * behaviour.tokenizer_ratio)
        )
        max_tokens = int(params.get("max_tokens") or params.get("max_completion_tokens") or 0)
        with self._lock:
            self.calls[model.name] = self.calls.get(model.name, 0) + 1
            rng = self._random
            draw = rng.random()
            latency = behaviour.latency
            if behaviour.latency_spread and latency:
                latency *= math.exp(rng.gauss(0.0, behaviour.latency_spread))
            low, high = behaviour.output_tokens
            output = low if high <= low else rng.randint(low, high)
        if max_tokens:
            output = min(output, max_tokens)
        if true_input + max_tokens > model.max_input_tokens:
            return 0.05, ProviderContextLength(
                f"400 from {model.name}: This model's maximum context length is "
                f"{model.max_input_tokens} tokens; "
                f"the request has {true_input + max_tokens}",
                status=400,
            )
        limits = behaviour.limits if behaviour.limits is not None else model.limits
        if not limits.unlimited:
            decision = self._quota.reserve(model.name, limits, true_input, max_tokens or output, now)
            if not decision.granted:
                wait = max(decision.retry_at - now, 0.0) if decision.retry_at != math.inf else 60.0
                return 0.02, ProviderRateLimited(
                    f"429 from {model.name}: rate limit reached ({decision.reason})",
                    retry_after=round(wait, 3),
                )
            self._quota.reconcile(decision.reservation, true_input, output)
        if draw < behaviour.error_rate:
            return min(latency, 1.0), ProviderServerError(
                f"500 from {model.name}: internal error", status=500
            )
        if draw < behaviour.error_rate + behaviour.timeout_rate:
            return behaviour.timeout, ProviderTimeout(f"{model.name} did not answer in time")
        return latency, ProviderResponse(
            text=f"Simulated answer from {model.name} ({output} tokens).",
            usage=Usage(true_input, output),
            finish_reason="stop",
            time_to_first_token=latency * 0.3 if latency else None,
        )

    def complete(self, model: ModelSpec, messages: Messages, params: Mapping[str, Any]) -> ProviderResponse:
        """One simulated call: sleep on the clock for its latency, then answer or raise."""
        delay, outcome = self._decide(model, messages, params)
        if delay:
            self.clock.sleep(delay)
        if isinstance(outcome, ProviderError):
            raise outcome
        return outcome

    async def acomplete(
        self, model: ModelSpec, messages: Messages, params: Mapping[str, Any]
    ) -> ProviderResponse:
        """Async twin of :meth:`complete`."""
        delay, outcome = self._decide(model, messages, params)
        if delay:
            await self.clock.asleep(delay)
        if isinstance(outcome, ProviderError):
            raise outcome
        return outcome
