"""Tracing off the request path: requests never wait on the SDK or its exporter; nothing is lost at exit."""

from __future__ import annotations

import concurrent.futures
import gzip
import json
import logging
import os
import subprocess
import sys
import threading
from pathlib import Path
from typing import Any

import pytest

from router import AutoPickerLLM, ManualClock, SimulatedProvider
from router.tracing import Tracing, unique_public_key
from tests.support.cli import HANG_TIMEOUT, REPO
from tests.support.router import ask
from tests.support.router_servers import OtlpReceiver

MINI, LITE = "openai/gpt-4o-mini", "gemini/gemini-2.5-flash-lite"
UNLIMITED = {"rpm": 0, "tpm": 0, "rpd": 0}


def router(tracing: Tracing) -> AutoPickerLLM:
    clock = ManualClock(1_763_000_000.0)
    return AutoPickerLLM(
        [MINI, LITE],
        provider=SimulatedProvider(seed=5, clock=clock),
        clock=clock,
        overrides={MINI: UNLIMITED, LITE: UNLIMITED},
        tracing=tracing,
    )


def root_trace_ids(receiver: OtlpReceiver) -> set[str]:
    return {span.trace_id.hex() for span in receiver.spans() if span.name == "autopicker.request"}


def test_requests_complete_while_the_exporter_is_held() -> None:
    with OtlpReceiver(hold=True) as receiver:
        tracing = Tracing.langfuse(
            public_key=unique_public_key("pk-lf-held"),
            secret_key="sk-lf-test",
            base_url=receiver.base_url,
            flush_at=1,
        )
        try:
            llm = router(tracing)
            first = llm.complete(ask())
            # the exporter now waits for an answer that does not come
            assert receiver.arrived.wait(HANG_TIMEOUT)
            with concurrent.futures.ThreadPoolExecutor(1) as pool:
                # The bound only catches a hang; no timing is asserted.
                requests = pool.submit(lambda: [llm.complete(ask()) for _ in range(50)])
                results = requests.result(timeout=HANG_TIMEOUT)
            assert not receiver.release.is_set()  # every request finished while the export was blocked
            assert len({result.trace_id for result in results}) == 50
            receiver.release.set()
            tracing.flush()
            assert root_trace_ids(receiver) == {first.trace_id} | {result.trace_id for result in results}
            assert tracing.dropped == 0
        finally:
            receiver.release.set()
            tracing.shutdown()


def test_a_full_queue_drops_new_traces_with_one_warning(caplog: pytest.LogCaptureFixture) -> None:
    entered, release = threading.Event(), threading.Event()

    def slow_mask(*, data: Any, **_: Any) -> Any:
        # Runs in the replaying thread, inside the SDK: holds it on the first trace until released.
        entered.set()
        release.wait(HANG_TIMEOUT)
        return data

    with OtlpReceiver() as receiver:
        tracing = Tracing.langfuse(
            public_key=unique_public_key("pk-lf-full"),
            secret_key="sk-lf-test",
            base_url=receiver.base_url,
            mask=slow_mask,
            max_queued_traces=3,
        )
        try:
            llm = router(tracing)
            first = llm.complete(ask())
            # the worker is stuck replaying the first trace, which still counts
            assert entered.wait(HANG_TIMEOUT)
            with caplog.at_level(logging.WARNING, logger="router.trace_replay"):
                kept = [llm.complete(ask()) for _ in range(2)]
                lost = [llm.complete(ask()) for _ in range(4)]
            assert tracing.dropped == 4
            warnings = [r for r in caplog.records if r.name == "router.trace_replay"]
            assert len(warnings) == 1 and "dropped" in warnings[0].getMessage()
            release.set()
            tracing.flush()
            arrived = root_trace_ids(receiver)
            assert arrived == {first.trace_id} | {result.trace_id for result in kept}
            assert not arrived & {result.trace_id for result in lost}
            # Room again: the next trace is kept.
            again = llm.complete(ask())
            tracing.flush()
            assert again.trace_id in root_trace_ids(receiver) and tracing.dropped == 4
        finally:
            release.set()
            tracing.shutdown()


EXITING_PROCESS = f"""
import json
from router import AutoPickerLLM, Behaviour, ManualClock, SimulatedProvider
clock = ManualClock(1_763_000_000.0)
llm = AutoPickerLLM(
    [{MINI!r}, {LITE!r}],
    provider=SimulatedProvider(
        seed=9, clock=clock, behaviours={{{MINI!r}: Behaviour(latency=0.2, error_rate=0.3)}}
    ),
    clock=clock,
    overrides={{{MINI!r}: {UNLIMITED!r}, {LITE!r}: {UNLIMITED!r}}},
    failure_threshold=10**9,
)
assert llm.tracing.enabled
for _ in range(400):
    result = llm.complete([{{"role": "user", "content": "hello"}}], max_tokens=32)
    calls = sum(1 for attempt in result.attempts if attempt.outcome != "skipped")
    print(json.dumps({{"trace_id": result.trace_id, "spans": 1 + calls + len(result.attempts) - 1}}))
# No flush and no close: the process just ends.
"""


def run_and_exit(env: dict[str, str]) -> dict[str, int]:
    """Run the requests in a process that exits normally; the spans each printed trace should have."""
    base = {k: v for k, v in os.environ.items() if not k.startswith(("LANGFUSE_", "AUTOPICKER_"))}
    done = subprocess.run(
        [sys.executable, "-c", EXITING_PROCESS],
        env={**base, **env},
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=HANG_TIMEOUT,
    )
    assert done.returncode == 0, done.stderr
    assert "Traceback" not in done.stderr and "Failed to export" not in done.stderr, done.stderr
    lines = [json.loads(line) for line in done.stdout.splitlines()]
    assert len(lines) == 400
    return {line["trace_id"]: line["spans"] for line in lines}


def counted(trace_ids: list[str]) -> dict[str, int]:
    counts: dict[str, int] = {}
    for trace_id in trace_ids:
        counts[trace_id] = counts.get(trace_id, 0) + 1
    return counts


def test_every_trace_reaches_the_offline_sink_when_the_process_exits(tmp_path: Path) -> None:
    expected = run_and_exit({"AUTOPICKER_TRACE_DIR": str(tmp_path), "AUTOPICKER_TRACE_PROJECT": "exit"})
    rows = [
        json.loads(line)
        for data in sorted((tmp_path / "exit" / "observations_v2").glob("*.jsonl.gz"))
        for line in gzip.decompress(data.read_bytes()).splitlines()
    ]
    assert counted([row["trace_id"] for row in rows]) == expected
    assert sum(row["is_root_observation"] for row in rows) == len(expected)
    manifests = list((tmp_path / "exit" / "manifests").glob("*.json"))
    assert sum(json.loads(m.read_text())["files"][0]["rowCount"] for m in manifests) == len(rows)


def test_every_trace_reaches_langfuse_when_the_process_exits() -> None:
    with OtlpReceiver() as receiver:
        expected = run_and_exit(
            {
                "LANGFUSE_PUBLIC_KEY": unique_public_key("pk-lf-exit"),
                "LANGFUSE_SECRET_KEY": "sk-lf-test",
                "LANGFUSE_BASE_URL": receiver.base_url,
            }
        )
        spans = receiver.spans()
    assert counted([span.trace_id.hex() for span in spans]) == expected
    assert sum(1 for span in spans if not span.parent_span_id) == len(expected)
