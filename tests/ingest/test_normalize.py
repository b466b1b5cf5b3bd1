"""The normaliser: one raw observation in any of Langfuse's key styles -> a typed COPY line, a skip, or a
rejection with its reason."""

from __future__ import annotations

import contextlib
import json
import re
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import msgspec
import pytest

from ingest.normalize import (
    COPY_COLUMNS,
    Normalizer,
    RowError,
    natural_value,
    unescape_copy_text,
    version_key,
)


def fields(line: str) -> dict[str, str | None]:
    """A COPY text line back as column -> text (None for NULL, which the loader writes as '')."""
    parts = line.split("\t")
    assert len(parts) == len(COPY_COLUMNS), parts
    plain = [unescape_copy_text(p) for p in parts]
    return {c: (v if v != "" else None) for c, v in zip(COPY_COLUMNS, plain, strict=True)}


def normalise(row: dict[str, Any], **options: Any) -> dict[str, str | None]:
    result = Normalizer(suffix="\tsource.jsonl\t7", **options).from_dict(row)
    assert result is not None
    oid, version, line = result
    out = fields(line)
    assert (out["id"], out["updated_at"]) == (oid, version)
    return out


SNAKE = {
    "id": "o1",
    "trace_id": "t1",
    "project_id": "p",
    "parent_observation_id": "",
    "type": "GENERATION",
    "name": "llm_call",
    "level": "DEFAULT",
    "status_message": None,
    "environment": "production",
    "provided_model_name": "openai/gpt-4o-mini",
    "model_parameters": '{"temperature": 0.2}',
    "usage_details": {"input": 10, "output": 5},
    "cost_details": {"total": 0.5},
    "total_cost": 0.5,
    "start_time": "2026-11-24 10:00:00.000000",
    "end_time": "2026-11-24 10:00:02.000000",
    "completion_start_time": "2026-11-24 10:00:00.500000",
    "created_at": "2026-11-24 10:00:03.000000",
    "updated_at": "2026-11-24 10:00:04.000000",
    "latency": 2.0,
    "time_to_first_token": 0.5,
    "metadata": {"original_model": '"openai/gpt-4o-mini"'},
    "input": "{}",
    "output": None,
}
CAMEL = {
    "id": "o1",
    "traceId": "t1",
    "projectId": "p",
    "parentObservationId": None,
    "type": "GENERATION",
    "name": "llm_call",
    "level": "DEFAULT",
    "statusMessage": None,
    "environment": "production",
    "model": "openai/gpt-4o-mini",
    "modelParameters": {"temperature": 0.2},
    "usageDetails": {"input": 10, "output": 5},
    "costDetails": {"total": 0.5},
    "totalCost": 0.5,
    "startTime": "2026-11-24T10:00:00.000Z",
    "endTime": "2026-11-24T10:00:02.000Z",
    "completionStartTime": "2026-11-24T10:00:00.500Z",
    "createdAt": "2026-11-24T10:00:03.000Z",
    "updatedAt": "2026-11-24T10:00:04.000Z",
    "latency": 2.0,
    "timeToFirstToken": 0.5,
    "metadata": {"original_model": "openai/gpt-4o-mini"},
}


def test_snake_and_camel_rows_mean_the_same() -> None:
    snake, camel = normalise(SNAKE), normalise(CAMEL)
    for column in (
        "id",
        "trace_id",
        "project_id",
        "type",
        "name",
        "level",
        "environment",
        "model",
        "total_cost",
        "latency",
        "time_to_first_token",
    ):
        assert snake[column] == camel[column], column
    for column in ("model_parameters", "usage_details", "cost_details", "metadata"):
        assert json.loads(snake[column] or "null") == json.loads(camel[column] or "null"), column
    for column in ("start_time", "end_time", "completion_start_time", "created_at", "updated_at"):
        assert version_key(snake[column] or "") == version_key(camel[column] or ""), column
    assert snake["parent_observation_id"] is None and camel["parent_observation_id"] is None
    assert (snake["_source_file"], snake["_batch_id"]) == ("source.jsonl", "7")
    assert snake["input"] is None  # privacy by default


def test_model_name_from_any_key() -> None:
    base = {k: v for k, v in CAMEL.items() if k != "model"}
    assert normalise({**base, "providedModelName": "a/b"})["model"] == "a/b"
    assert normalise({**base, "model": "c/d"})["model"] == "c/d"
    snake = {k: v for k, v in SNAKE.items() if k != "provided_model_name"}
    assert normalise({**snake, "model": "e/f"})["model"] == "e/f"


@pytest.mark.parametrize(
    ("raw", "natural"),
    [
        ('"openai/gpt-4o-mini"', "openai/gpt-4o-mini"),  # SDK v5 JSON-encodes every value
        ("openai/gpt-4o-mini", "openai/gpt-4o-mini"),
        ("150000", 150000),
        ("-2.5", -2.5),
        ("0.000183", 0.000183),
        ("00123", "00123"),  # not a JSON number: stays text
        (" 12", " 12"),
        ("1e5", None),  # a number, digits kept verbatim (checked below)
        ("true", True),
        ("false", False),
        ("null", None),
        ('{"a": [1, 2]}', {"a": [1, 2]}),
        ("[1, 2", "[1, 2"),
        ('"unterminated', '"unterminated'),
        ("", ""),
        (7, 7),
        ({"already": "an object"}, {"already": "an object"}),
    ],
)
def test_metadata_values_become_natural(raw: Any, natural: Any) -> None:
    if raw == "1e5":
        out = normalise({**SNAKE, "metadata": {"x": raw}})
        assert out["metadata"] == '{"x":1e5}'
        return
    assert natural_value(raw) == natural
    out = normalise({**SNAKE, "metadata": {"x": raw}})
    assert json.loads(out["metadata"] or "") == {"x": natural}


def test_metadata_forms() -> None:
    pairs = [("original_model", '"m"'), ("n", "5")]  # a Parquet map
    for form in (dict(pairs), pairs, json.dumps(dict(pairs))):
        metadata = normalise({**SNAKE, "metadata": form})["metadata"]
        assert json.loads(metadata or "") == {"original_model": "m", "n": 5}
    assert normalise({**SNAKE, "metadata": None})["metadata"] == "{}"
    assert normalise({**SNAKE, "metadata": ""})["metadata"] == "{}"
    big = normalise({**SNAKE, "metadata": {"big": "123456789012345678901234567890"}})["metadata"]
    assert big == '{"big":123456789012345678901234567890}'
    with pytest.raises(RowError, match="metadata must be a JSON object"):
        normalise({**SNAKE, "metadata": "[1, 2]"})


@pytest.mark.parametrize(
    "text",
    [
        "2026-11-24 10:00:00.000000",
        "2026-11-24T10:00:00Z",
        "2026-11-24T12:00:00.000+02:00",
        "2026-11-24T10:00:00",
        "2026-11-24 05:00:00-0500",
    ],
)
def test_timestamps_in_every_shape_mean_utc(text: str) -> None:
    out = normalise({**SNAKE, "start_time": text, "latency": None})
    assert version_key(out["start_time"] or "") == datetime(2026, 11, 24, 10, tzinfo=UTC)


def test_datetime_values_and_bad_timestamps() -> None:
    moment = datetime(2026, 11, 24, 10, 0, tzinfo=UTC)
    out = normalise({**SNAKE, "start_time": moment, "latency": None})
    assert out["start_time"] == "2026-11-24T10:00:00+00:00"
    with pytest.raises(RowError, match="start_time is not a timestamp: 'yesterday'"):
        normalise({**SNAKE, "start_time": "yesterday"})
    with pytest.raises(RowError, match="start_time is not a timestamp"):
        normalise({**SNAKE, "start_time": "2026-13-24 10:00:00.000000"})
    with pytest.raises(RowError, match="end_time must be a timestamp, got a number"):
        normalise({**SNAKE, "end_time": 1764000000})
    with pytest.raises(RowError, match="updated_at is not a timestamp"):
        normalise({**SNAKE, "updated_at": "2026-11-24 99:00:00.000000"})


def test_updated_at_falls_back_to_created_at_then_start_time() -> None:
    assert normalise({**SNAKE, "updated_at": None})["updated_at"] == SNAKE["created_at"]
    assert normalise({**SNAKE, "updated_at": None, "created_at": None})["updated_at"] == SNAKE["start_time"]


def test_latency_unit_is_detected_per_row_and_remembered() -> None:
    normalizer = Normalizer(suffix="\ts\t1")

    def latency(row: dict[str, Any]) -> tuple[str | None, str | None]:
        result = normalizer.from_dict(row)
        assert result is not None
        out = fields(result[2])
        return out["latency"], out["time_to_first_token"]

    assert latency(SNAKE) == ("2.0", "0.5")  # 2 s between start and end: seconds
    assert latency({**SNAKE, "latency": 2000.0, "time_to_first_token": 500}) == ("2.0", "0.5")
    # No end time: the unit last detected in this source applies.
    open_ended = {**SNAKE, "end_time": None, "latency": 3000.0, "time_to_first_token": 1000}
    assert latency(open_ended) == ("3.0", "1.0")
    event = {**SNAKE, "end_time": SNAKE["start_time"], "latency": 0.0, "time_to_first_token": None}
    assert latency(event) == ("0.0", None)  # zero is zero in both units
    assert latency(SNAKE) == ("2.0", "0.5")  # back to seconds
    forced = Normalizer(suffix="\ts\t1", latency_unit="ms").from_dict({**SNAKE, "latency": 2.0})
    assert forced is not None and fields(forced[2])["latency"] == "0.002"
    trusted = Normalizer(suffix="\ts\t1", latency_unit="s").from_dict({**SNAKE, "latency": 2000.0})
    assert trusted is not None and fields(trusted[2])["latency"] == "2000.0"


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"id": None}, "the row has no id"),
        ({"id": ""}, "the row has no id"),
        ({"id": 12}, "id must be a string, got a number"),
        ({"type": None}, "the row has no type"),
        ({"type": ["EVENT"]}, "type must be a string, got an array"),
        ({"trace_id": None}, "the row has no trace id"),
        ({"start_time": None}, "the row has no start time"),
        ({"latency": "abc"}, "latency must be a number, got 'abc'"),
        ({"latency": True}, "latency must be a number, got a boolean"),
        ({"latency": float("nan")}, "latency nan seconds is outside the stored range"),
        ({"total_cost": "1,5"}, "total_cost must be a number, got '1,5'"),
        ({"name": 42}, "name must be a string, got a number"),
        ({"usage_details": "[1]"}, "usage_details must be a JSON object"),
        ({"usage_details": 5}, "usage_details must be a JSON object, got a number"),
    ],
)
def test_bad_values_are_rejected_with_a_reason(change: dict[str, Any], message: str) -> None:
    with pytest.raises(RowError, match=re.escape(message)):
        normalise({**SNAKE, **change})


def test_numbers_from_text_and_decimals() -> None:
    out = normalise({**SNAKE, "latency": "2.0", "time_to_first_token": "0.5", "total_cost": "0.000183"})
    assert (out["latency"], out["time_to_first_token"], out["total_cost"]) == ("2.0", "0.5", "0.000183")
    exact = Decimal("0.19375")
    out = normalise({**SNAKE, "total_cost": exact, "cost_details": [("total", exact)]})
    assert out["total_cost"] == "0.19375"
    assert out["cost_details"] == '{"total":0.19375}'


def test_types_not_loaded_are_counted_and_lowercase_types_accepted() -> None:
    normalizer = Normalizer(suffix="\ts\t1")
    assert normalizer.from_dict({**SNAKE, "type": "SPAN"}) is None
    assert normalizer.from_dict({**SNAKE, "type": "AGENT", "start_time": None}) is None  # not validated
    result = normalizer.from_dict({**SNAKE, "type": "event"})
    assert result is not None and fields(result[2])["type"] == "EVENT"
    assert normalizer.skipped == {"SPAN": 1, "AGENT": 1}


def test_text_with_copy_specials_round_trips() -> None:
    message = "tab\there\nnewline\rreturn \\ backslash"
    out = normalise({**SNAKE, "status_message": message, "metadata": {"k": 'say "hi"\\n'}})
    assert out["status_message"] == message
    assert json.loads(out["metadata"] or "") == {"k": 'say "hi"\\n'}


def test_model_parameters_with_a_line_break_stay_on_their_line() -> None:
    # JSON text may break lines between its values; the COPY line must not.
    row = {**SNAKE, "model_parameters": '{"temperature":\n0.2}'}
    result = Normalizer(suffix="\ts\t1").from_dict(row)
    assert result is not None and "\n" not in result[2]
    assert json.loads(normalise(row)["model_parameters"] or "") == {"temperature": 0.2}


def test_input_and_output_only_with_io() -> None:
    out = normalise({**SNAKE, "input": '{"messages": []}', "output": "plain answer"}, with_io=True)
    assert json.loads(out["input"] or "") == {"messages": []}
    assert json.loads(out["output"] or "") == "plain answer"


def test_json_text_rows() -> None:
    normalizer = Normalizer(suffix="\ts\t1")
    assert normalizer.from_text(json.dumps(SNAKE).encode()) is not None
    with pytest.raises(RowError, match="not valid JSON"):
        normalizer.from_text(b"{oops")
    with pytest.raises(RowError, match="a row must be a JSON object, got an array"):
        normalizer.from_text(b"[1]")


_exact_loads = msgspec.json.Decoder(float_hook=Decimal).decode
_JSON_COLUMNS = [
    COPY_COLUMNS.index(c) for c in ("model_parameters", "usage_details", "cost_details", "metadata")
]
_TOTAL_COST = COPY_COLUMNS.index("total_cost")


def _outcome(read: Any, arg: Any) -> Any:
    """What a row gives: its reason, or its line with JSON columns and the cost as values (not spelling)."""
    try:
        result = read(arg)
    except RowError as exc:
        return str(exc)
    if result is None:
        return None
    oid, version, line = result
    parts: list[Any] = line.split("\t")
    for i in _JSON_COLUMNS:
        with contextlib.suppress(msgspec.DecodeError):  # JSON text PostgreSQL is left to refuse stays text
            parts[i] = _exact_loads(unescape_copy_text(parts[i])) if parts[i] else None
    parts[_TOTAL_COST] = Decimal(parts[_TOTAL_COST]) if parts[_TOTAL_COST] else None
    return oid, version, parts


@pytest.mark.parametrize(
    "change",
    [
        {},  # the row as an observations_v2 export writes it
        {"latency": 2, "time_to_first_token": 0, "total_cost": 5},  # integers where floats are usual
        {"total_cost": 123456789012345678901234567890, "latency": -9223372036854775809},  # beyond 64 bits
        {"usage_details": {"input": 2**64, "output": -0.0}, "cost_details": {"total": 1e300}},
        {"metadata": {"n": "150000", "m": '"x"', "e": "1e5", "big": "123456789012345678901234567890"}},
        {"metadata": {"a": 1, "b": None}},  # not a string map
        {"metadata": '{"a": "1"}', "usage_details": "{}", "model_parameters": {"t": 1}},
        {"name": "caf\u00e9 \u2603"},  # text that is not ASCII
        {"name": "tab\there", "status_message": "back\\slash\nnew line"},
        {"traceId": "camel", "trace_id": None},  # camelCase keys decide, as for a dict
        {"type": "span"},
        {"type": "event"},
        {"type": None},
        {"type": 5},
        {"id": None},
        {"id": 7},
        {"trace_id": ""},
        {"start_time": "yesterday"},
        {"start_time": None},
        {"updated_at": "2026-11-24 99:00:00.000000"},
        {"end_time": 1764000000},
        {"latency": True},
        {"provided_model_name": None, "model": "m/one", "providedModelName": "m/two"},
        {"provided_model_name": "", "providedModelName": "m/two"},
        {"start_time": "2026-11-24T10:00:00Z", "end_time": "2026-11-24T10:00:02.000+00:00"},  # other shapes
        {"end_time": "", "completion_start_time": "", "created_at": "", "updated_at": ""},
        {"updated_at": None, "created_at": None},
        {"updated_at": None},
        {"updated_at": ""},
        {"provided_model_name": "p/one", "model": "m/one"},
        {"completion_start_time": "2026-11-24 10:00:00"},
        {"end_time": "2026-11-24 99:00:00.000000"},
        {"created_at": "2026-11-24 10:00:03.00000x"},
        {"latency": 2000.0, "time_to_first_token": 500.0},
        {"latency": None, "time_to_first_token": None},
        {"model_parameters": ' {"t": 1}'},
        {"model_parameters": '{"t": "a\tb"}'},
        {"model_parameters": "null"},
        {"model_parameters": "[1]"},
        {"model_parameters": ""},
        {"metadata": {"path": "C:\\x", "q": '"say \\"hi\\""'}},
        {"metadata": {}},
        {"metadata": None},
        {"usage_details": {"a\\b": 1}},
        {"usage_details": {}, "cost_details": None},
        {"total_cost": None},
    ],
)
def test_json_lines_mean_what_their_dicts_mean(change: dict[str, Any]) -> None:
    # JSONL lines are read the fast way (only the fields used, typed) when they fit, the general way else
    # (every number exact, then the dict): every line must give what the general way gives, reason for reason.
    row = {**SNAKE, **change}
    for text in (json.dumps(row).encode(), json.dumps(row, ensure_ascii=False).encode()):
        fast, general = Normalizer(suffix="\ts\t1"), Normalizer(suffix="\ts\t1")
        assert _outcome(fast.from_text, text) == _outcome(general.from_dict, _exact_loads(text))
        assert fast.skipped == general.skipped


def test_a_line_that_is_not_utf8_is_not_json_even_where_no_field_is_read() -> None:
    text = json.dumps(SNAKE).encode().replace(b'"input": "{}"', b'"input": "\xff"')
    with pytest.raises(RowError, match="not valid JSON"):
        Normalizer(suffix="\ts\t1").from_text(text)


def test_an_export_line_takes_the_fast_way() -> None:
    from ingest import normalize

    decoded = normalize._decode_export_row(json.dumps(SNAKE).encode())
    assert (decoded.id, decoded.trace_id, decoded.metadata) == ("o1", "t1", SNAKE["metadata"])
