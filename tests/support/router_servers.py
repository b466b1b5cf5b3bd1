"""Local HTTP servers for the router's tests, on 127.0.0.1 and a random port.

:class:`OpenAICompatibleServer` speaks the OpenAI chat-completions protocol: each model answers from a script
of replies (an OpenAI-shaped completion, a 429 with rate-limit headers, a 500, a context-length 400, or a
reply held back until the test releases it, for timeouts) and every request is recorded.
:class:`OtlpReceiver` accepts what the Langfuse SDK exports (OTLP/HTTP protobuf) and records it. Both run in
a background thread for the duration of a ``with`` block.
"""

from __future__ import annotations

import gzip
import json
import threading
from collections import defaultdict, deque
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


@dataclass
class Reply:
    """One scripted answer."""

    status: int = 200
    text: str = "Hello from the test server."
    prompt_tokens: int = 12
    completion_tokens: int = 7
    cached_tokens: int = 0
    headers: dict[str, str] = field(default_factory=dict)
    error: dict[str, Any] | None = None
    #: Hold the answer until the server is closed (the client's timeout fires first).
    hang: bool = False


def ok(text: str = "Hello from the test server.", **kwargs: Any) -> Reply:
    """A successful chat completion."""
    return Reply(text=text, **kwargs)


def rate_limited(retry_after: str | None = "7", **headers: str) -> Reply:
    """A 429 as OpenAI sends it."""
    sent = {"retry-after": retry_after} if retry_after is not None else {}
    sent.update({key.replace("_", "-"): value for key, value in headers.items()})
    return Reply(
        status=429,
        headers=sent,
        error={
            "message": "Rate limit reached for requests",
            "type": "requests",
            "code": "rate_limit_exceeded",
        },
    )


def server_error(status: int = 500) -> Reply:
    """A provider failure."""
    return Reply(
        status=status,
        error={
            "message": "The server had an error while processing your request.",
            "type": "server_error",
            "code": None,
        },
    )


def context_too_long() -> Reply:
    """OpenAI's answer to a prompt longer than the window."""
    return Reply(
        status=400,
        error={
            "message": "This model's maximum context length is 128000 tokens. However, your messages "
            "resulted in "
            "150000 tokens. Please reduce the length of the messages.",
            "type": "invalid_request_error",
            "param": "messages",
            "code": "context_length_exceeded",
        },
    )


def hanging() -> Reply:
    """No answer until the server shuts down."""
    return Reply(hang=True)


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True


class OpenAICompatibleServer:
    """A chat-completions server whose replies per model are scripted by the test."""

    def __init__(self) -> None:
        self.scripts: dict[str, deque[Reply]] = defaultdict(deque)
        self.requests: list[dict[str, Any]] = []
        self.release = threading.Event()
        self._lock = threading.Lock()
        self._httpd: _Server | None = None
        self._thread: threading.Thread | None = None

    def script(self, model: str, *replies: Reply) -> None:
        """Queue replies for ``model`` (after they run out it answers :func:`ok`)."""
        self.scripts[model].extend(replies)

    def calls(self, model: str) -> int:
        """How many requests reached the server for ``model``."""
        return sum(1 for request in self.requests if request["body"].get("model") == model)

    @property
    def base_url(self) -> str:
        assert self._httpd is not None
        host, port = self._httpd.server_address[:2]
        return f"http://{host}:{port}/v1"

    def _next(self, model: str) -> Reply:
        with self._lock:
            queue = self.scripts.get(model)
            return queue.popleft() if queue else ok()

    def __enter__(self) -> OpenAICompatibleServer:
        server = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - the base class's name
                pass

            def do_POST(self) -> None:
                length = int(self.headers.get("content-length") or 0)
                body = json.loads(self.rfile.read(length) or b"{}")
                with server._lock:
                    server.requests.append(
                        {
                            "path": self.path,
                            "headers": {k.lower(): v for k, v in self.headers.items()},
                            "body": body,
                        }
                    )
                if not self.path.endswith("/chat/completions"):
                    self._send(404, {"error": {"message": "not found"}}, {})
                    return
                reply = server._next(body.get("model", ""))
                if reply.hang:
                    server.release.wait(30)
                    return
                if reply.status != 200:
                    self._send(reply.status, {"error": reply.error or {"message": "error"}}, reply.headers)
                    return
                usage: dict[str, Any] = {
                    "prompt_tokens": reply.prompt_tokens,
                    "completion_tokens": reply.completion_tokens,
                    "total_tokens": reply.prompt_tokens + reply.completion_tokens,
                }
                if reply.cached_tokens:
                    usage["prompt_tokens_details"] = {"cached_tokens": reply.cached_tokens}
                self._send(
                    200,
                    {
                        "id": f"chatcmpl-{len(server.requests)}",
                        "object": "chat.completion",
                        "created": 1_700_000_000,
                        "model": body.get("model"),
                        "choices": [
                            {
                                "index": 0,
                                "finish_reason": "stop",
                                "message": {"role": "assistant", "content": reply.text},
                            }
                        ],
                        "usage": usage,
                    },
                    reply.headers,
                )

            def _send(self, status: int, payload: dict[str, Any], headers: dict[str, str]) -> None:
                data = json.dumps(payload).encode()
                self.send_response(status)
                self.send_header("content-type", "application/json")
                self.send_header("content-length", str(len(data)))
                for key, value in headers.items():
                    self.send_header(key, value)
                self.end_headers()
                self.wfile.write(data)

        self._httpd = _Server(("127.0.0.1", 0), Handler)
        self._thread = threading.Thread(target=self._httpd.serve_forever, args=(0.05,), daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.release.set()
        assert self._httpd is not None and self._thread is not None
        self._httpd.shutdown()
        self._httpd.server_close()
        self._thread.join(10)


class OtlpReceiver:
    """Accepts OTLP/HTTP trace exports, as a Langfuse server does at /api/public/otel/v1/traces.

    With ``hold=True`` it answers no export until the test sets :attr:`release` (or the server closes):
    :attr:`arrived` is set as soon as the first export is waiting, so a test can act while the exporter is
    blocked.
    """

    def __init__(self, *, hold: bool = False) -> None:
        self.posts: list[dict[str, Any]] = []
        self.received = threading.Event()
        self.hold = hold
        self.arrived = threading.Event()
        self.release = threading.Event()
        self._httpd: _Server | None = None
        self._thread: threading.Thread | None = None

    @property
    def base_url(self) -> str:
        assert self._httpd is not None
        host, port = self._httpd.server_address[:2]
        return f"http://{host}:{port}"

    def __enter__(self) -> OtlpReceiver:
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, format: str, *args: Any) -> None:  # noqa: A002
                pass

            def do_POST(self) -> None:
                length = int(self.headers.get("content-length") or 0)
                body = self.rfile.read(length)
                if self.headers.get("content-encoding") == "gzip":
                    body = gzip.decompress(body)
                receiver.posts.append(
                    {
                        "path": self.path,
                        "headers": {k.lower(): v for k, v in self.headers.items()},
                        "body": body,
                    }
                )
                receiver.arrived.set()
                if receiver.hold:
                    receiver.release.wait(60)
                # Set before the answer leaves: once the exporter has its answer, `received` is already set.
                # (Set after it, a test that checks right after the exporter returned could run first.)
                receiver.received.set()
                self.send_response(200)
                self.send_header("content-type", "application/x-protobuf")
                self.send_header("content-length", "0")
                self.end_headers()

        self._httpd = _Server(("127.0.0.1", 0), Handler)
        self._thread = threading.Thread(target=self._httpd.serve_forever, args=(0.05,), daemon=True)
        self._thread.start()
        return self

    def spans(self) -> list[Any]:
        """Every span received so far, decoded (``opentelemetry.proto`` ``Span`` messages)."""
        from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

        return [
            span
            for post in list(self.posts)
            for resource in ExportTraceServiceRequest.FromString(post["body"]).resource_spans
            for scope in resource.scope_spans
            for span in scope.spans
        ]

    def __exit__(self, *exc: object) -> None:
        assert self._httpd is not None and self._thread is not None
        self.release.set()
        self._httpd.shutdown()
        self._httpd.server_close()
        self._thread.join(10)
