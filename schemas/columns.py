"""Row tuples -> an Arrow record batch, one column at a time, without pandas.

pyarrow imports pandas on its first conversion of Python objects (``pa.array``, ``pa.scalar``,
``RecordBatch.from_pylist``: its array-likeness test asks pandas; pyarrow 26, ``array.pxi``
``_is_array_like``), which costs every process that writes a batch ~0.2-1.2 s of CPU (bench/RESULTS.md).
Here every column is built from its values' buffers: numbers through NumPy (``np.fromiter``), strings
through ``pyarrow.lib.StringBuilder``, booleans and validity as bitmaps, then
``Array.from_buffers``; none of these import pandas.

The conversion is strict: a column is built only when every value has exactly its column's Python
type (``int`` for integers and timestamps, ``float`` for doubles, ``str``, ``bool``; ``None`` only in
nullable columns) and integers fit the column. Anything else returns None, and
:func:`schemas.python_rows_to_arrow` converts those rows with pyarrow (which reports or coerces as the
schema layer decides), so this path never accepts what that one rejects. This whole module is part of
that reference: with the compiled codec built, ``schemas.rows_to_arrow`` converts plain rows in C
first (``streaming.codec.rows_to_batch``) and never needs pandas either.

It is also slower per row than pyarrow's own conversion of the tuples (one struct array in C++:
~0.8 against ~0.4 µs per book row, bench/RESULTS.md), so a process uses it only for its first
:data:`PANDAS_FREE_ROWS` rows, and never once pandas is loaded: short commands, tests and a collector's
first batches start without pandas, and a long replay pays the import once where it pays for itself.
"""

from __future__ import annotations

import operator
import sys
from itertools import repeat
from typing import Any

import numpy as np
import pyarrow as pa

_NONE = type(None)
_INT32_MIN, _INT32_MAX = -(2**31), 2**31 - 1

#: Rows a process converts here before pyarrow's faster conversion (and its pandas import, ~0.25 s
#: of CPU) takes over: about where the import costs what this path's extra ~0.4 µs per row does.
PANDAS_FREE_ROWS = 200_000
_budget = [PANDAS_FREE_ROWS]


def _all_of(types: set[type], base: type) -> bool:
    """True if every type is ``base`` or a subclass of it (``IntFlag`` values are ints), never ``bool``
    for a number column (``True`` is an ``int`` to Python, not to the schema)."""
    return all(t is base or (issubclass(t, base) and not issubclass(t, bool)) for t in types)


def _validity(values: list[Any], n: int) -> tuple[pa.Buffer, int]:
    """The validity bitmap of a column holding None, and its null count."""
    valid = np.fromiter(map(operator.is_not, values, repeat(None)), dtype=np.bool_, count=n)
    return pa.py_buffer(np.packbits(valid, bitorder="little")), n - int(np.count_nonzero(valid))


def _numbers(values: list[Any], n: int, dtype: type[np.generic], nulls: bool) -> np.ndarray:
    if nulls:
        zero = dtype(0)
        values = [zero if v is None else v for v in values]
    return np.fromiter(values, dtype=dtype, count=n)


def _strings(values: list[Any], n: int, nulls: bool) -> pa.Array:
    """A string column; one that repeats a few values (exchange, symbol, side) is built from its
    distinct values and an index per row (``take`` in C++), 3-4x faster than appending every string."""
    distinct = dict.fromkeys(values) if not nulls else None
    if distinct is not None and len(distinct) <= max(n >> 3, 1):
        index = {v: i for i, v in enumerate(distinct)}
        codes = np.fromiter(map(index.__getitem__, values), dtype=np.int32, count=n)
        dictionary = _append_strings(list(distinct))
        taken: pa.Array = dictionary.take(pa.Array.from_buffers(pa.int32(), n, [None, pa.py_buffer(codes)]))
        return taken
    return _append_strings(values)


def _append_strings(values: list[Any]) -> pa.Array:
    builder = pa.lib.StringBuilder()
    builder.append_values(values)
    out: pa.Array = builder.finish()
    return out


def build_column(values: list[Any], typ: pa.DataType, nullable: bool) -> pa.Array | None:
    """One column from its Python values, or None when a value is not exactly of the column's type."""
    n = len(values)
    types = set(map(type, values))
    nulls = _NONE in types
    if nulls:
        if not nullable:
            return None
        types.discard(_NONE)
    try:
        if pa.types.is_string(typ):
            if not _all_of(types, str):
                return None
            return _strings(values, n, nulls)
        if pa.types.is_float64(typ):
            if not _all_of(types, float):
                return None
            data = _numbers(values, n, np.float64, nulls)
        elif pa.types.is_int64(typ) or pa.types.is_timestamp(typ):
            if not _all_of(types, int):
                return None
            data = _numbers(values, n, np.int64, nulls)  # OverflowError outside int64
        elif pa.types.is_int32(typ):
            if not _all_of(types, int):
                return None
            data = _numbers(values, n, np.int64, nulls)
            if n and (int(data.min()) < _INT32_MIN or int(data.max()) > _INT32_MAX):
                return None
            data = data.astype(np.int32)
        elif pa.types.is_boolean(typ):
            if not _all_of(types, bool):
                return None
            bits = np.packbits(_numbers(values, n, np.bool_, nulls), bitorder="little")
            validity, null_count = _validity(values, n) if nulls else (None, 0)
            return pa.Array.from_buffers(typ, n, [validity, pa.py_buffer(bits)], null_count=null_count)
        else:
            return None
        validity, null_count = _validity(values, n) if nulls else (None, 0)
    except (OverflowError, ValueError, TypeError, UnicodeError):
        return None
    return pa.Array.from_buffers(typ, n, [validity, pa.py_buffer(data)], null_count=null_count)


def build_batch(schema: pa.Schema, rows: list[tuple[Any, ...]]) -> pa.RecordBatch | None:
    """A record batch of ``schema`` from row tuples in schema order, or None (see the module docstring)."""
    width = len(schema)
    if rows and (set(map(len, rows)) != {width} or set(map(type, rows)) != {tuple}):
        return None
    arrays = []
    for i, f in enumerate(schema):
        column = build_column(list(map(operator.itemgetter(i), rows)), f.type, f.nullable)
        if column is None:
            return None
        arrays.append(column)
    return pa.RecordBatch.from_arrays(arrays, schema=schema)


def build_batch_pandas_free(schema: pa.Schema, rows: list[tuple[Any, ...]]) -> pa.RecordBatch | None:
    """:func:`build_batch` while pandas is not loaded and the process's budget of rows lasts, else None."""
    if "pandas" in sys.modules or len(rows) > _budget[0]:
        return None
    batch = build_batch(schema, rows)
    if batch is not None:
        _budget[0] -= len(rows)
    return batch
