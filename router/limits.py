"""Rate limits tracked before each call: sliding-window RPM, TPM and RPD per model, in this process.

The router asks :meth:`InProcessLimiter.reserve` before it sends a request: the request and its estimated
tokens (prompt plus the requested output) are counted at once, so concurrent requests cannot all squeeze
under the same limit, and :meth:`reconcile` swaps the estimate for the provider's real usage afterwards. A
denied reservation says which limit bit and when it frees up (``retry_at``), which is what lets the router
wait for its primary instead of falling back. A provider 429 calls :meth:`block`, so no request goes to that
model before its ``Retry-After``. Per-minute windows slide over the last 60 seconds. The daily window is a
rolling 24 hours unless the model names a time zone whose midnight resets it (Gemini: midnight Pacific).

:class:`Limiter` is the interface both backends meet; ``limits_redis`` shares the state between processes.
"""

from __future__ import annotations

import threading
from collections import deque
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Protocol
from zoneinfo import ZoneInfo

from .catalog import Limits

WINDOW_SECONDS = 60.0
DAY_SECONDS = 86_400.0
NEVER = float("inf")


@dataclass(slots=True)
class Reservation:
    """Capacity held for one request; hand it back to ``reconcile`` with the real usage."""

    model: str
    input_tokens: int
    output_tokens: int
    at: float
    token: object = field(default=None, repr=False)


@dataclass(slots=True)
class Decision:
    """The answer to a reservation: granted, or the limit that bit and when it frees up."""

    granted: bool
    reservation: Reservation | None = None
    retry_at: float = 0.0
    reason: str | None = None

    def describe(self, now: float) -> str:
        """One phrase for an attempt's error, e.g. ``rpm limit reached, free in 12.0 s``."""
        if self.granted:
            return "granted"
        what = "the provider answered 429" if self.reason == "blocked" else f"{self.reason} limit reached"
        if self.retry_at == NEVER:
            return f"this one request is larger than the {self.reason} limit"
        return f"{what}, free in {max(self.retry_at - now, 0.0):.1f} s"


GRANTED_UNLIMITED = Decision(True)


class Limiter(Protocol):
    """A rate-limit backend; the async methods are the twins of the sync ones."""

    def reserve(
        self, model: str, limits: Limits, input_tokens: int, output_tokens: int, now: float
    ) -> Decision:
        """Count a request against ``model``'s limits if it fits."""
        ...

    def reconcile(self, reservation: Reservation | None, input_tokens: int, output_tokens: int) -> None:
        """Replace a reservation's estimate with the real usage."""
        ...

    def block(self, model: str, until: float) -> None:
        """Refuse ``model`` until ``until`` (a provider said it is limited)."""
        ...

    async def areserve(
        self, model: str, limits: Limits, input_tokens: int, output_tokens: int, now: float
    ) -> Decision:
        """Async twin of :meth:`reserve`."""
        ...

    async def areconcile(
        self, reservation: Reservation | None, input_tokens: int, output_tokens: int
    ) -> None:
        """Async twin of :meth:`reconcile`."""
        ...

    async def ablock(self, model: str, until: float) -> None:
        """Async twin of :meth:`block`."""
        ...


def day_bounds(now: float, zone: str) -> tuple[float, float]:
    """Start and end (epoch seconds) of the calendar day in ``zone`` that contains ``now``."""
    tz = ZoneInfo(zone)
    local = datetime.fromtimestamp(now, tz)
    start = local.replace(hour=0, minute=0, second=0, microsecond=0)
    # Adding a day to the wall time (not 86,400 s) keeps midnight right across daylight-saving changes.
    end = (start.replace(tzinfo=None) + timedelta(days=1)).replace(tzinfo=tz)
    return start.timestamp(), end.timestamp()


class _Entry:
    __slots__ = ("at", "input", "output", "alive")

    def __init__(self, at: float, input_tokens: int, output_tokens: int) -> None:
        self.at = at
        self.input = input_tokens
        self.output = output_tokens
        self.alive = True


class _ModelWindow:
    __slots__ = (
        "minute",
        "in_sum",
        "out_sum",
        "day_times",
        "day_count",
        "day_start",
        "day_end",
        "blocked_until",
    )

    def __init__(self) -> None:
        self.minute: deque[_Entry] = deque()
        self.in_sum = 0
        self.out_sum = 0
        self.day_times: deque[float] = deque()
        self.day_count = 0
        self.day_start = 0.0
        self.day_end = 0.0
        self.blocked_until = 0.0

    def expire(self, now: float, zone: str | None) -> None:
        cutoff = now - WINDOW_SECONDS
        minute = self.minute
        while minute and minute[0].at <= cutoff:
            entry = minute.popleft()
            entry.alive = False
            self.in_sum -= entry.input
            self.out_sum -= entry.output
        if zone:
            if not self.day_start <= now < self.day_end:
                self.day_start, self.day_end = day_bounds(now, zone)
                self.day_count = 0
        else:
            day_cutoff = now - DAY_SECONDS
            times = self.day_times
            while times and times[0] <= day_cutoff:
                times.popleft()

    def tokens_free_at(self, need: int, which: str) -> float:
        """When enough of the window's tokens of kind ``which`` have expired to free ``need`` of them."""
        freed = 0
        for entry in self.minute:
            freed += (
                entry.input
                if which == "input"
                else entry.output
                if which == "output"
                else (entry.input + entry.output)
            )
            if freed >= need:
                return entry.at + WINDOW_SECONDS
        return NEVER

    def check(self, limits: Limits, input_tokens: int, output_tokens: int, now: float) -> Decision | None:
        """``None`` when the request fits, otherwise the denial (the latest of the limits' free times)."""
        reason: str | None = None
        retry_at = 0.0

        def deny(why: str, when: float) -> None:
            nonlocal reason, retry_at
            # A limit the request can never fit names the denial: no wait would help.
            if reason is None or (when == NEVER and retry_at != NEVER):
                reason = why
            retry_at = max(retry_at, when)

        if self.blocked_until > now:
            deny("blocked", self.blocked_until)
        if limits.rpd:
            if limits.daily_reset_timezone:
                if self.day_count + 1 > limits.rpd:
                    deny("rpd", self.day_end)
            elif len(self.day_times) + 1 > limits.rpd:
                deny("rpd", self.day_times[len(self.day_times) - limits.rpd] + DAY_SECONDS)
        if limits.rpm and len(self.minute) + 1 > limits.rpm:
            deny("rpm", self.minute[len(self.minute) - limits.rpm].at + WINDOW_SECONDS)
        total = input_tokens + output_tokens
        for name, limit, used, asked, which in (
            ("tpm", limits.tpm, self.in_sum + self.out_sum, total, "total"),
            ("input_tpm", limits.input_tpm, self.in_sum, input_tokens, "input"),
            ("output_tpm", limits.output_tpm, self.out_sum, output_tokens, "output"),
        ):
            if limit and used + asked > limit:
                deny(name, NEVER if asked > limit else self.tokens_free_at(used + asked - limit, which))
        if reason is None:
            return None
        return Decision(False, retry_at=retry_at, reason=reason)

    def add(self, limits: Limits, entry: _Entry) -> None:
        self.minute.append(entry)
        self.in_sum += entry.input
        self.out_sum += entry.output
        if limits.daily_reset_timezone:
            self.day_count += 1
        else:
            self.day_times.append(entry.at)


class InProcessLimiter:
    """Sliding windows in this process's memory (the default backend)."""

    def __init__(self) -> None:
        self._windows: dict[str, _ModelWindow] = {}
        self._lock = threading.Lock()

    def _window(self, model: str) -> _ModelWindow:
        window = self._windows.get(model)
        if window is None:
            window = self._windows[model] = _ModelWindow()
        return window

    def reserve(
        self, model: str, limits: Limits, input_tokens: int, output_tokens: int, now: float
    ) -> Decision:
        """Count the request if it fits every limit of ``model``."""
        with self._lock:
            window = self._windows.get(model)
            if limits.unlimited and (window is None or window.blocked_until <= now):
                return GRANTED_UNLIMITED
            if window is None:
                window = self._window(model)
            window.expire(now, limits.daily_reset_timezone)
            denied = window.check(limits, input_tokens, output_tokens, now)
            if denied is not None:
                return denied
            entry = _Entry(now, input_tokens, output_tokens)
            window.add(limits, entry)
            return Decision(True, Reservation(model, input_tokens, output_tokens, now, entry))

    def reconcile(self, reservation: Reservation | None, input_tokens: int, output_tokens: int) -> None:
        """Swap the estimate for the real usage while the request is still inside the window."""
        if reservation is None or not isinstance(reservation.token, _Entry):
            return
        with self._lock:
            entry = reservation.token
            if not entry.alive:
                return
            window = self._windows[reservation.model]
            window.in_sum += input_tokens - entry.input
            window.out_sum += output_tokens - entry.output
            entry.input, entry.output = input_tokens, output_tokens
            reservation.input_tokens, reservation.output_tokens = input_tokens, output_tokens

    def block(self, model: str, until: float) -> None:
        """Refuse ``model`` until ``until``."""
        with self._lock:
            window = self._window(model)
            window.blocked_until = max(window.blocked_until, until)

    async def areserve(
        self, model: str, limits: Limits, input_tokens: int, output_tokens: int, now: float
    ) -> Decision:
        """Async twin of :meth:`reserve` (no I/O, so it just calls it)."""
        return self.reserve(model, limits, input_tokens, output_tokens, now)

    async def areconcile(
        self, reservation: Reservation | None, input_tokens: int, output_tokens: int
    ) -> None:
        """Async twin of :meth:`reconcile`."""
        self.reconcile(reservation, input_tokens, output_tokens)

    async def ablock(self, model: str, until: float) -> None:
        """Async twin of :meth:`block`."""
        self.block(model, until)
