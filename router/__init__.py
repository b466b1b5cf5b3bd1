"""AutoPicker's router: an LLM client that falls back between models and records why in Langfuse.

from router import AutoPickerLLM

llm = AutoPickerLLM(["openai/gpt-4o-mini", "gemini/gemini-2.5-flash-lite", "gemini/gemini-2.5-pro"])
result = llm.complete([{"role": "user", "content": "Hello"}], max_tokens=200)
print(result.model, result.answer, [a.reason for a in result.attempts])
"""

from __future__ import annotations

from autopicker.clock import Clock, ManualClock, SystemClock

from .catalog import Catalog, Cost, Limits, ModelSpec
from .errors import (
    AllModelsFailed,
    CatalogError,
    ProviderConnectionError,
    ProviderContextLength,
    ProviderError,
    ProviderNotConfigured,
    ProviderRateLimited,
    ProviderRequestError,
    ProviderServerError,
    ProviderTimeout,
    RouterError,
    UnknownModelError,
)
from .limits import InProcessLimiter, Limiter
from .llm import DEFAULT_MODELS, AutoPickerLLM
from .provider import Provider, ProviderResponse, Usage
from .routing import Attempt, Completion
from .simulated import Behaviour, SimulatedProvider
from .tracing import Tracing

__all__ = [
    "DEFAULT_MODELS",
    "AllModelsFailed",
    "Attempt",
    "AutoPickerLLM",
    "Behaviour",
    "Catalog",
    "CatalogError",
    "Clock",
    "Completion",
    "Cost",
    "InProcessLimiter",
    "Limiter",
    "Limits",
    "ManualClock",
    "ModelSpec",
    "Provider",
    "ProviderConnectionError",
    "ProviderContextLength",
    "ProviderError",
    "ProviderNotConfigured",
    "ProviderRateLimited",
    "ProviderRequestError",
    "ProviderResponse",
    "ProviderServerError",
    "ProviderTimeout",
    "RouterError",
    "SimulatedProvider",
    "SystemClock",
    "Tracing",
    "UnknownModelError",
    "Usage",
]
