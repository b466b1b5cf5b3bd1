"""A local HTTP server that answers like Langfuse's public API, for the API-ingest tests.

It implements what the warehouse reads: ``GET /api/public/v2/observations`` (Basic auth, cursor pages of at
most 1000 rows, newest first by start time, field groups, the ``type``/``name``/``traceId``/``fromStartTime``
(inclusive)/``toStartTime`` (exclusive) filters) and ``GET /api/public/projects``. Faults can be queued for
the next observation requests: a 429 with ``Retry-After``, a 500, a slow answer (held until the client gives
up), a dropped connection, a held answer (served normally once ``state.release`` is set) and ``ok`` (no
fault, to let requests through before a later fault). Every request is logged so tests can count what a run
read.
"""

from __future__ import annotations

import base64
import collections
import json
import sys
import threading
from dataclasses import dataclass, field
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlparse

import msgspec

FIELD_GROUPS: dict[str, tuple[str, ...]] = {
    "core": ("id", "traceId", "startTime", "endTime", "projectId", "parentObservationId", "type"),
    "basic": (
        "name",
        "level",
        "statusMessage",
        "version",
        "environment",
        "bookmarked",
        "public",
        "userId",
        "sessionId",
        "isRootObservation",
    ),
    "time": ("completionStartTime", "createdAt", "updatedAt"),
    "io": ("input", "output"),
    "metadata": ("metadata",),
    # The published spec names the model `providedModelName`, servers send `model`: serve whichever a row has.
    "model": ("model", "providedModelName", "internalModelId", "modelParameters"),
    "usage": ("usageDetails", "costDetails", "totalCost", "usagePricingTierName"),
    "prompt": ("promptId", "promptName", "promptVersion"),
    "metrics": ("latency", "timeToFirstToken"),
    "trace_context": ("traceName", "tags", "release"),
}


_ENCODE = msgspec.json.Encoder(decimal_format="number").encode


def _parse_time(value: str) -> datetime:
    return datetime.fromisoformat(value.replace("Z", "+00:00")).astimezone(UTC)


def iso(ts: datetime) -> str:
    """Langfuse's wire format for times: ISO-8601 UTC with milliseconds and Z."""
    return ts.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


@dataclass
class Fault:
    """One fault to apply to the next observations request: kind is 429, 500, slow, drop, hold or ok."""

    kind: str
    retry_after: float = 1.0


@dataclass
class LangfuseState:
    project_id: str = "proj-test"
    public_key: str = "pk-lf-test"
    secret_key: str = "sk-lf-test"
    observations: list[dict[str, Any]] = field(default_factory=list)
    faults: collections.deque[Fault] = field(default_factory=collections.deque)
    requests: list[dict[str, Any]] = field(default_factory=list)
    release: threading.Event = field(default_factory=threading.Event)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def observation_requests(self) -> list[dict[str, Any]]:
        return [r for r in self.requests if r["path"].endswith("/v2/observations")]


def _encode_cursor(row: dict[str, Any]) -> str:
    return base64.urlsafe_b64encode(json.dumps([row["startTime"], row["id"]]).encode()).decode()


def _decode_cursor(cursor: str) -> tuple[datetime, str]:
    start, obs_id = json.loads(base64.urlsafe_b64decode(cursor.encode()))
    return _parse_time(start), obs_id


class _Handler(BaseHTTPRequestHandler):
    server: _Server
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - quiet test output
        return

    def _send(self, status: int, body: Any, headers: dict[str, str] | None = None) -> None:
        payload = _ENCODE(body)  # a Decimal is written as the number it holds, digit for digit
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(payload)))
        for key, value in (headers or {}).items():
            self.send_header(key, value)
        self.end_headers()
        self.wfile.write(payload)

    def _authorised(self) -> bool:
        state = self.server.state
        expected = base64.b64encode(f"{state.public_key}:{state.secret_key}".encode()).decode()
        return self.headers.get("Authorization") == f"Basic {expected}"

    def do_GET(self) -> None:  # noqa: N802 - http.server's naming
        state = self.server.state
        url = urlparse(self.path)
        params = {k: v[-1] for k, v in parse_qs(url.query).items()}
        with state.lock:
            state.requests.append({"path": url.path, "params": params})
        if not self._authorised():
            self._send(401, {"message": "Invalid credentials"})
            return
        if url.path == "/api/public/projects":
            self._send(
                200,
                {
                    "data": [
                        {
                            "id": state.project_id,
                            "name": "Test project",
                            "organization": {"id": "org-test", "name": "Test org"},
                            "metadata": {},
                        }
                    ]
                },
            )
            return
        if url.path != "/api/public/v2/observations":
            self._send(404, {"message": "Not found"})
            return
        with state.lock:
            fault = state.faults.popleft() if state.faults else None
        if fault is not None:
            if fault.kind == "429":
                self._send(429, {"message": "Rate limit exceeded"}, {"Retry-After": str(fault.retry_after)})
                return
            if fault.kind == "500":
                self._send(500, {"message": "Internal Server Error"})
                return
            if fault.kind == "slow":
                # Hold the answer until the client has given up (or the server is shut down).
                state.release.wait(30)
                return
            if fault.kind == "drop":
                self.close_connection = True
                self.connection.shutdown(2)
                return
            if fault.kind == "hold":
                # Answer normally, but only once the test lets it (e.g. after killing the client).
                state.release.wait(60)
        self._observations(params)

    def _observations(self, params: dict[str, str]) -> None:
        state = self.server.state
        try:
            limit = int(params.get("limit", "50"))
        except ValueError:
            self._send(400, {"message": "limit must be an integer"})
            return
        if not 1 <= limit <= 1000:
            self._send(400, {"message": "limit must be between 1 and 1000"})
            return
        groups = [g for g in params.get("fields", "core,basic").split(",") if g]
        unknown = [g for g in groups if g not in FIELD_GROUPS]
        if unknown:
            self._send(400, {"message": f"unknown field group {unknown[0]}"})
            return
        keys = {k for g in ("core", *groups) for k in FIELD_GROUPS[g]}
        rows = list(state.observations)
        for name, key in (("type", "type"), ("name", "name"), ("traceId", "traceId"), ("level", "level")):
            if name in params:
                rows = [r for r in rows if r.get(key) == params[name]]
        if "fromStartTime" in params:
            lower = _parse_time(params["fromStartTime"])
            rows = [r for r in rows if _parse_time(r["startTime"]) >= lower]
        if "toStartTime" in params:
            upper = _parse_time(params["toStartTime"])
            rows = [r for r in rows if _parse_time(r["startTime"]) < upper]
        rows.sort(key=lambda r: (_parse_time(r["startTime"]), r["id"]), reverse=True)
        if params.get("cursor"):
            after = _decode_cursor(params["cursor"])
            rows = [r for r in rows if (_parse_time(r["startTime"]), r["id"]) < after]
        page = rows[:limit]
        meta: dict[str, Any] = {}
        if len(rows) > limit:
            meta["cursor"] = _encode_cursor(page[-1])
        data = [{k: v for k, v in r.items() if k in keys} for r in page]
        self._send(200, {"data": data, "meta": meta})


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    state: LangfuseState

    def handle_error(self, request: Any, client_address: Any) -> None:
        # A client that gave up (timed out, killed) is what some tests arrange; anything else is reported.
        if isinstance(sys.exc_info()[1], ConnectionError):
            return
        super().handle_error(request, client_address)


class LangfuseAPIServer:
    """Runs the Langfuse-speaking API server on 127.0.0.1 at a free port, in a background thread."""

    def __init__(self, state: LangfuseState | None = None) -> None:
        self.state = state or LangfuseState()
        self._server = _Server(("127.0.0.1", 0), _Handler)
        self._server.state = self.state
        self._thread = threading.Thread(target=self._server.serve_forever, name="langfuse-api", daemon=True)

    @property
    def base_url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}"

    def __enter__(self) -> LangfuseAPIServer:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.state.release.set()
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=10)
