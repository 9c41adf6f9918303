"""Normalise-only throughput per exchange dialect (no network while measuring): frames/s and records/s.

Frames come from real recordings where we have them (``../shared/samples``: binance, binance-futures,
okx) and, for every exchange id of ``collectors.registry``, from a raw capture that a real
:class:`collectors.connection.Collector` wrote while connected to that dialect's simulator (websocket
and REST, on loopback). The capture is then replayed through a fresh normaliser in memory; the rate
is per CPU second of this process (``time.process_time``), best of ``--repeat`` passes, so that other
work on the shared machine does not count. Run: ``python -m bench.normalise [--quick] [ids...]``.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import time
from pathlib import Path
from typing import Any

from bench.common import SAMPLES, SCRATCH, publish
from collectors.capture import CaptureError, merge_captures, read_capture
from collectors.connection import Collector, ConnectionSettings
from collectors.registry import exchange_ids, get_dialect
from collectors.simulator import SimulatorConfig
from schemas import RecordBuffer
from ticktape.commands.simulate import default_symbols

NAME = "normalise"
TITLE = "Normalise-only throughput per dialect (`bench/normalise.py`)"
COLUMNS = ("exchange", "source", "frames", "frames_per_cpu_s", "records_per_cpu_s", "parse_errors")

#: Real recordings per exchange id.
RECORDINGS: dict[str, Path] = {
    "binance": SAMPLES / "binance" / "ethusdt_20240808.capture.gz",
    "binance-futures": SAMPLES / "binance-futures" / "ethusdt_20240808.capture.gz",
    "okx": SAMPLES / "okx" / "okx_20220513.capture.gz",
}
#: Simulated market steps per second per symbol while capturing (high, to collect frames quickly).
CAPTURE_RATE_HZ = 400.0


async def _capture(exchange: str, path: Path, seconds: float) -> int:
    """Runs the exchange's simulator and a collector writing ``path`` for ``seconds``; returns frames."""
    dialect = get_dialect(exchange)
    symbols = default_symbols(exchange)
    sim = dialect.simulator(SimulatorConfig(symbols=symbols, rate_hz=CAPTURE_RATE_HZ))
    await sim.start()

    async def discard(batch: RecordBuffer) -> None:
        return None

    collector = Collector(
        dialect,
        symbols,
        discard,
        ws_url=sim.ws_url,
        rest_url=sim.rest_url,
        capture_path=path,
        settings=ConnectionSettings(),
    )
    try:
        await collector.start()
        await collector.wait_connected()
        await asyncio.sleep(seconds)
    finally:
        await collector.stop()
        await sim.stop()
    return collector.stats.frames


def simulator_capture(exchange: str, seconds: float) -> Path:
    """A fresh capture of ``exchange``'s simulator (one connection: the default two symbols)."""
    SCRATCH.mkdir(parents=True, exist_ok=True)
    path = SCRATCH / f"sim-{exchange}.capture"
    for stale in SCRATCH.glob(f"sim-{exchange}.*capture"):
        stale.unlink()
    asyncio.run(_capture(exchange, path, seconds))
    parts = sorted(SCRATCH.glob(f"sim-{exchange}.conn*.capture"))
    if not path.exists() and parts:
        # several connections (e.g. binance-futures' /public and /market routes): one capture of
        # every frame in receive order, as one normaliser would see them
        merge_captures(parts, path)
        for part in parts:
            part.unlink()
    if not path.exists():
        raise RuntimeError(f"{exchange}: the collector wrote no capture at {path}")
    return path


def normalise_rate(exchange: str, path: Path, repeat: int) -> dict[str, Any]:
    """Replays a capture through fresh normalisers ``repeat`` times; the best pass counts."""
    items: list[Any] = [i for i in read_capture(path) if not isinstance(i, CaptureError)]
    frames = sum(1 for i in items if i is not None)
    dialect = get_dialect(exchange)
    best = float("inf")
    rows = errors = 0
    gc.collect()
    for _ in range(repeat):
        normaliser = dialect.new_normaliser()
        out = RecordBuffer()
        on_frame, last_ts = normaliser.on_frame, 0
        start = time.process_time()
        for item in items:
            if item is None:
                normaliser.on_disconnect(last_ts, out)
            else:
                last_ts = item[0]
                on_frame(item[0], item[1], out)
        best = min(best, time.process_time() - start)
        rows = len(out.trades) + len(out.book) + len(out.bbo)
        errors = normaliser.parse_errors
        del out
    return {
        "exchange": exchange,
        "frames": frames,
        "cpu_s": best,
        "frames_per_cpu_s": frames / best,
        "records": rows,
        "records_per_cpu_s": rows / best,
        "parse_errors": errors,
    }


def main(argv: list[str] | None = None) -> int:
    """Command line entry point."""
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("exchanges", nargs="*", help="exchange ids (default: all)")
    p.add_argument("--quick", action="store_true", help="shorter captures, one pass")
    p.add_argument(
        "--seconds", type=float, default=None, help="simulator capture length (default 8, quick 3)"
    )
    p.add_argument("--repeat", type=int, default=None, help="passes per input (default 3, quick 1)")
    p.add_argument("--no-save", action="store_true", help="print JSON only, do not append to RESULTS.md")
    args = p.parse_args(argv)
    ids = args.exchanges or exchange_ids()
    unknown = set(ids) - set(exchange_ids())
    if unknown:
        p.error(f"unknown exchange ids: {', '.join(sorted(unknown))}")
    seconds = args.seconds or (3.0 if args.quick else 8.0)
    repeat = args.repeat or (1 if args.quick else 3)
    for exchange in ids:
        recording = RECORDINGS.get(exchange)
        if recording is not None and recording.exists():
            result = normalise_rate(exchange, recording, repeat)
            publish(
                NAME, TITLE, COLUMNS, {**result, "source": f"recording {recording.name}"}, not args.no_save
            )
        path = simulator_capture(exchange, seconds)
        result = normalise_rate(exchange, path, repeat)
        source = f"simulator, {len(default_symbols(exchange))} symbols"
        publish(NAME, TITLE, COLUMNS, {**result, "source": source}, not args.no_save)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
