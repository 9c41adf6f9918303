"""DuckDB over the lake: per-minute VWAP per symbol over 10 M synthetic trades (target <= 1 s).

The input is one UTC day of ``trades`` for ten symbols on ``binance`` (10 M rows by default), written
the way the sink writes them: one file per 5-minute unit holding every symbol, sorted by (symbol,
ts_recv), by the sink's own ``storage.sink.UnitWriter`` (the lake's encodings, commit markers). The
query runs through ``storage.catalog`` (the views ``ticktape query`` uses), on the sink's files and
again after ``ticktape compact`` merged the day. The time is the median of ``--runs`` runs, result
fetched as Arrow; the first (cold) run is reported separately. The generated lake is cached in the
bench scratch directory (it is deterministic). Run: ``python -m bench.vwap [--rows N] [--quick]``.
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import time
from datetime import date
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from bench.common import SCRATCH, publish
from schemas import arrow_schema
from storage.catalog import open_catalog
from storage.compact import compact_lake
from storage.sink import UnitWriter

NAME = "vwap"
TITLE = "DuckDB: per-minute VWAP per symbol (`bench/vwap.py`)"
COLUMNS = ("rows", "files", "layout", "cold_s", "median_s", "min_s", "result_rows")
DAY = date(2024, 8, 8)
DAY_START_NS = 1723075200 * 1_000_000_000
DAY_NS = 86_400 * 1_000_000_000
UNITS = 288  # 5-minute sink units
SYMBOLS = tuple(
    f"{base}-USDT" for base in ("BTC", "ETH", "SOL", "XRP", "DOGE", "ADA", "AVAX", "LINK", "DOT", "LTC")
)
DEFAULT_ROWS = 10_000_000
QUICK_ROWS = 2_000_000

VWAP_SQL = """
SELECT symbol,
       time_bucket(INTERVAL 1 minute, ts_exchange::TIMESTAMPTZ) AS minute,
       sum(price * size) / sum(size) AS vwap,
       sum(size) AS volume,
       count(*) AS trades
FROM trades
WHERE exchange = 'binance' AND date = DATE '2024-08-08'
GROUP BY ALL
ORDER BY symbol, minute
"""


def _unit_table(rng: np.random.Generator, unit: int, rows: int, first_id: int) -> pa.Table:
    """One 5-minute unit of trades for every symbol, sorted by (symbol, ts_recv)."""
    unit_ns = DAY_NS // UNITS
    per_symbol = rows // len(SYMBOLS)
    columns: dict[str, list[pa.Array]] = {name: [] for name in arrow_schema("trades").names}
    for k, symbol in enumerate(SYMBOLS):
        n = per_symbol
        ts_recv = np.sort(rng.integers(0, unit_ns, n)) + DAY_START_NS + unit * unit_ns
        ts_exchange = ts_recv - rng.integers(1_000_000, 50_000_000, n)
        base = 100.0 * (k + 1)
        price = np.round(base * np.exp(np.cumsum(rng.normal(0, 2e-5, n)) + unit * 1e-4), 2)
        size = np.round(rng.lognormal(-2.0, 1.2, n), 4) + 0.0001
        ids = np.arange(first_id + k * n, first_id + (k + 1) * n, dtype=np.int64)
        sides = rng.integers(0, 2, n).astype(np.int32)
        columns["exchange"].append(pa.array(np.full(n, "binance", dtype=object), pa.string()))
        columns["symbol"].append(pa.array(np.full(n, symbol, dtype=object), pa.string()))
        columns["ts_exchange"].append(pa.array(ts_exchange).cast(pa.timestamp("ns", tz="UTC")))
        columns["ts_recv"].append(pa.array(ts_recv).cast(pa.timestamp("ns", tz="UTC")))
        columns["trade_id"].append(pc.cast(pa.array(ids), pa.string()))
        columns["price"].append(pa.array(price))
        columns["size"].append(pa.array(size))
        dictionary = pa.DictionaryArray.from_arrays(pa.array(sides), pa.array(["buy", "sell"]))
        columns["side"].append(dictionary.cast(pa.string()))
        columns["flags"].append(pa.array(np.zeros(n, dtype=np.int32)))
    schema = arrow_schema("trades")
    return pa.Table.from_arrays([pa.concat_arrays(columns[f.name]) for f in schema], schema=schema)


def generate(lake: Path, rows: int) -> int:
    """Writes the day into ``lake`` (sink layout); returns the number of files."""
    rng = np.random.default_rng(42)
    # The sink's own writer: same files, intents and commit markers (compaction needs the markers).
    writer = UnitWriter(lake, durable=False)
    per_unit = rows // UNITS
    for u in range(UNITS):
        first = u * per_unit
        writer.write_unit(
            "bench", first, first + per_unit - 1, {"trades": _unit_table(rng, u, per_unit, first)}
        )
    return UNITS


def time_query(lake: Path, runs: int) -> dict[str, Any]:
    """Cold first run, then the median and minimum of ``runs`` more, through the lake's catalog."""
    with open_catalog(str(lake)) as catalog:
        start = time.perf_counter()
        result = catalog.query(VWAP_SQL)
        cold = time.perf_counter() - start
        times = []
        for _ in range(runs):
            start = time.perf_counter()
            result = catalog.query(VWAP_SQL)
            times.append(time.perf_counter() - start)
    return {
        "cold_s": cold,
        "median_s": statistics.median(times),
        "min_s": min(times),
        "result_rows": result.num_rows,
    }


def main(argv: list[str] | None = None) -> int:
    """Command line entry point."""
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--rows", type=int, default=None, help=f"trades in the day ({DEFAULT_ROWS:,})")
    p.add_argument("--quick", action="store_true", help=f"{QUICK_ROWS:,} trades, 3 runs")
    p.add_argument("--runs", type=int, default=None, help="timed runs after the cold one (default 5)")
    p.add_argument("--no-save", action="store_true", help="print JSON only, do not append to RESULTS.md")
    args = p.parse_args(argv)
    rows = args.rows or (QUICK_ROWS if args.quick else DEFAULT_ROWS)
    runs = args.runs or (3 if args.quick else 5)
    lake = SCRATCH / f"vwap-lake-{rows}"
    if not (lake / ".complete").exists():
        shutil.rmtree(lake, ignore_errors=True)
        generate(lake, rows)
        (lake / ".complete").write_text("generated\n")
    files = len(list(lake.glob("trades/exchange=*/date=*/*.parquet")))
    result = time_query(lake, runs)
    common = {"rows": rows - rows % UNITS, "target_s": 1.0}
    publish(
        NAME, TITLE, COLUMNS, {**common, "files": files, "layout": "sink files", **result}, not args.no_save
    )
    compacted = SCRATCH / f"vwap-lake-{rows}-compacted"
    if not (compacted / ".complete").exists():
        shutil.rmtree(compacted, ignore_errors=True)
        shutil.copytree(lake, compacted)
        compact_lake(compacted, day=DAY, book_index=False)
        (compacted / ".complete").write_text("compacted\n")
    files = len(list(compacted.glob("trades/exchange=*/date=*/*.parquet")))
    result = time_query(compacted, runs)
    publish(
        NAME, TITLE, COLUMNS, {**common, "files": files, "layout": "compacted", **result}, not args.no_save
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
