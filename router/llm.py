"""AutoPickerLLM: the router's front door.

``complete(messages, **params)`` (and its async twin ``acomplete``) sends a chat request to the first
candidate model that can take it and returns a :class:`~router.routing.Completion`: the answer, the model
that actually served, usage, cost, and every attempt with its reason. ``stats`` counts requests and
fallbacks. Everything a request touches is injected (catalog, provider, limiter, clock, tracing) and defaults
to the production choice: the shipped catalog, the OpenAI-compatible provider, in-process limits (Redis with
``AUTOPICKER_REDIS_URL``), the system clock, and Langfuse when its keys are set.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping, Sequence
from types import TracebackType
from typing import TYPE_CHECKING, Any

from autopicker.clock import Clock, SystemClock

from . import dispatch, dispatch_async
from .breaker import CircuitBreaker
from .catalog import Catalog, ModelSpec
from .limits import InProcessLimiter, Limiter
from .ordering import ORDERS, LatencyTracker
from .provider import Messages, Provider
from .routing import Completion, RouterCore, Stats
from .tokens import TokenCounter
from .tracing import Tracing

if TYPE_CHECKING:
    from langfuse import Langfuse

logger = logging.getLogger(__name__)

#: The Fallback Tracking guide's chain: a cheap primary, a cheap large-window fallback, and a large-window
#: strong model.
DEFAULT_MODELS = ("openai/gpt-4o-mini", "gemini/gemini-2.5-flash-lite", "gemini/gemini-2.5-pro")
REDIS_URL_ENV = "AUTOPICKER_REDIS_URL"
#: Keyword arguments of ``complete`` that steer the router instead of going to the provider.
_ROUTER_KEYS = ("models", "user_id", "session_id", "tags")


class AutoPickerLLM:
    """An LLM client that falls back between models on rate limits, errors and context length."""

    def __init__(
        self,
        models: Sequence[str] = DEFAULT_MODELS,
        *,
        catalog: Catalog | str | os.PathLike[str] | None = None,
        overrides: Mapping[str, Mapping[str, Any]] | None = None,
        tiers: Mapping[str, str] | None = None,
        provider: Provider | None = None,
        limiter: Limiter | str | None = None,
        order: str = "listed",
        max_wait_seconds: float = 0.0,
        failure_threshold: int = 3,
        cooldown_seconds: float = 30.0,
        tracing: Tracing | Langfuse | bool | None = None,
        capture_content: bool = True,
        clock: Clock | None = None,
        token_counter: TokenCounter | None = None,
        timeout: float = 60.0,
    ) -> None:
        if order not in ORDERS:
            raise ValueError(f"unknown order {order!r}; use one of {', '.join(ORDERS)}")
        if max_wait_seconds < 0:
            raise ValueError("max_wait_seconds must not be negative")
        if not models:
            raise ValueError("give at least one model")
        clock = clock or SystemClock()
        if not isinstance(catalog, Catalog):
            catalog = Catalog.load(catalog, overrides=overrides, tiers=tiers)
        elif overrides or tiers:
            raise ValueError(
                "overrides and tiers apply when the catalog is loaded; pass them to Catalog.load"
            )
        self.catalog = catalog
        self._core = RouterCore(
            catalog=catalog,
            models=catalog.resolve(models),
            provider=provider if provider is not None else _default_provider(timeout, clock),
            limiter=_limiter(limiter),
            breaker=CircuitBreaker(failure_threshold, cooldown_seconds),
            latency=LatencyTracker(),
            stats=Stats(),
            tracing=_tracing(tracing, clock, capture_content),
            clock=clock,
            order=order,
            max_wait_seconds=max_wait_seconds,
            token_counter=token_counter,
        )
        self._resolved: dict[tuple[str, ...], list[ModelSpec]] = {tuple(models): list(self._core.models)}

    @property
    def models(self) -> list[str]:
        """The default candidate models, in the order given."""
        return [spec.name for spec in self._core.models]

    @property
    def provider(self) -> Provider:
        """The provider requests go to."""
        return self._core.provider

    @property
    def limiter(self) -> Limiter:
        """The rate-limit backend."""
        return self._core.limiter

    @property
    def tracing(self) -> Tracing:
        """Where requests are traced (``tracing.enabled`` says whether they are)."""
        return self._core.tracing

    @property
    def stats(self) -> dict[str, int | float]:
        """Counters: ``total_requests``, ``fallback_requests``, ``rate_limit_fallbacks``,
        ``context_length_fallbacks``, ``failed_requests``, ``fallback_rate`` (percent) and a few more."""
        return self._core.stats.snapshot()

    def _candidates(self, models: Sequence[str] | None) -> list[ModelSpec]:
        if models is None:
            return self._core.models  # type: ignore[return-value]
        key = tuple(models)
        specs = self._resolved.get(key)
        if specs is None:
            if not key:
                raise ValueError("give at least one model")
            specs = self._resolved[key] = self.catalog.resolve(key)
        return specs

    def _split(self, params: dict[str, Any]) -> tuple[list[ModelSpec], dict[str, Any], dict[str, Any]]:
        if "model" in params:
            raise TypeError("AutoPickerLLM picks the model itself; pass candidates as models=[...]")
        if "stream" in params and params["stream"]:
            raise TypeError("streaming is not supported by AutoPickerLLM.complete")
        models = params.pop("models", None)
        trace_options = {key: params.pop(key) for key in _ROUTER_KEYS[1:] if key in params}
        return self._candidates(models), params, trace_options

    def complete(self, messages: Messages, **params: Any) -> Completion:
        """Send a chat request to the first candidate that can serve it.

        ``params`` go to the provider (``max_tokens``, ``temperature``, ...), except ``models`` (this
        request's candidates instead of the default ones), ``user_id``, ``session_id`` and ``tags`` (trace
        attributes).
        Raises :class:`~router.errors.AllModelsFailed`, listing every attempt, when no candidate could serve.
        """
        specs, provider_params, trace_options = self._split(params)
        return dispatch.run(self._core, messages, provider_params, specs, trace_options)

    async def acomplete(self, messages: Messages, **params: Any) -> Completion:
        """Async twin of :meth:`complete`."""
        specs, provider_params, trace_options = self._split(params)
        return await dispatch_async.run(self._core, messages, provider_params, specs, trace_options)

    def flush(self) -> None:
        """Send every finished trace to Langfuse (or the offline sink) now."""
        self._core.tracing.flush()

    def close(self) -> None:
        """Flush traces and close the provider's connections."""
        self.flush()
        close = getattr(self._core.provider, "close", None)
        if callable(close):
            close()

    def __enter__(self) -> AutoPickerLLM:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()


def _default_provider(timeout: float, clock: Clock) -> Provider:
    from .openai_provider import OpenAICompatibleProvider

    return OpenAICompatibleProvider(timeout=timeout, clock=clock)


def _limiter(limiter: Limiter | str | None) -> Limiter:
    if limiter is None:
        limiter = os.environ.get(REDIS_URL_ENV) or None
    if limiter is None:
        return InProcessLimiter()
    if isinstance(limiter, str):
        from .limits_redis import RedisLimiter

        return RedisLimiter(limiter)
    return limiter


def _tracing(tracing: Tracing | Langfuse | bool | None, clock: Clock, capture_content: bool) -> Tracing:
    if isinstance(tracing, Tracing):
        return tracing
    if tracing is None or tracing is True:
        return Tracing.from_env(clock=clock, capture_content=capture_content)
    if tracing is False:
        return Tracing(None, clock=clock)
    return Tracing(tracing, clock=clock, capture_content=capture_content)
