"""Langfuse tracing of routed requests, through the real ``langfuse`` SDK (v5, OpenTelemetry underneath).

Each request is one trace: a root span ``autopicker.request``, one generation ``llm_call`` per provider call
(model, ``usage_details``, ``cost_details``, metadata ``cost_usd``; level ERROR and a status message when it
failed) and one event per fallback, named exactly ``rate_limit_fallback`` or ``context_length_fallback`` with
the seed guide's metadata keys. Skipped candidates (too small, rate limited before the call, cooling down)
get no generation, because no call was made; their fallback event says why.

Zero configuration: :meth:`Tracing.from_env` turns tracing on when ``LANGFUSE_PUBLIC_KEY`` and
``LANGFUSE_SECRET_KEY`` are set (``LANGFUSE_BASE_URL`` picks the server), or writes an offline export when
``AUTOPICKER_TRACE_DIR`` is set, and is off otherwise. The SDK exports from a background thread, so a slow or
dead Langfuse never delays a request; and every SDK call here is guarded, so a tracing fault is logged and the
request goes on.
"""

from __future__ import annotations

import logging
import os
import uuid
from collections.abc import Mapping
from datetime import UTC, datetime
from types import TracebackType
from typing import TYPE_CHECKING, Any

from autopicker.clock import Clock, SystemClock

if TYPE_CHECKING:
    from langfuse import Langfuse

    from .catalog import Cost
    from .export_sink import BlobExportSpanExporter
    from .provider import Usage

logger = logging.getLogger(__name__)

ROOT_NAME = "autopicker.request"
GENERATION_NAME = "llm_call"
RATE_LIMIT_EVENT = "rate_limit_fallback"
CONTEXT_LENGTH_EVENT = "context_length_fallback"
TRACE_DIR_ENV = "AUTOPICKER_TRACE_DIR"
PROJECT_ENV = "AUTOPICKER_TRACE_PROJECT"
#: Model parameters worth recording on a generation (the rest may be large or secret).
_RECORDED_PARAMS = (
    "temperature",
    "top_p",
    "max_tokens",
    "max_completion_tokens",
    "stop",
    "seed",
    "presence_penalty",
    "frequency_penalty",
    "response_format",
)


def _guarded(what: str) -> Any:
    """Log and drop a tracing failure: tracing must never break the request it describes."""

    def decorate(method: Any) -> Any:
        def wrapper(self: Any, *args: Any, **kwargs: Any) -> Any:
            try:
                return method(self, *args, **kwargs)
            except Exception:
                logger.warning(
                    "Langfuse tracing failed while %s; the request goes on untraced", what, exc_info=True
                )
                return None

        wrapper.__name__ = method.__name__
        wrapper.__doc__ = method.__doc__
        return wrapper

    return decorate


class Tracing:
    """The Langfuse client requests are traced to (or none), and what to record."""

    def __init__(
        self,
        client: Langfuse | None,
        *,
        clock: Clock | None = None,
        capture_content: bool = True,
        trace_name: str = "autopicker",
        sink: BlobExportSpanExporter | None = None,
    ) -> None:
        self.client = client
        #: The offline sink the client exports to, if any: :meth:`flush` also writes its buffered rows.
        self.sink = sink
        self.clock = clock or SystemClock()
        self.capture_content = capture_content
        self.trace_name = trace_name

    @property
    def enabled(self) -> bool:
        """True when requests are traced."""
        return self.client is not None

    @classmethod
    def from_env(cls, *, clock: Clock | None = None, capture_content: bool = True) -> Tracing:
        """Tracing as the environment configures it: Langfuse keys, an offline folder, or off."""
        trace_dir = os.environ.get(TRACE_DIR_ENV)
        if trace_dir:
            from .export_sink import offline_client

            project = os.environ.get(PROJECT_ENV, "autopicker")
            client, sink = offline_client(trace_dir, project_id=project)
            return cls(client, clock=clock, capture_content=capture_content, sink=sink)
        if os.environ.get("LANGFUSE_TRACING_ENABLED", "true").lower() == "false":
            return cls(None, clock=clock)
        if os.environ.get("LANGFUSE_PUBLIC_KEY") and os.environ.get("LANGFUSE_SECRET_KEY"):
            from langfuse import Langfuse

            return cls(Langfuse(), clock=clock, capture_content=capture_content)
        return cls(None, clock=clock)

    def request(
        self,
        messages: Any,
        params: Mapping[str, Any],
        primary: str,
        estimated_tokens: int,
        user_id: str | None = None,
        session_id: str | None = None,
        tags: list[str] | None = None,
    ) -> RequestTrace | None:
        """A trace for one request, or ``None`` when tracing is off."""
        if self.client is None:
            return None
        return RequestTrace(self, messages, params, primary, estimated_tokens, user_id, session_id, tags)

    @_guarded("flushing")
    def flush(self) -> None:
        """Hand every finished observation to the exporter now (blocks while it sends, or writes a run)."""
        if self.client is not None:
            self.client.flush()
        if self.sink is not None:
            self.sink.flush()


class Generation:
    """One provider call being traced."""

    __slots__ = ("observation", "started")

    def __init__(self, observation: Any, started: float) -> None:
        self.observation = observation
        self.started = started


class RequestTrace:
    """The Langfuse trace of one request: use as a context manager around the whole request."""

    def __init__(
        self,
        tracing: Tracing,
        messages: Any,
        params: Mapping[str, Any],
        primary: str,
        estimated_tokens: int,
        user_id: str | None,
        session_id: str | None,
        tags: list[str] | None,
    ) -> None:
        self._tracing = tracing
        self._messages = messages
        self._params = params
        self._primary = primary
        self._estimated_tokens = estimated_tokens
        self._user_id = user_id
        self._session_id = session_id
        self._tags = tags
        self._propagation: Any = None
        self._root: Any = None
        self._finished = False
        self.trace_id: str | None = None

    def __enter__(self) -> RequestTrace:
        self._start()
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        if exc is not None and not self._finished:
            self.finish(error=f"{type(exc).__name__}: {exc}")
        self._close()

    @_guarded("starting a trace")
    def _start(self) -> None:
        from langfuse import propagate_attributes

        client = self._tracing.client
        assert client is not None
        self._propagation = propagate_attributes(
            trace_name=self._tracing.trace_name,
            user_id=self._user_id,
            session_id=self._session_id,
            tags=self._tags,
        )
        self._propagation.__enter__()
        self._root = client.start_observation(
            name=ROOT_NAME,
            as_type="span",
            input=self._messages if self._tracing.capture_content else None,
            metadata={"requested_model": self._primary, "estimated_tokens": self._estimated_tokens},
        )
        self.trace_id = self._root.trace_id

    @_guarded("starting a generation")
    def generation(self, model: str, params: Mapping[str, Any], attempt: int) -> Generation | None:
        """Open the generation of one provider call."""
        if self._root is None:
            return None
        recorded = {key: params[key] for key in _RECORDED_PARAMS if key in params}
        observation = self._root.start_observation(
            name=GENERATION_NAME,
            as_type="generation",
            model=model,
            model_parameters=recorded or None,
            input=self._messages if self._tracing.capture_content else None,
            metadata={"attempt": attempt},
        )
        return Generation(observation, self._tracing.clock.time())

    @_guarded("ending a generation")
    def generation_succeeded(
        self,
        generation: Generation | None,
        usage: Usage,
        cost: Cost,
        answer: str,
        time_to_first_token: float | None,
    ) -> None:
        """Close a generation with its usage and cost."""
        if generation is None:
            return
        first_token = None
        if time_to_first_token is not None:
            first_token = datetime.fromtimestamp(generation.started + time_to_first_token, UTC)
        generation.observation.update(
            output=answer if self._tracing.capture_content else None,
            usage_details=_usage_details(usage),
            cost_details={"input": cost.input, "output": cost.output, "total": cost.total},
            metadata={"cost_usd": cost.total, "outcome": "success"},
            completion_start_time=first_token,
        )
        generation.observation.end()

    @_guarded("ending a failed generation")
    def generation_failed(
        self, generation: Generation | None, reason: str, error: str, error_type: str
    ) -> None:
        """Close a generation whose call failed: level ERROR, the error as status message, zero cost."""
        if generation is None:
            return
        generation.observation.update(
            level="ERROR",
            status_message=error,
            usage_details={"input": 0, "output": 0, "total": 0},
            cost_details={"input": 0.0, "output": 0.0, "total": 0.0},
            metadata={"cost_usd": 0.0, "outcome": "failed", "reason": reason, "error_type": error_type},
        )
        generation.observation.end()

    @_guarded("recording a fallback event")
    def event(self, name: str, metadata: Mapping[str, Any]) -> None:
        """Record a fallback event in this trace."""
        if self._root is not None:
            self._root.create_event(name=name, metadata=dict(metadata))

    @_guarded("finishing a trace")
    def finish(
        self,
        *,
        model: str | None = None,
        answer: str | None = None,
        attempts: int = 0,
        fallbacks: int = 0,
        cost_usd: float = 0.0,
        error: str | None = None,
    ) -> None:
        """Record the request's outcome on the root span."""
        self._finished = True
        if self._root is None:
            return
        if error is not None:
            self._root.update(
                level="ERROR",
                status_message=error,
                metadata={"outcome": "failed", "attempts": attempts, "fallbacks": fallbacks},
            )
        else:
            self._root.update(
                output=answer if self._tracing.capture_content else None,
                metadata={
                    "outcome": "success",
                    "served_model": model,
                    "attempts": attempts,
                    "fallbacks": fallbacks,
                    "cost_usd": cost_usd,
                },
            )

    @_guarded("closing a trace")
    def _close(self) -> None:
        try:
            if self._root is not None:
                self._root.end()
                self._root = None
        finally:
            if self._propagation is not None:
                propagation, self._propagation = self._propagation, None
                propagation.__exit__(None, None, None)


def _usage_details(usage: Usage) -> dict[str, int]:
    details = {"input": usage.input_tokens, "output": usage.output_tokens, "total": usage.total_tokens}
    if usage.cached_input_tokens:
        details["input_cached_tokens"] = usage.cached_input_tokens
    return details


def unique_public_key(prefix: str) -> str:
    """A public key no other client in this process uses (the SDK keeps one exporter per public key)."""
    return f"{prefix}-{uuid.uuid4().hex[:12]}"
