"""A client-side budget of requests per minute, so a long backfill stays under Langfuse's rate limit.

Langfuse Cloud limits its public API per organisation and minute (30 on Hobby, 100 on Core, 1,000 on Pro) and
answers 429 past it. :class:`RequestBudget` lets at most ``per_minute`` requests start in any 60-second
window: a short incremental run (a handful of requests) never waits, and a backfill of thousands of pages
settles at exactly the budget instead of alternating bursts and 429s. (A token bucket refilled at the same
rate would allow a burst of its capacity on top of the refill within one minute, i.e. up to twice the limit.)

Time comes from an injected clock (``time()`` and ``sleep()``), so tests move time by hand.
"""

from __future__ import annotations

import collections
import logging

from autopicker.clock import Clock

logger = logging.getLogger(__name__)

WINDOW_SECONDS = 60.0


class RequestBudget:
    """At most ``per_minute`` request starts in any 60-second window; :meth:`acquire` waits for a slot."""

    def __init__(self, per_minute: int, clock: Clock) -> None:
        if per_minute < 1:
            raise ValueError("per_minute must be at least 1")
        self.per_minute = per_minute
        self._clock = clock
        self._starts: collections.deque[float] = collections.deque()
        #: Seconds spent waiting for the budget, for the run's summary.
        self.waited = 0.0

    def acquire(self) -> None:
        """Wait until one more request fits the budget, then count it as started now."""
        while True:
            now = self._clock.time()
            while self._starts and self._starts[0] <= now - WINDOW_SECONDS:
                self._starts.popleft()
            if len(self._starts) < self.per_minute:
                self._starts.append(now)
                return
            wait = self._starts[0] + WINDOW_SECONDS - now
            logger.info("request budget of %d/min reached; waiting %.1f s", self.per_minute, wait)
            self.waited += wait
            self._clock.sleep(wait)
