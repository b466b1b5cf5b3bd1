"""Per-request overhead of AutoPicker's routing and bookkeeping, side by side with LiteLLM's Router.

Both routers get the same workload: a short chat request to a primary model that fails for a quarter of the
requests (a provider error) so that they fall back to a second model, with providers that answer at once
(AutoPicker's simulated provider with zero latency; LiteLLM's ``mock_response``). Every request is timed on
its own and the script prints p50 and p99 in microseconds, each beside its target: AutoPicker with tracing
off, tracing through the Langfuse SDK into the offline sink (files in a temporary folder), tracing through the
SDK's OTLP exporter to a local server on 127.0.0.1, and LiteLLM's Router. The last line gives both traced
figures and LiteLLM's p50 over the slower of them.

LiteLLM is not a dependency of the project (it pins its own versions of shared packages). Its half runs in
the interpreter named by ``LITELLM_PYTHON``, a virtual environment of its own, or in this one when
``litellm`` imports here; otherwise the script says it could not run it. `make bench-router` builds that
environment (`.venv-litellm`, LiteLLM pinned to the version measured) and runs:

    LITELLM_PYTHON=.venv-litellm/bin/python .venv/bin/python benchmarks/router.py [--requests N]
"""

from __future__ import annotations

import argparse
import contextlib
import importlib.util
import json
import os
import random
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

FALLBACK_SHARE = 0.25
SEED = 11
MESSAGES = [{"role": "user", "content": "Summarise the plot of Hamlet in one sentence."}]
PRIMARY, FALLBACK = "openai/gpt-4o-mini", "gemini/gemini-2.5-flash-lite"


def percentiles(samples_ns: list[int]) -> tuple[float, float]:
    """p50 and p99 in microseconds."""
    ordered = sorted(samples_ns)
    p99 = ordered[min(int(len(ordered) * 0.99), len(ordered) - 1)]
    return ordered[len(ordered) // 2] / 1_000, p99 / 1_000


def timed(call: Callable[[int], object], requests: int, warmup: int) -> list[int]:
    """Run ``call(i)`` for the warm-up and then ``requests`` more times, timing each measured call."""
    for index in range(warmup):
        call(index)
    samples = []
    clock = time.perf_counter_ns
    for index in range(requests):
        started = clock()
        call(index)
        samples.append(clock() - started)
    return samples


def autopicker(requests: int, mode: str) -> tuple[list[int], dict[str, int | float], str]:
    """AutoPicker over the zero-latency simulated provider, tracing ``off``, to the offline ``sink`` or to
    a local ``otlp`` server; returns the samples, the router's stats and what reached the exporter."""
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
    from router import AutoPickerLLM, Catalog, SimulatedProvider
    from router.simulated import INSTANT
    from router.tracing import Tracing, unique_public_key

    unlimited = {"rpm": 0, "tpm": 0, "rpd": 0}
    catalog = Catalog.load(overrides={PRIMARY: unlimited, FALLBACK: unlimited}, use_env=False)
    provider = SimulatedProvider(
        seed=SEED, default=INSTANT, behaviours={PRIMARY: replace(INSTANT, error_rate=FALLBACK_SHARE)}
    )
    with contextlib.ExitStack() as stack:
        tracing: Tracing | bool = False
        receiver = None
        # The queue holds every trace of the run, so that the figures count no dropped trace.
        queued = 2 * requests + 2_000
        if mode == "sink":
            folder = stack.enter_context(tempfile.TemporaryDirectory())
            tracing = Tracing.offline(
                folder, project_id="bench", capture_content=False, max_queued_traces=queued
            )
        elif mode == "otlp":
            from tests.support.router_servers import OtlpReceiver

            receiver = stack.enter_context(OtlpReceiver())
            tracing = Tracing.langfuse(
                capture_content=False,
                max_queued_traces=queued,
                public_key=unique_public_key("pk-lf-bench"),
                secret_key="sk-lf-bench",
                base_url=receiver.base_url,
            )
        # The breaker would stop calling the failing primary; the workload keeps both routers doing the same
        # work.
        llm = AutoPickerLLM(
            [PRIMARY, FALLBACK], catalog=catalog, provider=provider, tracing=tracing, failure_threshold=10**9
        )
        warmup = min(2_000, requests)
        samples = timed(lambda _: llm.complete(MESSAGES, max_tokens=64), requests, warmup=warmup)
        exported = ""
        if isinstance(tracing, Tracing):
            assert tracing.replayer is not None
            tracing.shutdown()
            sent = tracing.replayer.spans
            arrived = (
                sum(run.rows for run in tracing.sink.runs)
                if tracing.sink is not None
                else len(receiver.spans())
            )
            exported = f"{arrived} of {sent} spans exported, {tracing.dropped} traces dropped"
    return samples, llm.stats, exported


def litellm_router(requests: int) -> tuple[list[int], str, float]:
    """LiteLLM's Router with mock responses and one fallback; the same share of requests falls back."""
    os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")  # no download of the price table
    import litellm
    from litellm import Router

    litellm.suppress_debug_info = True
    mocked = {"api_key": "x", "mock_response": "Hi"}
    router = Router(
        model_list=[
            {"model_name": "primary", "litellm_params": {"model": PRIMARY, **mocked}},
            {"model_name": "fallback", "litellm_params": {"model": FALLBACK, **mocked}},
        ],
        fallbacks=[{"primary": ["fallback"]}],
        num_retries=0,
        disable_cooldowns=True,
    )
    rng = random.Random(SEED)
    warmup = min(200, requests)
    falls = [rng.random() < FALLBACK_SHARE for _ in range(warmup + requests)]

    def call(index: int) -> object:
        return router.completion(
            model="primary", messages=MESSAGES, max_tokens=64, mock_testing_fallbacks=falls[index] or None
        )

    samples = timed(call, requests, warmup)
    share = sum(falls[warmup:]) / requests
    return samples, getattr(litellm, "__version__", None) or _version("litellm"), share


def _version(package: str) -> str:
    from importlib.metadata import version

    return version(package)


def run_litellm(requests: int) -> dict[str, object] | str:
    """LiteLLM's figures from this interpreter or ``$LITELLM_PYTHON``, or why they could not be had."""
    interpreter = os.environ.get("LITELLM_PYTHON")
    if interpreter is None and importlib.util.find_spec("litellm") is None:
        return "LiteLLM is not installed here (set LITELLM_PYTHON to a Python that has it)"
    command = [interpreter or sys.executable, __file__, "--litellm-only", "--litellm-requests", str(requests)]
    done = subprocess.run(command, capture_output=True, text=True, timeout=1_800)
    if done.returncode != 0:
        lines = (done.stderr.strip() or done.stdout.strip() or "no output").splitlines()
        return f"LiteLLM's Router did not run: {lines[-1]}"
    return json.loads(done.stdout.strip().splitlines()[-1])


MODES = {
    "off": "tracing off",
    "sink": "tracing to offline sink",
    "otlp": "tracing to OTLP server",
}
P50_TARGET_US, P99_TARGET_US = 50.0, 1_000.0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=20_000, help="AutoPicker requests per mode")
    parser.add_argument("--litellm-requests", type=int, default=2_000, help="LiteLLM requests (it is slower)")
    parser.add_argument("--litellm-only", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()

    if args.litellm_only:
        samples, version, share = litellm_router(args.litellm_requests)
        p50, p99 = percentiles(samples)
        print(json.dumps({"p50": p50, "p99": p99, "version": version, "share": share, "n": len(samples)}))
        return

    print(
        f"Per-request overhead, {FALLBACK_SHARE:.0%} of requests fall back after a primary error; "
        f"providers answer at once (target p50 <= {P50_TARGET_US:.0f} us, p99 <= {P99_TARGET_US:.0f} us)"
    )
    figures: dict[str, tuple[float, float]] = {}
    for mode, label in MODES.items():
        samples, stats, exported = autopicker(args.requests, mode)
        p50, p99 = percentiles(samples)
        figures[mode] = (p50, p99)
        met = "met" if p50 <= P50_TARGET_US and p99 <= P99_TARGET_US else "NOT met"
        print(
            f"  AutoPicker, {label:<24} p50 {p50:8.1f} us   p99 {p99:8.1f} us   {met}"
            f"   ({len(samples)} requests, fallback rate {stats['fallback_rate']:.1f}%"
            + (f"; {exported})" if exported else ")")
        )
    other = run_litellm(args.litellm_requests)
    traced = ", ".join(
        f"{MODES[mode].removeprefix('tracing to ')} p50 {p50:.1f} us / p99 {p99:.0f} us"
        for mode, (p50, p99) in figures.items()
        if mode != "off"
    )
    headline = (
        f"router overhead with tracing: {traced} "
        f"(target p50 <= {P50_TARGET_US:.0f} us, p99 <= {P99_TARGET_US:.0f} us)"
    )
    if isinstance(other, str):
        print(f"  {other}")
        print(f"{headline}; no LiteLLM figure: {other}")
        return
    label = f"LiteLLM {other['version']} Router"
    print(
        f"  {label:<36} p50 {other['p50']:8.1f} us   "
        f"p99 {other['p99']:8.1f} us   ({other['n']} requests, fallback rate {100 * other['share']:.1f}%)"
    )
    slowest = max(figures["sink"][0], figures["otlp"][0])
    ratio = float(other["p50"]) / slowest  # type: ignore[arg-type]
    print(
        f"{headline}; LiteLLM Router p50 {float(other['p50']):.0f} us untraced = {ratio:.0f}x AutoPicker's "
        f"traced (target >= 10x)"
    )


if __name__ == "__main__":
    main()
