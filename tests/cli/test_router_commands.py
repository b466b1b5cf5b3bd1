"""``autopicker simulate`` and ``autopicker chat`` as a user runs them."""

from __future__ import annotations

import gzip
import json
import os
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path

import pytest

from router.simulate import simulate
from tests.support.cli import HANG_TIMEOUT
from tests.support.router_servers import OpenAICompatibleServer, ok, rate_limited

AUTOPICKER = str(Path(sys.executable).with_name("autopicker"))
KEY_ENVS = (
    "OPENAI_API_KEY",
    "GEMINI_API_KEY",
    "ANTHROPIC_API_KEY",
    "LANGFUSE_PUBLIC_KEY",
    "LANGFUSE_SECRET_KEY",
    "AUTOPICKER_CATALOG",
    "AUTOPICKER_TRACE_DIR",
    "AUTOPICKER_REDIS_URL",
)


def run(
    *args: str, env: dict[str, str] | None = None, cwd: Path | None = None
) -> subprocess.CompletedProcess[str]:
    clean = {key: value for key, value in os.environ.items() if key not in KEY_ENVS}
    clean.update(env or {})
    clean["COLUMNS"] = "200"
    return subprocess.run(
        [AUTOPICKER, *args], env=clean, capture_output=True, text=True, timeout=HANG_TIMEOUT, cwd=cwd
    )


def load(out: Path, project: str) -> tuple[list[dict], list[dict]]:
    manifests = [json.loads(p.read_text()) for p in sorted((out / project / "manifests").glob("*.json"))]
    rows: list[dict] = []
    for manifest in manifests:
        for entry in manifest["files"]:
            lines = gzip.decompress((out / entry["key"]).read_bytes()).splitlines()
            assert len(lines) == entry["rowCount"]
            rows.extend(json.loads(line) for line in lines)
    return manifests, rows


def test_simulate_writes_both_kinds_of_fallback_and_failures_over_the_last_days(tmp_path: Path) -> None:
    out = tmp_path / "export"
    before = datetime.now(UTC)
    result = run("simulate", "--requests", "800", "--seed", "42", "--out", str(out), "--days", "3")
    after = datetime.now(UTC)  # the command's own now lies in between, however long a loaded machine took
    assert result.returncode == 0, result.stderr
    assert "rate_limit_fallback events" in result.stdout and "export written to" in result.stdout
    manifests, rows = load(out, "autopicker")
    assert len(manifests) >= 3  # one run per simulated day
    events = [row for row in rows if row["type"] == "EVENT"]
    names = {row["name"] for row in events}
    assert names == {"rate_limit_fallback", "context_length_fallback"}
    roots = [row for row in rows if row["type"] == "SPAN"]
    assert len(roots) == 800 and len({row["trace_id"] for row in roots}) == 800
    assert any(row["level"] == "ERROR" for row in roots)  # requests no model could serve
    assert any(row["level"] == "ERROR" for row in rows if row["type"] == "GENERATION")  # provider errors
    starts = sorted(
        datetime.strptime(row["start_time"], "%Y-%m-%d %H:%M:%S.%f").replace(tzinfo=UTC) for row in rows
    )
    assert (before - starts[0]).total_seconds() <= 3 * 86_400 + 60
    assert (after - starts[0]).total_seconds() > 2 * 86_400  # spread over the days, not all "now"
    assert (starts[-1] - after).total_seconds() < 120
    summary = {
        line.split("│")[1].strip(): line.split("│")[2].strip()
        for line in result.stdout.splitlines()
        if line.count("│") == 3
    }
    assert summary["requests"] == "800"
    assert summary["observation rows"] == str(len(rows))
    assert int(summary["rate_limit_fallback events"]) == sum(
        r["name"] == "rate_limit_fallback" for r in events
    )


def test_simulation_is_reproducible_for_a_seed(tmp_path: Path) -> None:
    first = simulate(tmp_path / "a", requests=150, seed=3, days=1, end=1_763_000_000)
    second = simulate(tmp_path / "b", requests=150, seed=3, days=1, end=1_763_000_000)
    assert first.stats == second.stats
    _, rows_a = load(tmp_path / "a", "autopicker")
    _, rows_b = load(tmp_path / "b", "autopicker")
    assert sorted(r["id"] for r in rows_a) == sorted(r["id"] for r in rows_b)


def test_simulate_refuses_bad_arguments(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("")
    result = run("simulate", "--requests", "10", "--out", str(blocker / "sub"))
    assert result.returncode == 1
    assert (
        result.stderr.startswith("error: cannot create the output folder")
        and "Traceback" not in result.stderr
    )
    assert run("simulate", "--requests", "0").returncode == 2


def test_chat_without_keys_says_so_in_one_sentence() -> None:
    result = run("chat", "hello")
    assert result.returncode == 1
    assert result.stderr.startswith("error: no model is configured for chat: set OPENAI_API_KEY")
    assert "Traceback" not in result.stderr


def test_chat_through_a_configured_endpoint_shows_the_model_and_why(tmp_path: Path) -> None:
    catalog = tmp_path / "catalog.toml"
    with OpenAICompatibleServer() as server:
        catalog.write_text(
            f'[providers.local]\napi_base = "{server.base_url}"\napi_key_env = "LOCAL_LLM_KEY"\n\n'
            '[models."local/small"]\nmax_input_tokens = 4096\nmax_output_tokens = 1024\n'
            "input_cost_per_token = 1e-7\noutput_cost_per_token = 2e-7\n\n"
            '[models."local/large"]\nmax_input_tokens = 32768\nmax_output_tokens = 1024\n'
            "input_cost_per_token = 1e-6\noutput_cost_per_token = 2e-6\n"
        )
        server.script("small", rate_limited("30"))
        server.script("large", ok("Bonjour !", prompt_tokens=9, completion_tokens=4))
        env = {"AUTOPICKER_CATALOG": str(catalog), "LOCAL_LLM_KEY": "secret-value-123"}
        result = run(
            "chat",
            "Say hello in French",
            "-m",
            "local/small",
            "-m",
            "local/large",
            "--max-tokens",
            "20",
            env=env,
        )
        assert result.returncode == 0, result.stderr
        assert "Bonjour !" in result.stdout
        assert "served by local/large (fell back from local/small)" in result.stdout
        assert "rate_limit" in result.stdout and "429 from local/small" in result.stdout
        assert "secret-value-123" not in result.stdout + result.stderr
        assert server.calls("small") == 1 and server.calls("large") == 1

        missing = run("chat", "hi", "-m", "local/small", env={"AUTOPICKER_CATALOG": str(catalog)})
        assert missing.returncode == 1
        assert missing.stderr.startswith("error: local/small is not configured: set LOCAL_LLM_KEY")
        unknown = run("chat", "hi", "-m", "local/nope", env=env)
        assert unknown.returncode == 1 and "unknown model 'local/nope'" in unknown.stderr


@pytest.mark.parametrize("content", ["[models\n"])
def test_chat_with_a_broken_catalog_is_one_sentence(tmp_path: Path, content: str) -> None:
    catalog = tmp_path / "catalog.toml"
    catalog.write_text(content)
    result = run("chat", "hi", env={"AUTOPICKER_CATALOG": str(catalog)})
    assert (
        result.returncode == 1 and "is not valid TOML" in result.stderr and "Traceback" not in result.stderr
    )
