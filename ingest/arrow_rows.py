"""The stored rows of a Parquet file made into COPY lines column by column, in Arrow.

A Parquet export's rows arrive as Arrow columns; making each row a dict and normalising it in Python costs
several times what PostgreSQL spends storing it. Here the rules of :class:`ingest.normalize.Normalizer` are
applied to whole columns with ``pyarrow.compute``: each row is checked against every rule the row path applies
(required fields, id sizes, NUL characters, timestamps, ``end_time`` before ``start_time``, number ranges, the
shapes of JSON and metadata values), and the rows that pass are made into COPY lines that store the very
values the row path's lines store (a double may be written with fewer digits, never another value). A row that
fails any check, or whose value this way does not handle (a metadata value with a ``\\u`` escape or a nested
object, a type in lower case, ...), goes down the row path instead, in its place in the file, so its
rejection, message and raw text, or its stored row, are the row path's own. A file whose columns are not of
the types handled here (camelCase keys, metadata as JSON text, timestamps with a zone, ``--with-io``) is read
the row path's way whole (see :func:`vectorisable`).

Rows keep their order: :func:`normalize_batch` yields, for one record batch, blocks of consecutive rows made
here and, between them, the single rows for the row path, so that ties between versions of an id and the
detected latency unit (which a row carries on to the rows after it) come out as the row path gives them.
"""

from __future__ import annotations

import re
from collections.abc import Generator, Iterator
from dataclasses import dataclass

import pyarrow as pa
import pyarrow.compute as pc

from autopicker.export_row import LOADED

from .normalize import COST_MAX_USD, ID_MAX_BYTES, LOADED_TYPES, SECONDS_MAX, Normalizer
from .readers import ArrowBatch

_TIMESTAMPS = tuple(f.name for f in LOADED if f.kind == "timestamp")
# The text columns in the raw table's order (the model as the export names it), the model's other name, and
# the model parameters (JSON text, checked and passed on as they are).
_TEXTS = (*(f.name for f in LOADED if f.kind == "text"), "model", "model_parameters")
_IDS = _TEXTS[:4]
_FLOATS = ("latency", "time_to_first_token", "total_cost")
#: camelCase names, a file with any of which is read the row path's way.
_OTHER_STYLE = frozenset(f.camel for f in LOADED if f.camel != f.name)
#: A row whose difference of end and start exceeds this many microseconds goes the row path (its seconds
#: as a float are computed from an integer that a double no longer holds exactly).
_EXACT_MICROS = 2**52
_MIN_TS = pa.scalar(-62135596800000000, pa.timestamp("us"))  # 0001-01-01 00:00:00
_MAX_TS = pa.scalar(253402300799999999, pa.timestamp("us"))  # 9999-12-31 23:59:59.999999
#: Rows of a record batch read at once: each compute call costs some microseconds whatever its size.
BATCH_ROWS = 8192
#: Row-path rows in one batch after which the rest of the batch goes the row path whole (a file of junk).
_MAX_SPLITS = 64

# Metadata values (SDK v5 JSON-encodes each) whose natural JSON value is their own text, as PostgreSQL
# stores it (see ingest.normalize.natural_value): JSON numbers (but -0, which is 0 there), JSON strings
# without \u escapes, flat arrays and objects of those, true/false/null. RE2 syntax.
_STR = r'"(?:[^"\\\x00-\x1f]|\\["\\/bfnrt])*"'
# Digits are bounded so that every such number is within what PostgreSQL's numeric holds.
_NUM = r"(?:-?[1-9][0-9]{0,99}(?:\.[0-9]{1,100})?|-?0\.[0-9]{1,100}|0)(?:[eE][-+]?[0-9]{1,3})?"
_SCALAR = rf"(?:{_STR}|{_NUM}|true|false|null)"
_VERBATIM = (
    rf"^(?:{_NUM}|{_STR}|true|false|null|\[(?:{_SCALAR}(?:,{_SCALAR})*)?\]"
    rf"|\{{(?:{_STR}:{_SCALAR}(?:,{_STR}:{_SCALAR})*)?\}})$"
)
# Model parameters that PostgreSQL surely reads as JSON (the row path passes them on for it to check): an
# object of scalars and flat arrays, spaces allowed, no backslash (text with one takes the row path).
_PLAIN_STR = r'"[^"\\\x00-\x1f]*"'
_PLAIN_SCALAR = rf"(?:{_PLAIN_STR}|{_NUM}|true|false|null)"
_PLAIN_VALUE = rf"(?:{_PLAIN_SCALAR}|\[ *(?:{_PLAIN_SCALAR}(?: *, *{_PLAIN_SCALAR})*)? *\])"
_PARAMETERS = rf"^\{{ *(?:{_PLAIN_STR} *: *{_PLAIN_VALUE}(?: *, *{_PLAIN_STR} *: *{_PLAIN_VALUE})*)? *\}}$"
# A value that stays a plain string: it starts with no character that makes it JSON or a number, or it is
# ASCII text starting with a digit or minus that is no number (or digits with a leading zero).
_STARTS_OTHER = r'^[^"{\[\-0-9]'
_NUMBERISH = r"^-?(?:0|[1-9][0-9]*)(?:\.[0-9]+)?(?:[eE][-+]?[0-9]+)?$|^[0-9]+$"
_LEADING_ZERO = r"^0[0-9]+$"
_CONTROL = r"[\x00-\x1f]"
_COPY_SPECIAL = r"[\\\t\n\r]"
_SPECIAL = r"[\x00\\\t\n\r]"  # what a text field cannot hold as it is
_SPECIAL_BYTES = re.compile(_SPECIAL.encode())


@dataclass
class Block:
    """Consecutive rows made here, as Arrow columns: their ids and COPY lines (without newline), their row
    numbers, and their versions (updated_at as normalised text, read only for an id met twice)."""

    ids: pa.Array
    lines: pa.Array
    numbers: list[int]
    versions: pa.Array

    @property
    def size(self) -> int:
        """Bytes of the lines."""
        offsets = _offsets(self.lines)
        return int(offsets[-1].as_py() - offsets[0].as_py())


@dataclass
class ChunkText:
    """Blocks made into one chunk's COPY text (see :func:`chunk_text`)."""

    blob: memoryview  # of the Arrow buffer that holds the text, not a copy of it
    numbers: list[int]  # the row number of each line
    repeated: int  # the last lines, whose ids an earlier source held
    repeated_at: int  # the byte where they start
    ids: list[str]


def chunk_text(blocks: list[Block], earlier: pa.Array | None) -> ChunkText | None:
    """The COPY text of consecutive blocks as one chunk, made in Arrow as ingest.chunks makes it row by
    row: lines in id order, those whose ids ``earlier`` holds last (in id order too), each ending in a
    newline. None when an id occurs twice: the row-by-row way then keeps the newest version of it."""
    ids = pa.concat_arrays([block.ids for block in blocks])
    order = pc.sort_indices(ids)
    ids = ids.take(order)
    count = len(ids)
    if count > 1 and pc.any(pc.equal(ids.slice(1), ids.slice(0, count - 1))).as_py():
        return None
    if earlier is not None and len(earlier):
        held = pc.is_in(ids, value_set=earlier)
        repeated = len(pc.indices_nonzero(held))
        if repeated:
            order = order.take(
                pa.concat_arrays([pc.indices_nonzero(pc.invert(held)), pc.indices_nonzero(held)])
            )
    else:
        repeated = 0
    lines = pa.concat_arrays([block.lines for block in blocks]).take(order)
    numbers = [number for block in blocks for number in block.numbers]
    numbers = [numbers[i] for i in order.to_pylist()]
    text = pc.binary_join_element_wise(lines, "", "\n")
    offsets = _offsets(text)
    first = offsets[0].as_py()
    blob = memoryview(text.buffers()[2].slice(first, offsets[-1].as_py() - first))
    repeated_at = offsets[count - repeated].as_py() - first
    return ChunkText(blob, numbers, repeated, repeated_at, ids.to_pylist())


def _offsets(text: pa.Array) -> pa.Array:
    """The offsets of a string array's values in its data buffer (one more than its length)."""
    return pa.Array.from_buffers(pa.int32(), len(text) + 1, [None, text.buffers()[1]], offset=text.offset)


def vectorisable(schema: pa.Schema, with_io: bool) -> bool:
    """Whether a Parquet file with this schema (the columns read) can take the column-wise way."""
    if with_io or _OTHER_STYLE.intersection(schema.names):
        return False
    for field in schema:
        name, kind = field.name, field.type
        if name in _TEXTS:
            ok = pa.types.is_string(kind) or pa.types.is_large_string(kind)
        elif name in _TIMESTAMPS:
            ok = pa.types.is_timestamp(kind) and kind.unit == "us" and kind.tz is None
        elif name in _FLOATS:
            ok = pa.types.is_float64(kind)
        elif name == "metadata":
            ok = pa.types.is_map(kind) and _is_text(kind.key_type) and _is_text(kind.item_type)
        elif name in ("usage_details", "cost_details"):
            ok = (
                pa.types.is_map(kind)
                and _is_text(kind.key_type)
                and (pa.types.is_integer(kind.item_type) or pa.types.is_float64(kind.item_type))
            )
        else:
            ok = False
        if not ok:
            return False
    return True


def _is_text(kind: pa.DataType) -> bool:
    return bool(pa.types.is_string(kind) or pa.types.is_large_string(kind))


def _as_text(array: pa.Array) -> pa.Array:
    return array.cast(pa.string())


def _column(batch: pa.RecordBatch, name: str, kind: pa.DataType) -> pa.Array:
    index = batch.schema.get_field_index(name)
    if index < 0:
        return pa.nulls(batch.num_rows, kind)
    array = batch.column(index)
    return array.cast(pa.string()) if pa.types.is_large_string(array.type) else array


def _compact(column: pa.Array) -> pa.Array:
    """A map column whose children start at its first entry (``keys`` and ``items`` ignore a slice)."""
    return pa.concat_arrays([column]) if column.offset or column.offsets[0].as_py() else column


#: (pattern, text) -> whether the text matches, for the texts :func:`_matches` has tried: model parameters
#: are a few values repeated in every batch, and RE2 compiles the pattern again at each call, which cost more
#: than matching the batch's few distinct values. Bounded: texts past the bound are matched every time.
_MATCHED: dict[tuple[str, str], bool] = {}
_MATCHED_MAX = 4096
_MATCHED_TEXT_MAX = 1024  # characters of a text kept


def _matches(text: pa.Array, pattern: str) -> pa.Array:
    """Whether each text matches ``pattern`` (null: false), each distinct text tried once (model
    parameters, like metadata values, are a few values repeated)."""
    encoded = pc.dictionary_encode(text)
    values = encoded.dictionary.to_pylist()
    known: list[bool | None] = [_MATCHED.get((pattern, value)) for value in values]
    untried = [value for value, result in zip(values, known, strict=True) if result is None]
    if untried:
        tried = iter(pc.match_substring_regex(pa.array(untried, pa.string()), pattern).to_pylist())
        known = [next(tried) if result is None else result for result in known]
        for value, result in zip(values, known, strict=True):
            if result is not None and len(_MATCHED) < _MATCHED_MAX and len(value) <= _MATCHED_TEXT_MAX:
                _MATCHED[pattern, value] = result
    matched = pc.take(pa.array(known, pa.bool_()), encoded.indices)
    return pc.fill_null(matched, False)


def _has_special(text: pa.Array) -> bool:
    """Whether any text of a string array holds a NUL or a character COPY escapes: a search of its values'
    bytes in its data buffer. Only those: the buffer also holds Arrow's padding (zeros, so a NUL) and the
    text outside a slice's range, and searching all of it sent most batches the slower escaping way."""
    data = text.buffers()[2]
    if data is None or len(text) == 0:
        return False
    offsets = _offsets(text)
    start, end = offsets[0].as_py(), offsets[len(text)].as_py()
    return _SPECIAL_BYTES.search(memoryview(data)[start:end]) is not None


def _true(mask: pa.Array) -> pa.Array:
    """A mask with nulls read as true (a null value passes the check)."""
    return pc.fill_null(mask, True)


def _empty(array: pa.Array) -> pa.Array:
    """Whether each text is null or empty."""
    return pc.fill_null(pc.equal(pc.binary_length(array), 0), True)


def _copy_escape(array: pa.Array) -> pa.Array:
    """Text escaped for a field of COPY's text format (see ingest.normalize.escape_copy_text)."""
    if not pc.any(pc.match_substring_regex(array, _COPY_SPECIAL)).as_py():
        return array
    for char, escaped in (("\\", "\\\\"), ("\t", "\\t"), ("\n", "\\n"), ("\r", "\\r")):
        array = pc.replace_substring(array, char, escaped)
    return array


def _json_string_body(array: pa.Array) -> pa.Array:
    """Text without control characters as the inside of a JSON string."""
    if pc.any(pc.match_substring_regex(array, r'["\\]')).as_py():
        array = pc.replace_substring(pc.replace_substring(array, "\\", "\\\\"), '"', '\\"')
    return array


def _float_text(array: pa.Array) -> pa.Array:
    """Finite doubles as text of the same number and scale as Python's repr (and orjson) write: an integral
    value under 10^16 ends in ``.0`` there, which Arrow leaves out (PostgreSQL's NUMERIC keeps the scale)."""
    text = array.cast(pa.string())
    integral = pc.and_(pc.equal(pc.floor(array), array), pc.less(pc.abs(array), 1e16))
    if not pc.any(integral).as_py():
        return text
    whole = pc.binary_join_element_wise(
        pc.if_else(integral, array, 0.0).cast(pa.int64()).cast(pa.string()), ".0", ""
    )
    return pc.if_else(integral, whole, text)


def _join(fields: list[pa.Array], separator: str = "\t") -> pa.Array:
    """Fields joined by tabs, a null as an empty field."""
    return pc.binary_join_element_wise(*fields, separator, null_handling="replace", null_replacement="")


def _natural_json(values: pa.Array) -> tuple[pa.Array, pa.Array]:
    """Metadata values as the JSON text of their natural values, and where this way cannot tell it."""
    string = pa.string()
    verbatim = pc.fill_null(pc.match_substring_regex(values, _VERBATIM), False)
    verbatim = pc.and_(verbatim, pc.fill_null(pc.not_equal(values, "-0"), False))
    plain = pc.and_(
        pc.invert(pc.match_substring_regex(values, _CONTROL)),
        pc.or_(
            pc.or_(pc.match_substring_regex(values, _STARTS_OTHER), pc.equal(values, "")),
            pc.and_(
                pc.and_(pc.match_substring_regex(values, r"^[\-0-9]"), pc.string_is_ascii(values)),
                pc.or_(
                    pc.invert(pc.match_substring_regex(values, _NUMBERISH)),
                    pc.match_substring_regex(values, _LEADING_ZERO),
                ),
            ),
        ),
    )
    plain = pc.and_(pc.fill_null(plain, False), pc.invert(verbatim))
    as_string = pc.binary_join_element_wise('"', _json_string_body(values), '"', "")
    natural = pc.if_else(verbatim, values, pc.if_else(plain, as_string, pa.scalar(None, string)))
    bad = pc.and_(values.is_valid(), pc.invert(pc.or_(verbatim, plain)))
    # JSON text without control characters: a backslash is all there is to escape for COPY.
    return pc.replace_substring(natural, "\\", "\\\\"), bad


def _row_mask(offsets: pa.Array, entry_bad: pa.Array, rows: int) -> pa.Array:
    """Per row, whether none of its map entries is bad."""
    bad_entries = pc.indices_nonzero(pc.fill_null(entry_bad, False))
    if len(bad_entries) == 0:
        return pa.array([True] * rows) if rows else pa.array([], pa.bool_())
    parents = pc.list_parent_indices(pa.ListArray.from_arrays(offsets, pa.nulls(len(entry_bad), pa.int8())))
    bad_rows = pc.take(parents, bad_entries)
    return pc.invert(pc.is_in(pa.array(range(rows), pa.int64()), value_set=bad_rows))


def _map_json(column: pa.Array, values: pa.Array, rows: int) -> tuple[pa.Array, pa.Array]:
    """A map column as JSON object text per row, escaped for COPY (null for a null map), and the mask of rows
    whose keys can be written here (no control characters); ``values`` is each entry's value as JSON text
    escaped for COPY (null: JSON null)."""
    keys = pc.dictionary_encode(column.keys)  # a few distinct keys, each made JSON once
    names = keys.dictionary
    key_bad = pc.take(pc.fill_null(pc.match_substring_regex(names, _CONTROL), False), keys.indices)
    quoted = pc.binary_join_element_wise('"', _json_string_body(names), '":', "")
    quoted = pc.take(pc.replace_substring(quoted, "\\", "\\\\"), keys.indices)
    entries = pc.binary_join_element_wise(quoted, pc.fill_null(values, "null"), "")
    offsets = column.offsets
    joined = pc.binary_join(pa.ListArray.from_arrays(offsets, entries), ",")
    text = pc.binary_join_element_wise("{", joined, "}", "")
    text = pc.if_else(column.is_null(), pa.scalar(None, pa.string()), text)
    return text, _row_mask(offsets, key_bad, rows)


class _Columns:
    """The state-independent part of a batch's COPY lines and checks, computed once per batch."""

    def __init__(self, batch: pa.RecordBatch, normalizer: Normalizer) -> None:
        rows = self.rows = batch.num_rows
        string = pa.string()
        texts = {name: _column(batch, name, string) for name in _TEXTS}
        stamps = {name: _column(batch, name, pa.timestamp("us")) for name in _TIMESTAMPS}
        floats = {name: _column(batch, name, pa.float64()) for name in _FLOATS}
        checks: list[pa.Array] = [
            pc.fill_null(pc.is_in(texts["type"], pa.array(sorted(LOADED_TYPES))), False)
        ]
        checks.append(pc.invert(_empty(texts["id"])))
        checks.append(pc.invert(_empty(texts["trace_id"])))
        for name in _IDS:
            checks.append(_true(pc.less_equal(pc.binary_length(texts[name]), ID_MAX_BYTES)))
        # One look at all the text tells whether any has a NUL or a character to escape (rarely).
        self.special = any(_has_special(texts[name]) for name in _TEXTS)
        if self.special:
            for name in _TEXTS:
                checks.append(pc.invert(pc.fill_null(pc.match_substring(texts[name], "\x00"), False)))
        start, end = stamps["start_time"], stamps["end_time"]
        checks.append(start.is_valid())
        for stamp in stamps.values():
            checks.append(_true(pc.and_(pc.greater_equal(stamp, _MIN_TS), pc.less_equal(stamp, _MAX_TS))))
        micros = pc.subtract(end.cast(pa.int64()), start.cast(pa.int64()))
        checks.append(_true(pc.and_(pc.greater_equal(micros, 0), pc.less(micros, _EXACT_MICROS))))
        parameters = texts["model_parameters"]
        checks.append(pc.or_(_empty(parameters), _matches(parameters, _PARAMETERS)))
        latency, ttft, cost = floats["latency"], floats["time_to_first_token"], floats["total_cost"]
        checks.append(_true(pc.is_finite(latency)))
        checks.append(_true(pc.is_finite(ttft)))
        checks.append(_true(pc.and_(pc.greater_equal(cost, 0.0), pc.less(cost, COST_MAX_USD))))

        # Metadata: each value as its natural JSON value (see ingest.normalize.natural_value).
        index = batch.schema.get_field_index("metadata")
        metadata_text: pa.Array
        if index < 0:
            metadata_text = pa.array(["{}"] * rows, string)
        else:
            column = _compact(batch.column(index))
            # Values repeat (model names, reasons, flags): each distinct one is judged once.
            encoded = pc.dictionary_encode(column.items.cast(string))
            natural, bad = _natural_json(encoded.dictionary)
            natural, entry_bad = pc.take(natural, encoded.indices), pc.take(bad, encoded.indices)
            text, keys_ok = _map_json(column.cast(pa.map_(string, string)), natural, rows)
            checks.append(keys_ok)
            checks.append(_row_mask(column.offsets, entry_bad, rows))
            metadata_text = pc.fill_null(text, "{}")

        details: list[pa.Array] = []
        for name in ("usage_details", "cost_details"):
            index = batch.schema.get_field_index(name)
            if index < 0:
                details.append(pa.nulls(rows, string))
                continue
            column = _compact(batch.column(index))
            items = column.items
            if pa.types.is_floating(items.type):
                finite = pc.fill_null(pc.is_finite(items), True)
                checks.append(_row_mask(column.offsets, pc.invert(finite), rows))
                numbers = _float_text(pc.if_else(finite, items, 0.0))
            else:
                numbers = items.cast(string)
            text, keys_ok = _map_json(column, numbers, rows)
            checks.append(keys_ok)
            details.append(text)

        ok = checks[0]
        for check in checks[1:]:
            ok = pc.and_(ok, check)
        self.ok = ok

        model = pc.coalesce(
            pc.if_else(
                _empty(texts["provided_model_name"]), pa.scalar(None, string), texts["provided_model_name"]
            ),
            pc.if_else(_empty(texts["model"]), pa.scalar(None, string), texts["model"]),
        )
        stamp_text = {name: _as_text(stamp) for name, stamp in stamps.items()}
        self.versions = pc.coalesce(
            stamp_text["updated_at"], stamp_text["created_at"], stamp_text["start_time"]
        )
        fields = [
            *(texts[name] for name in _TEXTS[:9]),
            model,
            pc.if_else(_empty(parameters), pa.scalar(None, string), parameters),
            *details,
            pc.if_else(cost.is_null(), pa.scalar(None, string), _float_text(pc.fill_null(cost, 0.0))),
            stamp_text["start_time"],
            stamp_text["end_time"],
            stamp_text["completion_start_time"],
            stamp_text["created_at"],
            self.versions,
        ]
        head = _join(fields)
        if self.special:
            head = _join([_copy_escape(field) for field in fields[:10]] + fields[10:])
        self.head = head
        self.tail = pc.binary_join_element_wise(metadata_text, "", "", normalizer._lineage, "\t")
        self.ids = texts["id"]
        self.latency, self.ttft = latency, ttft
        self.has_latency = latency.is_valid()
        # The unit a row's own latency says (true: milliseconds), null where it says none (see
        # Normalizer._detect_unit): rows with a non-zero latency and an end time.
        elapsed = pc.divide(pc.cast(pc.fill_null(micros, 0), pa.float64(), safe=False), 1e6)
        as_seconds = pc.abs(pc.subtract(latency, elapsed))
        as_millis = pc.abs(pc.subtract(pc.divide(latency, 1000.0), elapsed))
        says = pc.and_(pc.not_equal(latency, 0.0), end.is_valid())
        null_bool = pa.scalar(None, pa.bool_())
        self.unit = pc.if_else(
            pc.fill_null(says, False),
            pc.if_else(
                pc.less(as_millis, as_seconds),
                True,
                pc.if_else(pc.less(as_seconds, as_millis), False, null_bool),
            ),
            null_bool,
        )


def normalize_batch(item: ArrowBatch, normalizer: Normalizer) -> Iterator[Block | tuple[int, dict]]:
    """The rows of ``item`` in order: :class:`Block` objects of rows made here and, between them,
    ``(row_number, row)`` for the row path. The caller normalises each such row with ``normalizer`` before
    asking for the next item (the latency unit it detects carries on to the rows after it)."""
    rows = item.batch.num_rows
    if rows == 0:
        return
    try:
        item.batch.validate(full=True)  # text that is not UTF-8: the row path says what it says of it
    except pa.ArrowInvalid:
        for index in range(rows):
            yield item.numbers[index], item.row(index)
        return
    columns = _Columns(item.batch, normalizer)
    failing = pc.indices_nonzero(pc.invert(columns.ok)).to_pylist()
    failing.append(rows)
    start = splits = 0
    for stop in failing:
        while start < stop:
            if splits >= _MAX_SPLITS:  # a batch of mostly bad rows: the rest goes the row path as it is
                for index in range(start, rows):
                    yield item.numbers[index], item.row(index)
                return
            end = yield from _block(item, columns, normalizer, start, stop)
            if end < stop:  # a latency or time to first token out of range, once the unit is applied
                splits += 1
                yield item.numbers[end], item.row(end)
            start = end + 1 if end < stop else stop
        if stop < rows:
            splits += 1
            yield item.numbers[stop], item.row(stop)
            start = stop + 1


def _block(
    item: ArrowBatch, columns: _Columns, normalizer: Normalizer, start: int, stop: int
) -> Generator[Block, None, int]:
    """Rows start..stop as one Block, up to the first whose seconds are out of range; returns where it
    ended (stop when every row is in)."""
    count = stop - start
    latency, ttft = columns.latency.slice(start, count), columns.ttft.slice(start, count)
    if normalizer._detect:
        units = pc.fill_null_forward(
            pa.concat_arrays([pa.array([normalizer._millis]), columns.unit.slice(start, count)])
        )
        millis = units.slice(1)
    else:
        millis = pa.array([normalizer._millis] * count, pa.bool_())
    latency = pc.if_else(millis, pc.divide(latency, 1000.0), latency)
    ttft = pc.if_else(millis, pc.divide(ttft, 1000.0), ttft)
    in_range = pc.and_(
        _true(pc.and_(pc.greater_equal(latency, 0.0), pc.less(latency, SECONDS_MAX))),
        _true(pc.and_(pc.greater_equal(ttft, 0.0), pc.less(ttft, SECONDS_MAX))),
    )
    out = pc.indices_nonzero(pc.invert(in_range))
    end = stop if len(out) == 0 else start + out[0].as_py()
    count = end - start
    if count:
        millis, latency, ttft = millis.slice(0, count), latency.slice(0, count), ttft.slice(0, count)
        normalizer._millis = millis[count - 1].as_py()
        normalizer.millis_rows += (
            pc.sum(pc.and_(millis, columns.has_latency.slice(start, count)).cast(pa.int64())).as_py() or 0
        )
        lines = pc.binary_join_element_wise(
            columns.head.slice(start, count),
            latency.cast(pa.string()),
            ttft.cast(pa.string()),
            columns.tail.slice(start, count),
            "\t",
            null_handling="replace",
            null_replacement="",
        )
        yield Block(
            columns.ids.slice(start, count),
            lines,
            item.numbers[start:end],
            columns.versions.slice(start, count),
        )
    # The out-of-range row (if any) goes the row path next, which detects its unit from the same state.
    return end
