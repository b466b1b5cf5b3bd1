"""The offline sink: an OpenTelemetry span exporter that writes a Langfuse blob-storage export to a folder.

Handed to the Langfuse SDK as ``Langfuse(span_exporter=...)``, it receives the SDK's finished spans and writes
them in the layout and columns of Langfuse's scheduled ``observations_v2`` export (JSONL, gzipped):

    {out}/{projectId}/observations_v2/{YYYY-MM-DDTHH-MM-SS}.jsonl.gz
    {out}/{projectId}/manifests/{YYYY-MM-DDTHH-MM-SS}.json        (written last: the run is complete)

so the same SDK calls feed a real Langfuse or a folder that the warehouse's file ingest reads. Rows are what
Langfuse would store for each span: upper-case ``type``, timestamps ``YYYY-MM-DD HH:MM:SS.ffffff`` in UTC,
``metadata`` as a map of string to the JSON-encoded value the SDK sent, ``usage_details``/``cost_details``
objects, ``latency`` in seconds. ``created_at``/``updated_at`` are the time the row was exported.

Rotation: rows are buffered and one run (a file plus its manifest) is written when ``max_rows_per_file`` rows
are buffered, when the oldest buffered row is ``max_file_age_seconds`` old at the next export, and whenever
:meth:`flush` or :meth:`shutdown` is called (``Langfuse.flush()`` only drains the SDK's queue into this
buffer; the tracer provider's shutdown at exit calls :meth:`shutdown`). A run is named after its window end,
the export time, kept strictly increasing so file names sort in the order they were written. Its window
starts at the earliest start time among its rows: rows reach an exporter when their span ends, so a run can
hold rows older than the previous run's end, and readers de-duplicate by id as they must for Langfuse's own
exports. Files are written under a temporary name and renamed, so a reader never sees half a file.
"""

from __future__ import annotations

import gzip
import logging
import math
import os
import threading
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import orjson
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SpanExporter, SpanExportResult
from opentelemetry.trace import format_span_id, format_trace_id

from autopicker.clock import Clock, SystemClock
from autopicker.export_row import export_row

from .trace_replay import yield_interpreter

if TYPE_CHECKING:
    from langfuse import Langfuse

logger = logging.getLogger(__name__)

TABLE = "observations_v2"
_METADATA_PREFIX = "langfuse.observation.metadata."
#: Rows built or written between two turns given to the request path (router.trace_replay): about 1 ms.
_ROWS_PER_TURN = 32


@dataclass(frozen=True, slots=True)
class WrittenRun:
    """One written run: its data file, its manifest and how many rows it holds."""

    data_path: Path
    manifest_path: Path
    rows: int


def _row_time(ns: int) -> str:
    seconds, rest = divmod(ns, 1_000_000_000)
    return time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(seconds)) + f".{rest // 1000:06d}"


def _iso_ms(seconds: float) -> str:
    moment = datetime.fromtimestamp(seconds, UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"


def _decode(value: Any) -> Any:
    if not isinstance(value, str):
        return value
    try:
        return orjson.loads(value)
    except orjson.JSONDecodeError:
        return value


def _details(value: Any) -> dict[str, Any]:
    decoded = _decode(value)
    return decoded if isinstance(decoded, dict) else {}


def _completion_start_ns(value: Any) -> int | None:
    decoded = _decode(value)
    if not isinstance(decoded, str):
        return None
    try:
        moment = datetime.fromisoformat(decoded.replace("Z", "+00:00"))
    except ValueError:
        return None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return int(round(moment.timestamp() * 1_000_000)) * 1_000


def observation_row(span: ReadableSpan, project_id: str, exported_ns: int) -> dict[str, Any]:
    """The ``observations_v2`` row Langfuse stores for one SDK span."""
    attrs: Mapping[str, Any] = span.attributes or {}
    resource = span.resource.attributes if span.resource is not None else {}
    start_ns = span.start_time or 0
    end_ns = span.end_time or start_ns
    parent = span.parent
    completion_ns = _completion_start_ns(attrs.get("langfuse.observation.completion_start_time"))
    usage = _details(attrs.get("langfuse.observation.usage_details"))
    cost = _details(attrs.get("langfuse.observation.cost_details"))
    total_cost: float | None = None
    if cost:
        total = cost.get("total")
        total_cost = (
            float(total)
            if isinstance(total, int | float)
            else float(sum(v for v in cost.values() if isinstance(v, int | float)))
        )
    metadata = {
        key[len(_METADATA_PREFIX) :]: str(value)
        for key, value in attrs.items()
        if key.startswith(_METADATA_PREFIX)
    }
    tags = attrs.get("langfuse.trace.tags")
    created = _row_time(max(exported_ns, end_ns))
    model_parameters = attrs.get("langfuse.observation.model.parameters")
    # Columns the SDK has nothing for keep Langfuse's value for none (autopicker.export_row).
    return export_row(
        id=format_span_id(span.context.span_id),
        trace_id=format_trace_id(span.context.trace_id),
        start_time=_row_time(start_ns),
        end_time=_row_time(end_ns),
        project_id=project_id,
        parent_observation_id=format_span_id(parent.span_id) if parent is not None else "",
        type=str(attrs.get("langfuse.observation.type") or "span").upper(),
        name=span.name,
        level=str(attrs.get("langfuse.observation.level") or "DEFAULT"),
        status_message=attrs.get("langfuse.observation.status_message"),
        version=attrs.get("langfuse.version"),
        environment=attrs.get("langfuse.environment") or resource.get("langfuse.environment") or "default",
        public=bool(attrs.get("langfuse.trace.public", False)),
        user_id=attrs.get("user.id"),
        session_id=attrs.get("session.id"),
        is_root_observation=parent is None,
        completion_start_time=_row_time(completion_ns) if completion_ns is not None else None,
        created_at=created,
        updated_at=created,
        input=_decode(attrs.get("langfuse.observation.input")),
        output=_decode(attrs.get("langfuse.observation.output")),
        metadata=metadata,
        provided_model_name=attrs.get("langfuse.observation.model.name"),
        model_parameters=model_parameters if isinstance(model_parameters, str) else None,
        usage_details=usage,
        cost_details=cost,
        total_cost=total_cost,
        prompt_name=attrs.get("langfuse.observation.prompt.name"),
        prompt_version=attrs.get("langfuse.observation.prompt.version"),
        latency=round((end_ns - start_ns) / 1e9, 6),
        time_to_first_token=round((completion_ns - start_ns) / 1e9, 6) if completion_ns is not None else None,
        tags=list(tags) if tags else [],
        release=attrs.get("langfuse.release") or resource.get("langfuse.release"),
        trace_name=attrs.get("langfuse.trace.name"),
    )


class BlobExportSpanExporter(SpanExporter):
    """Writes the SDK's spans as a Langfuse ``observations_v2`` blob-storage export under ``out_dir``."""

    def __init__(
        self,
        out_dir: str | os.PathLike[str],
        project_id: str = "autopicker",
        *,
        clock: Clock | None = None,
        max_rows_per_file: int = 10_000,
        max_file_age_seconds: float = 300.0,
    ) -> None:
        if not project_id or "/" in project_id:
            raise ValueError(f"project_id must be a non-empty name without '/', not {project_id!r}")
        self.out_dir = Path(out_dir)
        self.project_id = project_id
        self.clock = clock or SystemClock()
        self.max_rows_per_file = max_rows_per_file
        self.max_file_age_seconds = max_file_age_seconds
        self.runs: list[WrittenRun] = []
        #: Buffered rows with their start time in ns (for the run's window).
        self._rows: list[tuple[int, dict[str, Any]]] = []
        self._first_buffered_at = 0.0
        self._last_stamp = 0
        self._lock = threading.Lock()
        self._closed = False

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        """Buffer the spans' rows; write a run when the buffer is full or old enough."""
        if self._closed:
            return SpanExportResult.FAILURE
        try:
            now = self.clock.time()
            exported_ns = int(now * 1e9)
            rows = []
            for index, span in enumerate(spans, 1):
                rows.append((span.start_time or 0, observation_row(span, self.project_id, exported_ns)))
                if index % _ROWS_PER_TURN == 0:
                    yield_interpreter()
            with self._lock:
                if not self._rows:
                    self._first_buffered_at = now
                self._rows.extend(rows)
                while len(self._rows) >= self.max_rows_per_file:
                    self._write_locked(self.max_rows_per_file)
                if self._rows and now - self._first_buffered_at >= self.max_file_age_seconds:
                    self._write_locked()
            return SpanExportResult.SUCCESS
        except Exception:
            logger.exception(
                "offline Langfuse export to %s failed; %d spans dropped", self.out_dir, len(spans)
            )
            return SpanExportResult.FAILURE

    def flush(self) -> WrittenRun | None:
        """Write the buffered rows as one run now; ``None`` when nothing was buffered."""
        with self._lock:
            return self._write_locked()

    def force_flush(self, timeout_millis: int = 30_000) -> bool:
        """OpenTelemetry's flush hook: write what is buffered."""
        try:
            self.flush()
            return True
        except OSError:
            logger.exception("offline Langfuse export to %s failed while flushing", self.out_dir)
            return False

    def shutdown(self) -> None:
        """Write what is buffered and refuse further spans."""
        if not self._closed:
            self.force_flush()
            self._closed = True

    def _write_locked(self, limit: int | None = None) -> WrittenRun | None:
        if not self._rows:
            return None
        cut = len(self._rows) if limit is None else limit
        batch, self._rows = self._rows[:cut], self._rows[cut:]
        now = self.clock.time()
        if self._rows:
            self._first_buffered_at = now
        min_start_ns = min(start for start, _ in batch)
        max_start_ns = max(start for start, _ in batch)
        rows = [row for _, row in batch]
        stamp = max(math.floor(now), math.ceil(max_start_ns / 1e9), self._last_stamp + 1)
        self._last_stamp = stamp
        name = time.strftime("%Y-%m-%dT%H-%M-%S", time.gmtime(stamp))
        base = self.out_dir / self.project_id
        data_key = f"{self.project_id}/{TABLE}/{name}.jsonl.gz"
        data_path = self.out_dir / data_key
        manifest_path = base / "manifests" / f"{name}.json"
        data_path.parent.mkdir(parents=True, exist_ok=True)
        manifest_path.parent.mkdir(parents=True, exist_ok=True)

        partial = data_path.with_name(data_path.name + ".part")
        # mtime=0 keeps the gzip bytes a pure function of the rows (reproducible simulations).
        with open(partial, "wb") as raw, gzip.GzipFile(fileobj=raw, mode="wb", mtime=0) as out:
            for start in range(0, len(rows), _ROWS_PER_TURN):
                out.write(b"".join(orjson.dumps(row) + b"\n" for row in rows[start : start + _ROWS_PER_TURN]))
                yield_interpreter()
        os.replace(partial, data_path)

        window_start = min_start_ns / 1e9
        manifest = {
            "version": 1,
            "projectId": self.project_id,
            "exportSource": "OBSERVATIONS_V2",
            "window": {
                "minTimestamp": _iso_ms(math.floor(window_start * 1000) / 1000),
                "maxTimestamp": _iso_ms(stamp),
            },
            "maxTimestamp": _iso_ms(stamp),
            "createdAt": _iso_ms(max(now, float(stamp))),
            "tables": [TABLE],
            "files": [
                {
                    "key": data_key,
                    "table": TABLE,
                    "fileType": "JSONL",
                    "format": "jsonl",
                    "compressed": True,
                    "contentType": "application/gzip",
                    "sizeBytes": data_path.stat().st_size,
                    "rowCount": len(rows),
                }
            ],
        }
        partial_manifest = manifest_path.with_name(manifest_path.name + ".part")
        partial_manifest.write_bytes(orjson.dumps(manifest, option=orjson.OPT_INDENT_2))
        os.replace(partial_manifest, manifest_path)
        run = WrittenRun(data_path, manifest_path, len(rows))
        self.runs.append(run)
        logger.info("wrote %d observations to %s", len(rows), data_path)
        return run


def offline_client(
    out_dir: str | os.PathLike[str],
    *,
    project_id: str = "autopicker",
    clock: Clock | None = None,
    tracer_provider: TracerProvider | None = None,
    **sink_options: Any,
) -> tuple[Langfuse, BlobExportSpanExporter]:
    """A Langfuse client whose spans go to a new :class:`BlobExportSpanExporter`, and that exporter.

    The client gets a public key of its own, because the SDK shares one exporter per public key in a process,
    and a tracer provider of its own (unless one is given) rather than the process-global one, so flushing it
    never waits on other exporters and it leaves the application's OpenTelemetry set-up alone. That provider
    shuts down at exit, which writes whatever is still buffered.
    """
    from langfuse import Langfuse

    from .tracing import unique_public_key

    sink = BlobExportSpanExporter(out_dir, project_id, clock=clock, **sink_options)
    client = Langfuse(
        public_key=unique_public_key("pk-lf-offline"),
        secret_key="sk-lf-offline",
        span_exporter=sink,
        tracer_provider=tracer_provider if tracer_provider is not None else TracerProvider(),
    )
    return client, sink
