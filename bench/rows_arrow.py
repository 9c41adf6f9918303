"""Rows to Arrow and the lake sort, reference against compiled, on a replay's units: µs per row.

Run: ``.venv/bin/python -m bench.rows_arrow [--frames N] [--quick] [--rounds N] [--no-save]``.

The input is what ``ticktape replay --lake`` converts: the Binance sample repeated to ``--frames``
frames (``bench.replay.repeated_capture``), normalised into units of the replay's size
(``ticktape.commands.replay.LAKE_UNIT_LINES``/``LAKE_UNIT_ROWS``). In one process, alternating, best
of ``--rounds`` passes each:

- ``convert``: every unit's rows of a dataset to a record batch: ``schemas.python_rows_to_arrow``
  (the reference: pyarrow's conversion of the tuples, or ``schemas/columns.py`` while pandas is not
  loaded) against ``schemas.rows_to_arrow`` with the compiled codec (``streaming.codec.rows_to_batch``).
- ``sort``: ``storage.lake.sort_for_lake`` of each unit's table, reference
  (``python_sort_for_lake``) against compiled (``streaming.codec.lake_order`` + ``take``). A unit of
  the repeated sample holds the end of one repetition and the start of the next, so its rows are not
  in ``ts_recv`` order: the reference's two-key sort, the compiled merge of each symbol's runs.
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable
from typing import Any

import pyarrow as pa

from bench.common import publish
from bench.replay import DEFAULT_FRAMES, QUICK_FRAMES, repeated_capture
from collectors.capture import ReplayStats, iter_units
from collectors.registry import get_dialect
from schemas import RecordBuffer, python_rows_to_arrow, rows_to_arrow
from storage.lake import python_sort_for_lake, sort_for_lake
from streaming import codec
from ticktape.commands.replay import LAKE_UNIT_LINES, LAKE_UNIT_ROWS

NAME = "rows_arrow"
TITLE = "Rows to Arrow in C (`bench/rows_arrow.py`)"
COLUMNS = (
    "dataset",
    "frames",
    "rows",
    "convert_pure_us",
    "convert_native_us",
    "convert_speedup",
    "sort_pure_us",
    "sort_native_us",
    "sort_speedup",
)
DATASETS = ("book", "bbo", "trades")


def units(frames: int) -> list[RecordBuffer]:
    normaliser = get_dialect("binance").make_normaliser()
    path = repeated_capture(frames)
    found = iter_units(path, normaliser, ReplayStats(), unit_lines=LAKE_UNIT_LINES, unit_rows=LAKE_UNIT_ROWS)
    return [buf for _, _, buf in found]


def timed(fn: Callable[[], Any]) -> float:
    t0 = time.perf_counter()
    fn()
    return time.perf_counter() - t0


def measure(dataset: str, bufs: list[RecordBuffer], frames: int, rounds: int) -> dict[str, Any]:
    module = codec._native()
    if module is None:
        raise SystemExit(f"the compiled codec is needed: {codec.native_status()}")
    parts = [buf.rows(dataset) for buf in bufs if buf.rows(dataset)]
    rows = sum(map(len, parts))
    tables = [pa.Table.from_batches([python_rows_to_arrow(dataset, p)]) for p in parts]
    for part, table in zip(parts, tables, strict=True):  # the same result, or nothing is measured
        assert rows_to_arrow(dataset, part).equals(table.to_batches()[0])
        assert sort_for_lake(table).equals(python_sort_for_lake(table))

    def convert(fn: Callable[[str, list[tuple[Any, ...]]], pa.RecordBatch]) -> None:
        for part in parts:
            fn(dataset, part)

    def sort(fn: Callable[[pa.Table], pa.Table]) -> None:
        for table in tables:
            fn(table)

    best = {k: float("inf") for k in ("cp", "cn", "sp", "sn")}
    for _ in range(rounds):  # alternate: the neighbours' load falls on both sides
        best["cp"] = min(best["cp"], timed(lambda: convert(python_rows_to_arrow)))
        best["cn"] = min(best["cn"], timed(lambda: convert(rows_to_arrow)))
        best["sp"] = min(best["sp"], timed(lambda: sort(python_sort_for_lake)))
        best["sn"] = min(best["sn"], timed(lambda: sort(sort_for_lake)))
    us = {k: v / rows * 1e6 for k, v in best.items()}
    return {
        "dataset": dataset,
        "frames": frames,
        "rows": rows,
        "units": len(parts),
        "convert_pure_us": us["cp"],
        "convert_native_us": us["cn"],
        "convert_speedup": us["cp"] / us["cn"],
        "sort_pure_us": us["sp"],
        "sort_native_us": us["sn"],
        "sort_speedup": us["sp"] / us["sn"],
    }


def main(argv: list[str] | None = None) -> int:
    """Command line entry point."""
    p = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    p.add_argument(
        "--frames", type=int, default=DEFAULT_FRAMES, help=f"frames, at least ({DEFAULT_FRAMES:,})"
    )
    p.add_argument("--quick", action="store_true", help=f"{QUICK_FRAMES:,} frames")
    p.add_argument("--rounds", type=int, default=5, help="alternating rounds, best of each (5)")
    p.add_argument("--no-save", action="store_true", help="print JSON only, do not append to RESULTS.md")
    args = p.parse_args(argv)
    frames = QUICK_FRAMES if args.quick else args.frames
    bufs = units(frames)
    for dataset in DATASETS:
        publish(NAME, TITLE, COLUMNS, measure(dataset, bufs, frames, args.rounds), not args.no_save)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
