"""The fast path of training-set lookups: an as-of join by binary search, in numpy and Arrow.

It gives exactly the answer of the DuckDB query in `training.py` (same rows, values and
types) for the common shapes of lookups, and declines (returns None) for anything else, which
then goes through DuckDB:

- keys: integers (any width), strings, binaries, booleans or dates, the same family on both
  sides; one column or several. Floats, decimals, nested types and mixed families decline.
- timestamps: Arrow timestamps in s, ms or us, any time zone (instants are compared; naive is
  UTC). (The input's ns are already us: `to_arrow` makes them so.) Dates decline.
- feature tables without null keys or timestamps and without repeated (key, timestamp) rows,
  which merge-only writes guarantee; a table that breaks this declines.
- output types: DuckDB's, found by running the output expressions on one row of NULLs (this
  also gives each default value as DuckDB converts it); where DuckDB's type would differ from
  the stored one other than by a lossless cast, it declines.

How: each lookup key is encoded to a dense integer code shared by both sides (the key's
offset from the smallest stored one, or its index among the stored distinct keys), the code
and the timestamp's offset are packed into one int64 sort key, and the feature rows are put in
that order (merge-only writes mostly leave them in it already). The input rows are sorted the
same way, so `searchsorted(side="right") - 1` walks the feature rows nearly in order and finds,
for each row, the newest feature row at or before its timestamp; it is a hit when its key code
is the row's and it is within the lookback window. Features are gathered in that sorted order
(sequential reads) and put back in input order in one pass.
"""

from __future__ import annotations

import builtins
import logging
from dataclasses import dataclass
from datetime import timedelta
from typing import TYPE_CHECKING, Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.dataset as pads

from lakestack.tables.sandbox import sandboxed_connection

log = logging.getLogger(__name__)

if TYPE_CHECKING:
    from lakestack.features.training import _Plan

# Packed sort keys (key code, then time) stay below 2**62: non-negative, and no shift overflows.
BITS = 62
# Codes of several key columns are combined in mixed radix up to this many; beyond, renumbered.
RADIX_LIMIT = 1 << 40
UNITS = {"s": 1_000_000, "ms": 1_000, "us": 1}


class Unsupported(Exception):
    """This lookup is not one the fast path answers exactly; DuckDB will."""


@dataclass(frozen=True)
class _Output:
    name: str
    feature: str
    type: pa.DataType
    default: pa.Scalar | None


def lookup_columns(
    rows: pa.Table, plans: builtins.list[_Plan], datasets: builtins.list[pads.Dataset]
) -> builtins.list[tuple[str, pa.ChunkedArray]] | None:
    """Every lookup's output columns for `rows`, in input order; None if a lookup needs DuckDB."""
    try:
        for plan, dataset in zip(plans, datasets, strict=True):
            _check_shape(rows.schema, plan, dataset.schema)
        outputs = _output_types(plans, datasets)
        columns: builtins.list[tuple[str, pa.ChunkedArray]] = []
        orders: dict[tuple[str | None, ...], np.ndarray] = {}
        for plan, dataset, planned in zip(plans, datasets, outputs, strict=True):
            stored = _read(plan, dataset)
            if stored is not None:
                columns += _lookup(rows, plan, stored, planned, orders)
            del stored  # before the next table is read
        return columns
    except MemoryError:
        raise  # the DuckDB path would need as much again: say so instead of trying
    except Exception as exc:  # unsupported or unforeseen: DuckDB gives the answer or the error
        log.debug("training set: binary-search as-of join declined (%s); DuckDB joins instead", exc)
        return None


def _key_family(t: pa.DataType) -> str | None:
    if pa.types.is_integer(t):
        return "int"
    if pa.types.is_boolean(t):
        return "bool"
    if pa.types.is_date32(t):
        return "date"
    if pa.types.is_string(t) or pa.types.is_large_string(t) or pa.types.is_string_view(t):
        return "string"
    if pa.types.is_binary(t) or pa.types.is_large_binary(t) or pa.types.is_binary_view(t):
        return "binary"
    return None


def _timestamp_unit(t: pa.DataType) -> int:
    """How many microseconds one unit of `t` is."""
    if not pa.types.is_timestamp(t) or t.unit not in UNITS:
        raise Unsupported(f"timestamp type {t}")
    return UNITS[t.unit]


def _check_shape(schema: pa.Schema, plan: _Plan, stored: pa.Schema) -> None:
    """Refuse, before reading anything, what the fast path does not handle."""
    lookup, table = plan.lookup, plan.table
    for given, key in zip(lookup.keys, table.lookup_keys, strict=True):
        if key not in stored.names:
            raise Unsupported(f"key {key} is not in the dataset")
        family = _key_family(schema.field(given).type)
        if family is None or family != _key_family(stored.field(key).type):
            raise Unsupported(f"keys {given} / {key} of types {schema.field(given).type}")
    if table.timestamp_key is not None:
        if table.timestamp_key not in stored.names:
            raise Unsupported("no timestamp column")
        _timestamp_unit(stored.field(table.timestamp_key).type)
    if lookup.timestamp_lookup_key is not None:
        _timestamp_unit(schema.field(lookup.timestamp_lookup_key).type)
    if any(f not in stored.names for f in plan.features):
        raise Unsupported("a feature is not in the dataset")


def _same_values(stored: pa.DataType, output: pa.DataType) -> bool:
    """Whether casting `stored` to `output` changes no value: only how it is laid out or labelled."""
    if stored.equals(output):
        return True
    strings = (pa.types.is_string, pa.types.is_large_string, pa.types.is_string_view)
    binaries = (pa.types.is_binary, pa.types.is_large_binary, pa.types.is_binary_view)
    for family in (strings, binaries):
        if any(f(stored) for f in family) and any(f(output) for f in family):
            return True
    # a time zone is a label on the same instants
    return pa.types.is_timestamp(stored) and pa.types.is_timestamp(output) and stored.unit == output.unit


def _output_types(
    plans: builtins.list[_Plan], datasets: builtins.list[pads.Dataset]
) -> builtins.list[builtins.list[_Output]]:
    """Each output's type and default as the DuckDB query gives them."""
    wanted = []
    for plan, dataset in zip(plans, datasets, strict=True):
        defaults = plan.lookup.default_values or {}
        for feature in plan.features:
            has = feature in defaults
            wanted.append((dataset.schema.field(feature).type, has, defaults.get(feature)))
    _probe([w for w in wanted if _probe_key(*w) not in _PROBED])
    planned, at = [], iter(wanted)
    for plan, dataset in zip(plans, datasets, strict=True):
        outputs = []
        for feature, name in zip(plan.features, plan.outputs, strict=True):
            output_type, default = _PROBED[_probe_key(*next(at))]
            stored = dataset.schema.field(feature).type
            if not _same_values(stored, output_type):
                raise Unsupported(f"{feature}: {stored} -> {output_type}")
            outputs.append(_Output(name, feature, output_type, default))
        planned.append(outputs)
    return planned


# (stored type, has a default, the default's type and repr) -> DuckDB's output type and default
_PROBED: dict[tuple[pa.DataType, bool, str, str], tuple[pa.DataType, pa.Scalar | None]] = {}


def _probe_key(stored: pa.DataType, has_default: bool, default: Any) -> tuple[pa.DataType, bool, str, str]:
    return stored, has_default, type(default).__qualname__, repr(default)


def _probe(wanted: builtins.list[tuple[pa.DataType, bool, Any]]) -> None:
    """Run the DuckDB query's output expressions on one row of NULLs of the stored types: DuckDB
    picks the common type of a feature and its default, and converts the default."""
    if not wanted:
        return
    if len(_PROBED) > 1024:
        _PROBED.clear()
    nulls = pa.table({f"c{i}": pa.nulls(1, t) for i, (t, _, _) in enumerate(wanted)})
    selects, parameters = [], []
    for i, (_, has_default, default) in enumerate(wanted):
        fallback = "NULL"
        if has_default:
            fallback = "?"
            parameters.append(default)
        selects.append(f"CASE WHEN c{i} IS NOT NULL THEN c{i} ELSE {fallback} END AS o{i}")
    con = sandboxed_connection()
    try:
        con.register("__nulls", nulls)
        result = con.sql(f"SELECT {', '.join(selects)} FROM __nulls", params=parameters or None)  # noqa: S608
        assert result is not None
        probed = result.to_arrow_table()
    except Exception as exc:  # e.g. a default DuckDB cannot convert: its error is the user's answer
        raise Unsupported(str(exc)) from None
    finally:
        con.close()
    for i, (stored, has_default, default) in enumerate(wanted):
        column = probed.column(f"o{i}")
        _PROBED[_probe_key(stored, has_default, default)] = (column.type, column[0] if has_default else None)


def _numpy(column: pa.ChunkedArray | pa.Array) -> np.ndarray:
    return np.ascontiguousarray(column.to_numpy(zero_copy_only=False))


def _valid(column: pa.ChunkedArray) -> np.ndarray | None:
    """Where `column` is not null; None when it has no nulls."""
    if column.null_count == 0:
        return None
    return _numpy(column.is_valid())


def _micros(column: pa.ChunkedArray) -> tuple[np.ndarray, np.ndarray | None]:
    """Microseconds since the epoch (UTC) as int64, and where they are valid (None: everywhere)."""
    factor = _timestamp_unit(column.type)
    valid = _valid(column)
    raw = column.cast(pa.int64())
    if valid is not None:
        raw = raw.fill_null(0)
    values = _numpy(raw)
    if factor != 1 and len(values):
        limit = np.iinfo(np.int64).max // factor
        if int(np.abs(values).max()) > limit:
            raise Unsupported("timestamps out of the microsecond range")
        values = values * factor
    return values, valid


def _as_int64(column: pa.ChunkedArray) -> pa.ChunkedArray:
    if pa.types.is_date32(column.type):
        column = column.cast(pa.int32())
    return column.cast(pa.int64())  # a uint64 above 2**63 raises: declined


def _encode_keys(
    given: builtins.list[pa.ChunkedArray], stored: builtins.list[pa.ChunkedArray]
) -> tuple[np.ndarray, np.ndarray, np.ndarray, int]:
    """Dense int64 codes of the stored rows' keys and of the input rows' keys, where the input's
    key is stored (not null, and among the stored keys), and how many codes there are. An input
    row whose key is not stored gets a code all the same (0 or its nearest), so that the codes
    keep the order of the values where they can."""
    if any(s.null_count for s in stored):
        raise Unsupported("a stored key is null")
    if len(given) == 1 and _key_family(given[0].type) in ("int", "bool", "date"):
        codes = _offset_codes(_as_int64(given[0]), _as_int64(stored[0]))
        if codes is not None:
            return codes
    stored_codes: np.ndarray | None = None
    given_codes: np.ndarray | None = None
    found = np.ones(len(given[0]), dtype=bool)
    count = 1
    for g, s in zip(given, stored, strict=True):
        if _key_family(s.type) in ("int", "bool", "date"):
            g, s = _as_int64(g), _as_int64(s)
        else:
            g = g.cast(s.type)
        encoded = pc.dictionary_encode(s.combine_chunks())
        s_codes = _numpy(encoded.indices).astype(np.int64)
        index = pc.index_in(g, value_set=encoded.dictionary, skip_nulls=True)
        found &= _numpy(index.is_valid())
        g_codes = _numpy(index.fill_null(0)).astype(np.int64)
        size = max(len(encoded.dictionary), 1)
        if stored_codes is None or given_codes is None:
            stored_codes, given_codes, count = s_codes, g_codes, size
            continue
        if count * size >= RADIX_LIMIT:  # keep the mixed-radix code small: renumber what is stored
            stored_codes, given_codes, found, count = _renumber(stored_codes, given_codes, found)
        stored_codes = stored_codes * size + s_codes
        given_codes = given_codes * size + g_codes
        count *= size
    assert stored_codes is not None and given_codes is not None
    return stored_codes, given_codes, found, count


def _offset_codes(
    given: pa.ChunkedArray, stored: pa.ChunkedArray
) -> tuple[np.ndarray, np.ndarray, np.ndarray, int] | None:
    """Integer keys coded as their offset from the smallest stored key; None when they spread too far."""
    s = _numpy(stored)
    if len(s) == 0:
        return s, np.zeros(len(given), dtype=np.int64), np.zeros(len(given), dtype=bool), 1
    low, high = int(s.min()), int(s.max())
    if high - low >= 1 << 40:
        return None
    valid = _valid(given)
    g = _numpy(given.fill_null(low) if valid is not None else given)
    found = (g >= low) & (g <= high)
    if valid is not None:
        found &= valid
    return s - low, np.clip(g, low, high) - low, found, high - low + 1


def _renumber(
    stored: np.ndarray, given: np.ndarray, found: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray, int]:
    distinct, stored = np.unique(stored, return_inverse=True)
    at = np.minimum(np.searchsorted(distinct, given), len(distinct) - 1)
    found = found & (distinct[at] == given)
    return stored.astype(np.int64), at.astype(np.int64), found, len(distinct)


@dataclass(frozen=True)
class _Match:
    """For input row i: its sorted position `place[i]`; there, the feature row `row` and whether
    it is a hit (`row` is 0 on a miss)."""

    row: np.ndarray
    hit: np.ndarray
    place: np.ndarray


def _read(plan: _Plan, dataset: pads.Dataset) -> pa.Table | None:
    """The columns a lookup needs from the pinned version; None when it has no feature to give."""
    if not plan.features:
        return None
    ts = plan.table.timestamp_key
    needed = list(dict.fromkeys([*plan.table.lookup_keys, *([ts] if ts else []), *plan.features]))
    return dataset.to_table(columns=needed)


def _lookup(
    rows: pa.Table,
    plan: _Plan,
    stored: pa.Table,
    outputs: builtins.list[_Output],
    orders: dict[tuple[str | None, ...], np.ndarray],
) -> builtins.list[tuple[str, pa.ChunkedArray]]:
    """One lookup's output columns, in input order."""
    match = _match(rows, plan, stored, orders)
    hit_in_order = match.hit[match.place]
    columns = []
    for output in outputs:
        values = _gather(stored.column(output.feature), match, hit_in_order)
        if not values.type.equals(output.type):
            values = values.cast(output.type)
        if output.default is not None and output.default.is_valid:
            values = pc.if_else(hit_in_order, values, output.default)
        columns.append((output.name, _chunked(values)))
    return columns


def _match(
    rows: pa.Table, plan: _Plan, stored: pa.Table, orders: dict[tuple[str | None, ...], np.ndarray]
) -> _Match:
    """The as-of search: each input row's newest feature row at or before its time, if any."""
    lookup, table = plan.lookup, plan.table
    n = rows.num_rows
    stored_codes, given_codes, candidate, count = _encode_keys(
        [rows.column(k) for k in lookup.keys], [stored.column(k) for k in table.lookup_keys]
    )
    shift, stamps, at = 0, None, None
    stored_key, given_key = stored_codes, given_codes
    if table.timestamp_key is not None:
        stamps, stamp_valid = _micros(stored.column(table.timestamp_key))
        if stamp_valid is not None:
            raise Unsupported("a stored timestamp is null")
        if lookup.timestamp_lookup_key is not None:
            at, at_valid = _micros(rows.column(lookup.timestamp_lookup_key))
            if at_valid is not None:
                candidate &= at_valid
        shift, stored_time, given_time, in_time = _encode_times(stamps, at, n, count)
        candidate &= in_time
        # the packed sort key: key code, then time
        stored_key = (stored_codes << shift) | stored_time
        given_key = (given_codes << shift) | given_time
    if stored.num_rows == 0:
        candidate[:] = False
    order = _sort_unique(stored_key)
    if order is not None:
        stored_key = stored_key[order]
    # Input rows in sort-key order: the binary searches and the gathers below then move forward
    # through the feature rows instead of jumping around them. Lookups on the same input columns
    # mostly share that order: it is reused when it still sorts.
    label = (*lookup.keys, lookup.timestamp_lookup_key)
    by_key = orders.get(label)
    sorted_key = given_key[by_key] if by_key is not None else None
    if by_key is None or sorted_key is None or not (sorted_key[1:] >= sorted_key[:-1]).all():
        by_key = orders[label] = np.argsort(given_key)
        sorted_key = given_key[by_key]
    found = np.searchsorted(stored_key, sorted_key, side="right") - 1
    hit = candidate[by_key] & (found >= 0)
    found[found < 0] = 0
    if len(stored_key):
        hit &= (stored_key[found] >> shift) == (sorted_key >> shift)
    row = found if order is None else order[found]
    if lookup.lookback_window is not None and stamps is not None and len(stamps) and at is not None:
        window = int(lookup.lookback_window / timedelta(microseconds=1))
        hit &= at[by_key] - stamps[row] <= window
    place = np.empty(n, dtype=np.int64)
    place[by_key] = np.arange(n, dtype=np.int64)
    return _Match(row, hit, place)


def _gather(source: pa.ChunkedArray, match: _Match, hit_in_order: np.ndarray) -> pa.Array:
    """`source`'s values at the matched rows, in input order; null on a miss."""
    n = len(match.place)
    if len(source) == 0:
        return pa.nulls(n, source.type)
    array = source.combine_chunks() if source.num_chunks != 1 else source.chunk(0)
    t = array.type
    if not (pa.types.is_primitive(t) and not pa.types.is_boolean(t) and t.bit_width in (8, 16, 32, 64)):
        taken = pa.array(match.row, mask=~match.hit)  # sorted rows first: reads move forward
        return array.take(taken).take(pa.array(match.place))
    # Fixed-width values: move the bits with numpy, then set the validity in one go.
    width = t.bit_width // 8
    bits = np.frombuffer(array.buffers()[1], dtype=f"<i{width}")[array.offset : array.offset + len(array)]
    values = np.take(np.take(bits, match.row), match.place)
    valid = hit_in_order
    if array.null_count:
        stored_valid = _numpy(array.is_valid())
        valid = valid & np.take(np.take(stored_valid, match.row), match.place)
    nulls = n - int(np.count_nonzero(valid))
    bitmap = pa.py_buffer(np.packbits(valid, bitorder="little")) if nulls else None
    return pa.Array.from_buffers(t, n, [bitmap, pa.py_buffer(values)], null_count=nulls)


def _chunked(values: pa.Array | pa.ChunkedArray) -> pa.ChunkedArray:
    return values if isinstance(values, pa.ChunkedArray) else pa.chunked_array([values])


def _encode_times(
    stamps: np.ndarray, at: np.ndarray | None, n: int, count: int
) -> tuple[int, np.ndarray, np.ndarray, np.ndarray]:
    """The bits a time takes in the packed key, the stored rows' times, each input row's, and
    whether that is at or after the oldest stored row. Times are offsets from the oldest stored
    row, clipped to the stored range (which finds the same rows); if they do not fit next to the
    key code, their rank among the stored times, which orders the same way."""
    key_bits = max(count - 1, 0).bit_length()
    if len(stamps) == 0:
        return 0, stamps, np.zeros(n, dtype=np.int64), np.zeros(n, dtype=bool)
    low, high = int(stamps.min()), int(stamps.max())
    if at is None:  # no timestamp to look up: each key's newest row
        at = np.full(n, high, dtype=np.int64)
    in_time = at >= low
    if key_bits + (high - low).bit_length() <= BITS:
        return (high - low).bit_length(), stamps - low, np.clip(at, low, high) - low, in_time
    distinct = np.unique(stamps)
    bits = max(len(distinct) - 1, 0).bit_length()
    if key_bits + bits > BITS:
        raise Unsupported("keys and times do not fit in 62 bits")
    stored_time = np.searchsorted(distinct, stamps).astype(np.int64)
    given_time = np.maximum(np.searchsorted(distinct, at, side="right").astype(np.int64) - 1, 0)
    return bits, stored_time, given_time, in_time


def _sort_unique(keys: np.ndarray) -> np.ndarray | None:
    """The order that sorts `keys` (None: they already are); refuses repeated keys."""
    if len(keys) < 2:
        return None
    ascending = keys[1:] > keys[:-1]
    if ascending.all():
        return None
    order = np.argsort(keys, kind="stable")  # timsort: fast on files that are each in order
    ordered = keys[order]
    if not (ordered[1:] > ordered[:-1]).all():
        raise Unsupported("repeated (key, timestamp) rows")
    return order
