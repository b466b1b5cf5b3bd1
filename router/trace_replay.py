"""Tracing off the request path: requests record their trace, a background thread replays it into the SDK.

Building Langfuse observations costs far more than routing: the SDK serialises inputs, metadata, usage and
cost to JSON attributes and runs OpenTelemetry's span machinery, about 200 us per request. So a traced
request only records what happened and when (a list of small tuples, :class:`~router.tracing.RequestTrace`)
and hands the record to a :class:`Replayer`: a bounded queue and one worker thread that replays each record
through the real Langfuse SDK, on a :class:`~router.clock_tracing.ReplayTracerProvider` that stamps every
span with the time its step happened and gives the root span the trace id the request already returned.
The SDK's batch span processor then exports in its own thread, as it always does.

- **Never blocks a request.** The queue holds ``max_queued_traces`` records (default 10,000;
  ``AUTOPICKER_TRACE_QUEUE_SIZE``). When it is full, because the exporter is slower than the traffic for
  long, the new request's trace is dropped: :attr:`Replayer.dropped` counts them and one warning is logged
  per overflow, with the running total. A request never waits for room.
- **Nothing is lost at a normal exit.** An ``atexit`` hook, registered after the SDK's own, replays what is
  queued first, so the SDK's shutdown then exports it (or the offline sink writes it). :meth:`flush` does the
  same on demand, and :meth:`shutdown` stops the worker.
- **Short turns on the interpreter lock.** The request path and these threads share one interpreter lock;
  a thread that holds it until Python takes it away (every 5 ms) makes a request wait that long, and far
  longer when the operating system pauses that thread meanwhile on a busy machine. So the worker hands the
  lock back after every trace (:func:`yield_interpreter`, a few hundred microseconds of work), and the
  offline sink after every few dozen rows: a request waits at most about one trace's replay.
- **Nothing is dropped downstream.** OpenTelemetry's queue drops spans silently when full (2,048 by default),
  so the worker flushes the provider itself every ~1,000 spans: a slow exporter slows the worker, not the
  requests, and the bounded queue above is where traces are counted when they are dropped.
"""

from __future__ import annotations

import atexit
import logging
import os
import threading
import time
from collections import deque
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from langfuse import Langfuse

    from .clock_tracing import ReplayTracerProvider

logger = logging.getLogger(__name__)

QUEUE_SIZE_ENV = "AUTOPICKER_TRACE_QUEUE_SIZE"
DEFAULT_QUEUE_SIZE = 10_000
ROOT_NAME = "autopicker.request"
GENERATION_NAME = "llm_call"
#: Spans handed to the SDK between two flushes of the provider: well under OpenTelemetry's queue of 2,048.
_SPANS_PER_FLUSH = 1_000
#: Records taken from the queue at a time.
_CHUNK = 64
_STOP = object()


def yield_interpreter() -> None:
    """Let a thread waiting for the interpreter lock (a request) run now: ``time.sleep(0)`` releases the lock
    and takes it back, after the waiting thread got its turn."""
    time.sleep(0)


#: One step of a request, as recorded: ``(kind, seconds, *arguments)``.
Step = tuple[Any, ...]


class TraceState:
    """The SDK objects of one trace while its steps are applied (as they happen, or replayed)."""

    __slots__ = ("client", "generations", "propagation", "root", "spans")

    def __init__(self, client: Langfuse) -> None:
        self.client = client
        self.root: Any = None
        self.propagation: Any = None
        self.generations: dict[int, Any] = {}
        self.spans = 0

    def apply(self, step: Step) -> None:
        """Make the SDK calls of one step."""
        kind = step[0]
        if kind == "generation":
            _, _, index, options = step
            if self.root is not None:
                self.generations[index] = self.root.start_observation(
                    name=GENERATION_NAME, as_type="generation", **options
                )
                self.spans += 1
        elif kind == "generation_end":
            _, _, index, update = step
            observation = self.generations.pop(index, None)
            if observation is not None:
                observation.update(**update)
                observation.end()
        elif kind == "event":
            _, _, name, metadata = step
            if self.root is not None:
                self.root.create_event(name=name, metadata=metadata)
                self.spans += 1
        elif kind == "finish":
            if self.root is not None:
                self.root.update(**step[2])
        elif kind == "start":
            self.start(*step[2:])
        elif kind == "close":
            self.close()

    def start(self, attributes: Mapping[str, Any], options: Mapping[str, Any]) -> None:
        """Open the root span, inside the trace attributes that propagate to every observation."""
        from langfuse import propagate_attributes

        self.propagation = propagate_attributes(**attributes)
        self.propagation.__enter__()
        self.root = self.client.start_observation(name=ROOT_NAME, as_type="span", **options)
        self.spans += 1

    def close(self) -> None:
        """End the root span (and any generation left open) and leave the attributes' context."""
        try:
            for observation in self.generations.values():
                observation.end()
            self.generations.clear()
            if self.root is not None:
                self.root.end()
                self.root = None
        finally:
            if self.propagation is not None:
                propagation, self.propagation = self.propagation, None
                propagation.__exit__(None, None, None)


class Replayer:
    """A bounded queue of recorded traces and the thread that replays them into a Langfuse client."""

    def __init__(
        self,
        client: Langfuse,
        provider: ReplayTracerProvider,
        *,
        max_queued_traces: int | None = None,
    ) -> None:
        if max_queued_traces is None:
            max_queued_traces = int(os.environ.get(QUEUE_SIZE_ENV) or DEFAULT_QUEUE_SIZE)
        if max_queued_traces < 1:
            raise ValueError(f"the trace queue must hold at least one trace, not {max_queued_traces}")
        self.client = client
        self.provider = provider
        self.max_queued_traces = max_queued_traces
        #: Traces dropped because the queue was full.
        self.dropped = 0
        #: Traces replayed into the SDK, and the spans they made.
        self.replayed = 0
        self.spans = 0
        self._items: deque[Any] = deque()
        #: Records queued or being replayed.
        self._pending = 0
        self._overflowing = False
        self._spans_since_flush = 0
        self._condition = threading.Condition()
        self._stopped = False
        self._thread = threading.Thread(target=self._run, name="autopicker-trace-replay", daemon=True)
        self._thread.start()
        # Registered after the client and its provider registered theirs, so it runs before them at exit.
        atexit.register(self._at_exit)

    @property
    def stopped(self) -> bool:
        """True after :meth:`shutdown` (or at exit): records are no longer replayed."""
        return self._stopped

    def new_trace_id(self) -> str:
        """The id the next recorded trace will have."""
        return self.provider.new_trace_id()

    def submit(self, trace_id: str, steps: list[Step]) -> bool:
        """Queue one request's record; ``False`` (and counted) when the queue is full or stopped."""
        with self._condition:
            if self._pending >= self.max_queued_traces or self._stopped:
                self.dropped += 1
                first = not self._overflowing
                self._overflowing = True
            else:
                self._items.append((trace_id, steps))
                self._pending += 1
                self._overflowing = False
                self._condition.notify()
                return True
        if first:
            logger.warning(
                "Langfuse tracing is behind: %d traces wait to be exported, so this request's trace and "
                "those after it are dropped until there is room (%d dropped so far)",
                self.max_queued_traces,
                self.dropped,
            )
        return False

    def drain(self, timeout: float | None = None) -> bool:
        """Wait until every queued trace is in the SDK's hands; ``False`` if ``timeout`` passed first."""
        with self._condition:
            return self._condition.wait_for(lambda: self._pending == 0, timeout)

    def flush(self) -> None:
        """Replay what is queued, then have the SDK export everything it holds."""
        self.drain()
        self.client.flush()

    def shutdown(self) -> None:
        """Replay what is queued, stop the worker, and shut the client down (it exports what it holds)."""
        atexit.unregister(self._at_exit)
        self._stop()
        self.client.shutdown()
        self.provider.shutdown()

    def _stop(self, timeout: float | None = None) -> None:
        with self._condition:
            if not self._stopped:
                self._stopped = True
                self._items.append(_STOP)
                self._condition.notify()
        self._thread.join(timeout)

    def _at_exit(self) -> None:
        self._stop(timeout=60)

    def _run(self) -> None:
        while True:
            with self._condition:
                while not self._items:
                    self._condition.wait()
                chunk = [self._items.popleft() for _ in range(min(_CHUNK, len(self._items)))]
            stop = False
            done = 0
            for item in chunk:
                if item is _STOP:
                    stop = True
                    continue
                self._replay(*item)
                done += 1
                yield_interpreter()
            if self._spans_since_flush >= _SPANS_PER_FLUSH:
                self._spans_since_flush = 0
                self._flush_provider()
            with self._condition:
                self._pending -= done
                self.replayed += done
                self._condition.notify_all()
            if stop:
                return

    def _replay(self, trace_id: str, steps: list[Step]) -> None:
        provider = self.provider
        state = TraceState(self.client)
        try:
            for step in steps:
                provider.at(step[1])
                if step[0] == "start":
                    provider.preset(trace_id)
                state.apply(step)
        except Exception:
            logger.warning("Langfuse tracing failed while replaying trace %s", trace_id, exc_info=True)
            try:
                state.close()
            except Exception:
                logger.debug("closing the failed trace %s failed too", trace_id, exc_info=True)
        self._spans_since_flush += state.spans
        self.spans += state.spans

    def _flush_provider(self) -> None:
        try:
            self.provider.force_flush()
        except Exception:
            logger.warning("Langfuse tracing failed while exporting", exc_info=True)
