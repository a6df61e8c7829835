"""Which Spark SQL types travel to Ray and back, and as which Arrow types.

Spark's types map onto Arrow's one for one: timestamps as microseconds (`TIMESTAMP` in
UTC, `TIMESTAMP_NTZ` without a zone), decimals as `decimal128(p, s)`, arrays, maps and
structs nested as deep as they go. Coming back, each Arrow block is cast to the table's
Arrow schema: nanosecond timestamps (what pandas and Parquet's INT96 give) become
microseconds, which is all Spark holds; Ray's 1-D tensor columns (what a numpy batch
of vectors becomes) become arrays. A type with no such trip is refused before anything
moves, naming the column and what to do.
"""

from __future__ import annotations

from collections.abc import Iterator

import pyarrow as pa
from pyspark.sql import types as T

# Spark's atomic types and their Arrow twins. Spark's char/varchar arrive as strings.
_ATOMIC: dict[type[T.DataType], pa.DataType] = {
    T.BooleanType: pa.bool_(),
    T.ByteType: pa.int8(),
    T.ShortType: pa.int16(),
    T.IntegerType: pa.int32(),
    T.LongType: pa.int64(),
    T.FloatType: pa.float32(),
    T.DoubleType: pa.float64(),
    T.StringType: pa.string(),
    T.BinaryType: pa.binary(),
    T.DateType: pa.date32(),
    T.TimestampType: pa.timestamp("us", tz="UTC"),
    T.TimestampNTZType: pa.timestamp("us"),
}

# What to do with a Spark type that has no trip, by the type's name.
_REFUSED_FIX = {
    "void": "cast the column to the type it should have",
    "interval": "cast it to a number of seconds or months first",
    "variant": "turn it into a string with to_json() first",
}
_UDT_FIX = "convert it first (a vector: pyspark.ml.functions.vector_to_array)"


class CannotHandOver(ValueError):
    """A column whose type cannot go to Ray and back; the message says which and why."""


def arrow_schema(schema: T.StructType) -> pa.Schema:
    """The Arrow schema of a Spark table; `CannotHandOver` names a column that has none."""
    return pa.schema([_arrow_field(field, field.name) for field in schema.fields])


def spark_schema(schema: pa.Schema) -> T.StructType:
    """The Spark schema of an Arrow one (a Ray Dataset's): the inverse of
    `arrow_schema`, widened where Spark has no narrower type (uint32 as bigint)."""
    return T.StructType([_spark_field(field, field.name) for field in schema])


def nullable(schema: T.StructType) -> T.StructType:
    """`schema` with every field, element and map value nullable, all the way down, as
    Spark's file reads make a schema: what `to_spark` gives on every route."""
    fields = [T.StructField(f.name, _nullable(f.dataType), True, f.metadata) for f in schema]
    return T.StructType(fields)


def conform(table: pa.Table, schema: pa.Schema) -> pa.Table:
    """`table` cast, column by column, to `schema` (its columns in that order)."""
    missing = [name for name in schema.names if name not in table.column_names]
    if missing:
        raise CannotHandOver(
            f"the dataset has no column {', '.join(map(repr, missing))} of the schema it "
            f"should have ({', '.join(table.column_names)} came back): return every column "
            "of the schema, or pass the schema the data has"
        )
    columns = [_cast(table.column(field.name), field) for field in schema]
    return pa.Table.from_arrays(columns, schema=schema)


def _arrow_field(field: T.StructField, path: str) -> pa.Field:
    return pa.field(field.name, _arrow_type(field.dataType, path), nullable=field.nullable)


def _arrow_type(dtype: T.DataType, path: str) -> pa.DataType:
    if type(dtype) in _ATOMIC:
        return _ATOMIC[type(dtype)]
    if isinstance(dtype, T.DecimalType):
        return pa.decimal128(dtype.precision, dtype.scale)
    if isinstance(dtype, T.ArrayType):
        item = pa.field("element", _arrow_type(dtype.elementType, f"{path}[]"))
        return pa.list_(item.with_nullable(dtype.containsNull))
    if isinstance(dtype, T.MapType):
        key = _arrow_type(dtype.keyType, f"{path}.key")
        value = pa.field("value", _arrow_type(dtype.valueType, f"{path}.value"))
        return pa.map_(key, value.with_nullable(dtype.valueContainsNull))
    if isinstance(dtype, T.StructType):
        return pa.struct([_arrow_field(f, f"{path}.{f.name}") for f in dtype.fields])
    raise CannotHandOver(_refusal(path, dtype))


def _nullable(dtype: T.DataType) -> T.DataType:
    if isinstance(dtype, T.StructType):
        return nullable(dtype)
    if isinstance(dtype, T.ArrayType):
        return T.ArrayType(_nullable(dtype.elementType), containsNull=True)
    if isinstance(dtype, T.MapType):
        return T.MapType(dtype.keyType, _nullable(dtype.valueType), valueContainsNull=True)
    return dtype


def _refusal(path: str, dtype: T.DataType) -> str:
    name = dtype.simpleString()
    if isinstance(dtype, T.UserDefinedType):
        fix = _UDT_FIX
    else:
        fix = next(
            (fix for word, fix in _REFUSED_FIX.items() if name.startswith(word)),
            "cast it to a type Arrow has first",
        )
    return f"column {path!r} is {name}, which cannot go to Ray and back: {fix}"


def _spark_field(field: pa.Field, path: str) -> T.StructField:
    return T.StructField(field.name, _spark_type(field.type, path), nullable=field.nullable)


def _spark_type(dtype: pa.DataType, path: str) -> T.DataType:
    if isinstance(dtype, pa.ExtensionType):
        return _spark_type(_tensor_storage(dtype, path), path)
    for spark_type, arrow_type in _ATOMIC.items():
        if dtype == arrow_type:
            return spark_type()
    if pa.types.is_timestamp(dtype):
        return T.TimestampType() if dtype.tz else T.TimestampNTZType()
    if pa.types.is_date(dtype):
        return T.DateType()
    if pa.types.is_large_string(dtype) or pa.types.is_string_view(dtype):
        return T.StringType()
    if pa.types.is_large_binary(dtype) or pa.types.is_fixed_size_binary(dtype):
        return T.BinaryType()
    if pa.types.is_unsigned_integer(dtype) and dtype.bit_width < 64:
        return {8: T.ShortType(), 16: T.IntegerType(), 32: T.LongType()}[dtype.bit_width]
    if pa.types.is_float16(dtype):
        return T.FloatType()
    if pa.types.is_decimal(dtype) and dtype.precision <= 38:
        return T.DecimalType(dtype.precision, dtype.scale)
    if pa.types.is_list(dtype) or pa.types.is_large_list(dtype) or _fixed_list(dtype):
        item = dtype.value_field
        return T.ArrayType(_spark_type(item.type, f"{path}[]"), containsNull=item.nullable)
    if pa.types.is_map(dtype):
        value = dtype.item_field
        return T.MapType(
            _spark_type(dtype.key_type, f"{path}.key"),
            _spark_type(value.type, f"{path}.value"),
            valueContainsNull=value.nullable,
        )
    if pa.types.is_struct(dtype):
        return T.StructType([_spark_field(f, f"{path}.{f.name}") for f in _fields(dtype)])
    raise CannotHandOver(
        f"column {path!r} is {dtype} in Ray, which Spark has no type for: return it as a "
        "type Spark has, or pass to_spark the schema to cast it to"
    )


def _tensor_storage(dtype: pa.ExtensionType, path: str) -> pa.DataType:
    """Ray's tensor columns hold a tensor a row; a 1-D one is Spark's array."""
    shape = getattr(dtype, "shape", None)
    if shape is not None and len(shape) == 1:
        return dtype.storage_type
    raise CannotHandOver(
        f"column {path!r} holds {dtype} in Ray: Spark holds one dimension a column; "
        "flatten it (or turn each row into a list) before handing it back"
    )


def _fixed_list(dtype: pa.DataType) -> bool:
    return bool(pa.types.is_fixed_size_list(dtype))


def _fields(dtype: pa.StructType) -> Iterator[pa.Field]:
    return (dtype.field(i) for i in range(dtype.num_fields))


def _cast(column: pa.ChunkedArray, field: pa.Field) -> pa.ChunkedArray:
    if isinstance(column.type, pa.ExtensionType):
        column = pa.chunked_array(
            [chunk.storage for chunk in column.chunks], type=column.type.storage_type
        )
    if column.type == field.type:
        return column
    # Spark holds microseconds: finer timestamps are cut to them, never refused.
    truncating = pa.types.is_timestamp(field.type) and pa.types.is_timestamp(column.type)
    try:
        return column.cast(field.type, safe=not truncating)
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError) as exc:
        raise CannotHandOver(
            f"column {field.name!r} came back as {column.type}, which does not cast to "
            f"{field.type}: {str(exc).splitlines()[0]}"
        ) from None
