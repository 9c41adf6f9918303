"""Throughput of the Bybit normaliser on simulator frames (no network): frames/s and rows/s.

Run: ``.venv/bin/python -m bench.bybit_normaliser [steps]``. Frames come from the Bybit simulator's
own renderer (``orderbook.50`` deltas, ``orderbook.1``, ``publicTrade``) for four symbols, so the
mix is what a live connection carries; the figure goes to bench/RESULTS.md.
"""

from __future__ import annotations

import sys
import time

from collectors.base import Normaliser
from collectors.simulator import SimulatorConfig
from collectors.venues.bybit.linear import BybitDialect
from schemas import RecordBuffer

SYMBOLS = ("BTCUSDT", "ETHUSDT", "SOLUSDT", "XRPUSDT")


def frames(steps: int) -> list[bytes]:
    """Frames of ``steps`` market steps per symbol, in the order a subscriber would receive them."""
    dialect = BybitDialect()
    sim = dialect.simulator(SimulatorConfig(symbols=SYMBOLS))
    assert hasattr(sim, "snapshot_frame") and hasattr(sim, "step_topic_frames")
    out: list[bytes] = []
    for symbol in SYMBOLS:
        for depth in (50, 1):
            out.append(sim.snapshot_frame(f"orderbook.{depth}.{symbol}", symbol, depth).encode())
    ts = time.time_ns()
    for i in range(steps):
        for symbol in SYMBOLS:
            step = sim.markets[symbol].step(ts + i * 1_000_000)
            for topic_frames in sim.step_topic_frames(step).values():
                out.extend(f.encode() for f in topic_frames)
    return out


def measure(name: str, normaliser: Normaliser, data: list[bytes]) -> str:
    """Normalises ``data`` once and returns a one-line throughput report (frames/s, rows/s).

    Fails when any frame is a parse error or raises a feed event: a benchmark of a broken parse is
    meaningless. Usable for any exchange's normaliser.
    """
    out = RecordBuffer()
    ts = time.time_ns()
    start = time.perf_counter()
    for frame in data:
        normaliser.on_frame(ts, frame, out)
    elapsed = time.perf_counter() - start
    rows = len(out.trades) + len(out.book) + len(out.bbo)
    assert normaliser.parse_errors == 0 and not out.feed_events, out.feed_events[:3]
    return (
        f"{name} normaliser: {len(data)} frames in {elapsed:.2f} s = {len(data) / elapsed:,.0f} frames/s, "
        f"{rows / elapsed:,.0f} rows/s ({len(out.book)} book, {len(out.bbo)} bbo, {len(out.trades)} trades)"
    )


def main() -> None:
    """Prints the Bybit normaliser's throughput over the generated frames."""
    steps = int(sys.argv[1]) if len(sys.argv) > 1 else 50_000
    print(measure("bybit", BybitDialect().new_normaliser(), frames(steps)))


if __name__ == "__main__":
    main()
