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
import re
from dataclasses import dataclass, field
from typing import Any

from .catalog import PARTITION_TYPES, Catalog
from .lake import check_exchange_id, date_of_ns

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
        f"read_parquet('{glob}', hive_partitioning = true, hive_types = {{{types}}}, file_row_number = true)"
    )


def _has_files(catalog: Catalog, dataset: str, exchange: str) -> bool:
    rows = catalog.query(
        "SELECT count(*) AS n FROM glob($1)",
        [f"{catalog.location.url.rstrip('/')}/{dataset}/exchange={exchange}/*/*.parquet"],
    )
    n: int = rows.column("n")[0].as_py()
    return n > 0


def book_at(catalog: Catalog, exchange: str, symbol: str, at_ns: int, depth: int | None = None) -> BookAt:
    """The book of ``symbol`` on ``exchange`` at ``at_ns`` (see the module docstring)."""
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
    sides = rows.column("side").to_pylist()
    prices = rows.column("price").to_pylist()
    sizes = rows.column("size").to_pylist()
    total = sides.index(None) if None in sides else None
    if total is not None:
        result.rows_applied = int(rows.column("n")[total].as_py())
        result.last_update_ns = rows.column("last_ts")[total].as_py()
        result.last_seq = rows.column("last_seq")[total].as_py()
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
    return result


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
    return f"book not synced: {ev['kind']} at ts_recv {ev['ts']} (after the snapshot, before the instant)"
