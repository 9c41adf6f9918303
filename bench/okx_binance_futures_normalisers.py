"""Throughput of the okx and binance-futures normalisers (no network): frames/s and rows/s.

Run: ``.venv/bin/python -m bench.okx_binance_futures_normalisers [steps]``.
- ``binance-futures``: the real recording ``../shared/samples/binance-futures`` (74,655 frames,
  1000-level snapshot, ``@depth@0ms``), frames held in memory, replayed once.
- ``okx``: frames rendered by the OKX simulator for four instruments (``books`` updates with
  ``seqId``/``prevSeqId`` and a checksum verified on every update, ``bbo-tbt``, ``trades``), and the
  same frames with checksum verification off, to show what the CRC32 costs.
The figures go to bench/RESULTS.md.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

from collectors.base import DialectOptions, Normaliser
from collectors.capture import read_capture
from collectors.simulator import SimulatorConfig
from collectors.venues.binance_futures import BinanceFuturesNormaliser
from collectors.venues.okx import OkxDialect, OkxSimulator
from schemas import RecordBuffer

SAMPLE = (
    Path(__file__).resolve().parent.parent.parent
    / "shared/samples/binance-futures/ethusdt_20240808.capture.gz"
)
OKX_SYMBOLS = ("BTC-USDT", "ETH-USDT", "BTC-USDT-SWAP", "SOL-USDT-SWAP")


def okx_frames(steps: int) -> list[bytes]:
    """Snapshots then ``steps`` market steps per instrument, as one subscriber receives them."""
    sim = OkxDialect().simulator(SimulatorConfig(symbols=OKX_SYMBOLS))
    assert isinstance(sim, OkxSimulator)
    out = [sim.book_snapshot_frame("books", s).encode() for s in OKX_SYMBOLS]
    ts = time.time_ns()
    for i in range(steps):
        for symbol in OKX_SYMBOLS:
            frames = sim.step_frames(sim.markets[symbol].step(ts + i * 1_000_000))
            for channel in ("trades", "books", "bbo-tbt"):
                out.extend(f.encode() for f in frames[channel])
    return out


def run(name: str, normaliser: Normaliser, frames: list[tuple[int, bytes]]) -> None:
    """Normalises the frames once and prints the throughput."""
    out = RecordBuffer()
    start = time.perf_counter()
    for ts, frame in frames:
        normaliser.on_frame(ts, frame, out)
    elapsed = time.perf_counter() - start
    rows = len(out.trades) + len(out.book) + len(out.bbo)
    bad = [e for e in out.feed_events if e[4] in ("parse_error", "gap", "checksum_mismatch")]
    assert not bad, bad[:3]
    print(
        f"{name}: {len(frames)} frames in {elapsed:.2f} s = {len(frames) / elapsed:,.0f} frames/s, "
        f"{rows / elapsed:,.0f} rows/s ({len(out.book)} book, {len(out.bbo)} bbo, {len(out.trades)} trades)"
    )


def main() -> None:
    """Prints the figures of both normalisers."""
    steps = int(sys.argv[1]) if len(sys.argv) > 1 else 25_000
    recorded = [item for item in read_capture(SAMPLE) if isinstance(item, tuple)]
    run("binance-futures (real recording)", BinanceFuturesNormaliser(), recorded)
    ts = time.time_ns()
    okx = [(ts, f) for f in okx_frames(steps)]
    run("okx (simulator, checksum verified)", OkxDialect().new_normaliser(), okx)
    unverified = OkxDialect(DialectOptions(verify_checksums=False)).new_normaliser()
    run("okx (simulator, checksum off)", unverified, okx)


if __name__ == "__main__":
    main()
