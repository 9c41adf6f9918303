"""The Python API over a lake: ``lake = ticktape.open_lake("demo-lake")``.

Every read goes through the DuckDB views of :mod:`storage.catalog`, the ones ``ticktape query`` uses,
so reads stay exact while a compaction swaps a partition (the catalog's seqlock). Results are pyarrow
Tables: ``.to_pandas()`` and ``polars.from_arrow(...)`` take them as they are.

What the lake holds (:meth:`Lake.inventory`, and ``ticktape ls``) comes from Parquet footers (row
counts, row-group statistics of ``symbol`` and ``ts_recv``) read with DuckDB's ``parquet_metadata``
(https://duckdb.org/docs/data/parquet/metadata, checked 2026-12-05: one row per row group and column,
``stats_min_value``/``stats_max_value`` and whether they are exact). A row group whose exact bounds
are one symbol needs nothing more; only row groups holding several symbols have their ``symbol``
column read (dictionary-encoded and sorted, so small). No other column is read.

The dataset readers come from :data:`schemas.DATASETS`: a dataset added there gets a reader
(``lake.<dataset>(...)``) and a line in ``ticktape ls`` without a change here.

Lookups that find nothing raise :class:`LakeLookupError` naming what exists (closest first).
"""

from __future__ import annotations

import datetime as dt
import difflib
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from functools import partial
from typing import TYPE_CHECKING, Any

import pyarrow as pa

from schemas import DATASETS, Flags, arrow_schema

if TYPE_CHECKING:
    from storage.book_at import BookAt
    from storage.catalog import Catalog

__all__ = ["CLEAN_MASK", "Flags", "Inventory", "Lake", "LakeLookupError", "closest", "open_lake"]

#: Flags whose rows ``clean=True`` drops: late data, a book between a gap and its resync, duplicates.
CLEAN_MASK = int(Flags.OUTDATED | Flags.MAYBE_BAD_BOOK | Flags.DUPLICATE)
#: Columns :meth:`Lake.rounded` rounds to the tick size, and to the lot size.
PRICE_COLUMNS = frozenset({"price", "bid_price", "ask_price", "mark_price", "index_price"})
SIZE_COLUMNS = frozenset({"size", "bid_size", "ask_size"})
#: How many names an error message lists at most.
MAX_LISTED = 12
_NS = 1_000_000_000
_EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)
_PARTS_RE = re.compile(r"exchange=(?P<exchange>[^/]+)/date=(?P<date>\d{4}-\d{2}-\d{2})/")


class LakeLookupError(ValueError):
    """An exchange, symbol or day that the lake does not hold; the message names what it holds."""


def closest(given: str, known: Iterable[str], limit: int = MAX_LISTED) -> list[str]:
    """``known``, the closest to ``given`` first (difflib's ratio, case-insensitive), at most ``limit``."""
    names = sorted(set(known))
    lowered = given.lower()

    def key(name: str) -> tuple[float, str]:
        ratio = difflib.SequenceMatcher(None, lowered, name.lower()).ratio()
        # a name that extends what was typed (ETH-USDT -> ETH-USDT-PERP) beats one it extends (ETH-USD)
        bonus = 0.5 if name.lower().startswith(lowered) else 0.25 if lowered.startswith(name.lower()) else 0.0
        return (-(ratio + bonus), name)

    return sorted(names, key=key)[:limit]


def listing(names: list[str], total: int) -> str:
    """``a, b, c`` plus ``(and N more)`` when the list was cut."""
    more = total - len(names)
    return ", ".join(names) + (f" (and {more} more)" if more > 0 else "")


def to_ns(value: Any) -> int:
    """Nanoseconds since the epoch from int ns, an ISO 8601 string, a date (midnight UTC) or a datetime
    (naive means UTC)."""
    if isinstance(value, bool):
        raise TypeError(f"not a time: {value!r}")
    if isinstance(value, int):
        return value
    if isinstance(value, dt.datetime):
        aware = value if value.tzinfo else value.replace(tzinfo=dt.UTC)
        delta = aware - _EPOCH
        return (delta.days * 86_400 + delta.seconds) * _NS + delta.microseconds * 1_000
    if isinstance(value, dt.date):
        return (value - _EPOCH.date()).days * 86_400 * _NS
    if isinstance(value, str):
        text = value.strip()
        if re.fullmatch(r"\d{4}-\d{2}-\d{2}", text):
            return to_ns(dt.date.fromisoformat(text))
        from storage.book_at import parse_instant

        return parse_instant(text)
    if hasattr(value, "value") and hasattr(value, "tz_localize"):  # a pandas Timestamp
        return int(value.value)
    raise TypeError(f"not a time: {value!r} (give ISO 8601, a date, a datetime or integer ns)")


@dataclass
class DatasetSummary:
    """One dataset of one exchange: rows, days, symbols, first and last receive time."""

    rows: int = 0
    files: int = 0
    days: set[str] = field(default_factory=set)
    symbols: dict[str, set[str]] = field(default_factory=dict)  # symbol -> its days
    first: str | None = None  # ISO 8601 of the smallest ts_recv (Parquet statistics)
    last: str | None = None


@dataclass
class Inventory:
    """What a lake holds: per exchange, per dataset, a :class:`DatasetSummary`."""

    exchanges: dict[str, dict[str, DatasetSummary]] = field(default_factory=dict)

    def exchange_ids(self) -> list[str]:
        """Exchanges with at least one file."""
        return sorted(self.exchanges)

    def symbols(self, exchange: str | None = None, dataset: str | None = None) -> dict[str, set[str]]:
        """symbol -> days with data (of one exchange and/or dataset, or all)."""
        out: dict[str, set[str]] = {}
        for ex, by_ds in self.exchanges.items():
            if exchange is not None and ex != exchange:
                continue
            for ds, summary in by_ds.items():
                if dataset is not None and ds != dataset:
                    continue
                for sym, days in summary.symbols.items():
                    out.setdefault(sym, set()).update(days)
        return out

    def days(self, exchange: str | None = None, dataset: str | None = None) -> list[str]:
        """Days (YYYY-MM-DD) with data."""
        out: set[str] = set()
        for ex, by_ds in self.exchanges.items():
            if exchange is None or ex == exchange:
                for ds, summary in by_ds.items():
                    if dataset is None or ds == dataset:
                        out.update(summary.days)
        return sorted(out)

    def to_json(self) -> dict[str, Any]:
        """A JSON-ready dict: exchanges -> datasets (rows, days, first/last) and symbols with their days."""
        out: dict[str, Any] = {}
        for ex in self.exchange_ids():
            by_ds = self.exchanges[ex]
            datasets = {
                ds: {
                    "rows": s.rows,
                    "files": s.files,
                    "first_day": min(s.days) if s.days else None,
                    "last_day": max(s.days) if s.days else None,
                    "first_ts_recv": s.first,
                    "last_ts_recv": s.last,
                    "symbols": len(s.symbols),
                }
                for ds, s in sorted(by_ds.items(), key=lambda kv: _dataset_order(kv[0]))
            }
            symbols = {sym: sorted(days) for sym, days in sorted(self.symbols(ex).items())}
            days = self.days(ex)
            out[ex] = {
                "first_day": days[0] if days else None,
                "last_day": days[-1] if days else None,
                "datasets": datasets,
                "symbols": symbols,
            }
        return {"exchanges": out}


def _dataset_order(dataset: str) -> int:
    return DATASETS.index(dataset) if dataset in DATASETS else len(DATASETS)


def _stat_iso(text: str | None) -> str | None:
    # DuckDB prints timestamp statistics as '2024-08-08 23:54:15.088165267+00'
    if not text:
        return None
    return text.replace(" ", "T", 1).removesuffix("+00") + "Z"


def read_inventory(catalog: Catalog, datasets: Iterable[str] = DATASETS) -> Inventory:
    """The lake's :class:`Inventory` from Parquet footers (see the module docstring)."""
    import duckdb

    inv = Inventory()
    for dataset in datasets:
        if dataset in catalog.empty:
            continue
        glob = catalog.location.dataset_glob(dataset)
        has_symbol = "symbol" in arrow_schema(dataset).names
        try:
            meta = catalog.query(
                "SELECT file_name, row_group_id, any_value(row_group_num_rows) AS n, "
                "max(CASE WHEN path_in_schema = 'symbol' THEN stats_min_value END) AS smin, "
                "max(CASE WHEN path_in_schema = 'symbol' THEN stats_max_value END) AS smax, "
                "bool_and(CASE WHEN path_in_schema = 'symbol' THEN coalesce(min_is_exact AND max_is_exact, "
                "true) END) AS sexact, "
                "max(CASE WHEN path_in_schema = 'ts_recv' THEN stats_min_value END) AS tmin, "
                "max(CASE WHEN path_in_schema = 'ts_recv' THEN stats_max_value END) AS tmax "
                "FROM parquet_metadata(?) GROUP BY file_name, row_group_id",
                [glob],
            ).to_pylist()
        except duckdb.IOException as exc:
            if "No files found" in str(exc):
                continue
            raise
        mixed: dict[str, tuple[str, str]] = {}  # file -> (exchange, date) whose symbols must be read
        files: set[str] = set()
        for row in meta:
            m = _PARTS_RE.search(row["file_name"].replace("\\", "/"))
            if m is None:
                continue
            ex, day = m["exchange"], m["date"]
            s = inv.exchanges.setdefault(ex, {}).setdefault(dataset, DatasetSummary())
            s.rows += int(row["n"] or 0)
            s.days.add(day)
            if row["file_name"] not in files:
                files.add(row["file_name"])
                s.files += 1
            for attr, value, pick in (("first", row["tmin"], min), ("last", row["tmax"], max)):
                iso = _stat_iso(value)
                if iso is not None:
                    current = getattr(s, attr)
                    setattr(s, attr, iso if current is None else pick(current, iso))
            if not has_symbol or not row["n"]:
                continue
            # a writer may truncate long string statistics: only exact equal bounds name the symbol
            if row["smin"] is not None and row["smin"] == row["smax"] and row["sexact"] is not False:
                s.symbols.setdefault(row["smin"], set()).add(day)
            else:
                mixed[row["file_name"]] = (ex, day)
        if mixed:
            table = catalog.query(
                "SELECT DISTINCT filename, symbol FROM read_parquet(?, filename = true, union_by_name = true) WHERE symbol IS NOT NULL",
                [sorted(mixed)],
            )
            for fname, sym in zip(
                table.column("filename").to_pylist(), table.column("symbol").to_pylist(), strict=True
            ):
                ex, day = mixed[fname]
                inv.exchanges[ex][dataset].symbols.setdefault(sym, set()).add(day)
    return inv


class Lake:
    """A lake opened for reading. Use :func:`open_lake`; close it (or use ``with``) when done."""

    def __init__(self, catalog: Catalog) -> None:
        self.catalog = catalog
        self._inventory: Inventory | None = None

    # ---- what the lake holds -------------------------------------------------------------------
    @property
    def url(self) -> str:
        """The lake's directory or ``s3://`` URL."""
        return self.catalog.location.url

    @property
    def datasets(self) -> tuple[str, ...]:
        """The datasets (one DuckDB view and one reader method each)."""
        return DATASETS

    def inventory(self, refresh: bool = False) -> Inventory:
        """What the lake holds (cached; ``refresh`` reads the footers again)."""
        if self._inventory is None or refresh:
            self._inventory = read_inventory(self.catalog)
        return self._inventory

    def exchanges(self) -> list[str]:
        """Exchange ids that have data."""
        return self.inventory().exchange_ids()

    def symbols(self, exchange: str | None = None, dataset: str | None = None) -> list[str]:
        """Symbols with data (of one exchange, or every exchange)."""
        if exchange is not None:
            self.check_exchange(exchange)
        return sorted(self.inventory().symbols(exchange, dataset))

    def days(self, exchange: str | None = None) -> list[dt.date]:
        """UTC days with data (of one exchange, or any)."""
        if exchange is not None:
            self.check_exchange(exchange)
        return [dt.date.fromisoformat(d) for d in self.inventory().days(exchange)]

    # ---- lookups that say what exists ----------------------------------------------------------
    def check_exchange(self, exchange: str) -> str:
        """``exchange`` if the lake holds data of it; else :class:`LakeLookupError` naming the ones it has."""
        if exchange in self.inventory().exchanges or exchange in self.inventory(refresh=True).exchanges:
            return exchange
        known = self.inventory().exchange_ids()
        if not known:
            raise LakeLookupError(f"the lake {self.url} holds no data yet")
        hint = closest(exchange, known)
        raise LakeLookupError(
            f"no exchange {exchange!r} in the lake {self.url}; it holds: {listing(hint, len(known))}"
        )

    def check_symbol(self, exchange: str, symbol: str, dataset: str | None = None) -> str:
        """``symbol`` if ``exchange`` has data of it; else :class:`LakeLookupError` with the closest ones."""
        self.check_exchange(exchange)
        symbols = self.inventory().symbols(exchange, dataset)
        if symbol in symbols:
            return symbol
        what = f"{dataset} data" if dataset else "data"
        if not symbols:
            raise LakeLookupError(f"no {what} on {exchange} in the lake {self.url}")
        hint = closest(symbol, symbols)
        raise LakeLookupError(
            f"no {what} of {symbol!r} on {exchange} in the lake {self.url}; closest symbols: "
            f"{listing(hint, len(symbols))}"
        )

    def check_day(self, day: str | dt.date, exchange: str | None = None) -> str:
        """``day`` (YYYY-MM-DD) if the lake has data that day; else :class:`LakeLookupError` with the days it has."""
        text = day.isoformat() if isinstance(day, dt.date) else str(day)
        try:
            dt.date.fromisoformat(text)
        except ValueError:
            raise LakeLookupError(f"not a date: {text!r} (use YYYY-MM-DD)") from None
        if exchange is not None:
            self.check_exchange(exchange)
        days = self.inventory().days(exchange)
        if text in days:
            return text
        where = f" for {exchange}" if exchange else ""
        if not days:
            raise LakeLookupError(f"the lake {self.url} holds no data{where}")
        raise LakeLookupError(
            f"no data on {text}{where} in the lake {self.url}; days with data: {days_text(days)}"
        )

    # ---- reading -------------------------------------------------------------------------------
    def read(
        self,
        dataset: str,
        exchange: str | None = None,
        symbol: str | None = None,
        start: Any = None,
        end: Any = None,
        clean: bool = False,
        columns: list[str] | None = None,
    ) -> pa.Table:
        """Rows of ``dataset`` received in ``[start, end)``, of one exchange and symbol if given.

        ``start``/``end``: ISO 8601, a date (midnight UTC), a datetime (naive = UTC) or integer ns.
        ``clean`` drops rows flagged OUTDATED, MAYBE_BAD_BOOK or DUPLICATE (datasets with ``flags``).
        Rows come in lake order: per file by (symbol, ts_recv); sort with ``.sort_by("ts_recv")``.
        """
        if dataset not in DATASETS:
            hint = closest(dataset, DATASETS)
            raise LakeLookupError(f"no dataset {dataset!r}; datasets: {', '.join(hint)}")
        names = arrow_schema(dataset).names
        if exchange is not None:
            self.check_exchange(exchange)
        if symbol is not None:
            if exchange is None:
                if symbol not in self.inventory().symbols(None, dataset):
                    known = self.inventory().symbols(None, dataset)
                    hint = closest(symbol, known)
                    raise LakeLookupError(
                        f"no {dataset} data of {symbol!r} in the lake {self.url}; closest symbols: "
                        f"{listing(hint, len(known))}"
                    )
            else:
                self.check_symbol(exchange, symbol, dataset)
        clauses: list[str] = []
        params: list[Any] = []
        if exchange is not None:
            clauses.append("exchange = ?")
            params.append(exchange)
        if symbol is not None:
            clauses.append("symbol = ?")
            params.append(symbol)
        if start is not None:
            start_ns = to_ns(start)
            clauses += ["date >= CAST(? AS DATE)", "ts_recv >= make_timestamp_ns(?::BIGINT)::TIMESTAMPTZ_NS"]
            params += [_day_of(start_ns), start_ns]
        if end is not None:
            end_ns = to_ns(end)
            clauses += ["date <= CAST(? AS DATE)", "ts_recv < make_timestamp_ns(?::BIGINT)::TIMESTAMPTZ_NS"]
            params += [_day_of(end_ns), end_ns]
        if clean and "flags" in names:
            clauses.append(f"flags & {CLEAN_MASK} = 0")
        if columns:
            unknown = [c for c in columns if c not in names and c != "date"]
            if unknown:
                raise LakeLookupError(f"no column {unknown[0]!r} in {dataset}; columns: {', '.join(names)}")
            select = ", ".join(f'"{c}"' for c in columns)
        else:
            select = ", ".join(f'"{c}"' for c in names)  # the record's fields, without the date partition
        where = " AND ".join(clauses) or "true"
        return self.catalog.query(f'SELECT {select} FROM "{dataset}" WHERE {where}', params)

    def trades(self, exchange: str | None = None, symbol: str | None = None, start: Any = None,
               end: Any = None, clean: bool = False, columns: list[str] | None = None) -> pa.Table:  # fmt: skip
        """Trades (see :meth:`read`)."""
        return self.read("trades", exchange, symbol, start, end, clean, columns)

    def book(self, exchange: str | None = None, symbol: str | None = None, start: Any = None,
             end: Any = None, clean: bool = False, columns: list[str] | None = None) -> pa.Table:  # fmt: skip
        """L2 book rows: snapshots (``is_snapshot``) and level updates, size 0 removes a level."""
        return self.read("book", exchange, symbol, start, end, clean, columns)

    def bbo(self, exchange: str | None = None, symbol: str | None = None, start: Any = None,
            end: Any = None, clean: bool = False, columns: list[str] | None = None) -> pa.Table:  # fmt: skip
        """Best bid and offer (see :meth:`read`)."""
        return self.read("bbo", exchange, symbol, start, end, clean, columns)

    def feed_events(self, exchange: str | None = None, symbol: str | None = None, start: Any = None,
                    end: Any = None, clean: bool = False, columns: list[str] | None = None) -> pa.Table:  # fmt: skip
        """Gaps, resyncs, disconnects, parse errors... (``clean`` has no effect: no flags)."""
        return self.read("feed_events", exchange, symbol, start, end, clean, columns)

    def __getattr__(self, name: str) -> Callable[..., pa.Table]:
        # Any other dataset of schemas.DATASETS gets a reader too (quality, and datasets added later).
        if name in DATASETS:
            return partial(self.read, name)
        raise AttributeError(f"{type(self).__name__!r} object has no attribute {name!r}")

    def __dir__(self) -> list[str]:
        return sorted(set(super().__dir__()) | set(DATASETS))

    def book_at(self, exchange: str, symbol: str, at: Any, depth: int | None = 10) -> BookAt:
        """The L2 book the collector held at ``at`` (receive time): ``.bids``/``.asks`` best first,
        ``.synced`` False (with ``.reason``) after a gap or before the first snapshot."""
        from storage.book_at import book_at

        self.check_symbol(exchange, symbol, "book")
        return book_at(self.catalog, exchange, symbol, to_ns(at), depth=depth)

    def rounded(self, table: pa.Table, at: Any = None) -> pa.Table:
        """``table`` (rows of trades, book, bbo, mark_price, liquidations... with ``exchange`` and
        ``symbol`` columns) with its prices rounded to each instrument's tick size and its sizes to its
        lot size, exactly: ``65000.010000001`` becomes ``65000.01``.

        Tick and lot come from the ``instruments`` dataset: the latest row of each (exchange, symbol)
        received before ``at`` (receive time as in :meth:`read`; default: the latest). A symbol without
        instruments raises :class:`LakeLookupError` (collect with the instruments enabled to have them).
        """
        from collectors.instruments import round_array

        clauses, params = [], []
        if at is not None:
            clauses.append("ts_recv < make_timestamp_ns(?::BIGINT)::TIMESTAMPTZ_NS")
            params.append(to_ns(at))
        where = " AND ".join(clauses) or "true"
        ref = self.catalog.query(
            "SELECT exchange, symbol, arg_max(tick_size, ts_recv) AS tick, arg_max(lot_size, ts_recv) AS lot "
            f"FROM instruments WHERE {where} GROUP BY exchange, symbol",
            params,
        ).to_pylist()
        increments = {(r["exchange"], r["symbol"]): (r["tick"], r["lot"]) for r in ref}
        exchanges = table.column("exchange").to_pylist()
        symbols = table.column("symbol").to_pylist()
        keys = sorted(set(zip(exchanges, symbols, strict=True)))
        missing = [k for k in keys if k not in increments]
        if missing:
            raise LakeLookupError(
                f"no instruments for {', '.join(f'{e} {s}' for e, s in missing[:MAX_LISTED])} in {self.url}"
            )
        import numpy as np

        pairs = np.array([f"{e}\x00{s}" for e, s in zip(exchanges, symbols, strict=True)], dtype=object)
        for name in table.column_names:
            which = 0 if name in PRICE_COLUMNS else 1 if name in SIZE_COLUMNS else None
            if which is None:
                continue
            column = table.column(name)
            values = column.to_numpy(zero_copy_only=False).astype(np.float64)
            for exchange, symbol in keys:
                mask = pairs == f"{exchange}\x00{symbol}"
                values[mask] = round_array(values[mask], increments[(exchange, symbol)][which])
            mask_null = column.is_null().to_numpy(zero_copy_only=False)
            table = table.set_column(
                table.column_names.index(name), name, pa.array(values, mask=mask_null, type=column.type)
            )
        return table

    def sql(self, query: str, params: list[Any] | None = None) -> pa.Table:
        """Any DuckDB SQL over the views (``trades``, ``book``, ...), ``?`` parameters from ``params``."""
        return self.catalog.query(query, params)

    # ---- lifetime ------------------------------------------------------------------------------
    def close(self) -> None:
        """Closes the DuckDB connection."""
        self.catalog.close()

    def __enter__(self) -> Lake:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"Lake({self.url!r})"


def _day_of(ns: int) -> str:
    return (_EPOCH + dt.timedelta(seconds=ns // _NS)).date().isoformat()


def days_text(days: list[str]) -> str:
    """Days with data: all of them when few, else the first and last few."""
    if len(days) <= MAX_LISTED:
        return ", ".join(days)
    return f"{', '.join(days[:3])} ... {', '.join(days[-3:])} ({len(days)} days, {days[0]} to {days[-1]})"


def open_lake(lake: str, endpoint_url: str | None = None, threads: int | None = None) -> Lake:
    """Opens a local lake directory or an ``s3://bucket/prefix`` lake (standard AWS credentials;
    ``endpoint_url`` for S3-compatible stores)."""
    from storage.catalog import open_catalog

    return Lake(open_catalog(str(lake), endpoint_url=endpoint_url, threads=threads))
