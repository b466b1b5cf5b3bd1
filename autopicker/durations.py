"""Durations and moments, as users type them and as rate-limit headers send them.

A duration is one or more parts, each a whole or decimal number and a unit: ``ms``, ``s``, ``m`` minutes,
``h``, ``d`` days, ``w`` weeks: ``90s``, ``1.5h``, ``7d``, and the Go style providers use in reset headers,
``6m0s`` or ``1h2m3s``. On the command line a unit is required (``--overlap 15`` is a usage error, since
minutes and seconds are both plausible); in a header a plain number is seconds. A moment is a duration back
from now or an ISO-8601 date or date-time; one without a zone is UTC, as everywhere in Langfuse's data.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta

from autopicker.errors import UsageError

_PART = re.compile(r"(\d+(?:\.\d+)?)(ms|s|m|h|d|w)", re.IGNORECASE)
_SCALE = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3_600.0, "d": 86_400.0, "w": 604_800.0}
DURATION_HELP = "a duration such as 30m, 24h or 7d"


def duration_seconds(text: str | None, *, bare_seconds: bool = True) -> float | None:
    """Seconds in ``text`` (``"20"``, ``"1.5s"``, ``"6m0s"``, ``"20ms"``, ``"7d"``), or None when it is not a
    duration. A plain number counts as seconds only with ``bare_seconds``; a negative one as 0."""
    if not text:
        return None
    compact = "".join(text.split())
    if bare_seconds:
        try:
            return max(float(compact), 0.0)
        except ValueError:
            pass
    parts = _PART.findall(compact)
    if not parts or "".join(number + unit for number, unit in parts) != compact:
        return None
    return sum(float(number) * _SCALE[unit.lower()] for number, unit in parts)


def parse_duration(text: str, option: str) -> timedelta:
    """``"24h"`` -> 24 hours; anything else is a usage error naming ``option``."""
    seconds = duration_seconds(text, bare_seconds=False)
    if seconds is None:
        raise UsageError(f"{option} must be {DURATION_HELP}, not {text!r}.")
    return timedelta(seconds=seconds)


def parse_moment(text: str, option: str, now: datetime) -> datetime:
    """A duration back from ``now`` (``7d``) or an ISO-8601 date or date-time (UTC unless it says)."""
    if duration_seconds(text, bare_seconds=False) is not None:
        return now - parse_duration(text, option)
    try:
        moment = datetime.fromisoformat(text.strip().replace("Z", "+00:00"))
    except ValueError:
        raise UsageError(
            f"{option} must be {DURATION_HELP} (back from now) or an ISO date such as 2026-01-31 or "
            f"2026-01-31T12:00:00Z, not {text!r}."
        ) from None
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)
