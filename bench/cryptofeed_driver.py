"""Runs cryptofeed's own Binance handler over captured frames, in process, and prints its rate as JSON.

This script runs in the benchmark's separate venv (``bench/.venv-cryptofeed``, made by
``bench/vs_cryptofeed.py``), never in ticktape's: it imports nothing of ours. It drives the public
pieces of cryptofeed 2.4 the way its connection handler does (read from its source,
https://github.com/bmoscon/cryptofeed ``cryptofeed/exchanges/binance.py`` and ``cryptofeed/feed.py``,
and https://pypi.org/project/cryptofeed/ 2.4.1, checked 2026-12-05; no code of it is copied here):

- ``Binance(symbols=[...], channels=[L2_BOOK, TRADES, TICKER], callbacks=...)`` with no-op async
  callbacks (they count calls, nothing else);
- the symbol table seeded offline: ``Binance._parse_symbol_data`` over an ``exchangeInfo`` body listing
  the captured symbol, then ``Symbols.set`` (what ``symbol_mapping`` does after its REST request);
- every frame through ``await feed.message_handler(frame_text, conn, receipt_time_s)``;
- the depth snapshot cryptofeed requests (``_snapshot`` -> ``self.http_conn.read(url)``) answered from
  the capture's recorded REST snapshot (``{"stream": "<sym>@depthSnapshot", "data": <body>}`` lines), so
  its own snapshot parsing and update-id checks run; those lines are not websocket frames and are not
  passed to ``message_handler``;
- an empty capture line (a disconnect) calls ``feed._reset()``, as its ``subscribe`` does on every
  reconnect: the book is then rebuilt from the next recorded snapshot.

The frames are read into memory before the clock starts: no file I/O while measuring.
Usage: ``python cryptofeed_driver.py CAPTURE_TEXT_FILE [--symbol ETHUSDT]`` (uncompressed capture lines).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import sys
import time
from collections import Counter, deque
from typing import Any


class RecordedSnapshots:
    """Stands in for cryptofeed's ``HTTPAsyncConn``: answers each snapshot request with the next
    recorded REST body of the capture."""

    def __init__(self, bodies: list[str]) -> None:
        self.bodies = deque(bodies)
        self.requests = 0

    async def read(self, address: str, **_: Any) -> str:
        self.requests += 1
        if not self.bodies:
            raise RuntimeError(f"no recorded snapshot left for {address}")
        return self.bodies.popleft()

    async def close(self) -> None:
        return None


def load(path: str) -> tuple[list[tuple[float, str] | None], list[str]]:
    """Frames (receive time in seconds, text; None for a disconnect) and the recorded snapshot bodies."""
    frames: list[tuple[float, str] | None] = []
    snapshots: list[str] = []
    with open(path, encoding="utf-8") as fh:
        for line in fh:
            line = line.rstrip("\n")
            if not line:
                frames.append(None)
                continue
            ts, _, text = line.partition(" ")
            if '@depthSnapshot"' in text[:80]:
                snapshots.append(json.dumps(json.loads(text)["data"]))
                continue
            frames.append((int(ts) / 1e9, text))
    return frames, snapshots


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("capture")
    p.add_argument("--symbol", default="ETHUSDT")
    p.add_argument("--base", default="ETH")
    p.add_argument("--quote", default="USDT")
    a = p.parse_args()
    logging.disable(logging.CRITICAL)  # its "unexpected message" warnings must not cost I/O

    import cryptofeed  # imported here, after the arguments; the timing below excludes imports
    from cryptofeed.defines import L2_BOOK, TICKER, TRADES
    from cryptofeed.exchanges import Binance
    from cryptofeed.symbols import Symbols

    info = {
        "symbols": [
            {
                "symbol": a.symbol,
                "baseAsset": a.base,
                "quoteAsset": a.quote,
                "status": "TRADING",
                "filters": [{"filterType": "PRICE_FILTER", "tickSize": "0.01"}],
            }
        ]
    }
    syms, sym_info = Binance._parse_symbol_data(info)
    Symbols.set(Binance.id, syms, sym_info)
    std = next(iter(syms))

    calls: Counter[str] = Counter()

    def counter(kind: str) -> Any:
        async def cb(obj: Any, receipt_timestamp: float) -> None:
            calls[kind] += 1

        return cb

    frames, snapshots = load(a.capture)
    feed = Binance(
        symbols=[std],
        channels=[L2_BOOK, TRADES, TICKER],
        callbacks={L2_BOOK: counter("book"), TRADES: counter("trades"), TICKER: counter("ticker")},
    )
    http = RecordedSnapshots(snapshots)
    feed.http_conn = http

    async def run() -> None:
        handler = feed.message_handler
        for item in frames:
            if item is None:
                feed._reset()
                feed._l2_book.clear()
                continue
            await handler(item[1], None, item[0])

    loop = asyncio.new_event_loop()
    cpu0, wall0 = time.process_time(), time.perf_counter()
    loop.run_until_complete(run())
    cpu, wall = time.process_time() - cpu0, time.perf_counter() - wall0
    loop.close()
    n = sum(1 for f in frames if f is not None)
    print(
        json.dumps(
            {
                "cryptofeed": getattr(cryptofeed, "__version__", None) or _version(),
                "frames": n,
                "snapshots_served": http.requests,
                "callbacks": dict(calls),
                "cpu_s": cpu,
                "wall_s": wall,
                "frames_per_cpu_s": n / cpu,
                "frames_per_wall_s": n / wall,
            }
        )
    )
    return 0


def _version() -> str:
    from importlib.metadata import version

    return version("cryptofeed")


if __name__ == "__main__":
    sys.exit(main())
