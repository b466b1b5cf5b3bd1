"""The async request loop: drives a :class:`~router.routing.RequestPlan` with awaited I/O.

``dispatch.py`` is the sync twin and mirrors this file line for line (``await``/``a``-prefixed calls removed);
all decisions live in ``routing``, so the two loops only differ in how they wait.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from .catalog import ModelSpec
from .errors import ProviderError
from .provider import Messages
from .routing import Completion, RequestPlan, RouterCore


async def run(
    core: RouterCore,
    messages: Messages,
    params: Mapping[str, Any],
    models: list[ModelSpec],
    trace_options: Mapping[str, Any],
) -> Completion:
    """Route one request through ``models``; raise ``AllModelsFailed`` when none can serve it."""
    plan = RequestPlan(core, messages, params, models, trace_options)
    with plan:
        for spec in plan.candidates:
            input_tokens = plan.admit(spec)
            if input_tokens is None:
                continue
            while True:
                decision = await core.limiter.areserve(
                    spec.name, spec.limits, input_tokens, plan.output_tokens, core.clock.time()
                )
                if not decision.granted:
                    wait = plan.denied(spec, decision)
                    if wait is None:
                        break
                    await core.clock.asleep(wait)
                    continue
                call = plan.start_call(spec)
                try:
                    response = await core.provider.acomplete(spec, messages, params)
                except ProviderError as error:
                    await core.limiter.areconcile(decision.reservation, 0, 0)
                    block_until, retry = plan.failed(call, error)
                    if block_until is not None:
                        await core.limiter.ablock(spec.name, block_until)
                    if retry:
                        continue
                    break
                await core.limiter.areconcile(
                    decision.reservation, response.usage.input_tokens, response.usage.output_tokens
                )
                if response.limited_until is not None:
                    await core.limiter.ablock(spec.name, response.limited_until)
                return plan.succeeded(call, response)
        raise plan.exhausted()
