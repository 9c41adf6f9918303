"""The record contract shared by every part of ticktape.

The Avro schemas (``*.avsc`` beside this file) are the source of truth. This module loads them, maps
them to Arrow schemas for the Parquet lake (timestamps become ``timestamp[ns, tz=UTC]``), and defines
the in-memory row layout that collectors produce: one plain tuple per record, fields in schema order.
Tuples keep the hot path cheap; :func:`rows_to_arrow` turns a list of them into a column batch (in C
when the compiled codec is built, ``streaming/_avronative.c``; :func:`python_rows_to_arrow` is the
reference).

Every schema ends with :data:`REPLICA_FIELD` (``replica``, nullable string, default null: issue 17),
the collector replica that produced a record. Collectors build their rows without it (the *base*
layout, :func:`base_width` fields); a replica's publisher appends its name (``collect --replica``).
:func:`rows_to_arrow` accepts rows of either width (a base row gets a null replica), and
:func:`conform` gives a table read from a lake file or a log entry written before the field existed
the current schema (a null ``replica`` column).
"""

from __future__ import annotations

import enum
import json
import operator
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import Any

import pyarrow as pa

from .columns import build_batch_pandas_free

SCHEMA_DIR = Path(__file__).resolve().parent

#: Derivatives and reference data (issue 15): instruments from the venues' REST metadata, and the
#: funding, mark/index, open-interest and liquidation streams of derivative venues.
DERIVATIVE_DATASETS: tuple[str, ...] = (
    "instruments",
    "funding",
    "mark_price",
    "open_interest",
    "liquidations",
)
#: Datasets a collector process produces and transports carry (in this order everywhere: the local
#: log stores a dataset's index here, so new datasets are only ever appended): the market data, feed
#: events, the quality layer's per-second rows, derivatives and reference data, then the raw archive
#: (compressed batches of received frames, issue 17; ``collectors/raw.py``).
RECORD_DATASETS: tuple[str, ...] = (
    "trades",
    "book",
    "bbo",
    "feed_events",
    "quality",
    *DERIVATIVE_DATASETS,
    "raw",
)
DATASETS: tuple[str, ...] = RECORD_DATASETS

#: The channel each market or derivatives dataset is collected on (feed events and quality rows name
#: channels, collectors subscribe channels, the lake stores datasets).
DATASET_CHANNELS: dict[str, str] = {
    "trades": "trades",
    "book": "book",
    "bbo": "bbo",
    "funding": "funding",
    "mark_price": "mark",
    "open_interest": "open_interest",
    "liquidations": "liquidations",
}

#: The last field of every schema: the collector replica that produced a record (null: none).
REPLICA_FIELD = "replica"

#: Fields whose Avro type is a long holding integer nanoseconds since the epoch.
TIMESTAMP_FIELDS = frozenset(
    {"ts_exchange", "ts_recv", "window_start", "window_end", "expiry", "next_funding_time"}
)


class Flags(enum.IntFlag):
    """Per-record quality flags (the ``flags`` column)."""

    NONE = 0
    OUTDATED = 1  # latency above the outdated cutoff
    MAYBE_BAD_BOOK = 2  # between a detected gap and the next resync
    DUPLICATE = 4
    NEG_LATENCY = 8  # ts_recv earlier than ts_exchange
    SNAPSHOT = 16  # from a snapshot sent by the exchange (book levels, trades replayed on subscribe)
    BAD_TS_RECV = 32  # the host clock was not trustworthy
    BAD_TS_EXCHANGE = 64  # exchange time more than max_ts_skew_s (a day) away from ts_recv: kept as sent


@cache
def avro_schema(dataset: str) -> dict[str, Any]:
    """The parsed ``.avsc`` JSON of one dataset."""
    if dataset not in DATASETS:
        raise KeyError(f"unknown dataset {dataset!r}; known: {', '.join(DATASETS)}")
    schema: dict[str, Any] = json.loads((SCHEMA_DIR / f"{dataset}.avsc").read_text())
    return schema


@cache
def field_names(dataset: str) -> tuple[str, ...]:
    """Field names of a dataset in schema order: the layout of its row tuples."""
    return tuple(f["name"] for f in avro_schema(dataset)["fields"])


def _arrow_type(name: str, avro_type: Any) -> tuple[pa.DataType, bool]:
    nullable = False
    if isinstance(avro_type, list):
        non_null = [t for t in avro_type if t != "null"]
        nullable = len(non_null) != len(avro_type)
        if len(non_null) != 1:
            raise ValueError(f"field {name}: only [null, T] unions are supported")
        avro_type = non_null[0]
    if name in TIMESTAMP_FIELDS:
        return pa.timestamp("ns", tz="UTC"), nullable
    mapping = {
        "string": pa.string(),
        "double": pa.float64(),
        "long": pa.int64(),
        "int": pa.int32(),
        "boolean": pa.bool_(),
        "bytes": pa.binary(),
    }
    if avro_type not in mapping:
        raise ValueError(f"field {name}: unsupported Avro type {avro_type!r}")
    return mapping[avro_type], nullable


@cache
def arrow_schema(dataset: str) -> pa.Schema:
    """The Arrow schema of a dataset, as written to Parquet."""
    fields = []
    for f in avro_schema(dataset)["fields"]:
        typ, nullable = _arrow_type(f["name"], f["type"])
        fields.append(pa.field(f["name"], typ, nullable=nullable))
    return pa.schema(fields)


@cache
def base_width(dataset: str) -> int:
    """Fields of the rows collectors build: every field but the trailing :data:`REPLICA_FIELD`."""
    names = field_names(dataset)
    return len(names) - 1 if names and names[-1] == REPLICA_FIELD else len(names)


@cache
def base_arrow_schema(dataset: str) -> pa.Schema:
    """The Arrow schema without :data:`REPLICA_FIELD` (lake files written before it existed)."""
    schema = arrow_schema(dataset)
    return pa.schema(list(schema)[: base_width(dataset)])


def conform(dataset: str, table: pa.Table | pa.RecordBatch) -> pa.Table:
    """``table`` with exactly the dataset's schema: a missing ``replica`` column (files and log entries
    written before it existed) becomes nulls; columns are selected and cast by name."""
    schema = arrow_schema(dataset)
    if isinstance(table, pa.RecordBatch):
        table = pa.Table.from_batches([table])
    if table.schema.equals(schema):
        return table
    if REPLICA_FIELD in schema.names and REPLICA_FIELD not in table.column_names:
        table = table.append_column(
            pa.field(REPLICA_FIELD, pa.string()), pa.nulls(table.num_rows, pa.string())
        )
    return table.select(schema.names).cast(schema)


@cache
def _row_struct(dataset: str, width: int | None = None) -> pa.StructType:
    return pa.struct(list(arrow_schema(dataset))[:width])


def _with_null_replica(dataset: str, batch: pa.RecordBatch) -> pa.RecordBatch:
    """A batch of base rows completed with a null ``replica`` column."""
    schema = arrow_schema(dataset)
    if len(batch.schema) == len(schema):
        return batch
    columns = [*batch.columns, pa.nulls(batch.num_rows, pa.string())]
    return pa.RecordBatch.from_arrays(columns, schema=schema)


def rows_to_arrow(dataset: str, rows: list[tuple[Any, ...]]) -> pa.RecordBatch:
    """Builds a record batch from row tuples in schema order (base rows: a null ``replica``).

    Rows of the base width (what collectors build) and full rows (a replica's) may be mixed: the base
    rows are then padded with None (the replica's publisher stamps whole buffers, so a mix is rare).

    The compiled codec converts the rows in one pass when every value is plainly of its column's type
    (``streaming.codec.rows_to_batch``); anything else, and ``TICKTAPE_PURE_PYTHON=1``, takes
    :func:`python_rows_to_arrow`, the reference, which converts, coerces or raises as it always did.
    """
    if not _COMPILED:
        from streaming.codec import rows_to_batch  # here: streaming.codec imports this module

        _COMPILED.append(rows_to_batch)
    batch = _COMPILED[0](dataset, rows)
    if batch is not None:
        return batch
    if type(rows) is not list:  # rows held as columns (collectors.base.new_record_buffer)
        rows = list(rows)
    return python_rows_to_arrow(dataset, rows)


#: ``streaming.codec.rows_to_batch``, once loaded.
_COMPILED: list[Callable[[str, list[tuple[Any, ...]]], pa.RecordBatch | None]] = []


def python_rows_to_arrow(dataset: str, rows: list[tuple[Any, ...]]) -> pa.RecordBatch:
    """:func:`rows_to_arrow` in Python and pyarrow alone (the reference of the compiled conversion)."""
    width = base_width(dataset)
    full = len(field_names(dataset))
    if width != full and rows:
        widths = set(map(len, rows))
        if widths == {width}:
            return _with_null_replica(dataset, _rows_to_arrow(dataset, rows, width))
        if widths == {width, full}:
            rows = [r if len(r) == full else (*r, None) for r in rows]
    return _rows_to_arrow(dataset, rows, full)


def _rows_to_arrow(dataset: str, rows: list[tuple[Any, ...]], width: int) -> pa.RecordBatch:
    """Builds a record batch from row tuples in schema order.

    Arrow converts the tuples as one struct array, in C++: transposing them in Python (``zip(*rows)``)
    allocated an iterator per row, and the garbage collector passes that this set off over the
    collector's many live rows made it three times slower (bench/RESULTS.md, "Hot path").
    A row of the wrong length raises ``pyarrow.ArrowInvalid`` (a ``ValueError``).
    """
    schema = arrow_schema(dataset) if width == len(field_names(dataset)) else base_arrow_schema(dataset)
    batch = build_batch_pandas_free(schema, rows)  # without importing pandas (schemas/columns.py)
    if batch is not None:
        return batch
    if not rows:
        return pa.RecordBatch.from_pylist([], schema=arrow_schema(dataset))
    try:
        return pa.RecordBatch.from_struct_array(pa.array(rows, type=_row_struct(dataset, width)))
    except pa.ArrowTypeError:
        # Rows given as lists (Arrow reads a list as key/value pairs) or a value of the wrong type:
        # the column path below accepts the former and reports the latter naming the column's type.
        pass
    columns = list(zip(*rows, strict=True))
    arrays = [pa.array(col, type=f.type) for col, f in zip(columns, schema, strict=True)]
    return pa.RecordBatch.from_arrays(arrays, schema=schema)


def arrow_to_rows(batch: pa.RecordBatch | pa.Table) -> list[tuple[Any, ...]]:
    """Inverse of :func:`rows_to_arrow`: timestamps come back as integer nanoseconds.

    A trailing ``replica`` column that holds only nulls is left out: rows of a single collector come
    back in the layout collectors build them (base rows), a replica's rows with their replica.
    """
    fields = list(batch.schema)
    if fields and fields[-1].name == REPLICA_FIELD:
        replica = batch.column(len(fields) - 1)
        if replica.null_count == len(replica):
            fields = fields[:-1]
    columns = []
    for i, f in enumerate(fields):
        col = batch.column(i)
        if pa.types.is_timestamp(f.type):
            col = col.cast(pa.int64())
        columns.append(col.to_pylist())
    return list(zip(*columns, strict=True))


@dataclass(slots=True)
class RecordBuffer:
    """Rows produced by a collector, per dataset (one list per name in :data:`RECORD_DATASETS`), in
    arrival order.

    Normalisers append tuples through the row builders (``collectors.base.Normaliser.emit_*``);
    publishers drain them.
    """

    trades: list[tuple[Any, ...]] = field(default_factory=list)
    book: list[tuple[Any, ...]] = field(default_factory=list)
    bbo: list[tuple[Any, ...]] = field(default_factory=list)
    feed_events: list[tuple[Any, ...]] = field(default_factory=list)
    quality: list[tuple[Any, ...]] = field(default_factory=list)
    instruments: list[tuple[Any, ...]] = field(default_factory=list)
    funding: list[tuple[Any, ...]] = field(default_factory=list)
    mark_price: list[tuple[Any, ...]] = field(default_factory=list)
    open_interest: list[tuple[Any, ...]] = field(default_factory=list)
    liquidations: list[tuple[Any, ...]] = field(default_factory=list)
    raw: list[tuple[Any, ...]] = field(default_factory=list)

    def rows(self, dataset: str) -> list[tuple[Any, ...]]:
        """The row list of one dataset."""
        rows: list[tuple[Any, ...]] = getattr(self, dataset)
        return rows

    def __len__(self) -> int:
        # the row lists read in one C call (a collector counts every batch it emits)
        return sum(map(len, _ROW_LISTS(self)))

    def __bool__(self) -> bool:
        """True when any dataset holds a row (stops at the first)."""
        return any(_ROW_LISTS(self))

    def extend(self, other: RecordBuffer) -> None:
        """Appends every row of ``other``."""
        for ds in RECORD_DATASETS:
            theirs = getattr(other, ds)
            if theirs:
                getattr(self, ds).extend(theirs)

    def clear(self) -> None:
        """Empties every dataset."""
        for ds in RECORD_DATASETS:
            getattr(self, ds).clear()

    def take(self) -> RecordBuffer:
        """Moves all rows into a new buffer and leaves this one empty (a dataset held as columns,
        ``collectors.base.new_record_buffer``, gets an empty store of the same kind)."""
        taken = RecordBuffer(*(getattr(self, ds) for ds in RECORD_DATASETS))
        for ds in RECORD_DATASETS:
            rows = getattr(taken, ds)
            setattr(self, ds, [] if type(rows) is list else rows.empty())
        return taken


#: the row lists of a buffer, every dataset in :data:`RECORD_DATASETS` order
_ROW_LISTS = operator.attrgetter(*RECORD_DATASETS)
