"""What the router needs from a provider adapter: one chat call, sync and async, and what came back.

An adapter sends one request for one model and either returns a :class:`ProviderResponse` or raises one of
the ``errors.Provider*`` exceptions. It never retries: a retry inside the adapter (or its SDK) is exactly
what turns a 429 into tens of seconds of waiting before the router can fall back. Rate-limit headers of a
successful answer travel back in ``limited_until`` so the router can stop sending before the provider starts
refusing.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from .catalog import ModelSpec

Messages = Sequence[Mapping[str, Any]]


@dataclass(frozen=True, slots=True)
class Usage:
    """Tokens a call used, as the provider counted them."""

    input_tokens: int = 0
    output_tokens: int = 0
    cached_input_tokens: int = 0

    @property
    def total_tokens(self) -> int:
        """Input plus output."""
        return self.input_tokens + self.output_tokens


@dataclass(frozen=True, slots=True)
class ProviderResponse:
    """A successful answer."""

    text: str
    usage: Usage
    finish_reason: str | None = None
    #: Epoch seconds until which the provider says this model has no capacity left (from ``x-ratelimit-*``).
    limited_until: float | None = None
    #: Seconds from sending the request to the first token, when the provider reports it.
    time_to_first_token: float | None = None


class Provider(Protocol):
    """A chat-completion backend for the models of a catalog."""

    def complete(self, model: ModelSpec, messages: Messages, params: Mapping[str, Any]) -> ProviderResponse:
        """Send one request to ``model``; raise a ``Provider*`` error when it fails."""
        ...

    async def acomplete(
        self, model: ModelSpec, messages: Messages, params: Mapping[str, Any]
    ) -> ProviderResponse:
        """Async twin of :meth:`complete`."""
        ...
