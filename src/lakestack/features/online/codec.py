"""How feature values travel to an online store and back, whatever the store.

Each column is turned into plain Python scalars a key-value store can hold (int, float, str,
bytes, bool, None), column by column with Arrow, and rebuilt into the exact Arrow type on the
way back: timestamps and dates travel as integers, decimals and uint64 as text, lists and
structs of numbers, booleans and strings as JSON. Nothing is pickled: a shared Redis must not
be able to run code in a reader.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal

import pyarrow as pa
import pyarrow.compute as pc

from lakestack.errors import SchemaMismatch

Kind = Literal["int", "float", "bool", "str", "bytes", "text", "json"]
Scalar = int | float | str | bytes | bool | None
SQLITE_TYPES: dict[Kind, str] = {
    "int": "INTEGER",
    "bool": "INTEGER",
    "float": "REAL",
    "str": "TEXT",
    "text": "TEXT",
    "json": "TEXT",
    "bytes": "BLOB",
}


@dataclass(frozen=True)
class Column:
    """One column's Arrow type, how it is stored (`kind`) and the Arrow type it travels as."""

    name: str
    type: pa.DataType
    kind: Kind
    storage: pa.DataType

    def encode(self, array: pa.Array | pa.ChunkedArray) -> list[Scalar]:
        """The column as storable Python scalars (None for nulls)."""
        if self.kind == "json":
            return [None if v is None else json.dumps(v, separators=(",", ":")) for v in array.to_pylist()]
        if self.kind == "text":
            return [None if v is None else str(v) for v in array.to_pylist()]
        if self.storage != self.type:
            array = array.cast(self.storage)
        return list(array.to_pylist())

    def decode(self, values: Sequence[Scalar]) -> pa.Array:
        """The column rebuilt from stored scalars, in its Arrow type."""
        if self.kind == "json":
            return pa.array([None if v is None else json.loads(v) for v in values], self.type)  # type: ignore[arg-type]
        if self.kind == "bool":
            return pa.array([None if v is None else bool(v) for v in values], pa.bool_())
        array = pa.array(values, self.storage)
        return array if self.storage == self.type else array.cast(self.type)

    def to_python(self, value: Scalar) -> Any:
        """One stored scalar as the Python value Arrow's `as_py()` would give."""
        if value is None:
            return None
        if self.kind == "bool":
            return bool(value)
        if self.kind == "json":
            return json.loads(value)  # type: ignore[arg-type]
        if self.storage == self.type:
            return value
        return self.decode([value])[0].as_py()

    def from_bytes(self, raw: bytes | None) -> Scalar:
        """A stored scalar from a value Redis returned (Redis keeps everything as bytes)."""
        if raw is None:
            return None
        if self.kind == "int":
            return int(raw)
        if self.kind == "float":
            return float(raw)
        if self.kind == "bool":
            return raw == b"1"
        if self.kind == "bytes":
            return raw
        return raw.decode()

    def coerce(self, values: Sequence[Any]) -> list[Scalar]:
        """Lookup keys given by a caller as storable scalars: plain Python ints and strings pass
        through untouched (the hot path); anything else is cast to the key's type by Arrow, so
        "42" from a command line finds the int key 42."""
        if self.kind == "int" and self.type == pa.int64() and all(type(v) is int for v in values):
            return list(values)
        if self.kind == "str" and all(type(v) is str for v in values):
            return list(values)
        return self.encode(cast_keys(self, key_array(self, values)))


def key_array(column: Column, values: Sequence[Any]) -> pa.Array:
    """Caller-given key values as an Arrow array (typed by Arrow's inference, cast later)."""
    if not values:
        return pa.array([], column.type)
    try:
        return pa.array(values)
    except (pa.ArrowInvalid, pa.ArrowTypeError) as exc:
        raise SchemaMismatch(
            f"Key column '{column.name}' ({column.type}) got values of mixed or unknown types: "
            f"{str(exc).splitlines()[0]}."
        ) from None


def cast_keys(column: Column, array: pa.Array | pa.ChunkedArray) -> pa.Array | pa.ChunkedArray:
    """`array` as the key column's type, or a SchemaMismatch naming the column and the type."""
    if array.null_count:
        raise SchemaMismatch(f"Key column '{column.name}' is null in {array.null_count} lookup row(s).")
    if array.type == column.type:
        return array
    try:
        return pc.cast(array, column.type)
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError, pa.ArrowTypeError) as exc:
        raise SchemaMismatch(
            f"Key column '{column.name}' is {column.type}; the lookup keys are {array.type} and "
            f"cannot be converted ({str(exc).splitlines()[0]})."
        ) from None


def column_for(field: pa.Field, is_key: bool = False) -> Column:
    """How a column is stored online; a SchemaMismatch for types an online store cannot hold."""
    t = field.type
    name = field.name
    if pa.types.is_boolean(t):
        return Column(name, t, "bool", t)
    if pa.types.is_uint64(t):
        return Column(name, t, "text", pa.string())
    if pa.types.is_integer(t):
        return Column(name, t, "int", t)
    if pa.types.is_floating(t):
        return Column(name, t, "float", pa.float64())
    if pa.types.is_timestamp(t) or pa.types.is_duration(t) or pa.types.is_date64(t):
        return Column(name, t, "int", pa.int64())
    if pa.types.is_date32(t):
        return Column(name, t, "int", pa.int32())
    if pa.types.is_time32(t):
        return Column(name, t, "int", pa.int32())
    if pa.types.is_time64(t):
        return Column(name, t, "int", pa.int64())
    if pa.types.is_string(t) or pa.types.is_large_string(t) or pa.types.is_string_view(t):
        return Column(name, t, "str", t)
    if pa.types.is_decimal(t):
        return Column(name, t, "text", pa.string())
    if not is_key:
        if pa.types.is_binary(t) or pa.types.is_large_binary(t) or pa.types.is_fixed_size_binary(t):
            return Column(name, t, "bytes", t)
        if _json_safe(t):
            return Column(name, t, "json", pa.string())
    what = "a key" if is_key else "a feature"
    raise SchemaMismatch(
        f"Column '{name}' ({t}) cannot be {what} of an online table: online stores hold numbers, "
        "booleans, strings, decimals, dates and timestamps"
        + ("" if is_key else ", bytes, and lists/structs of numbers, booleans and strings")
        + ". Leave it out with feature_names=[...]."
    )


def _json_safe(t: pa.DataType) -> bool:
    if pa.types.is_list(t) or pa.types.is_large_list(t) or pa.types.is_fixed_size_list(t):
        return _json_leaf(t.value_type)
    if pa.types.is_struct(t):
        return all(_json_leaf(t.field(i).type) for i in range(t.num_fields))
    return False


def _json_leaf(t: pa.DataType) -> bool:
    if _json_safe(t):
        return True
    return (
        pa.types.is_boolean(t)
        or (pa.types.is_integer(t) and not pa.types.is_uint64(t))
        or pa.types.is_floating(t)
        or pa.types.is_string(t)
        or pa.types.is_large_string(t)
    )


def timestamps_us(array: pa.Array | pa.ChunkedArray) -> list[int]:
    """A timestamp or date column as microseconds since the epoch (naive = UTC)."""
    if pa.types.is_timestamp(array.type):
        array = array.cast(pa.timestamp("us", tz=array.type.tz)).cast(pa.int64())
    else:
        array = array.cast(pa.timestamp("us")).cast(pa.int64())
    return list(array.to_pylist())
