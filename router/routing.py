"""The routing rules of one request, without any I/O: which model next, skip or wait, and what to record.

:class:`RequestPlan` holds one request's state; the sync and async loops in ``dispatch`` and
``dispatch_async`` drive it and do the I/O (limiter, provider, sleeping). Keeping every decision here, in one
place that neither loop duplicates, is what keeps ``complete`` and ``acomplete`` from drifting apart.

The rules, per candidate in order: the prompt estimate (with the model's margin) plus the requested output
must fit the model's window, and the requested output its maximum (else a context-length fallback); a model
cooling down after repeated failures is skipped; the limiter must grant a reservation (else, for the primary
only and within ``max_wait_seconds``, the request waits for it; otherwise a rate-limit fallback). A provider
error moves on to the next candidate; a 429 blocks the model until its ``Retry-After``. Each move from one
model to the next is a fallback event naming both; a model too small for the request is skipped without
becoming either end of one, so a context-length fallback always names a model the request fits.
"""

from __future__ import annotations

import threading
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from types import TracebackType
from typing import Any

from autopicker.clock import Clock

from .breaker import CircuitBreaker
from .catalog import Catalog, Cost, ModelSpec
from .errors import AllModelsFailed, ProviderContextLength, ProviderError, ProviderRateLimited
from .limits import NEVER, Decision, Limiter
from .ordering import LatencyTracker, order_candidates
from .provider import Messages, Provider, ProviderResponse, Usage
from .tokens import TokenCounter, prompt_tokens, with_margin
from .tracing import CONTEXT_LENGTH_EVENT, RATE_LIMIT_EVENT, Generation, RequestTrace, Tracing

SUCCESS = "success"
FAILED = "failed"
SKIPPED = "skipped"
#: Without a Retry-After header, a 429 blocks the model this long (seconds).
DEFAULT_RETRY_AFTER = 20.0
#: Waiting for the primary never spins: at least this long per wait, at most this many waits per request.
_MIN_WAIT = 0.001
_MAX_WAITS = 100


@dataclass(frozen=True, slots=True)
class Attempt:
    """What happened to one candidate model during a request."""

    model: str
    #: ``success``, ``failed`` (the call was made and failed) or ``skipped`` (no call was made).
    outcome: str
    #: Why it did not serve: ``context_length``, ``rate_limit``, ``circuit_open``, ``server_error``,
    #: ``timeout``, ``connection``, ``bad_request``, ``not_configured``; ``None`` on success.
    reason: str | None = None
    #: The error in words, or ``None`` on success.
    error: str | None = None
    #: Which limit bit for a rate-limit skip: ``rpm``, ``tpm``, ``rpd``, ``input_tpm``, ``output_tpm``,
    #: or ``429`` (the provider refused).
    limit: str | None = None
    #: Seconds the provider call took (calls only).
    latency: float | None = None
    #: Seconds spent waiting for this model to free up before it was called or skipped.
    waited: float = 0.0


@dataclass(frozen=True, slots=True)
class Completion:
    """A routed request's result: the answer, the model that actually served it, and how it got there."""

    answer: str
    model: str
    requested_model: str
    usage: Usage
    cost: Cost
    attempts: tuple[Attempt, ...]
    latency: float
    trace_id: str | None = None
    finish_reason: str | None = None

    @property
    def fell_back(self) -> bool:
        """True when a model other than the first candidate served."""
        return self.model != self.requested_model


STAT_KEYS = (
    "total_requests",
    "successful_requests",
    "failed_requests",
    "fallback_requests",
    "rate_limit_fallbacks",
    "context_length_fallbacks",
    "waits_for_primary",
)


class Stats:
    """Request and fallback counters of one router, safe to update from several threads."""

    def __init__(self) -> None:
        self._counts = dict.fromkeys(STAT_KEYS, 0)
        self._lock = threading.Lock()

    def add(self, key: str, amount: int = 1) -> None:
        """Increase one counter."""
        with self._lock:
            self._counts[key] += amount

    def snapshot(self) -> dict[str, int | float]:
        """The counters plus ``fallback_rate``: percent of requests that fell back (the guide's Example 3)."""
        with self._lock:
            counts: dict[str, int | float] = dict(self._counts)
        total = counts["total_requests"]
        counts["fallback_rate"] = round(counts["fallback_requests"] / total * 100, 2) if total else 0.0
        return counts


@dataclass(slots=True)
class RouterCore:
    """Everything a request needs that outlives it, shared by the sync and async paths."""

    catalog: Catalog
    models: Sequence[ModelSpec]
    provider: Provider
    limiter: Limiter
    breaker: CircuitBreaker
    latency: LatencyTracker
    stats: Stats
    tracing: Tracing
    clock: Clock
    order: str = "listed"
    max_wait_seconds: float = 0.0
    token_counter: TokenCounter | None = None


class Call:
    """A provider call in flight."""

    __slots__ = ("spec", "started", "generation", "waited")

    def __init__(self, spec: ModelSpec, started: float, generation: Generation | None, waited: float) -> None:
        self.spec = spec
        self.started = started
        self.generation = generation
        self.waited = waited


class RequestPlan:
    """One request's routing state; the dispatch loops call its methods in order."""

    def __init__(
        self,
        core: RouterCore,
        messages: Messages,
        params: Mapping[str, Any],
        models: Sequence[ModelSpec],
        trace_options: Mapping[str, Any],
    ) -> None:
        self.core = core
        self.params = params
        self.prompt_tokens = prompt_tokens(messages, core.token_counter)
        output = params.get("max_tokens") or params.get("max_completion_tokens") or 0
        self.output_tokens = int(output)
        self.candidates = order_candidates(
            models, core.order, self.prompt_tokens, self.output_tokens, core.latency
        )
        self.primary = self.candidates[0]
        self.attempts: list[Attempt] = []
        self.fallbacks = 0
        self.wait_budget = core.max_wait_seconds
        self._waited = 0.0
        self._waits = 0
        self._pending: tuple[ModelSpec, str, dict[str, Any]] | None = None
        self.started = core.clock.time()
        core.stats.add("total_requests")
        self.trace: RequestTrace | None = core.tracing.request(
            messages, params, self.primary.name, self.prompt_tokens + self.output_tokens, **trace_options
        )

    def __enter__(self) -> RequestPlan:
        if self.trace is not None:
            self.trace.__enter__()
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        if exc is not None and not isinstance(exc, AllModelsFailed):
            self.core.stats.add("failed_requests")
        if self.trace is not None:
            self.trace.__exit__(exc_type, exc, tb)

    @property
    def trace_id(self) -> str | None:
        """The Langfuse trace id, when traced."""
        return self.trace.trace_id if self.trace is not None else None

    # -- before a call --------------------------------------------------------------------------------------

    def admit(self, spec: ModelSpec) -> int | None:
        """Turn to ``spec``: its estimated input tokens, or ``None`` when it is skipped without a call.

        A model whose window (or output maximum) is too small for this request is never a fallback target: it
        is skipped silently, and the fallback event names the next model that can take the request. So a
        ``context_length_fallback`` always lands on a window the request fits, and a request that fits no
        candidate fails without any fallback event (its trace is an error)."""
        self._waited = 0.0
        input_tokens = with_margin(self.prompt_tokens, spec.token_margin)
        needed = input_tokens + self.output_tokens
        if self.output_tokens > spec.max_output_tokens:
            problem = (
                f"max_tokens {self.output_tokens} exceeds the model's {spec.max_output_tokens} output tokens"
            )
        elif needed > spec.max_input_tokens:
            problem = f"about {needed} tokens exceed the {spec.max_input_tokens}-token context window"
        else:
            problem = None
        if problem is not None:
            self._skip(spec, "context_length", problem)
            if self._pending is None:  # the model the request moves away from names the fallback
                self._pending = (spec, "context_length", {"estimated_tokens": needed})
            return None
        if self._pending is not None:
            self._emit_fallback(spec)
        now = self.core.clock.time()
        cooling_until = self.core.breaker.open_until(spec.name, now)
        if cooling_until is not None:
            self._skip(
                spec,
                "circuit_open",
                f"cooling down after repeated failures for {cooling_until - now:.1f} s more",
            )
            self._pending = (spec, "circuit_open", {})
            return None
        return input_tokens

    def denied(self, spec: ModelSpec, decision: Decision) -> float | None:
        """The limiter refused ``spec``: seconds to wait for it, or ``None`` once the skip is recorded."""
        now = self.core.clock.time()
        if spec is self.primary and decision.retry_at != NEVER and self._waits < _MAX_WAITS:
            wait = max(decision.retry_at - now, _MIN_WAIT)
            if wait <= self.wait_budget:
                self.wait_budget -= wait
                self._waited += wait
                self._waits += 1
                self.core.stats.add("waits_for_primary")
                return wait
        limit = "429" if decision.reason == "blocked" else decision.reason
        self._skip(spec, "rate_limit", decision.describe(now), limit=limit)
        self._pending = (spec, "rate_limit", {"limit": limit})
        return None

    # -- the call -------------------------------------------------------------------------------------------

    def start_call(self, spec: ModelSpec) -> Call:
        """Record that ``spec`` is being called now."""
        generation = None
        if self.trace is not None:
            generation = self.trace.generation(spec.name, self.params, len(self.attempts) + 1)
        return Call(spec, self.core.clock.time(), generation, self._waited)

    def succeeded(self, call: Call, response: ProviderResponse) -> Completion:
        """The call answered: record it and build the result."""
        core = self.core
        spec = call.spec
        now = core.clock.time()
        latency = now - call.started
        usage = response.usage
        cost = spec.cost(usage.input_tokens, usage.output_tokens, usage.cached_input_tokens)
        core.breaker.success(spec.name)
        core.latency.observe(spec.name, latency)
        self.attempts.append(Attempt(spec.name, SUCCESS, latency=latency, waited=call.waited))
        core.stats.add("successful_requests")
        if self.fallbacks:
            core.stats.add("fallback_requests")
        trace = self.trace
        if trace is not None:
            trace.generation_succeeded(
                call.generation, usage, cost, response.text, response.time_to_first_token
            )
            trace.finish(
                model=spec.name,
                answer=response.text,
                attempts=len(self.attempts),
                fallbacks=self.fallbacks,
                cost_usd=cost.total,
            )
        return Completion(
            answer=response.text,
            model=spec.name,
            requested_model=self.primary.name,
            usage=usage,
            cost=cost,
            attempts=tuple(self.attempts),
            latency=now - self.started,
            trace_id=self.trace_id,
            finish_reason=response.finish_reason,
        )

    def failed(self, call: Call, error: ProviderError) -> tuple[float | None, bool]:
        """The call failed: ``(block the model until, retry this model)``."""
        core = self.core
        spec = call.spec
        now = core.clock.time()
        reason = error.reason
        self.attempts.append(
            Attempt(
                spec.name,
                FAILED,
                reason,
                str(error) or type(error).__name__,
                limit="429" if reason == "rate_limit" else None,
                latency=now - call.started,
                waited=call.waited,
            )
        )
        if self.trace is not None:
            self.trace.generation_failed(call.generation, reason, str(error), type(error).__name__)
        block_until: float | None = None
        if isinstance(error, ProviderRateLimited):
            retry_after = error.retry_after if error.retry_after is not None else DEFAULT_RETRY_AFTER
            block_until = now + max(retry_after, 0.0)
            if spec is self.primary and retry_after <= self.wait_budget:
                # The limiter now refuses the model until block_until, so the retry goes through `denied`,
                # which waits and charges the wait budget.
                return block_until, True
            self._pending = (spec, "rate_limit", {"limit": "429", "error_type": type(error).__name__})
        elif isinstance(error, ProviderContextLength):
            estimated = with_margin(self.prompt_tokens, spec.token_margin) + self.output_tokens
            self._pending = (
                spec,
                "context_length",
                {"estimated_tokens": estimated, "refused_by": "provider"},
            )
        else:
            core.breaker.failure(spec.name, now)
            self._pending = (spec, reason, {"error_type": type(error).__name__})
        return block_until, False

    def exhausted(self) -> AllModelsFailed:
        """Every candidate is used up: count it, close the trace, and return the exception to raise."""
        error = AllModelsFailed(self.attempts)
        self.core.stats.add("failed_requests")
        if self.fallbacks:
            self.core.stats.add("fallback_requests")
        if self.trace is not None:
            self.trace.finish(attempts=len(self.attempts), fallbacks=self.fallbacks, error=str(error))
        return error

    # -- bookkeeping ----------------------------------------------------------------------------------------

    def _skip(self, spec: ModelSpec, reason: str, error: str, limit: str | None = None) -> None:
        self.attempts.append(Attempt(spec.name, SKIPPED, reason, error, limit=limit, waited=self._waited))

    def _emit_fallback(self, target: ModelSpec) -> None:
        assert self._pending is not None
        source, kind, extra = self._pending
        self._pending = None
        self.fallbacks += 1
        if kind == "context_length":
            self.core.stats.add("context_length_fallbacks")
            name = CONTEXT_LENGTH_EVENT
            metadata: dict[str, Any] = {
                "original_model": source.name,
                "fallback_model": target.name,
                "estimated_tokens": extra["estimated_tokens"],
                "original_max_context": source.max_input_tokens,
                "fallback_max_context": target.max_input_tokens,
            }
        else:
            self.core.stats.add("rate_limit_fallbacks")
            name = RATE_LIMIT_EVENT
            metadata = {
                "original_model": source.name,
                "fallback_model": target.name,
                "reason": "rate_limit_or_error",
                "trigger": kind,
            }
        if self.trace is not None:
            last = self.attempts[-1]
            metadata.update({key: value for key, value in extra.items() if key not in metadata})
            if last.error:
                metadata.setdefault("error", last.error)
            self.trace.event(name, metadata)
