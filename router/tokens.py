"""Token estimates made before a call: fast, offline, and on the safe side.

A router must know a prompt's size before it picks a model, in microseconds and without downloading a
tokenizer (``tiktoken`` fetches its encodings on first use, so it is never required here). The estimate is
the usual four characters per token for ASCII text and three UTF-8 bytes per token otherwise, which
over-counts CJK and accented text rather than under-counting it, plus the few tokens of framing every chat
message costs. Each model's ``token_margin`` then scales it, because a non-OpenAI tokenizer splits text
differently from the one these ratios come from. A caller with an exact tokenizer passes it as
``token_counter``.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Mapping
from typing import Any

#: A chat message's role and separators cost a few tokens of their own (OpenAI's published accounting).
PER_MESSAGE_TOKENS = 4
PER_REQUEST_TOKENS = 3

TokenCounter = Callable[[str], int]


def text_tokens(text: str) -> int:
    """Estimated tokens of one string."""
    if text.isascii():
        return (len(text) + 3) // 4
    return (len(text.encode("utf-8")) + 2) // 3


def _content_text(content: Any) -> Iterable[str]:
    if isinstance(content, str):
        yield content
    elif isinstance(content, list):
        # OpenAI content parts: only text parts are counted; images are priced by the provider separately.
        for part in content:
            if isinstance(part, Mapping) and isinstance(part.get("text"), str):
                yield part["text"]
            elif isinstance(part, str):
                yield part


def prompt_tokens(messages: Iterable[Mapping[str, Any]], counter: TokenCounter | None = None) -> int:
    """Estimated input tokens of a chat request, before any model's margin."""
    count = counter or text_tokens
    total = PER_REQUEST_TOKENS
    for message in messages:
        total += PER_MESSAGE_TOKENS
        for text in _content_text(message.get("content")):
            total += count(text)
        name = message.get("name")
        if isinstance(name, str):
            total += count(name)
    return total


def with_margin(tokens: int, margin: float) -> int:
    """``tokens`` scaled by a model's safety margin, rounded up."""
    return tokens if margin == 1.0 else math.ceil(tokens * margin)
