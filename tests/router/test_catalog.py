"""The model catalog (shipped defaults, user file, overrides) and the offline token estimate."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from router import AutoPickerLLM, Catalog, CatalogError, UnknownModelError
from router.tokens import prompt_tokens, text_tokens, with_margin


def test_shipped_catalog_has_the_published_windows_prices_and_limits() -> None:
    catalog = Catalog.load(use_env=False)
    mini = catalog.get("openai/gpt-4o-mini")
    assert (mini.max_input_tokens, mini.max_output_tokens) == (128_000, 16_384)
    assert mini.input_cost_per_token == pytest.approx(0.15e-6)
    assert mini.output_cost_per_token == pytest.approx(0.60e-6)
    assert (mini.limits.rpm, mini.limits.tpm, mini.limits.rpd) == (500, 200_000, 10_000)
    pro = catalog.get("gemini/gemini-2.5-pro")
    assert pro.max_input_tokens == 1_048_576
    assert pro.limits.daily_reset_timezone == "America/Los_Angeles"
    assert (pro.tier, pro.limits.rpm, pro.limits.rpd) == ("free", 5, 100)
    sonnet = catalog.get("anthropic/claude-sonnet-4")
    assert sonnet.api_model == "claude-sonnet-4-20250514"
    assert (sonnet.limits.rpm, sonnet.limits.input_tpm, sonnet.limits.output_tpm) == (50, 30_000, 8_000)
    assert set(catalog.names) == {
        "openai/gpt-4o-mini",
        "openai/gpt-4o",
        "openai/gpt-4.1",
        "openai/gpt-4.1-mini",
        "gemini/gemini-2.5-flash-lite",
        "gemini/gemini-2.5-flash",
        "gemini/gemini-2.5-pro",
        "anthropic/claude-3-5-haiku",
        "anthropic/claude-sonnet-4",
    }


def test_prices_above_200k_input_tokens_use_the_higher_tier() -> None:
    catalog = Catalog.load(use_env=False)
    pro = catalog.get("gemini/gemini-2.5-pro")
    assert pro.cost(100_000, 1_000).total == pytest.approx(100_000 * 1.25e-6 + 1_000 * 10e-6)
    assert pro.cost(250_000, 1_000).total == pytest.approx(250_000 * 2.5e-6 + 1_000 * 15e-6)
    sonnet = catalog.get("anthropic/claude-sonnet-4")
    assert sonnet.cost(300_000, 100).output == pytest.approx(100 * 22.5e-6)
    mini = catalog.get("openai/gpt-4o-mini")
    assert mini.cost(300_000, 0).input == pytest.approx(300_000 * 0.15e-6)  # no tier: flat price
    assert mini.cost(1_000, 0, cached_input_tokens=400).input == pytest.approx(600 * 0.15e-6 + 400 * 0.075e-6)


def test_tiers_pick_other_limits() -> None:
    paid = Catalog.load(tiers={"gemini": "tier1"}, use_env=False).get("gemini/gemini-2.5-flash-lite")
    assert (paid.limits.rpm, paid.limits.tpm, paid.limits.rpd) == (4_000, 4_000_000, None)
    with pytest.raises(CatalogError, match="no rate limits for tier 'tier9'"):
        Catalog.load(tiers={"openai": "tier9"}, use_env=False)


def test_a_user_file_overrides_field_by_field_and_adds_models(tmp_path: Path) -> None:
    path = tmp_path / "catalog.toml"
    path.write_text(
        '[models."openai/gpt-4o-mini"]\nrpm = 60\n\n'
        '[providers.local]\napi_base = "http://127.0.0.1:8000/v1"\napi_key_env = "LOCAL_KEY"\n\n'
        '[models."local/llama"]\nmax_input_tokens = 8192\nmax_output_tokens = 2048\n'
        "input_cost_per_token = 0\noutput_cost_per_token = 0\n"
    )
    catalog = Catalog.load(path, use_env=False)
    mini = catalog.get("openai/gpt-4o-mini")
    assert (mini.limits.rpm, mini.limits.tpm) == (60, 200_000)  # the rest of the entry is kept
    llama = catalog.get("local/llama")
    assert (llama.api_base, llama.api_key_env, llama.limits.unlimited) == (
        "http://127.0.0.1:8000/v1",
        "LOCAL_KEY",
        True,
    )


def test_json_files_and_the_environment_variable_work_too(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "catalog.json"
    path.write_text(json.dumps({"models": {"gemini/gemini-2.5-pro": {"max_input_tokens": 2_097_152}}}))
    monkeypatch.setenv("AUTOPICKER_CATALOG", str(path))
    assert Catalog.load().get("gemini/gemini-2.5-pro").max_input_tokens == 2_097_152


def test_constructor_overrides_win() -> None:
    llm = AutoPickerLLM(
        ["openai/gpt-4o-mini"], overrides={"openai/gpt-4o-mini": {"max_input_tokens": 64_000}}, tracing=False
    )
    assert llm.catalog.get("openai/gpt-4o-mini").max_input_tokens == 64_000


def test_unknown_model_is_a_clear_error_naming_it() -> None:
    with pytest.raises(UnknownModelError, match=r"unknown model 'openai/gpt-9'.*openai/gpt-4o-mini"):
        AutoPickerLLM(["openai/gpt-4o-mini", "openai/gpt-9"], tracing=False)
    llm = AutoPickerLLM(["openai/gpt-4o-mini"], tracing=False)
    with pytest.raises(UnknownModelError, match="mistral/large"):
        llm.complete([{"role": "user", "content": "hi"}], models=["mistral/large"])


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ('[models."openai/gpt-4o-mini"]\nmax_input_token = 5\n', "unknown catalog fields: max_input_token"),
        ('[models."openai/gpt-4o-mini"]\nrpm = -1\n', "rpm must be a non-negative number"),
        ('[models."nosuchform"]\nmax_input_tokens = 5\n', "must have the form provider/model"),
        ('[models."x/y"]\nmax_input_tokens = 5\n', "lacks the required catalog field 'max_output_tokens'"),
        ("[models\n", "is not valid TOML"),
        ('[providers.gemini]\ndaily_reset_timezone = "Mars/Olympus"\n', "unknown time zone 'Mars/Olympus'"),
    ],
)
def test_bad_catalog_files_are_one_clear_error(tmp_path: Path, content: str, message: str) -> None:
    path = tmp_path / "bad.toml"
    path.write_text(content)
    with pytest.raises(CatalogError, match=message):
        Catalog.load(path, use_env=False)


def test_missing_catalog_file_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(CatalogError, match="cannot read catalog file"):
        Catalog.load(tmp_path / "nope.toml", use_env=False)


def test_token_estimate_is_offline_and_errs_on_the_safe_side() -> None:
    assert text_tokens("abcd" * 250) == 250
    # Non-ASCII text costs more tokens per character; the estimate counts UTF-8 bytes for it.
    assert text_tokens("日本語のテキスト" * 10) >= 80
    messages = [
        {"role": "system", "content": "abcd" * 10},
        {
            "role": "user",
            "content": [
                {"type": "text", "text": "abcd" * 20},
                {"type": "image_url", "image_url": {"url": "http://x"}},
            ],
        },
    ]
    assert prompt_tokens(messages) == 3 + (4 + 10) + (4 + 20)
    assert with_margin(1_000, 1.2) == 1_200
    assert prompt_tokens(messages, counter=lambda text: 1) == 3 + 5 + 5
