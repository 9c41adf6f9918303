"""Test helpers that lay out lakes the way the sink does (``<stream>-<first:020d>-<last:020d>.parquet``)."""

from __future__ import annotations

import argparse
import random
from collections.abc import Iterable
from datetime import UTC, date, datetime
from pathlib import Path
from types import ModuleType
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from schemas import arrow_schema, rows_to_arrow
from storage.lake import sink_file_name
from storage.sink import UnitWriter

DAY_NS = 86_400 * 1_000_000_000


def day_start_ns(day: date) -> int:
    """Midnight UTC of ``day`` in ns since the epoch."""
    return int(datetime(day.year, day.month, day.day, tzinfo=UTC).timestamp()) * 1_000_000_000


def partition_dir(lake: Path, dataset: str, exchange: str, day: date) -> Path:
    """The lake directory of one dataset, exchange and day."""
    return lake / dataset / f"exchange={exchange}" / f"date={day.isoformat()}"


def write_sink_file(
    lake: Path, dataset: str, rows: list[tuple[Any, ...]], stream: str, first: int, last: int
) -> Path:
    """Writes rows of one exchange and day as the sink does (its UnitWriter: file, then commit marker)."""
    exchange = rows[0][0]
    ts_idx = arrow_schema(dataset).names.index("ts_recv")
    day = datetime.fromtimestamp(rows[0][ts_idx] / 1e9, tz=UTC).date()
    UnitWriter(lake, durable=False).write_unit(stream, first, last, {dataset: rows_to_arrow(dataset, rows)})
    return partition_dir(lake, dataset, exchange, day) / sink_file_name(stream, first, last)


def trade_rows(
    exchange: str,
    day: date,
    n: int,
    seed: int,
    symbols: Iterable[str] = ("BTC-USDT", "ETH-USDT", "SOL-USDT"),
    id_base: int = 0,
) -> list[tuple[Any, ...]]:
    """``n`` synthetic trades of one day, unique trade ids, some equal timestamps on purpose."""
    rng = random.Random(seed)
    syms = list(symbols)
    base = day_start_ns(day)
    rows = []
    for i in range(n):
        ts = base + rng.randrange(0, DAY_NS // 1000) * 1000  # coarse grid: ties happen
        ts_ex = None if i % 7 == 0 else ts - rng.randrange(1_000_000, 50_000_000)
        side = (None, "buy", "sell")[i % 3]
        rows.append(
            (
                exchange,
                rng.choice(syms),
                ts_ex,
                ts,
                str(id_base + i),
                round(rng.uniform(10, 70000), 2),
                round(rng.uniform(0.001, 5), 6),
                side,
                i % 64,
            )
        )
    return rows


def write_trade_day(
    lake: Path, exchange: str, day: date, n: int, files: int, seed: int = 1, stream: str = "local"
) -> list[tuple[Any, ...]]:
    """Writes ``n`` trades of a day split over ``files`` sink files; returns every row written."""
    rows = trade_rows(exchange, day, n, seed)
    per = max(1, n // files)
    pos = 0
    for k in range(files):
        chunk = rows[k * per : (k + 1) * per] if k < files - 1 else rows[k * per :]
        if not chunk:
            continue
        write_sink_file(lake, "trades", chunk, stream, pos, pos + len(chunk) - 1)
        pos += len(chunk)
    return rows


def write_orphan(path: Path, dataset: str, rows: list[tuple[Any, ...]]) -> Path:
    """Writes rows straight to ``path`` with no commit marker (what a crashed sink leaves behind)."""
    pq.write_table(pa.Table.from_batches([rows_to_arrow(dataset, rows)]), path)
    return path


def run_command(module: ModuleType, argv: list[str]) -> int:
    """Runs one ``ticktape`` subcommand module in-process (only its own parser) and returns its exit code."""
    parser = argparse.ArgumentParser()
    module.register(parser.add_subparsers())
    args = parser.parse_args(argv)
    return int(args.func(args))
