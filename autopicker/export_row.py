"""The Langfuse export row, declared once: the contract between the router's offline sink (which writes
it) and the ingest (which reads it).

:data:`FIELDS` lists the columns of Langfuse's ``observations_v2`` export in the order Langfuse writes them.
Each :class:`Field` names the column in every style a reader meets: ``name`` is the snake_case name of the
blob-storage exports (the JSONL keys, the CSV header and the Parquet columns, ``observations_v2/`` and the
legacy ``observations/`` alike), ``camel`` the camelCase name of the UI's batch export and of the public API.
``column`` is the column of ``langfuse_raw.observations`` the ingest loads it into (None: not loaded), and
``kind`` how the export stores its value, which decides that column's type.

From it follow the sink's row (:func:`export_row`), the raw table's columns (:data:`LOADED`, in the table's
order) and the names the normaliser reads. This module imports nothing of the project, so both the router and
the ingest may import it without importing each other.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

#: How an export stores a value: ``text``; ``timestamp`` (``YYYY-MM-DD HH:MM:SS.ffffff``, UTC); ``decimal``
#: (an exact amount of money); ``seconds`` (a float); ``json_text`` (JSON written as a string);
#: ``numbers`` (an object of numbers); ``strings`` (an object of strings, each JSON-encoded by the SDK);
#: ``flag`` (a boolean); ``list`` (an array); ``object`` (an object of anything).
Kind = Literal[
    "text", "timestamp", "decimal", "seconds", "json_text", "numbers", "strings", "flag", "list", "object"
]


@dataclass(frozen=True, slots=True)
class Field:
    """One column of the export row."""

    name: str
    camel: str
    kind: Kind
    #: The ``langfuse_raw.observations`` column it loads into, or None when the ingest does not keep it.
    column: str | None = None
    #: The value Langfuse writes when there is none.
    default: Any = None


FIELDS: tuple[Field, ...] = (
    Field("id", "id", "text", "id"),
    Field("trace_id", "traceId", "text", "trace_id"),
    Field("start_time", "startTime", "timestamp", "start_time"),
    Field("end_time", "endTime", "timestamp", "end_time"),
    Field("project_id", "projectId", "text", "project_id"),
    Field("parent_observation_id", "parentObservationId", "text", "parent_observation_id"),
    Field("type", "type", "text", "type"),
    Field("name", "name", "text", "name"),
    Field("level", "level", "text", "level", "DEFAULT"),
    Field("status_message", "statusMessage", "text", "status_message"),
    Field("version", "version", "text"),
    Field("environment", "environment", "text", "environment", "default"),
    Field("bookmarked", "bookmarked", "flag", None, False),
    Field("public", "public", "flag", None, False),
    Field("user_id", "userId", "text"),
    Field("session_id", "sessionId", "text"),
    Field("is_root_observation", "isRootObservation", "flag", None, False),
    Field("completion_start_time", "completionStartTime", "timestamp", "completion_start_time"),
    Field("created_at", "createdAt", "timestamp", "created_at"),
    Field("updated_at", "updatedAt", "timestamp", "updated_at"),
    Field("input", "input", "json_text", "input"),
    Field("output", "output", "json_text", "output"),
    Field("metadata", "metadata", "strings", "metadata", {}),
    # The public API's rows name it `model` (its published spec says `providedModelName`), as do old exports.
    Field("provided_model_name", "providedModelName", "text", "model"),
    Field("model_id", "modelId", "text"),
    Field("model_parameters", "modelParameters", "json_text", "model_parameters"),
    Field("usage_details", "usageDetails", "numbers", "usage_details", {}),
    Field("cost_details", "costDetails", "numbers", "cost_details", {}),
    Field("total_cost", "totalCost", "decimal", "total_cost"),
    Field("usage_pricing_tier_id", "usagePricingTierId", "text"),
    Field("usage_pricing_tier_name", "usagePricingTierName", "text"),
    Field("prompt_id", "promptId", "text"),
    Field("prompt_name", "promptName", "text"),
    Field("prompt_version", "promptVersion", "text"),
    Field("latency", "latency", "seconds", "latency"),
    Field("time_to_first_token", "timeToFirstToken", "seconds", "time_to_first_token"),
    Field("tool_definitions", "toolDefinitions", "object", None, {}),
    Field("tool_calls", "toolCalls", "list", None, []),
    Field("tool_call_names", "toolCallNames", "list", None, []),
    Field("tags", "tags", "list", None, []),
    Field("release", "release", "text"),
    Field("trace_name", "traceName", "text"),
    Field("input_price", "inputPrice", "decimal"),
    Field("output_price", "outputPrice", "decimal"),
    Field("total_price", "totalPrice", "decimal"),
)

#: The names of the export's columns, in Langfuse's order.
NAMES: tuple[str, ...] = tuple(f.name for f in FIELDS)
BY_NAME: dict[str, Field] = {f.name: f for f in FIELDS}

# The raw table's order: ids, what it is, model and money, timestamps and durations, payload.
_RAW_ORDER = (
    "id",
    "trace_id",
    "project_id",
    "parent_observation_id",
    "type",
    "name",
    "level",
    "status_message",
    "environment",
    "provided_model_name",
    "model_parameters",
    "usage_details",
    "cost_details",
    "total_cost",
    "start_time",
    "end_time",
    "completion_start_time",
    "created_at",
    "updated_at",
    "latency",
    "time_to_first_token",
    "metadata",
    "input",
    "output",
)
#: The fields the ingest keeps, in the order of the columns of ``langfuse_raw.observations``.
LOADED: tuple[Field, ...] = tuple(BY_NAME[name] for name in _RAW_ORDER)
if {f.name for f in LOADED} != {f.name for f in FIELDS if f.column is not None}:  # pragma: no cover
    raise RuntimeError("export_row: _RAW_ORDER must list exactly the fields that have a column")


_TEMPLATE: dict[str, Any] = {f.name: f.default for f in FIELDS}
_FRESH = tuple((f.name, type(f.default)) for f in FIELDS if isinstance(f.default, dict | list))


def export_row(**values: Any) -> dict[str, Any]:
    """A complete export row: every column in Langfuse's order, ``values`` where given, else the default."""
    row = _TEMPLATE.copy()
    for name, empty in _FRESH:  # a row of its own, never a shared default
        row[name] = empty()
    row.update(values)
    if len(row) != len(_TEMPLATE):
        unknown = sorted(values.keys() - _TEMPLATE.keys())
        raise TypeError(f"not columns of the export row: {', '.join(unknown)}")
    return row
