"""Durations and moments as users type them on the command line: ``30m``, ``24h``, ``7d`` or an ISO date.

A duration is a whole or decimal number followed by one unit: ``s`` seconds, ``m`` minutes, ``h`` hours,
``d`` days, ``w`` weeks (``90s``, ``1.5h``). A moment is either a duration back from now or an ISO-8601
date or date-time; one without a zone is UTC, as everywhere in Langfuse's data.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta

from autopicker.errors import UsageError

_DURATION = re.compile(r"\s*(\d+(?:\.\d+)?)\s*([smhdw])\s*\Z", re.IGNORECASE)
_UNITS = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days", "w": "weeks"}
DURATION_HELP = "a duration such as 30m, 24h or 7d"


def parse_duration(text: str, option: str) -> timedelta:
    """``"24h"`` -> 24 hours; anything else is a usage error naming ``option``."""
    match = _DURATION.match(text)
    if not match:
        raise UsageError(f"{option} must be {DURATION_HELP}, not {text!r}.")
    return timedelta(**{_UNITS[match.group(2).lower()]: float(match.group(1))})


def parse_moment(text: str, option: str, now: datetime) -> datetime:
    """A duration back from ``now`` (``7d``) or an ISO-8601 date or date-time (UTC unless it says)."""
    if _DURATION.match(text):
        return now - parse_duration(text, option)
    try:
        moment = datetime.fromisoformat(text.strip().replace("Z", "+00:00"))
    except ValueError:
        raise UsageError(
            f"{option} must be {DURATION_HELP} (back from now) or an ISO date such as 2026-01-31 or "
            f"2026-01-31T12:00:00Z, not {text!r}."
        ) from None
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)
