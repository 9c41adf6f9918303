"""Compiled against pure-Python book engine, side by side in one run (issue 18).

Two figures, each measured with both implementations alternately (``--rounds`` times each, the
median of each side and their ratio), so that the shared machine's load falls on both alike:

- normalise-to-records frames per CPU second of the real recordings (binance, binance-futures, okx)
  and of a bybit simulator capture (no bybit recording is shared), in this process:
  ``collectors.book.use_implementation`` switches the engine between passes over the same frames,
  and both passes must produce the same number of rows;
- ``ticktape replay`` of >= ``--frames`` real Binance frames into a lake (whole process, start-up
  included, ``TICKTAPE_PURE_PYTHON=1`` for the reference) per CPU second, against ``orjson.loads`` of
  the same frames (``bench/replay.py``).

Run: ``python -m bench.book_engine [--quick] [--rounds N] [--no-save]``.
"""

from __future__ import annotations

import argparse
import gc
import os
import shutil
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

from bench.common import SCRATCH, publish
from bench.normalise import RECORDINGS, simulator_capture
from bench.replay import orjson_rate, repeated_capture, run_replay
from collectors import book
from collectors.capture import CaptureError, read_capture
from collectors.registry import get_dialect
from schemas import RecordBuffer

NAME = "book_engine"
TITLE = "Compiled vs pure-Python book engine, side by side (`bench/book_engine.py`)"
COLUMNS = (
    "what",
    "frames",
    "python",
    "native",
    "ratio",
    "orjson_frames_per_cpu_s",
    "python_of_orjson",
    "native_of_orjson",
)


def normalise_pass(exchange: str, items: list[Any]) -> tuple[float, int]:
    """CPU seconds of one pass through a fresh normaliser, and the rows it made."""
    normaliser = get_dialect(exchange).new_normaliser()
    out = RecordBuffer()
    on_frame, last_ts = normaliser.on_frame, 0
    gc.collect()
    start = time.process_time()
    for item in items:
        if item is None:
            normaliser.on_disconnect(last_ts, out)
        else:
            last_ts = item[0]
            on_frame(item[0], item[1], out)
    cpu = time.process_time() - start
    return cpu, len(out.trades) + len(out.book) + len(out.bbo)


def compare_normalise(exchange: str, path: Path, rounds: int) -> dict[str, Any]:
    items = [i for i in read_capture(path) if not isinstance(i, CaptureError)]
    frames = sum(1 for i in items if i is not None)
    rates: dict[str, list[float]] = {"python": [], "native": []}
    rows: dict[str, int] = {}
    normalise_pass(exchange, items)  # warm: lazy imports, caches
    for _ in range(rounds):
        for impl in ("python", "native"):
            previous = book.use_implementation(impl)
            try:
                cpu, rows[impl] = normalise_pass(exchange, items)
            finally:
                book.use_implementation(previous)
            rates[impl].append(frames / cpu)
    if rows["python"] != rows["native"]:
        raise RuntimeError(f"{exchange}: {rows['python']} rows (python) != {rows['native']} (native)")
    py, nat = statistics.median(rates["python"]), statistics.median(rates["native"])
    return {
        "what": f"normalise {exchange} ({path.name}), frames per CPU s",
        "frames": frames,
        "python": py,
        "native": nat,
        "ratio": nat / py,
        "rows": rows["native"],
    }


def compare_replay(frames: int, rounds: int) -> dict[str, Any]:
    path = repeated_capture(frames)
    n, proxy = orjson_rate(path)
    rates: dict[str, list[float]] = {"python": [], "native": []}
    for _ in range(rounds):
        for impl in ("python", "native"):
            lake = Path(tempfile.mkdtemp(prefix="bench-book-engine-", dir=SCRATCH))
            env = {**os.environ, "TICKTAPE_PURE_PYTHON": "1" if impl == "python" else "0"}
            try:
                r = run_replay(path, lake, env=env)
            finally:
                shutil.rmtree(lake, ignore_errors=True)
            if f"book engine: {impl}" not in r["summary"]:
                raise RuntimeError(f"the replay did not run the {impl} engine: {r['summary']}")
            rates[impl].append(n / r["cpu_s"])
    py, nat = statistics.median(rates["python"]), statistics.median(rates["native"])
    return {
        "what": f"ticktape replay {path.name} to a lake, frames per CPU s (whole process)",
        "frames": n,
        "python": py,
        "native": nat,
        "ratio": nat / py,
        "orjson_frames_per_cpu_s": proxy,
        "python_of_orjson": py / proxy,
        "native_of_orjson": nat / proxy,
    }


def main(argv: list[str] | None = None) -> int:
    """Command line entry point."""
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--quick", action="store_true", help="100k replay frames, 2 rounds")
    p.add_argument("--rounds", type=int, default=None, help="passes per implementation (default 3)")
    p.add_argument("--frames", type=int, default=None, help="replay frames (default 500k)")
    p.add_argument("--no-save", action="store_true", help="print JSON only, do not append to RESULTS.md")
    args = p.parse_args(argv)
    if book.NATIVE_ERROR is not None:
        p.error(f"the compiled book engine is not built: {book.NATIVE_ERROR}")
    rounds = args.rounds or (2 if args.quick else 3)
    frames = args.frames or (100_000 if args.quick else 500_000)
    inputs = [(ex, RECORDINGS[ex]) for ex in ("binance", "binance-futures", "okx")]
    inputs.append(("bybit", simulator_capture("bybit", 3.0 if args.quick else 8.0)))
    for exchange, path in inputs:
        publish(NAME, TITLE, COLUMNS, compare_normalise(exchange, path, rounds), not args.no_save)
    publish(NAME, TITLE, COLUMNS, compare_replay(frames, rounds), not args.no_save)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
