"""The sync request loop: drives a :class:`~router.routing.RequestPlan` with blocking I/O.

This is the twin of ``dispatch_async.py`` and mirrors it line for line (tests check that they match); all
decisions live in ``routing``, so the two loops only differ in how they wait.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from .catalog import ModelSpec
from .errors import ProviderError
from .provider import Messages
from .routing import Completion, RequestPlan, RouterCore


def run(
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
                decision = core.limiter.reserve(
                    spec.name, spec.limits, input_tokens, plan.output_tokens, core.clock.time()
                )
                if not decision.granted:
                    wait = plan.denied(spec, decision)
                    if wait is None:
                        break
                    core.clock.sleep(wait)
                    continue
                call = plan.start_call(spec)
                try:
                    response = core.provider.complete(spec, messages, params)
                except ProviderError as error:
                    core.limiter.reconcile(decision.reservation, 0, 0)
                    block_until, retry = plan.failed(call, error)
                    if block_until is not None:
                        core.limiter.block(spec.name, block_until)
                    if retry:
                        continue
                    break
                core.limiter.reconcile(
                    decision.reservation, response.usage.input_tokens, response.usage.output_tokens
                )
                if response.limited_until is not None:
                    core.limiter.block(spec.name, response.limited_until)
                return plan.succeeded(call, response)
        raise plan.exhausted()
