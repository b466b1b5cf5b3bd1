"""How long an HTTP 429 (or a reset header) says to wait: one reading for the router and the API ingest.

Providers and Langfuse say it in several ways: ``Retry-After`` as seconds or an HTTP date,
``retry-after-ms``, and the reset headers of OpenAI (``x-ratelimit-reset-*``, Go-style durations such as
``6m0s``) and Anthropic (``anthropic-ratelimit-*-reset``, RFC 3339 times). Header names are compared without
regard to case.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from email.utils import parsedate_to_datetime

from autopicker.durations import duration_seconds

#: Reset headers read when there is no Retry-After; the longest wait among them wins.
RESET_HEADERS = (
    "x-ratelimit-reset-requests",
    "x-ratelimit-reset-tokens",
    "anthropic-ratelimit-requests-reset",
    "anthropic-ratelimit-tokens-reset",
    "anthropic-ratelimit-input-tokens-reset",
    "anthropic-ratelimit-output-tokens-reset",
)


def seconds_until(value: str | None, now: float) -> float | None:
    """Seconds until an HTTP date or RFC 3339 time, or a duration (seconds, ``6m0s``); never negative."""
    if not value:
        return None
    seconds = duration_seconds(value)
    if seconds is not None:
        return seconds
    moment: datetime | None
    try:
        moment = datetime.fromisoformat(value.strip().replace("Z", "+00:00"))
    except ValueError:
        try:
            moment = parsedate_to_datetime(value)
        except (TypeError, ValueError):
            moment = None
    if moment is None or moment.tzinfo is None:
        return None
    return max(moment.timestamp() - now, 0.0)


def retry_after(headers: Mapping[str, str], now: float) -> float | None:
    """How long a 429 says to wait, from whichever header was sent; None when none says."""
    lowered = {name.lower(): value for name, value in headers.items()}
    millis = lowered.get("retry-after-ms")
    if millis:
        try:
            return max(float(millis) / 1000.0, 0.0)
        except ValueError:
            pass
    seconds = seconds_until(lowered.get("retry-after"), now)
    if seconds is not None:
        return seconds
    known = [s for s in (seconds_until(lowered.get(name), now) for name in RESET_HEADERS) if s is not None]
    return max(known) if known else None
