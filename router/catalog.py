"""The model catalog: context windows, prices and rate limits per model, and where to reach each one.

The shipped ``models.toml`` holds the models of the project's model facts; a user file
(``AUTOPICKER_CATALOG`` or the ``path`` argument, TOML or JSON in the same layout) and then ``overrides`` (a
mapping from model name to fields) are merged over it, key by key, so a user changes one limit without
restating the rest and adds models of their own. A model inherits its provider's settings, and its
``limits.<tier>`` table is picked by the provider's ``default_tier`` unless ``tiers`` names another; flat
``rpm``/``tpm``/``rpd``/``input_tpm``/``output_tpm`` keys on a model win over the tier's. Field names follow
the community price table (``max_input_tokens``, ``input_cost_per_token``, ...) so entries can be copied from
it.
"""

from __future__ import annotations

import json
import logging
import os
import tomllib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .errors import CatalogError, UnknownModelError

logger = logging.getLogger(__name__)

DEFAULT_FILE = Path(__file__).with_name("models.toml")
CATALOG_ENV = "AUTOPICKER_CATALOG"
#: Above this many input tokens the ``*_above_200k_tokens`` prices apply (Gemini 2.5 Pro, Claude Sonnet 4).
PRICE_TIER_THRESHOLD = 200_000

_LIMIT_KEYS = ("rpm", "tpm", "rpd", "input_tpm", "output_tpm")
_INT_KEYS = ("max_input_tokens", "max_output_tokens")
_PRICE_KEYS = (
    "input_cost_per_token",
    "output_cost_per_token",
    "cache_read_input_token_cost",
    "input_cost_per_token_above_200k_tokens",
    "output_cost_per_token_above_200k_tokens",
)
_PROVIDER_KEYS = ("api_base", "api_key_env", "default_tier", "token_margin", "daily_reset_timezone")
_MODEL_KEYS = frozenset(
    (
        *_INT_KEYS,
        *_PRICE_KEYS,
        *_LIMIT_KEYS,
        "api_model",
        "api_base",
        "api_key_env",
        "token_margin",
        "daily_reset_timezone",
        "limits",
        "tier",
    )
)


@dataclass(frozen=True, slots=True)
class Limits:
    """A model's quota for one tier; ``None`` means no such limit."""

    rpm: int | None = None
    tpm: int | None = None
    rpd: int | None = None
    input_tpm: int | None = None
    output_tpm: int | None = None
    #: IANA zone whose midnight resets the daily quota; ``None`` means a rolling 24 hours.
    daily_reset_timezone: str | None = None

    @property
    def unlimited(self) -> bool:
        """True when no limit is set at all."""
        return not (self.rpm or self.tpm or self.rpd or self.input_tpm or self.output_tpm)


@dataclass(frozen=True, slots=True)
class Cost:
    """What one call cost, in USD."""

    input: float = 0.0
    output: float = 0.0

    @property
    def total(self) -> float:
        """Input plus output."""
        return self.input + self.output


@dataclass(frozen=True, slots=True)
class ModelSpec:
    """Everything the router knows about one model."""

    name: str
    provider: str
    api_model: str
    max_input_tokens: int
    max_output_tokens: int
    input_cost_per_token: float
    output_cost_per_token: float
    cache_read_input_token_cost: float | None = None
    input_cost_per_token_above_200k_tokens: float | None = None
    output_cost_per_token_above_200k_tokens: float | None = None
    limits: Limits = Limits()
    tier: str | None = None
    token_margin: float = 1.0
    api_base: str | None = None
    api_key_env: str | None = None

    def cost(self, input_tokens: int, output_tokens: int, cached_input_tokens: int = 0) -> Cost:
        """The price of a call with this usage, using the above-200k prices where the model has them."""
        in_price, out_price = self.input_cost_per_token, self.output_cost_per_token
        if input_tokens > PRICE_TIER_THRESHOLD:
            in_price = self.input_cost_per_token_above_200k_tokens or in_price
            out_price = self.output_cost_per_token_above_200k_tokens or out_price
        cached = min(max(cached_input_tokens, 0), input_tokens)
        cached_price = (
            self.cache_read_input_token_cost if self.cache_read_input_token_cost is not None else in_price
        )
        return Cost(
            input=(input_tokens - cached) * in_price + cached * cached_price, output=output_tokens * out_price
        )

    def estimated_cost(self, input_tokens: int, output_tokens: int) -> float:
        """A request's expected price, for cheapest-first ordering."""
        return self.cost(input_tokens, output_tokens).total


class Catalog:
    """Model specs by name, built from the shipped file, a user file and overrides."""

    def __init__(self, specs: Mapping[str, ModelSpec]) -> None:
        self._specs = dict(specs)

    @classmethod
    def load(
        cls,
        path: str | os.PathLike[str] | None = None,
        *,
        overrides: Mapping[str, Mapping[str, Any]] | None = None,
        tiers: Mapping[str, str] | None = None,
        use_env: bool = True,
    ) -> Catalog:
        """The shipped catalog with ``path`` (or ``$AUTOPICKER_CATALOG``) and ``overrides`` merged over it."""
        data = _read(DEFAULT_FILE)
        user_path = path if path is not None else (os.environ.get(CATALOG_ENV) if use_env else None)
        if user_path:
            data = _merge(data, _read(Path(user_path)))
        if overrides:
            data = _merge(data, {"models": {name: dict(fields) for name, fields in overrides.items()}})
        return cls(_build(data, tiers or {}))

    @property
    def names(self) -> list[str]:
        """Every model name, sorted."""
        return sorted(self._specs)

    def __contains__(self, name: object) -> bool:
        return name in self._specs

    def get(self, name: str) -> ModelSpec:
        """The spec of ``name``; :class:`UnknownModelError` when the catalog has no such model."""
        try:
            return self._specs[name]
        except KeyError:
            raise UnknownModelError(name, list(self._specs)) from None

    def resolve(self, names: Iterable[str]) -> list[ModelSpec]:
        """Specs for ``names`` in order; the first unknown name raises."""
        return [self.get(name) for name in names]


def _read(path: Path) -> dict[str, Any]:
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise CatalogError(f"cannot read catalog file {str(path)!r}: {exc.strerror or exc}") from None
    try:
        data = json.loads(raw) if path.suffix.lower() == ".json" else tomllib.loads(raw.decode("utf-8"))
    except (ValueError, UnicodeDecodeError) as exc:
        raise CatalogError(
            f"catalog file {str(path)!r} is not valid {path.suffix.lstrip('.').upper() or 'TOML'}: {exc}"
        ) from None
    if not isinstance(data, dict):
        raise CatalogError(f"catalog file {str(path)!r} must hold a table with `models` and `providers`")
    unknown = set(data) - {"models", "providers"}
    if unknown:
        raise CatalogError(
            f"catalog file {str(path)!r} has unknown top-level keys: {', '.join(sorted(unknown))}"
        )
    return data


def _merge(base: Mapping[str, Any], extra: Mapping[str, Any]) -> dict[str, Any]:
    merged = dict(base)
    for key, value in extra.items():
        if isinstance(value, Mapping) and isinstance(merged.get(key), Mapping):
            merged[key] = _merge(merged[key], value)
        else:
            merged[key] = value
    return merged


def _build(data: Mapping[str, Any], tiers: Mapping[str, str]) -> dict[str, ModelSpec]:
    providers = data.get("providers", {})
    specs: dict[str, ModelSpec] = {}
    for name, fields in data.get("models", {}).items():
        if not isinstance(fields, Mapping):
            raise CatalogError(f"catalog entry for model {name!r} must be a table of fields")
        specs[name] = _spec(name, fields, providers, tiers)
    return specs


def _spec(
    name: str, fields: Mapping[str, Any], providers: Mapping[str, Any], tiers: Mapping[str, str]
) -> ModelSpec:
    provider, sep, api_model = name.partition("/")
    if not sep or not provider or not api_model:
        raise CatalogError(f"model name {name!r} must have the form provider/model")
    unknown = set(fields) - _MODEL_KEYS
    if unknown:
        raise CatalogError(f"model {name!r} has unknown catalog fields: {', '.join(sorted(unknown))}")
    pconf = providers.get(provider, {})
    unknown = set(pconf) - set(_PROVIDER_KEYS)
    if unknown:
        raise CatalogError(f"provider {provider!r} has unknown catalog fields: {', '.join(sorted(unknown))}")

    def pick(key: str) -> Any:
        return fields.get(key, pconf.get(key))

    for key in (*_INT_KEYS, "input_cost_per_token", "output_cost_per_token"):
        if key not in fields:
            raise CatalogError(f"model {name!r} lacks the required catalog field {key!r}")
    ints = {key: _number(name, key, fields[key], int) for key in _INT_KEYS}
    prices = {
        key: _number(name, key, fields[key], float) for key in _PRICE_KEYS if fields.get(key) is not None
    }

    tier = fields.get("tier") or tiers.get(provider) or pconf.get("default_tier")
    tier_limits: Mapping[str, Any] = {}
    by_tier = fields.get("limits") or {}
    if by_tier:
        if tier not in by_tier:
            have = ", ".join(sorted(by_tier)) or "none"
            raise CatalogError(f"model {name!r} has no rate limits for tier {tier!r} (it has: {have})")
        tier_limits = by_tier[tier]
        unknown = set(tier_limits) - set(_LIMIT_KEYS)
        if unknown:
            raise CatalogError(
                f"model {name!r} tier {tier!r} has unknown limit fields: {', '.join(sorted(unknown))}"
            )
    limit_values = {key: fields.get(key, tier_limits.get(key)) for key in _LIMIT_KEYS}
    limits = Limits(
        **{
            key: None if value is None else _number(name, key, value, int)
            for key, value in limit_values.items()
        },
        daily_reset_timezone=pick("daily_reset_timezone"),
    )
    if limits.daily_reset_timezone:
        _check_zone(name, limits.daily_reset_timezone)
    margin = _number(name, "token_margin", pick("token_margin") or 1.0, float)
    return ModelSpec(
        name=name,
        provider=provider,
        api_model=str(fields.get("api_model") or api_model),
        limits=limits,
        tier=tier if by_tier else None,
        token_margin=margin,
        api_base=pick("api_base"),
        api_key_env=pick("api_key_env"),
        **ints,
        **prices,
    )


def _number(model: str, key: str, value: Any, kind: type) -> Any:
    if isinstance(value, bool) or not isinstance(value, int | float) or value < 0:
        raise CatalogError(f"model {model!r}: {key} must be a non-negative number, not {value!r}")
    if kind is int and value != int(value):
        raise CatalogError(f"model {model!r}: {key} must be a whole number, not {value!r}")
    return kind(value)


def _check_zone(model: str, zone: str) -> None:
    from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

    try:
        ZoneInfo(zone)
    except (ZoneInfoNotFoundError, ValueError):
        raise CatalogError(f"model {model!r}: unknown time zone {zone!r} for daily_reset_timezone") from None
