"""Throughput of the Coinbase and Kraken normalisers on simulator frames (no network).

Run: ``.venv/bin/python -m bench.coinbase_kraken_normalisers [steps]``. Frames come from each
exchange's simulator, rendered for one fully subscribed client (snapshots first, then every market
step's trade, book and bbo frames) for four symbols, so the mix is what a live connection carries.
Kraken book frames go through the number-text-preserving decoder and a CRC32 check each; Coinbase
frames through the connection-wide sequence check. The figures go to bench/RESULTS.md.
"""

from __future__ import annotations

import asyncio
import sys
import time

from collectors.base import DialectOptions, ExchangeDialect, Subscription
from collectors.simulator import ClientSession, SimulatorConfig
from collectors.venues.coinbase import CoinbaseDialect
from collectors.venues.kraken import KrakenDialect
from schemas import RecordBuffer

SYMBOLS = {
    "coinbase": ("BTC-USD", "ETH-USD", "SOL-USD", "XRP-USD"),
    "kraken": ("BTC/USD", "ETH/USD", "SOL/USD", "XRP/USD"),
}


async def frames(dialect: ExchangeDialect, symbols: tuple[str, ...], steps: int) -> list[bytes]:
    """Everything one subscribed client receives over ``steps`` market steps per symbol."""
    sim = dialect.simulator(SimulatorConfig(symbols=symbols))
    session = ClientSession(ws=None, request=None, queue=asyncio.Queue())  # type: ignore[arg-type]
    await sim.on_open(session)
    for text in dialect.subscribe_frames(Subscription(symbols)):
        await sim.on_message(session, text)
    sim.sessions.add(session)
    ts = time.time_ns()
    for i in range(steps):
        for symbol in symbols:
            sim.publish_step(sim.markets[symbol].step(ts + i * 1_000_000))
    out: list[bytes] = []
    while not session.queue.empty():
        frame = session.queue.get_nowait()
        if frame is not None:
            out.append(frame.encode() if isinstance(frame, str) else frame)
    return out


def run(name: str, dialect: ExchangeDialect, steps: int) -> None:
    """Prints frames/s and rows/s of one normaliser over its simulator's frames."""
    data = asyncio.run(frames(dialect, SYMBOLS[name], steps))
    normaliser = dialect.new_normaliser()
    out = RecordBuffer()
    ts = time.time_ns()
    start = time.perf_counter()
    for frame in data:
        normaliser.on_frame(ts, frame, out)
    elapsed = time.perf_counter() - start
    rows = len(out.trades) + len(out.book) + len(out.bbo)
    kinds = {e[4] for e in out.feed_events}
    assert normaliser.parse_errors == 0 and not kinds, out.feed_events[:3]
    print(
        f"{name} normaliser: {len(data)} frames in {elapsed:.2f} s = {len(data) / elapsed:,.0f} frames/s, "
        f"{rows / elapsed:,.0f} rows/s ({len(out.book)} book, {len(out.bbo)} bbo, {len(out.trades)} trades)"
    )


def main() -> None:
    """Both normalisers; Kraken at depth 100 (the default), checksums verified."""
    steps = int(sys.argv[1]) if len(sys.argv) > 1 else 20_000
    run("coinbase", CoinbaseDialect(), steps)
    run("kraken", KrakenDialect(DialectOptions(book_depth=100)), steps)


if __name__ == "__main__":
    main()
