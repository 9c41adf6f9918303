"""The L2 book of one symbol at an instant, rebuilt from the lake's ``book`` dataset.

The book at ``T`` is what the collector's :class:`collectors.book.SyncedBook` held after the last frame
received at or before ``T``:

1. the last snapshot with ``ts_recv <= T`` (its rows share one ``ts_recv`` and start epoch ``E``);
2. then every delta row of epoch ``E`` received up to ``T``, in arrival order. That includes the deltas
   a Binance-style sync buffered *before* the snapshot arrived and applied right after it: they carry
   epoch ``E``, an earlier ``ts_recv`` and a ``seq`` above the snapshot's;
3. unless a ``gap``/``checksum_mismatch``/``disconnect`` feed event after the snapshot cleared the book:
   then the book was not synced at ``T`` and is reported empty, with the reason.

All the filtering and the "last value per level" reduction run in DuckDB (partition pruning on
``exchange``/``date``, Parquet statistics on ``symbol`` and ``ts_recv``); Python only sorts the
surviving levels.
"""

from __future__ import annotations

import datetime as dt
import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from .catalog import PARTITION_TYPES, Catalog, open_catalog
from .compact import data_files
from .lake import (
    NS_PER_DAY,
    STATE_DIR,
    check_exchange_id,
    date_of_ns,
    iso_ns,
    partition_dir,
    write_parquet_atomic,
)

#: How long before its snapshot a buffered delta may have been received (the REST snapshot's latency).
MAX_BUFFER_NS = 10 * 60 * 1_000_000_000
#: Feed events after which the book is cleared until the next snapshot.
BREAK_KINDS = ("gap", "checksum_mismatch", "disconnect")

_ISO_RE = re.compile(
    r"^(?P<date>\d{4}-\d{2}-\d{2})[T ](?P<h>\d{2}):(?P<m>\d{2})(?::(?P<s>\d{2})(?:\.(?P<frac>\d{1,9}))?)?"
    r"(?P<tz>Z|[+-]\d{2}:?\d{2})?$"
)


@dataclass
class BookAt:
    """The book of one symbol at one instant."""

    exchange: str
    symbol: str
    at_ns: int
    synced: bool = False
    reason: str = ""  # why the book is not synced
    snapshot_ns: int | None = None
    epoch: int | None = None
    last_update_ns: int | None = None  # ts_recv of the last row applied
    last_seq: int | None = None
    rows_applied: int = 0
    bids: list[tuple[float, float]] = field(default_factory=list)  # best first
    asks: list[tuple[float, float]] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        """A JSON-ready dict."""
        return {
            "exchange": self.exchange,
            "symbol": self.symbol,
            "at_ns": self.at_ns,
            "synced": self.synced,
            "reason": self.reason or None,
            "snapshot_ns": self.snapshot_ns,
            "epoch": self.epoch,
            "last_update_ns": self.last_update_ns,
            "last_seq": self.last_seq,
            "rows_applied": self.rows_applied,
            "bids": [list(level) for level in self.bids],
            "asks": [list(level) for level in self.asks],
        }


@dataclass(frozen=True)
class Checkpoint:
    """A book state known to be what :func:`book_at` returns at ``at_ns`` (same snapshot and epoch)."""

    at_ns: int
    snapshot_ns: int
    epoch: int
    rows_applied: int
    last_update_ns: int | None
    last_seq: int | None
    levels: pa.Table  # side, price, size: every level with a non-zero size

    @staticmethod
    def of(book: BookAt) -> Checkpoint:
        """The checkpoint of a synced, full-depth book."""
        assert book.synced and book.snapshot_ns is not None and book.epoch is not None
        levels = [("bid", p, s) for p, s in book.bids] + [("ask", p, s) for p, s in book.asks]
        table = pa.table(
            {
                "side": pa.array([lv[0] for lv in levels], pa.string()),
                "price": pa.array([lv[1] for lv in levels], pa.float64()),
                "size": pa.array([lv[2] for lv in levels], pa.float64()),
            }
        )
        return Checkpoint(
            book.at_ns,
            book.snapshot_ns,
            book.epoch,
            book.rows_applied,
            book.last_update_ns,
            book.last_seq,
            table,
        )


#: Checkpoint spacing of the book index that compaction writes (rows scanned per query are at most
#: this much of a symbol's book rows).
CHECKPOINT_NS = 10 * 60 * 1_000_000_000
INDEX_DIR = f"{STATE_DIR}/book_index"
_INDEX_META = b"ticktape.book_index"
_INDEX_SCHEMA = pa.schema(
    [
        ("symbol", pa.string()),
        ("epoch", pa.int64()),
        ("snapshot_ns", pa.int64()),
        ("checkpoint_ns", pa.int64()),
        ("rows_applied", pa.int64()),
        ("last_update_ns", pa.int64()),
        ("last_seq", pa.int64()),
        ("side", pa.string()),  # null on the one header row of every checkpoint (an empty book has only it)
        ("price", pa.float64()),
        ("size", pa.float64()),
    ]
)


def index_path(lake: Path, exchange: str, day: dt.date) -> Path:
    """Where the book index of one exchange and day lives (outside every dataset tree)."""
    return lake / INDEX_DIR / f"exchange={check_exchange_id(exchange)}" / f"date={day.isoformat()}.parquet"


def _fingerprint(lake: Path, exchange: str, day: dt.date) -> list[list[Any]]:
    # The book files an index was built from: a changed partition (late file, new compaction) voids it.
    return [
        [p.name, p.stat().st_size] for p in data_files(partition_dir(lake, "book", exchange, day.isoformat()))
    ]


def index_is_current(lake: Path, exchange: str, day: dt.date) -> bool:
    """True when the day's book index exists and was built from the day's current book files."""
    path = index_path(lake, exchange, day)
    try:
        meta = pq.read_schema(path).metadata or {}
    except (FileNotFoundError, pa.ArrowInvalid):
        return False
    try:
        built_from = json.loads(meta.get(_INDEX_META, b"{}")).get("files")
    except ValueError:
        return False
    return bool(built_from) and built_from == _fingerprint(lake, exchange, day)


def load_checkpoint(
    catalog: Catalog, exchange: str, symbol: str, snapshot_ns: int, epoch: int, at_ns: int
) -> Checkpoint | None:
    """The latest indexed checkpoint at or before ``at_ns`` of this snapshot and epoch (local lakes)."""
    root = catalog.local_root
    if root is None:
        return None
    day = dt.date.fromisoformat(date_of_ns(at_ns))
    for d in (day, day - dt.timedelta(days=1)):
        if d < dt.date.fromisoformat(date_of_ns(snapshot_ns)) or not index_is_current(root, exchange, d):
            continue
        src = "read_parquet('" + str(index_path(root, exchange, d)).replace("'", "''") + "')"
        match = "symbol = $1 AND epoch = $2 AND snapshot_ns = $3"
        rows = catalog.query(
            f"SELECT * FROM {src} WHERE {match} AND checkpoint_ns = "
            f"(SELECT max(checkpoint_ns) FROM {src} WHERE {match} AND checkpoint_ns <= $4)",
            [symbol, epoch, snapshot_ns, at_ns],
        )
        if not rows.num_rows:
            continue
        header = rows.filter(pc.is_null(rows.column("side"))).to_pylist()[0]
        levels = rows.filter(pc.is_valid(rows.column("side"))).select(["side", "price", "size"])
        return Checkpoint(
            header["checkpoint_ns"],
            snapshot_ns,
            epoch,
            header["rows_applied"],
            header["last_update_ns"],
            header["last_seq"],
            levels,
        )
    return None


def build_book_index(lake: Path, exchange: str, day: dt.date, interval_ns: int = CHECKPOINT_NS) -> int:
    """Writes the book index of one exchange and day: every symbol's full book every ``interval_ns``.

    Each checkpoint is :func:`book_at` at that instant, computed from the previous checkpoint (or the
    previous day's index), so building scans the day about once. Returns the number of checkpoints.
    """
    files = data_files(partition_dir(lake, "book", exchange, day.isoformat()))
    if not files:
        return 0
    fingerprint = _fingerprint(lake, exchange, day)
    day_start = (day - dt.date(1970, 1, 1)).days * NS_PER_DAY
    columns: dict[str, list[Any]] = {name: [] for name in _INDEX_SCHEMA.names}
    count = 0
    with open_catalog(str(lake)) as cat:
        listed = "[" + ", ".join("'" + str(f).replace("'", "''") + "'" for f in files) + "]"
        spans = cat.query(
            f"SELECT symbol, epoch_ns(min(ts_recv)) AS lo, epoch_ns(max(ts_recv)) AS hi "
            f"FROM read_parquet({listed}, union_by_name = true) GROUP BY symbol ORDER BY symbol"
        ).to_pylist()
        for span in spans:
            symbol = span["symbol"]
            prev: Checkpoint | None = None
            at = day_start + (max(span["lo"] - day_start, 0) // interval_ns + 1) * interval_ns - 1
            while at < day_start + NS_PER_DAY:
                book = book_at(cat, exchange, symbol, at, checkpoint=prev)
                if book.synced:
                    prev = Checkpoint.of(book)
                    count += 1
                    n = prev.levels.num_rows
                    header = [symbol, prev.epoch, prev.snapshot_ns, at, prev.rows_applied]
                    header += [prev.last_update_ns, prev.last_seq]
                    for name, value in zip(_INDEX_SCHEMA.names[:7], header, strict=True):
                        columns[name] += [value] * (n + 1)
                    columns["side"] += [None, *prev.levels.column("side").to_pylist()]
                    columns["price"] += [None, *prev.levels.column("price").to_pylist()]
                    columns["size"] += [None, *prev.levels.column("size").to_pylist()]
                if at >= span["hi"]:
                    break  # the symbol's last row of the day is covered
                at += interval_ns
    table = pa.table(columns, schema=_INDEX_SCHEMA).replace_schema_metadata(
        {_INDEX_META: json.dumps({"files": fingerprint, "interval_ns": interval_ns}).encode()}
    )
    write_parquet_atomic(table, index_path(lake, exchange, day))
    return count


def parse_instant(text: str) -> int:
    """Nanoseconds since the epoch from an integer (ns) or ISO 8601 (``2024-08-08T23:55:01.123456789Z``;
    no zone means UTC). Raises ``ValueError`` with the accepted forms."""
    text = text.strip()
    if re.fullmatch(r"-?\d+", text):
        return int(text)
    m = _ISO_RE.match(text)
    if m is None:
        raise ValueError(
            f"not a timestamp: {text!r} (use ISO 8601 like 2024-08-08T23:55:01.123456789Z, or integer ns)"
        )
    day = dt.date.fromisoformat(m["date"])
    h, mi, s = int(m["h"]), int(m["m"]), int(m["s"] or 0)
    if h > 23 or mi > 59 or s > 59:
        raise ValueError(f"not a valid time of day: {text!r}")
    frac = int((m["frac"] or "").ljust(9, "0") or 0)
    offset_s = 0
    tz = m["tz"]
    if tz and tz != "Z":
        sign = -1 if tz[0] == "-" else 1
        digits = tz[1:].replace(":", "")
        offset_s = sign * (int(digits[:2]) * 3600 + int(digits[2:]) * 60)
    days = (day - dt.date(1970, 1, 1)).days
    return (days * 86_400 + h * 3600 + mi * 60 + s - offset_s) * 1_000_000_000 + frac


def _ts(param_index: int) -> str:
    # A bound integer (ns) as the lake's timestamp type, so that the filter reaches Parquet statistics.
    return f"make_timestamp_ns(${param_index}::BIGINT)::TIMESTAMPTZ_NS"


def _source(catalog: Catalog, dataset: str, exchange: str) -> str:
    glob = f"{catalog.location.url.rstrip('/')}/{dataset}/exchange={exchange}/*/*.parquet".replace("'", "''")
    types = ", ".join(f"'{k}': '{t}'" for k, t in PARTITION_TYPES.items())
    return (
        f"read_parquet('{glob}', hive_partitioning = true, hive_types = {{{types}}}, file_row_number = true,"
        " union_by_name = true)"
    )


def _has_files(catalog: Catalog, dataset: str, exchange: str) -> bool:
    rows = catalog.query(
        "SELECT count(*) AS n FROM glob($1)",
        [f"{catalog.location.url.rstrip('/')}/{dataset}/exchange={exchange}/*/*.parquet"],
    )
    n: int = rows.column("n")[0].as_py()
    return n > 0


def book_at(
    catalog: Catalog,
    exchange: str,
    symbol: str,
    at_ns: int,
    depth: int | None = None,
    checkpoint: Checkpoint | None = None,
    use_index: bool = True,
) -> BookAt:
    """The book of ``symbol`` on ``exchange`` at ``at_ns`` (see the module docstring).

    ``checkpoint`` (or, with ``use_index``, the book index of the day) shortens the scan to the rows
    after it, when it belongs to the same snapshot and epoch.
    """
    check_exchange_id(exchange)
    result = BookAt(exchange, symbol, at_ns)
    if not _has_files(catalog, "book", exchange):
        result.reason = f"no book data for exchange {exchange!r} in the lake"
        return result
    src = _source(catalog, "book", exchange)
    day_t = dt.date.fromisoformat(date_of_ns(at_ns))
    snap = None
    # The snapshot is usually on the same day or the day before: look there first, then further back.
    for lower in (day_t - dt.timedelta(days=1), None):
        date_filter = "date <= $3" + (" AND date >= $4" if lower is not None else "")
        params: list[Any] = [symbol, at_ns, day_t]
        if lower is not None:
            params.append(lower)
        rows = catalog.query(
            f"SELECT epoch_ns(ts_recv) AS ts, epoch, seq FROM {src} WHERE symbol = $1 AND is_snapshot "
            f"AND ts_recv <= {_ts(2)} AND {date_filter} ORDER BY ts_recv DESC LIMIT 1",
            params,
        )
        if rows.num_rows:
            snap = rows.to_pylist()[0]
            break
    if snap is None:
        result.reason = f"no snapshot of {symbol} on {exchange} at or before the instant"
        return result
    snap_ns, epoch, snap_seq = int(snap["ts"]), int(snap["epoch"]), snap["seq"]
    result.snapshot_ns, result.epoch = snap_ns, epoch

    broken = _break_after(catalog, exchange, symbol, snap_ns, at_ns)
    if broken is not None:
        result.reason = broken
        return result

    if checkpoint is not None and not (
        checkpoint.snapshot_ns == snap_ns and checkpoint.epoch == epoch and checkpoint.at_ns <= at_ns
    ):
        checkpoint = None
    if checkpoint is None and use_index:
        checkpoint = load_checkpoint(catalog, exchange, symbol, snap_ns, epoch, at_ns)
    if checkpoint is not None:
        return _from_checkpoint(catalog, result, src, checkpoint, depth)

    first_day = dt.date.fromisoformat(date_of_ns(snap_ns - MAX_BUFFER_NS))
    where = (
        f"symbol = $1 AND epoch = $2 AND date BETWEEN $3 AND $4 AND ts_recv <= {_ts(5)} "
        f"AND ts_recv >= {_ts(6)} AND ((is_snapshot AND ts_recv = {_ts(7)}) OR (NOT is_snapshot AND "
        f"(ts_recv >= {_ts(7)} OR ($8::BIGINT IS NOT NULL AND seq > $8::BIGINT))))"
    )
    params = [symbol, epoch, first_day, day_t, at_ns, snap_ns - MAX_BUFFER_NS, snap_ns, snap_seq]
    # One scan: the last size of every level (arrival order: the snapshot's rows first, then deltas by
    # receive time and position in their file), and in the same pass the totals (the empty grouping set).
    rows = catalog.query(
        "SELECT side, price, arg_max(size, struct_pack(d := NOT is_snapshot, t := ts_recv, "
        "r := file_row_number)) AS size, count(*) AS n, epoch_ns(max(ts_recv)) AS last_ts, "
        f"max(seq) AS last_seq FROM {src} WHERE {where} GROUP BY GROUPING SETS ((side, price), ())",
        params,
    )
    total = _fill(result, rows, depth)
    if total is not None:
        result.rows_applied = int(total["n"])
        result.last_update_ns = total["last_ts"]
        result.last_seq = total["last_seq"]
    return result


def _from_checkpoint(
    catalog: Catalog, result: BookAt, src: str, ckpt: Checkpoint, depth: int | None
) -> BookAt:
    """The book from a checkpoint plus the rows of its epoch received after it (up to the instant)."""
    name = "_ticktape_checkpoint"
    catalog.con.register(name, ckpt.levels)
    try:
        where = (
            f"symbol = $1 AND epoch = $2 AND date BETWEEN $3 AND $4 AND ts_recv <= {_ts(5)} "
            f"AND ts_recv > {_ts(6)} AND NOT is_snapshot"
        )
        params = [
            result.symbol,
            ckpt.epoch,
            dt.date.fromisoformat(date_of_ns(ckpt.at_ns)),
            dt.date.fromisoformat(date_of_ns(result.at_ns)),
            result.at_ns,
            ckpt.at_ns,
        ]
        rows = catalog.query(
            "SELECT side, price, arg_max(size, k) AS size, count(ts_recv) AS n, "
            "epoch_ns(max(ts_recv)) AS last_ts, max(seq) AS last_seq FROM ("
            "SELECT side, price, size, ts_recv, seq, struct_pack(d := true, t := ts_recv, "
            f"r := file_row_number) AS k FROM {src} WHERE {where} UNION ALL "
            "SELECT side, price, size, NULL, NULL, struct_pack(d := false, t := "
            f"{_ts(6)}, r := -1::BIGINT) FROM {name}) GROUP BY GROUPING SETS ((side, price), ())",
            params,
        )
    finally:
        catalog.con.unregister(name)
    total = _fill(result, rows, depth)
    n = int(total["n"]) if total is not None else 0
    result.rows_applied = ckpt.rows_applied + n
    result.last_update_ns = total["last_ts"] if n and total is not None else ckpt.last_update_ns
    seqs = [s for s in (ckpt.last_seq, None if total is None else total["last_seq"]) if s is not None]
    result.last_seq = max(seqs) if seqs else None
    return result


def _fill(result: BookAt, rows: pa.Table, depth: int | None) -> dict[str, Any] | None:
    """Sets the levels of a synced book from the reduction's rows; returns its totals row."""
    sides = rows.column("side").to_pylist()
    prices = rows.column("price").to_pylist()
    sizes = rows.column("size").to_pylist()
    total = rows.slice(sides.index(None), 1).to_pylist()[0] if None in sides else None
    bids: list[tuple[float, float]] = []
    asks: list[tuple[float, float]] = []
    for side, price, size in zip(sides, prices, sizes, strict=True):
        if side is not None and size and size > 0.0:
            (bids if side == "bid" else asks).append((price, size))
    bids.sort(key=lambda level: -level[0])
    asks.sort(key=lambda level: level[0])
    result.bids = bids if depth is None else bids[:depth]
    result.asks = asks if depth is None else asks[:depth]
    result.synced = True
    return total


def _break_after(catalog: Catalog, exchange: str, symbol: str, snap_ns: int, at_ns: int) -> str | None:
    """The first event after the snapshot (and up to the instant) that cleared the book, described."""
    if not _has_files(catalog, "feed_events", exchange):
        return None
    src = _source(catalog, "feed_events", exchange)
    kinds = ", ".join(f"'{k}'" for k in BREAK_KINDS)
    rows = catalog.query(
        f"SELECT epoch_ns(ts_recv) AS ts, kind, detail FROM {src} WHERE date BETWEEN $1 AND $2 "
        f"AND ts_recv > {_ts(3)} AND ts_recv <= {_ts(4)} AND kind IN ({kinds}) "
        "AND (symbol = $5 OR symbol IS NULL) ORDER BY ts_recv LIMIT 1",
        [
            dt.date.fromisoformat(date_of_ns(snap_ns)),
            dt.date.fromisoformat(date_of_ns(at_ns)),
            snap_ns,
            at_ns,
            symbol,
        ],
    )
    if not rows.num_rows:
        return None
    ev = rows.to_pylist()[0]
    return f"book not synced: {ev['kind']} at {iso_ns(ev['ts'])} (after the snapshot, before the instant)"
