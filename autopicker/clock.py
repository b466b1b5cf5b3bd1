"""Time as AutoPicker sees it: wall time and sleeping, behind one injectable object.

Every time-dependent rule (the router's sliding windows, Retry-After, cool-downs, waiting for the primary,
span times in a simulation; the API ingest's request budget and retries) reads the clock it was given, so
tests and ``autopicker simulate`` move time by hand instead of sleeping. :class:`SystemClock` is the real
thing; :class:`ManualClock` only moves when told to, or when something "sleeps" on it.
"""

from __future__ import annotations

import asyncio
import threading
import time
from typing import Protocol


class Clock(Protocol):
    """What the router and the ingest need from time."""

    def time(self) -> float:
        """Seconds since the epoch (UTC)."""
        ...

    def sleep(self, seconds: float) -> None:
        """Block for ``seconds``."""
        ...

    async def asleep(self, seconds: float) -> None:
        """Suspend the calling task for ``seconds``."""
        ...


class SystemClock:
    """The process's real clock."""

    def time(self) -> float:
        """Seconds since the epoch."""
        return time.time()

    def sleep(self, seconds: float) -> None:
        """Block for ``seconds``."""
        if seconds > 0:
            time.sleep(seconds)

    async def asleep(self, seconds: float) -> None:
        """Suspend for ``seconds``."""
        await asyncio.sleep(max(seconds, 0.0))


class ManualClock:
    """A clock that moves only when told to; sleeping on it advances it at once.

    It may be set backwards: a simulation that replays overlapping requests starts each one at its own
    arrival time, as concurrent requests do in production.
    """

    def __init__(self, start: float = 1_700_000_000.0) -> None:
        self._now = float(start)
        self._lock = threading.Lock()

    def time(self) -> float:
        """The current simulated time."""
        return self._now

    def set(self, when: float) -> None:
        """Jump to ``when`` (seconds since the epoch)."""
        with self._lock:
            self._now = float(when)

    def advance(self, seconds: float) -> None:
        """Move forward by ``seconds``."""
        with self._lock:
            self._now += max(seconds, 0.0)

    def sleep(self, seconds: float) -> None:
        """Advance instead of blocking."""
        self.advance(seconds)

    async def asleep(self, seconds: float) -> None:
        """Advance, then yield once to the event loop so other tasks run as they would."""
        self.advance(seconds)
        await asyncio.sleep(0)
