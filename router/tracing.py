"""Langfuse tracing of routed requests, through the real ``langfuse`` SDK (v5, OpenTelemetry underneath).

Each request is one trace: a root span ``autopicker.request``, one generation ``llm_call`` per provider call
(model, ``usage_details``, ``cost_details``, metadata ``cost_usd``; level ERROR and a status message when it
failed) and one event per fallback, named exactly ``rate_limit_fallback`` or ``context_length_fallback`` with
the Fallback Tracking guide's metadata keys. Skipped candidates (too small, rate limited before the call,
cooling down) get no generation, because no call was made; their fallback event says why.

Zero configuration: :meth:`Tracing.from_env` turns tracing on when ``LANGFUSE_PUBLIC_KEY`` and
``LANGFUSE_SECRET_KEY`` are set (``LANGFUSE_BASE_URL`` picks the server), or writes an offline export when
``AUTOPICKER_TRACE_DIR`` is set, and is off otherwise. A request only records its trace; the SDK calls and the
export happen in background threads (:mod:`router.trace_replay`), so neither the SDK's work nor a slow or dead
Langfuse delays a request; and every SDK call is guarded, so a tracing fault is logged and the request goes
on.
"""

from __future__ import annotations

import logging
import os
import threading
import uuid
from collections.abc import Mapping
from datetime import UTC, datetime
from types import TracebackType
from typing import TYPE_CHECKING, Any

from autopicker.clock import Clock, SystemClock

from .trace_replay import Step, TraceState

if TYPE_CHECKING:
    from langfuse import Langfuse
    from opentelemetry.sdk.trace.id_generator import IdGenerator

    from .catalog import Cost
    from .export_sink import BlobExportSpanExporter
    from .provider import Usage
    from .trace_replay import Replayer

logger = logging.getLogger(__name__)

RATE_LIMIT_EVENT = "rate_limit_fallback"
CONTEXT_LENGTH_EVENT = "context_length_fallback"
TRACE_DIR_ENV = "AUTOPICKER_TRACE_DIR"
PROJECT_ENV = "AUTOPICKER_TRACE_PROJECT"
#: The replayer of each public key given to :meth:`Tracing.langfuse` (the SDK has one client per key).
_REPLAYERS: dict[str, Replayer] = {}
_REPLAYERS_LOCK = threading.Lock()
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
    """The Langfuse client requests are traced to (or none), and what to record.

    With a ``replayer`` (as :meth:`langfuse`, :meth:`offline` and :meth:`from_env` build it) a request only
    records its trace and the SDK calls happen in a background thread (:mod:`router.trace_replay`). A client
    given alone is called as the request runs, on the request path.
    """

    def __init__(
        self,
        client: Langfuse | None,
        *,
        clock: Clock | None = None,
        capture_content: bool = True,
        trace_name: str = "autopicker",
        sink: BlobExportSpanExporter | None = None,
        replayer: Replayer | None = None,
    ) -> None:
        self.client = replayer.client if replayer is not None else client
        #: The background replay of recorded traces, if any.
        self.replayer = replayer
        #: The offline sink the client exports to, if any: :meth:`flush` also writes its buffered rows.
        self.sink = sink
        self.clock = clock or SystemClock()
        self.capture_content = capture_content
        self.trace_name = trace_name

    @property
    def enabled(self) -> bool:
        """True when requests are traced."""
        return self.client is not None

    @property
    def dropped(self) -> int:
        """Traces dropped because the background queue was full."""
        return self.replayer.dropped if self.replayer is not None else 0

    @classmethod
    def langfuse(
        cls,
        *,
        clock: Clock | None = None,
        capture_content: bool = True,
        trace_name: str = "autopicker",
        max_queued_traces: int | None = None,
        **client_options: Any,
    ) -> Tracing:
        """Tracing to a Langfuse server, off the request path.

        ``client_options`` go to ``Langfuse(...)`` (``public_key``, ``secret_key``, ``base_url``, ``timeout``,
        ...; by default from ``LANGFUSE_*``). The client gets a tracer provider of its own. The SDK keeps one
        client per public key in a process, so every call with the same key shares one client and replayer.
        """
        public_key = client_options.get("public_key") or os.environ.get("LANGFUSE_PUBLIC_KEY") or ""
        with _REPLAYERS_LOCK:
            replayer = _REPLAYERS.get(public_key)
            if replayer is None or replayer.stopped:
                from langfuse import Langfuse

                from .clock_tracing import ReplayTracerProvider
                from .trace_replay import Replayer

                provider = ReplayTracerProvider()
                client = Langfuse(tracer_provider=provider, **client_options)
                replayer = Replayer(client, provider, max_queued_traces=max_queued_traces)
                _REPLAYERS[public_key] = replayer
        return cls(
            None, clock=clock, capture_content=capture_content, trace_name=trace_name, replayer=replayer
        )

    @classmethod
    def offline(
        cls,
        out_dir: str | os.PathLike[str],
        *,
        project_id: str = "autopicker",
        clock: Clock | None = None,
        capture_content: bool = True,
        trace_name: str = "autopicker",
        max_queued_traces: int | None = None,
        id_generator: IdGenerator | None = None,
        **sink_options: Any,
    ) -> Tracing:
        """Tracing to the offline sink (a Langfuse blob-storage export under ``out_dir``), off the request
        path. ``sink_options`` go to :class:`~router.export_sink.BlobExportSpanExporter`."""
        from .clock_tracing import ReplayTracerProvider
        from .export_sink import offline_client
        from .trace_replay import Replayer

        provider = ReplayTracerProvider(id_generator)
        client, sink = offline_client(
            out_dir, project_id=project_id, clock=clock, tracer_provider=provider, **sink_options
        )
        return cls(
            None,
            clock=clock,
            capture_content=capture_content,
            trace_name=trace_name,
            sink=sink,
            replayer=Replayer(client, provider, max_queued_traces=max_queued_traces),
        )

    @classmethod
    def from_env(cls, *, clock: Clock | None = None, capture_content: bool = True) -> Tracing:
        """Tracing as the environment configures it: Langfuse keys, an offline folder, or off."""
        trace_dir = os.environ.get(TRACE_DIR_ENV)
        if trace_dir:
            project = os.environ.get(PROJECT_ENV, "autopicker")
            return cls.offline(trace_dir, project_id=project, clock=clock, capture_content=capture_content)
        if os.environ.get("LANGFUSE_TRACING_ENABLED", "true").lower() == "false":
            return cls(None, clock=clock)
        if os.environ.get("LANGFUSE_PUBLIC_KEY") and os.environ.get("LANGFUSE_SECRET_KEY"):
            return cls.langfuse(clock=clock, capture_content=capture_content)
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
        """Export every finished trace now: replay the queued ones, then block while the SDK sends them (or
        the sink writes a run)."""
        if self.replayer is not None:
            self.replayer.flush()
        elif self.client is not None:
            self.client.flush()
        if self.sink is not None:
            self.sink.flush()

    @_guarded("shutting down")
    def shutdown(self) -> None:
        """Export what is left and stop: the background thread, the SDK's exporter (the sink writes its last
        run). Requests traced after this are dropped."""
        if self.replayer is not None:
            self.replayer.shutdown()
        elif self.client is not None:
            self.client.shutdown()


class Generation:
    """One provider call being traced."""

    __slots__ = ("index", "started")

    def __init__(self, index: int, started: float) -> None:
        self.index = index
        self.started = started


class RequestTrace:
    """The Langfuse trace of one request: use as a context manager around the whole request.

    Each step is recorded with the clock's time and either replayed later by the tracing's replayer or,
    without one, applied to the SDK at once.
    """

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
        self._steps: list[Step] | None = None
        self._state: TraceState | None = None
        self._generations = 0
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

    def _input(self) -> Any:
        if not self._tracing.capture_content:
            return None
        messages = self._messages
        # A shallow copy: the record is read later, after the caller may have appended to its list.
        return list(messages) if isinstance(messages, list) else messages

    def _step(self, step: Step) -> None:
        if self._steps is not None:
            self._steps.append(step)
        elif self._state is not None:
            self._state.apply(step)

    @_guarded("starting a trace")
    def _start(self) -> None:
        tracing = self._tracing
        attributes = {
            "trace_name": tracing.trace_name,
            "user_id": self._user_id,
            "session_id": self._session_id,
            "tags": self._tags,
        }
        options = {
            "input": self._input(),
            "metadata": {"requested_model": self._primary, "estimated_tokens": self._estimated_tokens},
        }
        if tracing.replayer is not None:
            self.trace_id = tracing.replayer.new_trace_id()
            self._steps = [("start", tracing.clock.time(), attributes, options)]
            return
        assert tracing.client is not None
        state = TraceState(tracing.client)
        state.start(attributes, options)
        self._state = state
        self.trace_id = state.root.trace_id

    @_guarded("starting a generation")
    def generation(self, model: str, params: Mapping[str, Any], attempt: int) -> Generation | None:
        """Open the generation of one provider call."""
        if self._steps is None and self._state is None:
            return None
        recorded = {key: params[key] for key in _RECORDED_PARAMS if key in params}
        index = self._generations
        self._generations += 1
        now = self._tracing.clock.time()
        self._step(
            (
                "generation",
                now,
                index,
                {
                    "model": model,
                    "model_parameters": recorded or None,
                    "input": self._input(),
                    "metadata": {"attempt": attempt},
                },
            )
        )
        return Generation(index, now)

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
        update = {
            "output": answer if self._tracing.capture_content else None,
            "usage_details": _usage_details(usage),
            "cost_details": {"input": cost.input, "output": cost.output, "total": cost.total},
            "metadata": {"cost_usd": cost.total, "outcome": "success"},
            "completion_start_time": first_token,
        }
        self._step(("generation_end", self._tracing.clock.time(), generation.index, update))

    @_guarded("ending a failed generation")
    def generation_failed(
        self, generation: Generation | None, reason: str, error: str, error_type: str
    ) -> None:
        """Close a generation whose call failed: level ERROR, the error as status message, zero cost."""
        if generation is None:
            return
        update = {
            "level": "ERROR",
            "status_message": error,
            "usage_details": {"input": 0, "output": 0, "total": 0},
            "cost_details": {"input": 0.0, "output": 0.0, "total": 0.0},
            "metadata": {"cost_usd": 0.0, "outcome": "failed", "reason": reason, "error_type": error_type},
        }
        self._step(("generation_end", self._tracing.clock.time(), generation.index, update))

    @_guarded("recording a fallback event")
    def event(self, name: str, metadata: Mapping[str, Any]) -> None:
        """Record a fallback event in this trace."""
        self._step(("event", self._tracing.clock.time(), name, dict(metadata)))

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
        if error is not None:
            update: dict[str, Any] = {
                "level": "ERROR",
                "status_message": error,
                "metadata": {"outcome": "failed", "attempts": attempts, "fallbacks": fallbacks},
            }
        else:
            update = {
                "output": answer if self._tracing.capture_content else None,
                "metadata": {
                    "outcome": "success",
                    "served_model": model,
                    "attempts": attempts,
                    "fallbacks": fallbacks,
                    "cost_usd": cost_usd,
                },
            }
        self._step(("finish", self._tracing.clock.time(), update))

    @_guarded("closing a trace")
    def _close(self) -> None:
        steps, self._steps = self._steps, None
        if steps is not None:
            steps.append(("close", self._tracing.clock.time()))
            replayer = self._tracing.replayer
            assert replayer is not None and self.trace_id is not None
            replayer.submit(self.trace_id, steps)
        state, self._state = self._state, None
        if state is not None:
            state.close()


def _usage_details(usage: Usage) -> dict[str, int]:
    details = {"input": usage.input_tokens, "output": usage.output_tokens, "total": usage.total_tokens}
    if usage.cached_input_tokens:
        details["input_cached_tokens"] = usage.cached_input_tokens
    return details


def unique_public_key(prefix: str) -> str:
    """A public key no other client in this process uses (the SDK keeps one exporter per public key)."""
    return f"{prefix}-{uuid.uuid4().hex[:12]}"
