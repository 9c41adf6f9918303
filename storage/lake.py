"""The lake's layout and its Parquet writing (DESIGN.md, "Lake"), shared by the sink, replay and tools.

Layout: ``<lake>/<dataset>/exchange=<id>/date=<YYYY-MM-DD of ts_recv, UTC>/<file>.parquet``, zstd,
rows sorted by (symbol, ts_recv) so that Parquet statistics prune symbols. Files are written under a
hidden temporary name (``.<name>.tmp``, which no ``*.parquet`` glob matches), fsynced, renamed into
place, and the directory is fsynced: a reader sees a whole file or none.

The ``exchange`` column is also the hive partition key. DuckDB (checked with 2.0) reports the
*partition* value for a column that is both in the path and in the file, so the two must agree: rows
are only ever written under the partition of their own exchange.

Sink files are named ``<stream>-<first:020d>-<last:020d>.parquet`` (:func:`sink_file_name`): the
transport positions they cover. Other writers (compaction) use names that do not parse as sink names.
"""

from __future__ import annotations

import datetime as dt
import itertools
import json
import os
import re
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from streaming.codec import lake_order as compiled_lake_order

#: Exchange ids are lake path elements: lower-case letters, digits and '-', nothing that escapes a folder.
EXCHANGE_ID_RE = re.compile(r"^[a-z0-9][a-z0-9-]{0,31}$")
#: Stream ids are file-name prefixes.
STREAM_ID_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,199}$")
SINK_FILE_RE = re.compile(r"^(?P<stream>[A-Za-z0-9._-]+?)-(?P<first>\d{20,})-(?P<last>\d{20,})\.parquet$")
TEMP_SUFFIX = ".tmp"
#: Where ticktape keeps its own state inside a lake (commit markers, rejected rows).
STATE_DIR = "_ticktape"
NS_PER_DAY = 86_400 * 1_000_000_000
_EPOCH = dt.date(1970, 1, 1)
SORT_KEYS = [("symbol", "ascending"), ("ts_recv", "ascending")]
#: The raw archive has no symbol: its batches are ordered by connection stream and batch number.
RAW_SORT_KEYS = [("stream", "ascending"), ("seq", "ascending")]
PARQUET_COMPRESSION = "zstd"
#: zstd level of the files a sink or a replay writes (one per unit, dataset and partition): 4 costs
#: their writer ~17 % less CPU than 6 (504k Binance frames: 0.56 -> 0.46 s) for files ~1.5-2.3 %
#: larger (the binance sample's lake 10.3x -> 10.1x smaller than its raw frames), and compaction
#: rewrites a closed day at :data:`COMPACT_COMPRESSION_LEVEL` anyway: its files come out the same size
#: either way (bench/RESULTS.md, "Storage").
PARQUET_COMPRESSION_LEVEL = 4
#: zstd level of compacted files (``ticktape compact``), written once per closed day and kept: 6 makes
#: them ~20 % smaller than the default (1) for ~2x the compression time; 9 saves ~0.2 % more.
COMPACT_COMPRESSION_LEVEL = 6


def is_valid_exchange_id(exchange: Any) -> bool:
    """True if ``exchange`` can name a lake partition (``exchange=<id>``)."""
    return isinstance(exchange, str) and EXCHANGE_ID_RE.match(exchange) is not None


def check_exchange_id(exchange: str) -> str:
    """Returns ``exchange`` if it is a valid exchange id, else raises ``ValueError``."""
    if not is_valid_exchange_id(exchange):
        raise ValueError(f"invalid exchange id {exchange!r} (expected {EXCHANGE_ID_RE.pattern})")
    return exchange


def check_stream_id(stream: str) -> str:
    """Returns ``stream`` if it is safe inside a file name, else raises ``ValueError``."""
    if not STREAM_ID_RE.match(stream):
        raise ValueError(f"invalid stream id {stream!r} (expected {STREAM_ID_RE.pattern})")
    return stream


def date_of_day(day: int) -> str:
    """``YYYY-MM-DD`` of a day number since the epoch (UTC)."""
    return (_EPOCH + dt.timedelta(days=int(day))).isoformat()


def iso_ns(ts_ns: int) -> str:
    """Integer ns since the epoch -> ISO 8601 UTC with nanoseconds, ``YYYY-MM-DDTHH:MM:SS.nnnnnnnnnZ``."""
    seconds, frac = divmod(int(ts_ns), 1_000_000_000)
    stamp = dt.datetime(1970, 1, 1, tzinfo=dt.UTC) + dt.timedelta(seconds=seconds)
    return f"{stamp:%Y-%m-%dT%H:%M:%S}.{frac:09d}Z"


def date_of_ns(ts_ns: int) -> str:
    """``YYYY-MM-DD`` (UTC) of a timestamp in ns since the epoch."""
    return date_of_day(ts_ns // NS_PER_DAY)


def partition_dir(lake: str | Path, dataset: str, exchange: str, date: str) -> Path:
    """``<lake>/<dataset>/exchange=<id>/date=<date>``."""
    check_exchange_id(exchange)
    dt.date.fromisoformat(date)  # raises on anything but a date: nothing else becomes a path
    return Path(lake) / dataset / f"exchange={exchange}" / f"date={date}"


def sink_file_name(stream: str, first: int, last: int) -> str:
    """``<stream>-<first:020d>-<last:020d>.parquet``."""
    return f"{check_stream_id(stream)}-{first:020d}-{last:020d}.parquet"


def parse_sink_file_name(name: str) -> tuple[str, int, int] | None:
    """``(stream, first, last)`` of a sink file name; None for other names (compacted files)."""
    m = SINK_FILE_RE.match(name)
    if m is None:
        return None
    return m["stream"], int(m["first"]), int(m["last"])


def sink_file_pattern(stream: str) -> re.Pattern[str]:
    """Matches exactly the file names of one stream (groups ``first`` and ``last``)."""
    return re.compile(rf"^{re.escape(stream)}-(?P<first>\d{{20,}})-(?P<last>\d{{20,}})\.parquet$")


def temp_path(final: Path) -> Path:
    """The temporary name a file is written under before it is renamed to ``final``."""
    return final.with_name(f".{final.name}{TEMP_SUFFIX}")


def fsync_dir(path: str | Path) -> None:
    """fsyncs a directory (makes renames and new entries in it durable)."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def fsync_file(path: str | Path) -> None:
    """fsyncs a file's content."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def ensure_dir(path: Path, durable: bool = True) -> None:
    """Creates ``path`` and its missing parents; with ``durable``, fsyncs each parent that gained an entry."""
    missing = []
    p = path
    while not p.exists():
        missing.append(p)
        if p.parent == p:
            break
        p = p.parent
    for d in reversed(missing):
        d.mkdir(exist_ok=True)
        if durable:
            fsync_dir(d.parent)


def sort_keys(names: Sequence[str]) -> list[tuple[str, str]]:
    """How lake files of a dataset with these columns are sorted: (symbol, ts_recv), or (stream, seq)
    for the raw archive."""
    return SORT_KEYS if "symbol" in names or "stream" not in names else RAW_SORT_KEYS


def is_sorted_for_lake(table: pa.Table) -> bool:
    """True if the rows are already in lake order: (symbol, ts_recv) never decreasing, no nulls in either.

    Compared pairwise in Arrow (no sort, no copy of the columns): a collector's or a replay's unit of
    one symbol arrives in receive order, and sorting it anyway cost more than writing it. The raw
    archive (sorted by stream and seq) is not judged here: False.
    """
    n = table.num_rows
    if n < 2:
        return True
    if "symbol" not in table.column_names:
        return False
    sym, ts = table.column("symbol"), table.column("ts_recv")
    if sym.null_count or ts.null_count:
        return False
    ts_up = pc.greater_equal(ts.slice(1), ts.slice(0, n - 1))
    bounds = pc.min_max(sym)
    if bounds["min"] == bounds["max"]:
        return bool(pc.all(ts_up).as_py())
    before, after = sym.slice(0, n - 1), sym.slice(1)
    ordered = pc.or_(pc.less(before, after), pc.and_(pc.equal(before, after), ts_up))
    return bool(pc.all(ordered).as_py())


def sort_for_lake(table: pa.Table) -> pa.Table:
    """Rows sorted by (symbol, ts_recv) (raw: (stream, seq)); the sort is stable, so equal keys keep
    their arrival order (rows already in that order are returned as they are).

    The compiled codec orders by (symbol, ts_recv) in one pass over the two columns, without the GIL
    (``streaming.codec.lake_order``); the Arrow and NumPy path below is the reference (and sorts the
    raw archive, nulls, and everything under ``TICKTAPE_PURE_PYTHON=1``).
    """
    if table.num_rows < 2:
        return table
    taken, compiled = compiled_lake_order(table)
    if taken:
        return table if compiled is None else table.take(compiled)
    return python_sort_for_lake(table)


def python_sort_for_lake(table: pa.Table) -> pa.Table:
    """:func:`sort_for_lake` in Arrow and NumPy alone (the reference of the compiled order)."""
    if table.num_rows < 2 or is_sorted_for_lake(table):
        return table
    order = symbol_order(table)
    if order is not None:
        return table.take(order)
    return table.take(pc.sort_indices(table, sort_keys=sort_keys(table.column_names)))


def symbol_order(table: pa.Table) -> pa.Array | None:
    """The lake order of rows whose every symbol is in ``ts_recv`` order already, or None.

    A transport stream interleaves the symbols of its partition, each in receive order: then the
    stable order by symbol alone is the (symbol, ts_recv) order, and ordering a few distinct symbols'
    integer codes costs about half of Arrow's two-key sort of the strings (bench/RESULTS.md, "Compiled
    Avro codec"). None when a symbol's rows are not in order (or a key is null): sort them.
    """
    if "symbol" not in table.column_names or table.num_rows < 2:
        return None
    sym, ts = table.column("symbol"), table.column("ts_recv")
    if sym.null_count or ts.null_count:
        return None
    encoded = pc.dictionary_encode(sym.combine_chunks())
    names = encoded.dictionary
    if len(names) > 32767:
        return None
    # Codes ranked in the order Arrow sorts the strings, so the result is sort_indices' order.
    rank = np.empty(len(names), dtype=np.int16)
    rank[_to_numpy(pc.sort_indices(names))] = np.arange(len(names), dtype=np.int16)
    codes = rank[_to_numpy(encoded.indices)]
    order = np.argsort(codes, kind="stable")  # a radix sort of 16-bit codes
    by_symbol, ns = codes[order], _to_numpy(pc.cast(ts, pa.int64()).combine_chunks())[order]
    if not np.all((by_symbol[1:] != by_symbol[:-1]) | (ns[1:] >= ns[:-1])):
        return None
    return _int64_array(order)


def _int64_array(values: np.ndarray) -> pa.Array:
    """A NumPy int64 vector as an Arrow array, sharing its memory.

    ``pa.array`` would do, but its first call makes pyarrow import pandas: seconds of start-up in a
    sink that is otherwise ready in a fraction of one.
    """
    values = np.ascontiguousarray(values, dtype=np.int64)
    return pa.Array.from_buffers(pa.int64(), len(values), [None, pa.py_buffer(values)])


def _to_numpy(arr: pa.Array) -> np.ndarray:
    """A null-free Arrow integer array as a NumPy view (``to_numpy`` too would import pandas)."""
    if arr.null_count:
        raise ValueError("unexpected nulls")
    dtype = np.dtype(arr.type.to_pandas_dtype())
    return np.frombuffer(arr.buffers()[1], dtype=dtype, count=len(arr), offset=arr.offset * dtype.itemsize)


def split_partitions(table: pa.Table) -> tuple[list[tuple[str, str, pa.Table]], pa.Table | None]:
    """Splits rows by (exchange, UTC date of ts_recv): ``([(exchange, date, rows)], rejected)``.

    Rows whose exchange id cannot be a partition name (or that lack ``ts_recv``) come back as
    ``rejected`` (None when there are none) instead of failing the whole batch. Within a partition
    rows keep their order.
    """
    if table.num_rows == 0:
        return [], None
    # The id check runs on the distinct exchanges (a handful), not on every row: a regex per row was
    # most of this function's time (~30 ms per 300k rows).
    distinct = pc.unique(table.column("exchange"))
    matches = pc.match_substring_regex(distinct, EXCHANGE_ID_RE.pattern)
    # and_kleene(null, false) is false: a null exchange is rejected, never silently dropped by filter().
    valid_ids = distinct.filter(pc.and_kleene(matches, pc.is_valid(matches)))
    rejected = None
    if len(valid_ids) < len(distinct) or table.column("ts_recv").null_count:
        ok = pc.and_(
            pc.is_in(table.column("exchange"), value_set=valid_ids), pc.is_valid(table.column("ts_recv"))
        )
        rejected = table.filter(pc.invert(ok))
        table = table.filter(ok)
        if table.num_rows == 0:
            return [], rejected
    ns = _to_numpy(pc.cast(table.column("ts_recv"), pa.int64()).combine_chunks())
    days = np.floor_divide(ns, NS_PER_DAY)
    exchanges = valid_ids.to_pylist()
    lo, hi = int(days.min()), int(days.max())
    if len(exchanges) == 1 and lo == hi:
        return [(exchanges[0], date_of_day(lo), table)], rejected
    encoded = pc.dictionary_encode(table.column("exchange")).combine_chunks()
    names = encoded.dictionary.to_pylist()
    codes = _to_numpy(encoded.indices).astype(np.int64)
    key = codes * (hi - lo + 1) + (days - lo)
    order = np.argsort(key, kind="stable")
    key = key[order]
    table = table.take(_int64_array(order))
    bounds = [0, *(np.flatnonzero(key[1:] != key[:-1]) + 1).tolist(), table.num_rows]
    out = []
    for start, stop in itertools.pairwise(bounds):
        code, day = divmod(int(key[start]), hi - lo + 1)
        out.append((names[code], date_of_day(lo + day), table.slice(start, stop - start)))
    return out, rejected


def parquet_encodings(schema: pa.Schema) -> dict[str, Any]:
    """Per-column Parquet encodings of lake files (keyword arguments of ``pq.write_table``/``ParquetWriter``).

    Strings (exchange, symbol, side, ids, kinds) repeat: dictionary. Prices and sizes repeat too (a
    book's levels sit on a few hundred ticks): dictionary, which Parquet abandons for plain by itself
    when a column's dictionary grows past its page limit (binance-futures sample: 14 % smaller files,
    binance spot unchanged). Timestamps and int64 sequence numbers grow slowly within a file sorted
    by (symbol, ts_recv): delta encoding stores the small differences. With zstd level 6: ~35 %
    smaller files than pyarrow's defaults (bench/RESULTS.md, "Storage").
    """
    dictionary = [f.name for f in schema if pa.types.is_string(f.type) or pa.types.is_floating(f.type)]
    delta = {
        f.name: "DELTA_BINARY_PACKED"
        for f in schema
        if pa.types.is_int64(f.type) or pa.types.is_timestamp(f.type)
    }
    return {"use_dictionary": dictionary, "column_encoding": delta or None}


def parquet_compression(schema: pa.Schema, compression: str, level: int | None) -> dict[str, Any]:
    """``compression``/``compression_level`` keyword arguments of ``pq.write_table``/``ParquetWriter``.

    Binary columns (the raw archive's zstd blobs) are stored uncompressed: compressing them again
    gains nothing and cost the sink ~16 % more CPU over raw rows (bench/RESULTS.md, "Raw archive").
    """
    blobs = {f.name for f in schema if pa.types.is_binary(f.type)}
    if not blobs:
        return {"compression": compression, "compression_level": level}
    others = [f.name for f in schema if f.name not in blobs]
    return {
        "compression": {**{n: compression for n in others}, **{n: "none" for n in blobs}},
        "compression_level": {n: level for n in others} if level is not None else None,
    }


def _write_parquet(
    table: pa.Table, where: Path | pa.NativeFile, compression: str, row_group_size: int | None
) -> None:
    level = PARQUET_COMPRESSION_LEVEL if compression == "zstd" else None
    pq.write_table(
        table,
        where,
        row_group_size=row_group_size,
        **parquet_compression(table.schema, compression, level),
        **parquet_encodings(table.schema),
    )


def encode_parquet(
    table: pa.Table, *, compression: str = PARQUET_COMPRESSION, row_group_size: int | None = None
) -> pa.Buffer:
    """The bytes of the lake file :func:`write_parquet_atomic` would write for ``table``, in memory
    (:func:`write_bytes_atomic` writes them): encoding, the costly part, can then run apart from the
    commit, on another thread."""
    sink = pa.BufferOutputStream()
    _write_parquet(table, sink, compression, row_group_size)
    return sink.getvalue()


def _write_atomic(path: Path, write: Callable[[Path], object], durable: bool, sync_dir: bool) -> int:
    """Writes a file through ``write(temporary path)``, fsyncs it, renames it to ``path`` and (with
    ``sync_dir``) fsyncs its directory; returns its size. An OSError names the file (Arrow's message
    for a full disk, "Error writing bytes to file", names none) and leaves no temporary behind."""
    ensure_dir(path.parent, durable)
    tmp = temp_path(path)
    try:
        write(tmp)
        if durable:
            fsync_file(tmp)
    except OSError as exc:
        tmp.unlink(missing_ok=True)
        raise OSError(exc.errno, f"cannot write {path}: {exc.strerror or exc}", str(tmp)) from exc
    os.replace(tmp, path)
    if durable and sync_dir:
        fsync_dir(path.parent)
    return path.stat().st_size


def write_parquet_atomic(
    table: pa.Table,
    path: Path,
    *,
    compression: str = PARQUET_COMPRESSION,
    row_group_size: int | None = None,
    durable: bool = True,
    sync_dir: bool = True,
) -> int:
    """Writes ``table`` to ``path`` via a temporary name, fsync and rename; returns the file size.

    With ``sync_dir`` False the caller fsyncs the directory itself (once for many files).
    """
    return _write_atomic(
        path, lambda tmp: _write_parquet(table, tmp, compression, row_group_size), durable, sync_dir
    )


def write_bytes_atomic(
    data: bytes | pa.Buffer, path: Path, *, durable: bool = True, sync_dir: bool = True
) -> int:
    """Writes ``data`` (a file's bytes: :func:`encode_parquet`'s) to ``path`` as
    :func:`write_parquet_atomic` writes a table; returns the file size."""
    return _write_atomic(path, lambda tmp: tmp.write_bytes(memoryview(data)), durable, sync_dir)


def write_json_atomic(path: Path, obj: Any, durable: bool = True) -> None:
    """Writes JSON to ``path`` via a temporary name, fsync and rename (and an fsync of its directory)."""
    write_bytes_atomic(json.dumps(obj, indent=1, sort_keys=True).encode(), path, durable=durable)


def dataset_files(lake: str | Path, dataset: str) -> list[Path]:
    """Every visible Parquet file of a dataset (temporary files excluded), sorted."""
    root = Path(lake) / dataset
    if not root.is_dir():
        return []
    return sorted(p for p in root.glob("exchange=*/date=*/*.parquet") if not p.name.startswith("."))


def partition_dirs(lake: str | Path, datasets: Iterable[str]) -> list[Path]:
    """Every ``<dataset>/exchange=*/date=*`` directory of the lake for the given datasets."""
    out: list[Path] = []
    for dataset in datasets:
        root = Path(lake) / dataset
        if root.is_dir():
            out.extend(sorted(p for p in root.glob("exchange=*/date=*") if p.is_dir()))
    return out
