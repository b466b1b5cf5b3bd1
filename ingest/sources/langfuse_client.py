"""Reading Langfuse's public API (v2 observations, projects) through the SDK, with bounded retries.

The SDK's API client (``langfuse.api.client.LangfuseAPI``) is used directly rather than the tracing client,
which would register an exporter per public key, over an HTTP client of this module's own. Its own retries are
turned off, because they sleep on wall time and give up silently; :class:`LangfuseReader` retries instead
(with tenacity), sleeping on an injected clock:

- 429: waits what ``Retry-After`` (or ``retry-after-ms``) says, else the backoff;
- 5xx, 408, timeouts and dropped or refused connections (``httpx.TransportError``): exponential backoff
  (1 s, 2 s, 4 s ... at most 60 s);
- after ``max_retries`` retries, one :class:`UserError` sentence naming the last failure;
- 401/403: one sentence about the keys, without retrying (the secret key is never shown);
- every attempt first takes a slot of the :class:`~ingest.sources.request_budget.RequestBudget`.

Pages of observations are read as JSON with every digit of their numbers (fractions as Decimal, integers of
any size: the SDK's own parsing would make costs and metadata numbers floats), through the same HTTP client.
Each row is validated on its own against the SDK's model (``ObservationV2``): only the rows that do not
validate come back as :class:`~ingest.readers.BadRow` with the reason; the rest of the page loads as read.
"""

from __future__ import annotations

import contextlib
import logging
import os
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal
from functools import cache
from typing import TYPE_CHECKING, Any, TypeVar

import msgspec
import orjson

from autopicker.clock import Clock
from autopicker.errors import UsageError, UserError
from autopicker.retry_after import retry_after
from ingest.readers import BadRow
from ingest.sources.request_budget import RequestBudget

if TYPE_CHECKING:  # imported where used: every command imports this module, few of them call the API
    import httpx
    import pydantic
    import tenacity

logger = logging.getLogger(__name__)

DEFAULT_BASE_URL = "https://cloud.langfuse.com"
#: The field groups the warehouse stores (``io`` is added only with --with-io).
WAREHOUSE_FIELDS = ("core", "basic", "time", "metadata", "model", "usage", "metrics")
MAX_PAGE_SIZE = 1000
#: Langfuse Cloud's Hobby limit for the general API, the most restrictive plan.
DEFAULT_REQUESTS_PER_MINUTE = 30
OBSERVATIONS_PATH = "api/public/v2/observations"

T = TypeVar("T")


@dataclass(frozen=True)
class Credentials:
    """Where and as whom to read: the SDK's standard environment variables."""

    public_key: str
    secret_key: str = field(repr=False)
    base_url: str = DEFAULT_BASE_URL

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> Credentials:
        """``LANGFUSE_PUBLIC_KEY``, ``LANGFUSE_SECRET_KEY`` and ``LANGFUSE_BASE_URL`` (older name
        ``LANGFUSE_HOST``; default Langfuse Cloud)."""
        env = os.environ if environ is None else environ
        public_key = env.get("LANGFUSE_PUBLIC_KEY", "").strip()
        secret_key = env.get("LANGFUSE_SECRET_KEY", "").strip()
        if not public_key or not secret_key:
            raise UsageError(
                "Set LANGFUSE_PUBLIC_KEY and LANGFUSE_SECRET_KEY (and LANGFUSE_BASE_URL for a server other "
                "than Langfuse Cloud) to read from the Langfuse API."
            )
        base_url = (env.get("LANGFUSE_BASE_URL") or env.get("LANGFUSE_HOST") or DEFAULT_BASE_URL).strip()
        if not base_url.startswith(("http://", "https://")):
            raise UsageError(f"LANGFUSE_BASE_URL must start with http:// or https://, not {base_url!r}.")
        return cls(public_key, secret_key, base_url.rstrip("/"))

    @staticmethod
    def present(environ: Mapping[str, str] | None = None) -> bool:
        """Whether both keys are set."""
        env = os.environ if environ is None else environ
        return bool(env.get("LANGFUSE_PUBLIC_KEY", "").strip() and env.get("LANGFUSE_SECRET_KEY", "").strip())


@dataclass(frozen=True)
class RetryPolicy:
    """How often and how long to retry a request that failed for a reason that may pass."""

    max_retries: int = 6
    backoff_base: float = 1.0
    backoff_max: float = 60.0
    #: A longer Retry-After is capped (a misconfigured proxy must not stall a nightly job for hours).
    retry_after_max: float = 600.0

    def backoff(self, retry: int) -> float:
        return min(self.backoff_base * (2**retry), self.backoff_max)


@dataclass
class Page:
    """One page of observations: loader items (row dicts or BadRows), next cursor, oldest start time."""

    rows: list[Any]
    cursor: str | None
    oldest_start: datetime | None


class _Retryable(Exception):
    def __init__(self, reason: str, delay: float | None = None) -> None:
        super().__init__(reason)
        self.reason = reason
        self.delay = delay


class LangfuseReader:
    """Requests to one Langfuse project's public API, paced by a budget and retried on passing failures."""

    def __init__(
        self,
        credentials: Credentials,
        *,
        clock: Clock,
        requests_per_minute: int = DEFAULT_REQUESTS_PER_MINUTE,
        timeout: float = 60.0,
        retry: RetryPolicy | None = None,
    ) -> None:
        import httpx
        from langfuse.api.client import LangfuseAPI

        self.credentials = credentials
        self._clock = clock
        self._http = httpx.Client(
            auth=(credentials.public_key, credentials.secret_key), timeout=timeout, follow_redirects=True
        )
        self._api = LangfuseAPI(
            base_url=credentials.base_url,
            username=credentials.public_key,
            password=credentials.secret_key,
            timeout=timeout,
            httpx_client=self._http,
        )
        self._options: dict[str, Any] = {"max_retries": 0, "timeout_in_seconds": timeout}
        self.retry = retry or RetryPolicy()
        self.budget = RequestBudget(requests_per_minute, clock)
        #: Attempts sent, retries among them, and rows received, for summaries and tests.
        self.requests = 0
        self.retries = 0
        self.rows_received = 0

    def close(self) -> None:
        self._http.close()

    # -- endpoints ----------------------------------------------------------------------------------------

    def project_id(self) -> str:
        """The id of the project the keys belong to (``GET /api/public/projects``)."""
        projects = self._call(
            "GET /api/public/projects", lambda: self._api.projects.get(request_options=self._options)
        )  # type: ignore[arg-type]
        if not projects.data:
            raise UserError(f"The Langfuse keys at {self.credentials.base_url} give access to no project.")
        if len(projects.data) > 1:
            # Organisation-scoped keys see several projects; project keys (what ingest needs) see one.
            raise UserError(
                f"The Langfuse keys at {self.credentials.base_url} see {len(projects.data)} projects; use "
                "the public and secret key of one project."
            )
        return str(projects.data[0].id)

    def observations_page(
        self,
        *,
        fields: str,
        limit: int,
        cursor: str | None = None,
        type: str | None = None,  # noqa: A002 - the API's own name
        name: str | None = None,
        from_start_time: datetime | None = None,
        to_start_time: datetime | None = None,
    ) -> Page:
        """One page of ``GET /api/public/v2/observations`` (newest first)."""
        query = {
            "fields": fields,
            "limit": limit,
            "cursor": cursor,
            "type": type,
            "name": name,
            "from_start_time": from_start_time,
            "to_start_time": to_start_time,
        }
        payload = self._call("GET /api/public/v2/observations", lambda: self._raw_observations(query))
        return _page_from_json(payload)

    def _raw_observations(self, query: dict[str, Any]) -> Any:
        params = {
            "fields": query["fields"],
            "limit": query["limit"],
            "cursor": query["cursor"],
            "type": query["type"],
            "name": query["name"],
            "fromStartTime": _serialized(query["from_start_time"]),
            "toStartTime": _serialized(query["to_start_time"]),
        }
        what = "GET /api/public/v2/observations"
        response = self._http.get(
            f"{self.credentials.base_url}/{OBSERVATIONS_PATH}",
            params={key: value for key, value in params.items() if value is not None},
        )
        if not 200 <= response.status_code < 300:
            body: Any = response.text
            with contextlib.suppress(orjson.JSONDecodeError):
                body = orjson.loads(response.content)
            raise self._classify(response.status_code, response.headers, body, what)
        try:
            payload = _exact_json(response.content)
        except msgspec.DecodeError:
            raise _Retryable("the answer was not JSON") from None
        if not isinstance(payload, dict) or not isinstance(payload.get("data"), list):
            raise UserError(f"Langfuse answered {what} with something that is not a page of observations.")
        self.rows_received += len(payload["data"])
        return payload

    # -- retries -----------------------------------------------------------------------------------------

    def _call(self, what: str, request: Callable[[], T]) -> T:
        """``request()`` retried on failures that may pass (see the module docstring)."""
        import tenacity

        retrying = tenacity.Retrying(
            retry=tenacity.retry_if_exception_type(_Retryable),
            stop=tenacity.stop_after_attempt(self.retry.max_retries + 1),
            wait=self._wait,
            sleep=self._clock.sleep,
            before_sleep=lambda state: self._retrying(what, state),
            retry_error_callback=lambda state: self._give_up(what, state),
        )
        return retrying(self._attempt, what, request)

    def _attempt(self, what: str, request: Callable[[], T]) -> T:
        import httpx
        from langfuse.api.core.api_error import ApiError

        self.budget.acquire()
        self.requests += 1
        try:
            return request()
        except ApiError as exc:
            raise self._classify(exc.status_code or 0, exc.headers or {}, exc.body, what) from None
        except httpx.TimeoutException:
            raise _Retryable("the request timed out") from None
        except httpx.TransportError as exc:
            raise _Retryable(f"the connection failed ({_transport_reason(exc)})") from None

    def _wait(self, state: tenacity.RetryCallState) -> float:
        """What the failure asks for (a 429's Retry-After), else the backoff for this retry."""
        failure = _failure(state)
        return failure.delay if failure.delay is not None else self.retry.backoff(state.attempt_number - 1)

    def _retrying(self, what: str, state: tenacity.RetryCallState) -> None:
        self.retries += 1
        delay = state.upcoming_sleep
        logger.warning("%s: %s; retrying in %.1f s", what, _failure(state).reason, delay)

    def _give_up(self, what: str, state: tenacity.RetryCallState) -> Any:
        raise UserError(
            f"Langfuse at {self.credentials.base_url} did not answer {what} after "
            f"{state.attempt_number} attempts (last: {_failure(state).reason})."
        ) from None

    def _classify(self, status: int, headers: Mapping[str, str], body: Any, what: str) -> Exception:
        if status in (401, 403):
            return UserError(
                f"Langfuse at {self.credentials.base_url} refused the API keys (HTTP {status}): check "
                "LANGFUSE_PUBLIC_KEY and LANGFUSE_SECRET_KEY, and that they belong to this server."
            )
        if status == 429:
            delay = retry_after(headers, self._clock.time())
            if delay is not None:
                delay = min(max(delay, 0.0), self.retry.retry_after_max)
            return _Retryable("HTTP 429, rate limited", delay)
        if status >= 500 or status == 408:
            return _Retryable(f"HTTP {status}")
        return UserError(
            f"Langfuse at {self.credentials.base_url} answered {what} with HTTP {status}: "
            f"{_body_message(body)}."
        )


def _failure(state: tenacity.RetryCallState) -> _Retryable:
    assert state.outcome is not None
    failure = state.outcome.exception()
    assert isinstance(failure, _Retryable)
    return failure


def _page_from_json(payload: dict[str, Any]) -> Page:
    """A page from plain JSON: rows that fail the SDK's model are BadRows, the others load as they are."""
    import pydantic
    from langfuse.api import ObservationV2

    aliases = _field_names(ObservationV2)
    rows: list[Any] = []
    starts: list[datetime] = []
    for raw in payload["data"]:
        if not isinstance(raw, dict):
            reason = f"the API returned {type(raw).__name__} instead of an observation"
            rows.append(BadRow(reason, _json(raw)))
            continue
        try:
            observation = ObservationV2.model_validate({aliases.get(k, k): v for k, v in raw.items()})
        except pydantic.ValidationError as exc:
            rows.append(
                BadRow(
                    f"the row does not match the Langfuse API's schema: {_validation_reason(exc)}", _json(raw)
                )
            )
            continue
        rows.append(raw)
        starts.append(observation.start_time)
    meta = payload.get("meta")
    cursor = meta.get("cursor") if isinstance(meta, dict) else None
    return Page(rows, cursor or None, min(starts, default=None))


@cache
def _field_names(model: type[pydantic.BaseModel]) -> dict[str, str]:
    """The API's (camelCase) names of a model's fields -> the fields' names: the SDK's models declare them as
    annotations, which its own parser reads and pydantic does not."""
    return {
        alias: name
        for name, info in model.model_fields.items()
        for alias in (getattr(meta, "alias", None) for meta in info.metadata)
        if isinstance(alias, str)
    }


def _validation_reason(exc: pydantic.ValidationError) -> str:
    parts = []
    for error in exc.errors()[:3]:
        path = [str(p) for p in error["loc"] if p != "data" and not isinstance(p, int)]
        if path:  # the API's own (camelCase) name of the field, as in the row's raw text
            path[0] = re.sub(r"_([a-z])", lambda m: m.group(1).upper(), path[0])
        parts.append(f"{'.'.join(path)}: {error['msg']}" if path else error["msg"])
    more = exc.error_count() - len(parts)
    return "; ".join(parts) + (f" (and {more} more)" if more > 0 else "")


def _transport_reason(exc: httpx.TransportError) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


def _body_message(body: Any) -> str:
    if isinstance(body, dict):
        body = body.get("message") or body.get("error") or body
    text = body if isinstance(body, str) else orjson.dumps(body, default=str).decode()
    text = " ".join(text.split())
    return (text[:200] + "...") if len(text) > 200 else text.rstrip(".")


def _serialized(moment: datetime | None) -> str | None:
    """A query time as the API reads it: ISO 8601 in UTC (a time without a zone is UTC)."""
    if moment is None:
        return None
    aware = moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)
    return aware.isoformat().replace("+00:00", "Z")


#: JSON with every digit: fractions as Decimal, integers of any size (as the file ingest reads them).
_exact_json = msgspec.json.Decoder(float_hook=Decimal).decode
_exact_text = msgspec.json.Encoder(decimal_format="number").encode


def _json(value: Any) -> str:
    """A row as JSON text, its numbers as they were read."""
    try:
        return _exact_text(value).decode()
    except (TypeError, msgspec.EncodeError):
        return orjson.dumps(value, default=str).decode()
