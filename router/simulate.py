"""``autopicker simulate``: days of router traffic in seconds, traced through the real Langfuse SDK to files.

The workload (``workload``) runs through an :class:`~router.llm.AutoPickerLLM` whose provider is simulated
and whose clock is a :class:`~autopicker.clock.ManualClock` set to each request's arrival time. Its traces go
through the Langfuse SDK into the offline sink (``export_sink``), with a
:class:`~router.clock_tracing.ClockTracerProvider` so every observation carries the simulated time. The sink
writes one export run per simulated UTC day, like a daily scheduled export, plus the last, partial day at the
end.

The setting is a small team's: OpenAI tier 1 as primary, Gemini's free tier and Anthropic tier 1 as fallbacks,
a primary whose provider grants fewer tokens per minute than the catalog states (other clients share the
organisation's quota), so 429s happen as well as the router's own refusals, and occasional 500s and timeouts.
"""

from __future__ import annotations

import contextlib
import logging
import math
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from autopicker.clock import ManualClock, SystemClock

from .catalog import Catalog, Limits
from .clock_tracing import ClockTracerProvider, SeededIdGenerator
from .errors import AllModelsFailed
from .export_sink import WrittenRun, offline_client
from .llm import AutoPickerLLM
from .simulated import Behaviour, SimulatedProvider
from .tracing import Tracing
from .workload import generate

logger = logging.getLogger(__name__)

SIMULATED_MODELS = (
    "openai/gpt-4o-mini",
    "gemini/gemini-2.5-flash-lite",
    "anthropic/claude-3-5-haiku",
    "gemini/gemini-2.5-pro",
)
BEHAVIOURS = {
    "openai/gpt-4o-mini": Behaviour(
        latency=0.7,
        error_rate=0.01,
        timeout_rate=0.002,
        timeout=20.0,
        limits=Limits(rpm=500, tpm=150_000, rpd=10_000),
    ),
    "gemini/gemini-2.5-flash-lite": Behaviour(latency=0.5, error_rate=0.02, tokenizer_ratio=1.1),
    "anthropic/claude-3-5-haiku": Behaviour(latency=0.9, error_rate=0.01, tokenizer_ratio=1.12),
    "gemini/gemini-2.5-pro": Behaviour(latency=2.5, error_rate=0.01, tokenizer_ratio=1.1),
}
#: The SDK queues at most 2,048 spans; draining it this often keeps a fast simulation from overflowing it.
_FLUSH_EVERY = 200


@dataclass(slots=True)
class SimulationSummary:
    """What a simulation did and wrote."""

    requests: int
    stats: dict[str, int | float]
    runs: list[WrittenRun] = field(default_factory=list)
    out_dir: Path = Path(".")
    project_id: str = "autopicker"
    start: float = 0.0
    end: float = 0.0

    @property
    def rows(self) -> int:
        """Observation rows written."""
        return sum(run.rows for run in self.runs)


def simulate(
    out_dir: str | Path,
    *,
    requests: int = 2_000,
    seed: int = 42,
    days: float = 7.0,
    end: float | None = None,
    project_id: str = "autopicker",
    progress: Callable[[int], None] | None = None,
) -> SimulationSummary:
    """Replay ``requests`` simulated requests over the ``days`` before ``end`` (default: now)."""
    if requests < 1:
        raise ValueError("requests must be at least 1")
    if days <= 0:
        raise ValueError("days must be positive")
    end = math.floor(end if end is not None else SystemClock().time())
    start = end - days * 86_400
    clock = ManualClock(start)
    tracer_provider = ClockTracerProvider(clock, id_generator=SeededIdGenerator(f"{seed}:{end}"))
    # One run per simulated day (flushed below), never by age: simulated hours pass between two exports.
    client, sink = offline_client(
        out_dir,
        project_id=project_id,
        clock=clock,
        tracer_provider=tracer_provider,
        max_file_age_seconds=math.inf,
    )
    llm = AutoPickerLLM(
        SIMULATED_MODELS,
        catalog=Catalog.load(use_env=False),
        provider=SimulatedProvider(seed=seed, clock=clock, behaviours=BEHAVIOURS),
        clock=clock,
        max_wait_seconds=3.0,
        tracing=Tracing(client, clock=clock, capture_content=False, trace_name="autopicker-simulation"),
    )
    current_day: int | None = None
    done = 0
    try:
        for request in generate(requests, seed, start, end):
            day = int(request.at // 86_400)
            if current_day is not None and day != current_day:
                clock.set(request.at)
                client.flush()
                sink.flush()
            current_day = day
            clock.set(request.at)
            with contextlib.suppress(AllModelsFailed):  # counted in llm.stats, traced as a failed request
                llm.complete(
                    request.messages(),
                    max_tokens=request.max_tokens,
                    user_id=request.user_id,
                    session_id=request.session_id,
                    tags=["simulated", "burst" if request.burst else "steady"],
                )
            done += 1
            if done % _FLUSH_EVERY == 0:
                client.flush()
                if progress is not None:
                    progress(done)
        clock.set(max(clock.time(), end))
        client.flush()
        sink.flush()
    finally:
        client.shutdown()
        tracer_provider.shutdown()
    if progress is not None:
        progress(done)
    return SimulationSummary(
        requests=done,
        stats=llm.stats,
        runs=list(sink.runs),
        out_dir=Path(out_dir),
        project_id=project_id,
        start=start,
        end=end,
    )
