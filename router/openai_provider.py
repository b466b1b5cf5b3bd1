"""A provider for every OpenAI-compatible chat endpoint, through the official ``openai`` package.

That covers OpenAI itself, Gemini's and Anthropic's OpenAI-compatible endpoints, vLLM, Ollama and LiteLLM's
proxy. Each model's base URL and key come from the catalog (``api_base``, ``api_key_env``) unless
``api_keys``/``api_bases`` give them. The SDK's own retries are off (``max_retries=0``): a 429 must become a
fallback at once, not tens of seconds of back-off. Errors map onto the router's: 429 ->
:class:`ProviderRateLimited` with the wait taken from ``Retry-After`` / ``retry-after-ms`` /
``x-ratelimit-reset-*`` / ``anthropic-ratelimit-*-reset``; a 400 or 413 that says the prompt is too long ->
:class:`ProviderContextLength`; 5xx -> :class:`ProviderServerError`; timeouts and connection failures ->
:class:`ProviderTimeout` / :class:`ProviderConnectionError`; other 4xx -> :class:`ProviderRequestError`. A
successful answer whose ``x-ratelimit-remaining-*`` header is 0 reports when the model frees up, so the
router stops sending before the provider refuses.
"""

from __future__ import annotations

import logging
import os
import re
import threading
from collections.abc import Mapping
from typing import Any, cast

import openai

from autopicker.clock import Clock, SystemClock
from autopicker.retry_after import retry_after, seconds_until

from .catalog import ModelSpec
from .errors import (
    ProviderConnectionError,
    ProviderContextLength,
    ProviderError,
    ProviderNotConfigured,
    ProviderRateLimited,
    ProviderRequestError,
    ProviderServerError,
    ProviderTimeout,
)
from .provider import Messages, ProviderResponse, Usage
from .tokens import prompt_tokens, text_tokens

logger = logging.getLogger(__name__)

_CONTEXT_PATTERNS = re.compile(
    r"context[_ ]length|context window|maximum context|too many tokens|prompt is too long|input is too long|"
    r"exceeds the maximum number of tokens|reduce the length|token count .* exceeds",
    re.IGNORECASE,
)


def exhausted_until(headers: Mapping[str, str], now: float) -> float | None:
    """When a successful answer's headers say the model has no requests or tokens left: until their reset."""
    waits = []
    for remaining, reset in (
        ("x-ratelimit-remaining-requests", "x-ratelimit-reset-requests"),
        ("x-ratelimit-remaining-tokens", "x-ratelimit-reset-tokens"),
        ("anthropic-ratelimit-requests-remaining", "anthropic-ratelimit-requests-reset"),
        ("anthropic-ratelimit-tokens-remaining", "anthropic-ratelimit-tokens-reset"),
    ):
        if headers.get(remaining, "").strip() == "0":
            seconds = seconds_until(headers.get(reset), now)
            if seconds is not None:
                waits.append(seconds)
    return now + max(waits) if waits else None


def map_error(error: openai.OpenAIError, model: str, now: float) -> ProviderError:
    """The router's error for an ``openai`` SDK exception."""
    if isinstance(error, openai.APITimeoutError):
        return ProviderTimeout(f"{model} did not answer in time")
    if isinstance(error, openai.APIConnectionError):
        return ProviderConnectionError(f"{model} could not be reached: {error}")
    if isinstance(error, openai.APIStatusError):
        status = error.status_code
        message = f"{status} from {model}: {_error_message(error)}"
        if status == 429:
            return ProviderRateLimited(message, retry_after=retry_after(error.response.headers, now))
        if status == 413 or (
            status == 400
            and (error.code == "context_length_exceeded" or _CONTEXT_PATTERNS.search(_error_message(error)))
        ):
            return ProviderContextLength(message, status=status)
        if status >= 500:
            return ProviderServerError(message, status=status)
        return ProviderRequestError(message, status=status)
    if isinstance(error, openai.APIResponseValidationError):
        return ProviderServerError(f"{model} sent an answer that is not a chat completion")
    return ProviderServerError(f"{model} failed: {type(error).__name__}: {error}")


def _error_message(error: openai.APIStatusError) -> str:
    body = error.body
    if isinstance(body, Mapping):
        inner = body.get("error", body)
        if isinstance(inner, Mapping) and isinstance(inner.get("message"), str):
            return str(inner["message"])
        if isinstance(inner, str):
            return inner
    return str(error.message)


def _response(
    completion: Any, headers: Mapping[str, str], messages: Messages, now: float
) -> ProviderResponse:
    choice = completion.choices[0] if completion.choices else None
    text = (choice.message.content if choice is not None and choice.message is not None else None) or ""
    usage = completion.usage
    if usage is not None:
        details = getattr(usage, "prompt_tokens_details", None)
        cached = getattr(details, "cached_tokens", None) or 0
        counted = Usage(usage.prompt_tokens or 0, usage.completion_tokens or 0, cached)
    else:
        # Some OpenAI-compatible servers omit usage; an estimate beats recording zero.
        counted = Usage(prompt_tokens(messages), text_tokens(text))
    return ProviderResponse(
        text=text,
        usage=counted,
        finish_reason=choice.finish_reason if choice is not None else None,
        limited_until=exhausted_until(headers, now),
    )


class OpenAICompatibleProvider:
    """Calls models through their OpenAI-compatible endpoints, one SDK client per base URL and key."""

    def __init__(
        self,
        *,
        timeout: float = 60.0,
        api_keys: Mapping[str, str] | None = None,
        api_bases: Mapping[str, str] | None = None,
        clock: Clock | None = None,
    ) -> None:
        self.timeout = timeout
        self.api_keys = dict(api_keys or {})
        self.api_bases = dict(api_bases or {})
        self.clock = clock or SystemClock()
        self._clients: dict[tuple[str, str], openai.OpenAI] = {}
        self._async_clients: dict[tuple[str, str], openai.AsyncOpenAI] = {}
        self._lock = threading.Lock()

    def configured(self, spec: ModelSpec) -> bool:
        """True when ``spec`` has a base URL and an API key."""
        try:
            self._endpoint(spec)
        except ProviderNotConfigured:
            return False
        return True

    def _endpoint(self, spec: ModelSpec) -> tuple[str, str]:
        base = self.api_bases.get(spec.name) or self.api_bases.get(spec.provider) or spec.api_base
        key = self.api_keys.get(spec.name) or self.api_keys.get(spec.provider)
        if key is None and spec.api_key_env:
            key = os.environ.get(spec.api_key_env)
        if not base:
            raise ProviderNotConfigured(f"no api_base is configured for {spec.name}")
        if not key:
            where = f"set {spec.api_key_env}" if spec.api_key_env else "give it an api_key_env in the catalog"
            raise ProviderNotConfigured(f"no API key for {spec.name}: {where}")
        return base, key

    def _cached(self, cache: dict[tuple[str, str], Any], spec: ModelSpec, factory: type) -> Any:
        """The SDK client of ``factory``'s kind for ``spec``'s endpoint, created once; SDK retries off."""
        endpoint = self._endpoint(spec)
        client = cache.get(endpoint)
        if client is None:
            with self._lock:
                client = cache.get(endpoint)
                if client is None:
                    client = cache[endpoint] = factory(
                        base_url=endpoint[0], api_key=endpoint[1], max_retries=0, timeout=self.timeout
                    )
        return client

    def _client(self, spec: ModelSpec) -> openai.OpenAI:
        return self._cached(self._clients, spec, openai.OpenAI)  # type: ignore[no-any-return]

    def _async_client(self, spec: ModelSpec) -> openai.AsyncOpenAI:
        return self._cached(self._async_clients, spec, openai.AsyncOpenAI)  # type: ignore[no-any-return]

    def complete(self, model: ModelSpec, messages: Messages, params: Mapping[str, Any]) -> ProviderResponse:
        """One chat completion; SDK errors become the router's."""
        client = self._client(model)
        try:
            raw = client.chat.completions.with_raw_response.create(
                model=model.api_model, messages=cast(Any, messages), **params
            )
            completion = raw.parse()
        except openai.OpenAIError as error:
            raise map_error(error, model.name, self.clock.time()) from error
        return _response(completion, raw.headers, messages, self.clock.time())

    async def acomplete(
        self, model: ModelSpec, messages: Messages, params: Mapping[str, Any]
    ) -> ProviderResponse:
        """Async twin of :meth:`complete`."""
        client = self._async_client(model)
        try:
            raw = await client.chat.completions.with_raw_response.create(
                model=model.api_model, messages=cast(Any, messages), **params
            )
            completion = raw.parse()
        except openai.OpenAIError as error:
            raise map_error(error, model.name, self.clock.time()) from error
        return _response(completion, raw.headers, messages, self.clock.time())

    def close(self) -> None:
        """Close the SDK clients' connections (the async ones are left to the garbage collector's loop)."""
        with self._lock:
            for client in self._clients.values():
                client.close()
            self._clients.clear()

    async def aclose(self) -> None:
        """Close the async SDK clients."""
        with self._lock:
            clients = list(self._async_clients.values())
            self._async_clients.clear()
        for client in clients:
            await client.close()
