"""The router's exceptions.

Two families. Configuration problems (:class:`CatalogError`, :class:`UnknownModelError`) are raised at once,
because no fallback can fix them. Provider problems (:class:`ProviderError` and its subclasses) are what a
provider adapter raises for one call; the router turns each into an attempt and moves to the next model, and
only when every candidate is used up does the caller see :class:`AllModelsFailed`, which lists every attempt.
The names follow the HTTP status a provider answers with, so an adapter maps errors without guessing.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from .routing import Attempt


class RouterError(Exception):
    """Base class of everything the router raises on purpose."""


class CatalogError(RouterError):
    """The model catalog (the shipped file, a user file or overrides) is invalid."""


class UnknownModelError(CatalogError):
    """A model name that the catalog does not define."""

    def __init__(self, name: str, known: Sequence[str]) -> None:
        self.name = name
        listed = ", ".join(sorted(known))
        super().__init__(
            f"unknown model {name!r}: it is not in the catalog (known models: {listed}); "
            "add it to your catalog file or pass it in `overrides`"
        )


class ProviderError(RouterError):
    """One call to a provider failed; ``reason`` is the attempt's machine-readable category."""

    reason = "error"

    def __init__(self, message: str, *, status: int | None = None) -> None:
        super().__init__(message)
        self.status = status


class ProviderRateLimited(ProviderError):
    """The provider answered 429; ``retry_after`` (seconds) comes from its headers when it sent any."""

    reason = "rate_limit"

    def __init__(self, message: str, *, retry_after: float | None = None, status: int | None = 429) -> None:
        super().__init__(message, status=status)
        self.retry_after = retry_after


class ProviderContextLength(ProviderError):
    """The provider refused the prompt as longer than the model's context window."""

    reason = "context_length"


class ProviderServerError(ProviderError):
    """The provider failed (5xx): worth trying another model, and counted by the circuit breaker."""

    reason = "server_error"


class ProviderTimeout(ProviderError):
    """No answer within the timeout."""

    reason = "timeout"


class ProviderConnectionError(ProviderError):
    """The provider could not be reached."""

    reason = "connection"


class ProviderRequestError(ProviderError):
    """The provider refused the request itself (400, 401, 403, 404, ...)."""

    reason = "bad_request"


class ProviderNotConfigured(ProviderRequestError):
    """The model cannot be called from here: no API key or base URL is configured for it."""

    reason = "not_configured"


class AllModelsFailed(RouterError):
    """No candidate model could serve the request; ``attempts`` says what happened to each one, in order."""

    def __init__(self, attempts: Sequence[Attempt]) -> None:
        self.attempts = tuple(attempts)
        parts = [
            f"{a.model}: {a.outcome} ({a.reason}{': ' + a.error if a.error else ''})" for a in self.attempts
        ]
        super().__init__(f"all {len(self.attempts)} candidate models failed - " + "; ".join(parts))
