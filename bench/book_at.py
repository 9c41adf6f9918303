"""``book_at`` over a day of book rows: how long rebuilding an L2 book at an instant takes.

The input is one UTC day of ``book`` rows for ``ETH-USDT`` on ``binance`` at the rate of the shared
Binance sample (108,802 rows in 6 minutes of ``@depth@100ms``: ~26 million rows a day), plus two other
symbols at a sixth of that rate each, written the way the sink writes them (one file per 5-minute unit,
all symbols in each file, sorted by (symbol, ts_recv)). A 2,000-level snapshot opens the day; prices
stay within 4,000 levels around the mid. The book is then rebuilt at the end of the day (every row of
the day applies: the worst case) and at noon, on the sink's files and again after ``ticktape compact``.

Run: ``python -m bench.book_at [--rows N] [--no-save]``. The generated lake is cached in the bench
scratch directory (it is deterministic).
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import time
from datetime import date
from pathlib import Path
from typing import Any

import duckdb

from bench.common import SCRATCH, publish
from storage.book_at import book_at
from storage.catalog import open_catalog
from storage.compact import compact_lake
from storage.lake import write_json_atomic
from storage.sink import commit_path

DAY = date(2024, 8, 8)
DAY_START_NS = 1723075200 * 1_000_000_000  # 2024-08-08T00:00:00Z
DAY_NS = 86_400 * 1_000_000_000
UNITS = 288  # 5-minute sink units
SNAPSHOT_LEVELS = 2_000
COLUMNS = ["rows", "files", "layout", "instant", "median_s", "min_s", "levels"]


def generate(lake: Path, rows: int) -> None:
    """Writes the day (see the module docstring) into ``lake``."""
    part = lake / "book" / "exchange=binance" / f"date={DAY.isoformat()}"
    part.mkdir(parents=True, exist_ok=True)
    con = duckdb.connect()
    per_unit = rows // UNITS
    other = per_unit // 6
    unit_ns = DAY_NS // UNITS
    for u in range(UNITS):
        first = u * (per_unit + 2 * other)
        last = first + per_unit + 2 * other - 1
        path = part / f"bench-{first:020d}-{last:020d}.parquet"
        snapshot = ""
        if u == 0:
            snapshot = f"""
            SELECT 'ETH-USDT' AS symbol, {DAY_START_NS} AS ts, CASE WHEN i % 2 = 0 THEN 'bid' ELSE 'ask' END
                   AS side,
                   CASE WHEN i % 2 = 0 THEN 2600.0 - (i // 2) * 0.01 ELSE 2600.01 + (i // 2) * 0.01 END
                   AS price, 1.0 + (i % 17) AS size, true AS is_snapshot, 1000::BIGINT AS seq
            FROM range({SNAPSHOT_LEVELS}) t(i) UNION ALL"""
        sql = f"""
        COPY (
          SELECT 'binance' AS exchange, symbol, make_timestamp_ns(ts - 5000000)::TIMESTAMPTZ_NS AS ts_exchange,
                 make_timestamp_ns(ts)::TIMESTAMPTZ_NS AS ts_recv, side, price, size, is_snapshot, seq,
                 0::BIGINT AS epoch, CASE WHEN is_snapshot THEN 16 ELSE 0 END::INTEGER AS flags
          FROM ({snapshot}
            SELECT CASE WHEN i < {per_unit} THEN 'ETH-USDT' WHEN i < {per_unit + other} THEN 'BTC-USDT'
                        ELSE 'SOL-USDT' END AS symbol,
                   {DAY_START_NS + u * unit_ns + 1000} + (i % {per_unit}) * ({unit_ns // max(per_unit, 1)})
                   AS ts,
                   CASE WHEN hash(i + {first}) % 2 = 0 THEN 'bid' ELSE 'ask' END AS side,
                   CASE WHEN hash(i + {first}) % 2 = 0 THEN 2600.0 - (hash(i * 7 + {first}) % 2000) * 0.01
                        ELSE 2600.01 + (hash(i * 7 + {first}) % 2000) * 0.01 END AS price,
                   CASE WHEN hash(i * 13 + {first}) % 10 = 0 THEN 0.0
                        ELSE (hash(i * 13 + {first}) % 100000) / 1000.0 END AS size,
                   false AS is_snapshot, 1001 + {first} + i AS seq
            FROM range({per_unit + 2 * other}) t(i)
          ) ORDER BY symbol, ts
        ) TO '{path}' (FORMAT parquet, COMPRESSION zstd)
        """
        con.execute(sql)
    con.close()
    # As the sink leaves it: a commit marker covering every file (compaction merges only committed files).
    write_json_atomic(commit_path(lake, "bench"), {"stream": "bench", "first": 0, "last": last})


def measure(lake: Path, at_ns: int, runs: int = 5) -> tuple[float, float, int]:
    """Median and minimum seconds of ``book_at`` (fresh catalog per run, as a CLI call has)."""
    times = []
    levels = 0
    for _ in range(runs):
        t0 = time.perf_counter()
        with open_catalog(str(lake)) as cat:
            book = book_at(cat, "binance", "ETH-USDT", at_ns)
        times.append(time.perf_counter() - t0)
        assert book.synced, book.reason
        levels = len(book.bids) + len(book.asks)
    return statistics.median(times), min(times), levels


def day_arguments(description: str, argv: list[str] | None) -> argparse.Namespace:
    """``--rows`` and ``--no-save``, shared with bench/compact.py (same generated day)."""
    p = argparse.ArgumentParser(description=description)
    p.add_argument("--rows", type=int, default=26_000_000, help="ETH-USDT book rows in the day")
    p.add_argument("--no-save", action="store_true", help="do not append to bench/RESULTS.md")
    return p.parse_args(argv)


def generated_day(rows: int) -> tuple[Path, Path]:
    """``(scratch dir, lake)`` of the generated day, generating it unless it is cached."""
    base = SCRATCH / f"book_at-{rows}"
    lake = base / "lake"
    if not (base / "done").exists() or not commit_path(lake, "bench").exists():
        shutil.rmtree(base, ignore_errors=True)
        generate(lake, rows)
        (base / "done").touch()
    return base, lake


def main(argv: list[str] | None = None) -> None:
    """Generates (or reuses) the lake, measures, prints JSON and records to RESULTS.md."""
    args = day_arguments(__doc__.splitlines()[0], argv)
    base, lake = generated_day(args.rows)
    compacted = base / "compacted"
    if not (base / "compacted-done").exists():
        shutil.rmtree(compacted, ignore_errors=True)
        shutil.copytree(lake, compacted)
        compact_lake(compacted, closed_before=date(2100, 1, 1), book_index=False)
        (base / "compacted-done").touch()
    indexed = base / "indexed"
    if not (base / "indexed-done").exists():
        shutil.rmtree(indexed, ignore_errors=True)
        shutil.copytree(compacted, indexed)
        t0 = time.perf_counter()
        [res] = compact_lake(indexed, closed_before=date(2100, 1, 1))
        print(f"book index built in {time.perf_counter() - t0:.1f} s: {res.detail}", flush=True)
        (base / "indexed-done").touch()
    total = 0
    layouts = (("sink files", lake), ("compacted", compacted), ("compacted + book index", indexed))
    for layout, root in layouts:
        files = sorted((root / "book").rglob("*.parquet"))
        total = sum(_rows(f) for f in files)
        instants = (
            ("end of day", DAY_START_NS + DAY_NS - 1),
            ("noon", DAY_START_NS + DAY_NS // 2),
            # the worst case with the index: ~10 minutes of rows after the last checkpoint
            ("11:59:59.999999998", DAY_START_NS + DAY_NS // 2 - 2),
        )
        for name, at in instants:
            median, best, levels = measure(root, at)
            result: dict[str, Any] = {
                "rows": total,
                "files": len(files),
                "layout": layout,
                "instant": name,
                "median_s": median,
                "min_s": best,
                "levels": levels,
            }
            publish("book_at", "Book at an instant (`bench/book_at.py`)", COLUMNS, result, not args.no_save)


def _rows(path: Path) -> int:
    import pyarrow.parquet as pq

    return int(pq.ParquetFile(path).metadata.num_rows)


if __name__ == "__main__":
    main()
