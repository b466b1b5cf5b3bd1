"""An OpenTelemetry tracer provider whose spans take their start and end times from an injected clock.

``autopicker simulate`` replays days of traffic in seconds, yet its traces must go through the real Langfuse
SDK and carry the simulated times. OpenTelemetry spans accept explicit ``start_time``/``end_time`` (ns), but
the SDK only forwards an end time, and stamps events with ``time.time_ns()`` itself. So instead of patching
the SDK or rewriting times after the fact, this provider is handed to it (``Langfuse(tracer_provider=...)``):
its tracer starts every span, and its spans end, at the clock's current time, whatever time the caller read
from the wall. With a :class:`~autopicker.clock.SystemClock` that is the ordinary behaviour; with a
:class:`~autopicker.clock.ManualClock` the whole trace lives in simulated time. Everything else (ids,
sampling, processors, the Langfuse exporter) is the standard OpenTelemetry SDK.

:class:`SeededIdGenerator` makes trace and span ids reproducible for a simulation seed.
"""

from __future__ import annotations

import random
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from typing import Any

from opentelemetry import trace as trace_api
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.id_generator import IdGenerator, RandomIdGenerator
from opentelemetry.util import types

from autopicker.clock import Clock


def _clock_ns(clock: Clock) -> int:
    return int(round(clock.time() * 1_000_000)) * 1_000


class ClockTracerProvider(TracerProvider):
    """A standard SDK ``TracerProvider`` whose spans are timed by ``clock``."""

    def __init__(self, clock: Clock, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._clock = clock

    def get_tracer(self, *args: Any, **kwargs: Any) -> trace_api.Tracer:
        """The SDK tracer, timed by this provider's clock."""
        return _ClockTracer(super().get_tracer(*args, **kwargs), self._clock)


class _ClockTracer(trace_api.Tracer):
    def __init__(self, tracer: trace_api.Tracer, clock: Clock) -> None:
        self._tracer = tracer
        self._clock = clock

    def start_span(
        self,
        name: str,
        context: Any = None,
        kind: trace_api.SpanKind = trace_api.SpanKind.INTERNAL,
        attributes: types.Attributes = None,
        links: Sequence[trace_api.Link] | None = None,
        start_time: int | None = None,
        record_exception: bool = True,
        set_status_on_exception: bool = True,
    ) -> trace_api.Span:
        span = self._tracer.start_span(
            name,
            context,
            kind,
            attributes,
            links,
            _clock_ns(self._clock),
            record_exception,
            set_status_on_exception,
        )
        return _ClockSpan(span, self._clock)

    @contextmanager
    def start_as_current_span(self, *args: Any, **kwargs: Any) -> Iterator[trace_api.Span]:  # type: ignore[override]
        end_on_exit = kwargs.pop("end_on_exit", True)
        record_exception = kwargs.get("record_exception", True)
        set_status_on_exception = kwargs.get("set_status_on_exception", True)
        span = self.start_span(*args, **kwargs)
        with trace_api.use_span(
            span,
            end_on_exit=end_on_exit,
            record_exception=record_exception,
            set_status_on_exception=set_status_on_exception,
        ) as current:
            yield current


class _ClockSpan(trace_api.Span):
    """The SDK span, ended at the clock's time; everything else is passed through."""

    def __init__(self, span: trace_api.Span, clock: Clock) -> None:
        self._span = span
        self._clock = clock

    def __getattr__(self, name: str) -> Any:
        # The Langfuse SDK reads a few SDK-span attributes (limits, attributes, name) directly.
        return getattr(self._span, name)

    def end(self, end_time: int | None = None) -> None:
        self._span.end(_clock_ns(self._clock))

    def get_span_context(self) -> trace_api.SpanContext:
        return self._span.get_span_context()

    def set_attributes(self, attributes: Mapping[str, types.AttributeValue]) -> None:
        self._span.set_attributes(attributes)

    def set_attribute(self, key: str, value: types.AttributeValue) -> None:
        self._span.set_attribute(key, value)

    def add_event(self, name: str, attributes: types.Attributes = None, timestamp: int | None = None) -> None:
        self._span.add_event(name, attributes, _clock_ns(self._clock))

    def add_link(self, context: trace_api.SpanContext, attributes: types.Attributes = None) -> None:
        self._span.add_link(context, attributes)

    def update_name(self, name: str) -> None:
        self._span.update_name(name)

    def is_recording(self) -> bool:
        return self._span.is_recording()

    def set_status(self, status: Any, description: str | None = None) -> None:
        self._span.set_status(status, description)

    def record_exception(
        self,
        exception: BaseException,
        attributes: types.Attributes = None,
        timestamp: int | None = None,
        escaped: bool = False,
    ) -> None:
        self._span.record_exception(exception, attributes, _clock_ns(self._clock), escaped)


class ReplayTracerProvider(ClockTracerProvider):
    """A provider whose spans are stamped with the times of a request replayed after the fact.

    Traced requests record what happened, and when, in plain Python objects; a background thread replays each
    record through the Langfuse SDK later (:mod:`router.trace_replay`). Before each SDK call the replaying
    thread sets :meth:`at` to the time the step happened, and before a trace's root span :meth:`preset` the
    trace id the request already returned to its caller. Only that thread may use this provider's tracer.
    """

    def __init__(self, id_generator: IdGenerator | None = None, **kwargs: Any) -> None:
        self._ids = _PresetTraceIds(id_generator or RandomIdGenerator())
        self._replay_clock = _ReplayClock()
        super().__init__(self._replay_clock, id_generator=self._ids, **kwargs)

    def new_trace_id(self) -> str:
        """A fresh trace id (32 hex digits) for a request being recorded; any thread may ask."""
        return format(self._ids.base.generate_trace_id(), "032x")

    def at(self, seconds: float) -> None:
        """Stamp the spans started and ended from now on with ``seconds``."""
        self._replay_clock.now = seconds

    def preset(self, trace_id: str) -> None:
        """Give the next root span this trace id."""
        self._ids.preset = int(trace_id, 16)


class _ReplayClock:
    """The time of the step being replayed."""

    def __init__(self) -> None:
        self.now = 0.0

    def time(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        raise NotImplementedError("a replay clock cannot sleep")

    async def asleep(self, seconds: float) -> None:
        raise NotImplementedError("a replay clock cannot sleep")


class _PresetTraceIds(IdGenerator):
    """Trace ids given in advance (the replayed request's), else from the base generator."""

    def __init__(self, base: IdGenerator) -> None:
        self.base = base
        self.preset: int | None = None

    def generate_span_id(self) -> int:
        return self.base.generate_span_id()

    def generate_trace_id(self) -> int:
        preset, self.preset = self.preset, None
        return preset if preset is not None else self.base.generate_trace_id()


class SeededIdGenerator(IdGenerator):
    """Trace and span ids from a seeded generator, so a simulation's ids are reproducible."""

    def __init__(self, seed: int | str) -> None:
        self._random = random.Random(seed)

    def generate_span_id(self) -> int:
        return self._random.getrandbits(64) or 1

    def generate_trace_id(self) -> int:
        return self._random.getrandbits(128) or 1
