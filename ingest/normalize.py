"""Turn one raw Langfuse observation (any export or API key style) into a typed row, a skip, or a rejection.

A row arrives as a dict (or as the JSON text of one) in any of the styles Langfuse produces: the
``observations_v2/`` and legacy ``observations/`` exports (snake_case), the UI batch export and the public
API (camelCase). :class:`Normalizer` returns the row as one line of PostgreSQL ``COPY`` text in the column
order of :data:`COPY_COLUMNS`, ``None`` for an observation type that is not loaded (counted in
``skipped``), or raises :class:`RowError` with a one-sentence reason the loader stores in
``langfuse_raw.rejected_rows``. Every row goes through one method, ``Normalizer._line``, which states each
rule once; export lines in the common shape only get there faster (msgspec decodes just the fields used, see
``_ExportRow``, keeping the JSON of costs and usage as written), other rows as dicts.

Rules (docs/ingest.md says the same for users):

- Only ``EVENT`` and ``GENERATION`` rows load; ``id``, ``trace_id``, ``type`` and ``start_time`` are required.
  A JSONL line of another type is told by its head (:func:`skipped_type`) and not read further.
- Timestamps: ISO-8601 with ``Z`` or an offset, or Langfuse's ``YYYY-MM-DD HH:MM:SS.ffffff`` without a zone,
  which is UTC. ``updated_at`` falls back to ``created_at``, then to ``start_time``, so every row has a
  version.
- ``latency`` and ``time_to_first_token`` are stored in seconds. Some ``observations_v2`` exports write
  milliseconds; with ``latency_unit="auto"`` a row whose end and start times are known is read in the unit
  that agrees best with ``end_time - start_time`` (ties: seconds), and rows without both keep the unit last
  detected in the same file (seconds before any). ``"s"``/``"ms"`` force a unit.
- Model name: the first non-empty of ``provided_model_name``/``providedModelName``/``model``.
- Metadata values become natural JSON values, because exports carry a string-to-string map in which SDK v5
  JSON-encodes every value: a string that is JSON text of a string, object or array is decoded
  (``"\\"openai/gpt-4o-mini\\""`` -> ``"openai/gpt-4o-mini"``); a string that is a JSON number literal becomes
  that number, digit for digit (``"150000"`` -> ``150000``, ``"00123"`` stays a string); ``"true"``,
  ``"false"`` and ``"null"`` become ``true``, ``false`` and ``null``; anything else stays the plain string.
  So ``metadata->>'original_model'`` is ``openai/gpt-4o-mini`` and ``(metadata->>'estimated_tokens')::int``
  works whichever encoding the row used. Only the top level is decoded, once.
- ``model_parameters``, ``usage_details`` and ``cost_details`` are JSON objects (or JSON text of one, or a
  Parquet map); ``input``/``output`` are kept only with ``with_io`` (prompts and answers are private by
  default), decoded when they are JSON text.
- Empty strings are stored as NULL (CSV cannot tell them apart, and root rows carry ``""`` as parent id).
- Numbers keep every digit: JSON is read with fractions as Decimal and integers of any size (or kept as
  written), and written back digit for digit; ``total_cost`` goes to a NUMERIC column as its literal.
- What PostgreSQL would refuse is a RowError naming the field, so one row never fails a COPY of others: a NUL
  character in any text or JSON field, text that is not Unicode. So are values outside the limits
  (``ID_MAX_BYTES``, ``COST_MAX_USD``, ``SECONDS_MAX``) and an ``end_time`` before the ``start_time``.
  A value the warehouse does not know (a new ``level``) is kept as it is.
"""

from __future__ import annotations

import contextlib
import logging
import math
import operator
import re
from collections import Counter
from collections.abc import Mapping
from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Annotated, Any

import msgspec
import orjson

from autopicker.export_row import BY_NAME, LOADED

logger = logging.getLogger(__name__)

LOADED_TYPES = frozenset({"EVENT", "GENERATION"})
LATENCY_UNITS = ("auto", "s", "ms")

# The limits of a stored row (docs/ingest.md, "Limits"; macros/limits.sql holds the warehouse's side).
#: Bytes (UTF-8) of an id: ``id``, ``trace_id``, ``parent_observation_id``, ``project_id``.
ID_MAX_BYTES = 512
#: ``0 <= total_cost < COST_MAX_USD`` (USD per observation).
COST_MAX_USD = 1e9
#: ``0 <= latency, time_to_first_token < SECONDS_MAX`` (seconds, after the unit is applied).
SECONDS_MAX = 1e7
_ID_CHARS = ID_MAX_BYTES // 4  # no id of this many characters or fewer can exceed ID_MAX_BYTES
_ID_FIELDS = 4  # the first four text fields (see _TEXT_FIELDS) are ids

#: Columns of ``langfuse_raw.observations`` in the order of a normalised COPY line: the export's loaded
#: fields (autopicker.export_row), then the lineage.
COPY_COLUMNS = tuple(f.column for f in LOADED if f.column is not None) + ("_source_file", "_batch_id")

# The fields Normalizer.from_dict reads by position: the loaded ones but id and type (read first) and input
# and output (read only with with_io), in the raw table's order, and the model last (it has other names too).
_MODEL = BY_NAME["provided_model_name"]
_READ = tuple(f for f in LOADED if f.name not in ("id", "type", "input", "output") and f is not _MODEL) + (
    _MODEL,
)
# Keys per style, in that order: blob-storage exports (snake_case), the UI's export and the API (camelCase).
_SNAKE = tuple(f.name for f in _READ)
_CAMEL = tuple(f.camel for f in _READ)
_SNAKE_FIELDS = operator.itemgetter(*_SNAKE)
_CAMEL_FIELDS = operator.itemgetter(*_CAMEL)

# Shapes of timestamp text PostgreSQL reads exactly as Python does; others are rewritten in ISO form.
_TS_TEXT = re.compile(r"\d{4}-\d\d-\d\d[ T]\d\d:\d\d:\d\d(?:\.\d{1,6})?(?:Z|[+-]\d\d(?::?\d\d)?)?\Z")
_JSON_NUMBER = re.compile(r"-?(?:0|[1-9]\d*)(?:\.\d+)?(?:[eE][-+]?\d+)?\Z")
_PLAIN_NUMBER = re.compile(r"-?(?:0|[1-9]\d*)(?:\.\d+)?\Z", re.ASCII)  # ASCII digits, no exponent
_FRAGMENT = orjson.Fragment
_NUMBER_START = frozenset("-0123456789")
# JSON is read with fractions as Decimal and integers of any size as int, so every digit is kept.
_loads = msgspec.json.Decoder(float_hook=Decimal).decode
_dumps = orjson.dumps
_fromiso = datetime.fromisoformat
_JSONDecodeError = msgspec.DecodeError
_Raw = msgspec.Raw
_NULL = msgspec.Raw(b"null")


class RowError(ValueError):
    """A row that cannot be loaded; the message is one sentence for ``rejected_rows.error``."""


_MALFORMED = re.compile(r"JSON is malformed: (.*) \(byte (\d+)\)")


def _json_reason(line: bytes | str) -> str:
    """Why a line is not JSON, placed within the line: the decoder's own offset is 0-based, and a line cut
    short inside a string would be "an invalid character" (its newline) unless read without it."""
    try:
        _loads(line.rstrip(b"\r\n") if isinstance(line, bytes) else line.rstrip("\r\n"))
    except _JSONDecodeError as exc:
        text = str(exc)
    else:  # only the line's end was wrong (a lone carriage return, say)
        return "not valid JSON: the line ends in a character that is not JSON"
    if "truncated" in text:
        return "not valid JSON: the line ends inside its JSON value (truncated)"
    found = _MALFORMED.fullmatch(text)
    if found:
        return f"not valid JSON: {found[1]} at byte {int(found[2]) + 1:,} of the line"
    return f"not valid JSON: {text}"


def _kind(value: object) -> str:
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int | float | Decimal):
        return "a number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, Mapping):
        return "an object"
    if isinstance(value, list | tuple):
        return "an array"
    return f"a {type(value).__name__}"


def _show(value: object) -> str:
    text = value if isinstance(value, str) else repr(value)
    return repr(text[:60] + "..." if len(text) > 60 else text)


def natural_value(value: Any) -> Any:
    """A metadata value as a natural JSON value (see the module docstring for the rule)."""
    if value.__class__ is not str or not value:
        return value
    first = value[0]
    if first == '"' or first == "{" or first == "[":
        try:
            return _loads(value)
        except _JSONDecodeError:
            return value
    if first in _NUMBER_START:
        if value.isdecimal():  # digits only (what \d matches): the common case, without the regex
            if first == "0" and len(value) > 1:
                return value
            if len(value) < 16:
                return int(value)
        elif _JSON_NUMBER.match(value) is None:
            return value
        number = float(value)
        if repr(number) == value:
            return number
        if len(value) < 16 and "." not in value and "e" not in value and "E" not in value:
            return int(value)  # "-5": repr(-5.0) is never an integer literal
        # Otherwise a Fragment, written verbatim, keeps every digit (a float would round or reformat them).
        return _FRAGMENT(value)
    if value == "true":
        return True
    if value == "false":
        return False
    if value == "null":
        return None
    return value


def _json_default(value: Any) -> Any:
    # Parquet decimals (cost maps) keep their exact digits.
    if isinstance(value, Decimal) and value.is_finite():
        return _FRAGMENT(str(value))
    raise TypeError(f"{_kind(value)} is not a JSON value")


def _exact(value: Any) -> Any:
    """``value`` with integers beyond 64 bits as Fragments of their digits (orjson writes no bigger ones)."""
    cls = value.__class__
    if cls is int and not -(2**63) <= value < 2**64:
        return _FRAGMENT(str(value))
    if cls is dict:
        return {k: _exact(v) for k, v in value.items()}
    if cls is list or cls is tuple:
        return [_exact(v) for v in value]
    return value


def _copy_json(value: Any, field: str) -> str:
    """JSON text escaped for COPY's text format (only the backslash can occur: orjson escapes controls)."""
    try:
        try:
            text = _dumps(value, default=_json_default, option=orjson.OPT_NON_STR_KEYS).decode()
        except TypeError:
            text = _dumps(_exact(value), default=_json_default, option=orjson.OPT_NON_STR_KEYS).decode()
    except TypeError as exc:
        raise RowError(f"{field} cannot be stored as JSON: {exc}") from None
    return _json_copy_text(text, field) if "\\" in text else text


def escape_copy_text(text: str) -> str:
    """Text escaped for a field of COPY's text format."""
    return text.replace("\\", "\\\\").replace("\t", "\\t").replace("\n", "\\n").replace("\r", "\\r")


def _pairs_to_dict(value: list | tuple, field: str) -> dict:
    # Parquet map columns arrive as lists of (key, value) pairs.
    try:
        return dict(value)
    except (TypeError, ValueError):
        raise RowError(f"{field} must be a JSON object, got {_kind(value)}") from None


def _object(value: Any, field: str) -> dict | None:
    """A JSON-object column: a dict, JSON text of one, or a Parquet map; empty means NULL."""
    if value is None or value == "":
        return None
    cls = value.__class__
    if cls is dict:
        return value
    if cls is str:
        try:
            value = _loads(value)
        except _JSONDecodeError:
            raise RowError(f"{field} must be a JSON object, got {_show(value)}") from None
        if value is None:
            return None
        if value.__class__ is dict:
            return value
        raise RowError(f"{field} must be a JSON object, got {_kind(value)}")
    if isinstance(value, Mapping):
        return dict(value)
    if isinstance(value, list | tuple):
        return _pairs_to_dict(value, field)
    raise RowError(f"{field} must be a JSON object, got {_kind(value)}")


_UNESCAPES = {"\\": "\\", "t": "\t", "n": "\n", "r": "\r"}
_COPY_ESCAPE = re.compile(r"\\(.)")


def unescape_copy_text(text: str) -> str:
    """The inverse of :func:`escape_copy_text`."""
    if "\\" not in text:
        return text
    return _COPY_ESCAPE.sub(lambda m: _UNESCAPES.get(m[1], m[1]), text)


def _object_text(value: Any, field: str) -> str:
    """A JSON-object column as COPY text ("" for NULL)."""
    if value.__class__ is _Raw:  # JSON as written in the line (valid: the decoder read past it)
        text = str(value, "utf-8")
        if text[0] != "{":
            return _object_text(_loads(text), field)
        if "\\" in text or "\t" in text or "\r" in text:
            return _json_copy_text(text, field)
        return text
    if value.__class__ is dict:
        if not value:
            return "{}"
        try:
            text = _dumps(value).decode()
        except TypeError:  # a Parquet decimal or a non-string key
            return _copy_json(value, field)
        return _json_copy_text(text, field) if "\\" in text else text
    if value is None or value == "":
        return ""
    if value.__class__ is str:
        # JSON text is kept as written; PostgreSQL checks its syntax (a row it refuses is rejected alone).
        if value.lstrip()[:1] != "{":
            if value.strip() == "null":
                return ""
            raise RowError(f"{field} must be a JSON object, got {_show(value)}")
        if "\\" in value or "\t" in value or "\n" in value or "\r" in value:
            return _json_copy_text(value, field)
        return value
    return _copy_json(_object(value, field), field)


class _NaturalCache(dict):
    """Remembered natural values of metadata strings: values repeat (model names, reasons, flags), and a
    lookup saves most of the work."""

    SIZE = 50_000

    def __missing__(self, value: Any) -> Any:
        if value.__class__ is not str:
            return natural_value(value)  # not remembered: True == 1 would confuse a mixed cache
        if len(value) > 3 and value[0] in _NUMBER_START:
            # A number of a few digits or more is mostly unique (token counts, costs): read, not remembered.
            # One without an exponent is written as it is: natural_value makes it an int, or a float whose
            # repr is the same text (and orjson writes such a float as repr does), or keeps its digits as
            # they are; "-0", the one literal whose number prints otherwise, has fewer than four characters.
            return _FRAGMENT(value) if _PLAIN_NUMBER.match(value) else natural_value(value)
        natural = natural_value(value)
        if len(self) >= self.SIZE:
            self.clear()
        self[value] = natural
        return natural


_natural_of = _NaturalCache().__getitem__


def _metadata_text(metadata: dict) -> str:
    """Metadata as COPY text, each value made natural (see :func:`natural_value`)."""
    natural_of = _natural_of
    try:
        values = {k: natural_of(v) for k, v in metadata.items()}
    except TypeError:  # an unhashable value (an object from the API) needs no decoding
        values = {k: natural_value(v) for k, v in metadata.items()}
    try:
        text = _dumps(values).decode()
    except TypeError:
        return _copy_json(values, "metadata")
    return _json_copy_text(text, "metadata") if "\\" in text else text


def _any_json(value: Any, field: str) -> str:
    """``input``/``output``: any JSON value; text that is not JSON is kept as a JSON string."""
    if value is None:
        return ""
    if value.__class__ is str:
        with contextlib.suppress(_JSONDecodeError):
            value = _loads(value)
    return _copy_json(value, field)


def _timestamp(value: Any, field: str) -> str:
    """A timestamp as COPY text (validated); zone-less values are UTC (the loader's session is in UTC)."""
    if value.__class__ is str:
        try:
            moment = _fromiso(value)
        except ValueError:
            raise RowError(f"{field} is not a timestamp: {_show(value)}") from None
        if (len(value) == 26 and value[10] == " ") or _TS_TEXT.match(value):
            return value
        return moment.isoformat()
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, date):
        raise RowError(f"{field} is a date without a time: {value.isoformat()}")
    raise RowError(f"{field} must be a timestamp, got {_kind(value)}")


def _timestamp_text(value: Any, field: str, check: bool = False) -> str:
    """A timestamp column as COPY text ("" for NULL). Text in Langfuse's own export shape is passed on as it
    is (parsed here only when ``check``); anything else goes through :func:`_timestamp`."""
    if value is None or value == "":
        return ""
    if value.__class__ is str and len(value) == 26 and value[10] == " ":
        if check:
            try:
                _fromiso(value)
            except ValueError:
                raise RowError(f"{field} is not a timestamp: {_show(value)}") from None
        return value
    return _timestamp(value, field)


def version_key(text: str) -> datetime:
    """A row's ``updated_at`` text (as normalised) as a comparable moment."""
    return _aware(_fromiso(text))


def _number(value: Any, field: str) -> float | None:
    """A number as float (None for null or empty); booleans, non-numeric text and NaN/infinity are errors."""
    if value is None or value == "":
        return None
    cls = value.__class__
    if cls is float or cls is int:
        try:
            result = float(value)
        except OverflowError:  # an integer beyond any float
            raise RowError(f"{field} {_show(str(value))} is outside the stored range") from None
    elif cls is str:
        text = value.strip()
        if not _JSON_NUMBER.match(text):
            raise RowError(f"{field} must be a number, got {_show(value)}")
        result = float(text)
    elif cls is Decimal:
        result = float(value)
    else:
        raise RowError(f"{field} must be a number, got {_kind(value)}")
    if not math.isfinite(result):
        raise RowError(f"{field} must be a finite number, got {_show(value)}")
    return result


def _number_text(value: Any, field: str) -> str:
    """A number for a NUMERIC column: the exported digits when given as text, so decimals stay exact."""
    if value is None or value == "":
        return ""
    cls = value.__class__
    if cls is float:
        if not math.isfinite(value):
            raise RowError(f"{field} must be a finite number, got {_show(value)}")
        return repr(value)
    if cls is int:
        return str(value)
    if cls is str:
        text = value.strip()
        if _JSON_NUMBER.match(text):
            return text
        raise RowError(f"{field} must be a number, got {_show(value)}")
    if cls is Decimal:
        if not value.is_finite():
            raise RowError(f"{field} must be a finite number, got {_show(str(value))}")
        return str(value)
    raise RowError(f"{field} must be a number, got {_kind(value)}")


def _text(value: Any, field: str) -> str:
    if value is None:
        return ""
    if value.__class__ is not str:
        raise RowError(f"{field} must be a string, got {_kind(value)}")
    return value


def _check_texts(texts: tuple[str, ...]) -> None:
    """Raise for the first text field PostgreSQL cannot store: a NUL character, or a lone surrogate."""
    for field, value in zip(_TEXT_FIELDS, texts, strict=True):
        if "\x00" in value:
            raise RowError(f"{field} contains a NUL character (\\u0000), which PostgreSQL cannot store")
        try:
            value.encode()
        except UnicodeEncodeError:
            raise RowError(f"{field} is not valid Unicode text (it holds a lone surrogate)") from None


def _check_ids(texts: tuple[str, ...]) -> None:
    """Raise for the first id longer than ID_MAX_BYTES."""
    for field, value in zip(_TEXT_FIELDS[:_ID_FIELDS], texts, strict=False):
        size = len(value.encode("utf-8", "surrogatepass"))
        if size > ID_MAX_BYTES:
            raise RowError(f"{field} is {size:,} bytes long; at most {ID_MAX_BYTES} are stored")


_JSON_NUL = re.compile(r"(?<!\\)(?:\\\\)*\\u0000")  # in JSON text: an escaped NUL, not an escaped backslash


def _json_copy_text(text: str, field: str) -> str:
    """JSON text (which holds a backslash or a control character) escaped for COPY's text format; an escaped
    NUL character, which PostgreSQL cannot store, is a RowError. Every JSON column's text goes through here
    when it has a backslash, as a NUL's escape does."""
    if "u0000" in text and _JSON_NUL.search(text):
        raise RowError(f"{field} contains a NUL character (\\u0000), which PostgreSQL cannot store")
    return escape_copy_text(text)


def _before(end_text: str, start_text: str) -> bool:
    """Whether end is before start (timestamps as normalised; start is valid)."""
    try:
        end = _fromiso(end_text)
    except ValueError:
        raise RowError(f"end_time is not a timestamp: {_show(end_text)}") from None
    return _aware(end) < _aware(_fromiso(start_text))


def _out_of_range(field: str, value: object, limit: float, unit: str = "") -> str:
    return f"{field} {value}{unit} is outside the stored range 0 to {limit:,.0f}{unit}"


def _cost_text(value: Any) -> str:
    """``total_cost`` for its NUMERIC column with every digit it came with ("" for null), within the limit."""
    if value is None or value == "":
        return ""
    cls = value.__class__
    if cls is _Raw:  # the JSON literal as written
        text = str(value, "utf-8")
        if text == "null":
            return ""
        if text[0] not in _NUMBER_START:  # text, a boolean, an object: as the general way reads them
            return _cost_text(_loads(text))
        dot = text.find(".")
        if text[0] != "-" and "e" not in text and "E" not in text and (dot if dot >= 0 else len(text)) <= 9:
            return text  # a plain literal of at most 9 whole digits: within the range, no need to parse it
        number = float(text)
    elif cls is float:
        number, text = value, repr(value)
    else:
        text = _number_text(value, "total_cost")
        number = float(text)
    if not 0.0 <= number < COST_MAX_USD:
        raise RowError(_out_of_range("total_cost", text, COST_MAX_USD, " USD"))
    return text


# Integers within 64 bits, which orjson reads as integers too (it reads bigger ones as floats; those, and
# the few it reads as integers above 2**63 - 1, take the general way); msgspec checks the bound in C.
_Int64 = Annotated[int, msgspec.Meta(ge=-(2**63), le=2**63 - 1)]

_TEXT_FIELDS = COPY_COLUMNS[:10]  # the text columns, id to model


class _ExportRow(msgspec.Struct, gc=False):
    """The fields of an export row (snake_case) that the normaliser reads, typed as exports write them.

    Decoding a JSONL line into this skips every other field without building it, about a third of the work
    of reading a row. The types only admit what the general reading (orjson, then a dict) turns into the very
    same values: a line that does not fit (another type, integers beyond 64 bits, camelCase keys,
    ``--with-io``, bytes that are not UTF-8, which skipping a field does not check) is read the general way.
    The first 20 fields are in the order of ``_SNAKE``.
    """

    trace_id: str | None = None
    project_id: str | None = None
    parent_observation_id: str | None = None
    name: str | None = None
    level: str | None = None
    status_message: str | None = None
    environment: str | None = None
    model_parameters: str | None = None
    usage_details: msgspec.Raw = _NULL  # kept as written: every digit, and no objects built
    cost_details: msgspec.Raw = _NULL
    total_cost: msgspec.Raw = _NULL
    start_time: str | None = None
    end_time: str | None = None
    completion_start_time: str | None = None
    created_at: str | None = None
    updated_at: str | None = None
    latency: _Int64 | float | None = None
    time_to_first_token: _Int64 | float | None = None
    metadata: dict[str, str] | None = None
    provided_model_name: str | None = None
    id: str | None = None
    type: str | None = None
    model: str | None = None
    providedModelName: str | None = None  # noqa: N815 - Langfuse's key
    traceId: Any = msgspec.UNSET  # noqa: N815 - present in camelCase rows, which are read the general way


if _ExportRow.__struct_fields__[: len(_SNAKE)] != _SNAKE:  # pragma: no cover - a declaration mistake
    raise RuntimeError("ingest.normalize: _ExportRow must declare the fields of _SNAKE first, in its order")
_decode_export_row = msgspec.json.Decoder(_ExportRow).decode
_astuple = msgspec.structs.astuple
_UNSET = msgspec.UNSET
_MSGSPEC_ERROR = msgspec.MsgspecError


def _is_utf8(text: bytes) -> bool:
    """Whether the bytes are UTF-8: the fast decoding skips the fields it does not read without checking
    them, and a line that is not UTF-8 is not JSON, wherever the bad bytes are."""
    try:
        text.decode("utf-8")
    except UnicodeDecodeError:
        return False
    return True


_TYPE_KEY = b'"type":'
_TYPE_HEAD = 4096  # bytes of a line searched for its type: Langfuse writes it seventh, after the ids
_SKIPPED_OF: dict[bytes, str | None] = {}


def skipped_type(line: bytes) -> str | None:
    """The type of a JSONL line when it is one that is not loaded (upper case), read from its bytes without
    decoding the line; None when it is a loaded type, or when the head of the line does not show it plainly
    (then the line is decoded as usual).

    The type is the value of the first ``"type":`` key at the top level of the object, found when no other
    object or array opens before it (so it cannot be a nested key: Langfuse writes it before any object) and
    it is preceded by ``{``, ``,`` or a space (so its quote opens a key: a quote inside a string is escaped).
    The rest of a skipped line is not read: neither its ``input`` and ``output`` nor its syntax."""
    at = line.find(_TYPE_KEY, 0, _TYPE_HEAD)
    if at <= 0 or line[0] != 123 or line[at - 1] not in b"{, " or b"{" in line[1:at] or b"[" in line[:at]:
        return None
    start = at + 7
    while line[start : start + 1] == b" ":
        start += 1
    if line[start : start + 1] != b'"':
        return None
    end = line.find(b'"', start + 1, start + 66)
    if end < 0:
        return None
    value = line[start + 1 : end]
    try:
        return _SKIPPED_OF[value]
    except KeyError:
        pass
    skipped = None
    if value and value.replace(b"_", b"").isalnum():  # ASCII letters, digits, underscores: no escapes
        upper = value.decode().upper()
        skipped = None if upper in LOADED_TYPES else upper
    if len(_SKIPPED_OF) < 1000:
        _SKIPPED_OF[value] = skipped
    return skipped


class Normalizer:
    """Normalises the rows of one source (one file or one API page run); holds that source's detected
    latency unit and its counts of skipped types."""

    def __init__(self, *, suffix: str, with_io: bool = False, latency_unit: str = "auto") -> None:
        if latency_unit not in LATENCY_UNITS:
            raise ValueError(f"latency_unit must be one of {LATENCY_UNITS}")
        #: Appended to every line: the tab-separated ``_source_file`` and ``_batch_id``.
        self.suffix = suffix
        self._lineage = suffix[1:] if suffix.startswith("\t") else suffix
        self.with_io = with_io
        self.latency_unit = latency_unit
        self._millis = latency_unit == "ms"
        self._detect = latency_unit == "auto"
        self.skipped: Counter[str] = Counter()
        #: Rows whose latency was read as milliseconds (forced or detected), for the ingest's summary.
        self.millis_rows = 0

    def from_text(self, text: bytes | str) -> tuple[str, str, str] | None:
        """Normalise the JSON text of one row (a JSONL line)."""
        if isinstance(text, bytes):
            skipped = skipped_type(text)
            if skipped is not None:
                self.skipped[skipped] += 1
                return None
        if not self.with_io and isinstance(text, bytes) and (text.isascii() or _is_utf8(text)):
            try:
                row = _decode_export_row(text)
            except _MSGSPEC_ERROR:
                pass  # not valid JSON, or not shaped as the fast way expects: the general way says which
            else:
                if row.traceId is _UNSET:
                    return self._export_fields(row)
        try:
            row = _loads(text)
        except _JSONDecodeError:
            raise RowError(_json_reason(text)) from None
        if row.__class__ is not dict:
            raise RowError(f"a row must be a JSON object, got {_kind(row)}")
        return self.from_dict(row)

    def from_dict(self, row: Mapping[str, Any]) -> tuple[str, str, str] | None:
        """Normalise one row: ``(id, updated_at, copy_line)``, or None for a type that is not loaded.

        ``updated_at`` is the row's version as text; :func:`version_key` makes it comparable."""
        get = row.get
        typ = get("type")
        if typ.__class__ is not str or typ not in LOADED_TYPES:
            typ = self._loaded_type(typ)
            if typ is None:
                return None
        camel = "traceId" in row
        try:  # exports carry every key: one C-level lookup of all of them
            fields = (_CAMEL_FIELDS if camel else _SNAKE_FIELDS)(row)
        except KeyError:
            fields = tuple(map(get, _CAMEL if camel else _SNAKE))
        model = fields[19] or get("model") or get("providedModelName" if not camel else "provided_model_name")
        io = (get("input"), get("output")) if self.with_io else None
        return self._line(get("id"), typ, fields, model, io)

    def _export_fields(self, row: _ExportRow) -> tuple[str, str, str] | None:
        fields = _astuple(row)
        typ = fields[21]
        if typ not in LOADED_TYPES:
            typ = self._loaded_type(typ)
            if typ is None:
                return None
        return self._line(fields[20], typ, fields, fields[19] or fields[22] or fields[23], None)

    def _loaded_type(self, typ: Any) -> str | None:
        """A type other than exactly EVENT or GENERATION: the loaded type it means (any case), or None after
        counting it as skipped; a missing type or one that is not text is a RowError."""
        if typ is None or typ == "":
            raise RowError("the row has no type")
        if typ.__class__ is not str:
            raise RowError(f"type must be a string, got {_kind(typ)}")
        upper = typ.upper()
        if upper not in LOADED_TYPES:
            self.skipped[upper] += 1
            return None
        return upper

    def _line(
        self, oid: Any, typ: str, fields: tuple, model: Any, io: tuple[Any, Any] | None
    ) -> tuple[str, str, str]:
        """The COPY line of a row of a loaded type, from its fields in the order of ``_SNAKE`` (the model as
        resolved by the caller, and ``(input, output)`` when they are kept)."""
        if not oid:
            raise RowError("the row has no id")
        if oid.__class__ is not str:
            raise RowError(f"id must be a string, got {_kind(oid)}")
        (
            trace_id,
            project_id,
            parent_id,
            name,
            level,
            status_message,
            environment,
            model_parameters,
            usage_details,
            cost_details,
            total_cost,
            start_time,
            end_time,
            completion_start_time,
            created_at,
            updated_at,
            latency,
            ttft,
            metadata,
        ) = fields[:19]
        if not trace_id:
            raise RowError("the row has no trace id")
        if start_time is None or start_time == "":
            raise RowError("the row has no start time")

        # Text columns: one join and one scan for the common case of nothing to escape or reject.
        texts = (
            oid,
            trace_id,
            project_id or "",
            parent_id or "",
            typ,
            name or "",
            level or "",
            status_message or "",
            environment or "",
            model or "",
        )
        try:
            text_part = "\t".join(texts)
        except TypeError:
            for field, value in zip(_TEXT_FIELDS, texts, strict=True):
                _text(value, field)
            raise
        if "\x00" in text_part or not text_part.isascii():
            _check_texts(texts)
        if (
            len(oid) > _ID_CHARS
            or len(texts[1]) > _ID_CHARS
            or len(texts[2]) > _ID_CHARS
            or len(texts[3]) > _ID_CHARS
        ):
            _check_ids(texts)
        if "\\" in text_part or "\n" in text_part or "\r" in text_part or text_part.count("\t") != 9:
            text_part = "\t".join(escape_copy_text(t) for t in texts)

        # start and updated are checked here (they order and identify versions); PostgreSQL checks the others,
        # and a row it refuses is rejected alone (see ingest.loader).
        # Langfuse's own shape (26 characters, a space at 10) is tested inline: it is nearly every value.
        start: datetime | None = None  # the parsed start time, reused for the latency unit below
        if start_time.__class__ is str and len(start_time) == 26 and start_time[10] == " ":
            try:
                start = _fromiso(start_time)
            except ValueError:
                raise RowError(f"start_time is not a timestamp: {_show(start_time)}") from None
            start_text = start_time
        else:
            start_text = _timestamp_text(start_time, "start_time", check=True)
        if end_time.__class__ is str and len(end_time) == 26 and end_time[10] == " ":
            end_text = end_time
        else:
            end_text = "" if end_time is None else _timestamp_text(end_time, "end_time")
        if completion_start_time is None:
            completion_text = ""
        elif (
            completion_start_time.__class__ is str
            and len(completion_start_time) == 26
            and completion_start_time[10] == " "
        ):
            completion_text = completion_start_time
        else:
            completion_text = _timestamp_text(completion_start_time, "completion_start_time")
        if created_at.__class__ is str and len(created_at) == 26 and created_at[10] == " ":
            created_text = created_at
        else:
            created_text = "" if created_at is None else _timestamp_text(created_at, "created_at")
        if updated_at.__class__ is str and len(updated_at) == 26 and updated_at[10] == " ":
            try:
                _fromiso(updated_at)
            except ValueError:
                raise RowError(f"updated_at is not a timestamp: {_show(updated_at)}") from None
            updated_text = updated_at
        elif updated_at is None or updated_at == "":
            updated_text = created_text or start_text
        else:
            updated_text = _timestamp_text(updated_at, "updated_at", check=True)
        if end_text and (
            (end_text < start_text and _before(end_text, start_text))  # Langfuse's shape compares as text
            if start is not None and len(end_text) == 26 and end_text[10] == " "
            else _before(end_text, start_text)
        ):
            raise RowError(f"end_time {end_text} is before start_time {start_text}")

        # JSON numbers arrive as float; everything else goes the careful way.
        if latency is not None and latency.__class__ is not float:
            latency = _number(latency, "latency")
        if ttft is not None and ttft.__class__ is not float:
            ttft = _number(ttft, "time_to_first_token")
        if latency and end_text and self._detect:  # zero reads the same in both units
            self._detect_unit(latency, start, start_text, end_text)
        if self._millis:
            if latency is not None:
                latency /= 1000
                self.millis_rows += 1
            if ttft is not None:
                ttft /= 1000
        if latency is not None and not 0.0 <= latency < SECONDS_MAX:
            raise RowError(_out_of_range("latency", latency, SECONDS_MAX, " seconds"))
        if ttft is not None and not 0.0 <= ttft < SECONDS_MAX:
            raise RowError(_out_of_range("time_to_first_token", ttft, SECONDS_MAX, " seconds"))

        if metadata.__class__ is dict:
            metadata_text = "{}"
            if metadata:
                natural_of = _natural_of
                try:
                    metadata_text = _dumps({k: natural_of(v) for k, v in metadata.items()}).decode()
                except TypeError:  # a value to hash or write the careful way
                    metadata_text = _metadata_text(metadata)
                else:
                    if "\\" in metadata_text:
                        metadata_text = _json_copy_text(metadata_text, "metadata")
        elif metadata is None or metadata == "" or metadata == {}:
            metadata_text = "{}"
        else:  # JSON text of an object, a Parquet map
            metadata_text = _metadata_text(_object(metadata, "metadata") or {})
        # JSON-object columns: exports write model parameters as JSON text and the details as objects, which
        # the fast decoding keeps as written (Raw); those go on as they are unless there is text to escape.
        if (
            model_parameters.__class__ is str
            and model_parameters[:1] == "{"
            and "\\" not in model_parameters
            and "\t" not in model_parameters
            and "\n" not in model_parameters
            and "\r" not in model_parameters
        ):
            parameters_text = (
                model_parameters  # PostgreSQL checks its syntax: a row it refuses is rejected alone
            )
        else:
            parameters_text = _object_text(model_parameters, "model_parameters")
        usage_text = str(usage_details, "utf-8") if usage_details.__class__ is _Raw else ""
        if usage_text[:1] != "{" or "\\" in usage_text or "\t" in usage_text or "\r" in usage_text:
            usage_text = _object_text(usage_details, "usage_details")
        cost_text = str(cost_details, "utf-8") if cost_details.__class__ is _Raw else ""
        if cost_text[:1] != "{" or "\\" in cost_text or "\t" in cost_text or "\r" in cost_text:
            cost_text = _object_text(cost_details, "cost_details")
        io_part = "\t" if io is None else _any_json(io[0], "input") + "\t" + _any_json(io[1], "output")
        cost_number = _cost_text(total_cost)

        line = "\t".join(
            (
                text_part,
                parameters_text,
                usage_text,
                cost_text,
                cost_number,
                start_text,
                end_text,
                completion_text,
                created_text,
                updated_text,
                "" if latency is None else repr(latency),
                "" if ttft is None else repr(ttft),
                metadata_text,
                io_part,
                self._lineage,
            )
        )
        return oid, updated_text, line

    def _detect_unit(self, latency: float, start: datetime | None, start_text: str, end_text: str) -> None:
        """Set the unit this row's latency agrees with best (ties keep the last one); ``start`` is the
        start time already parsed, if it is."""
        try:
            elapsed: float | None = (_fromiso(end_text) - (start or _fromiso(start_text))).total_seconds()
        except (TypeError, ValueError):
            elapsed = self._elapsed(start_text, end_text)
        if elapsed is not None:
            as_seconds, as_millis = abs(latency - elapsed), abs(latency / 1000 - elapsed)
            if as_millis < as_seconds:
                self._millis = True
            elif as_seconds < as_millis:
                self._millis = False

    @staticmethod
    def _elapsed(start_text: str, end_text: str) -> float | None:
        """Seconds from start to end when one has a zone and the other not (both are UTC); None for an end
        time that PostgreSQL is left to refuse."""
        try:
            return (_aware(_fromiso(end_text)) - _aware(_fromiso(start_text))).total_seconds()
        except ValueError:
            return None


def _aware(moment: datetime) -> datetime:
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment
