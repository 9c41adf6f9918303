"""Throughput of the embedded local transport and of the sink: rows/s into the log, rows/s into the lake.

Run: ``.venv/bin/python -m bench.local_sink [--frames N] [--no-save]``. Records come from the real
Binance sample (repeated, see bench/replay.py), normalised beforehand (not timed). Then, timed:
1. ``LocalPublisher.publish`` of every chunk of 1,000 frames' records and a final ``flush`` (Arrow
   IPC encoding, lz4, CRC32, ``fsync`` per written batch: the default policy);
2. the sink draining that log into an empty lake (decode, split per exchange and date, stable sort,
   zstd Parquet, fsync, commit markers), measured until the last entry is committed.
"""

from __future__ import annotations

import argparse
import asyncio
import shutil
import tempfile
from pathlib import Path
from typing import Any

from bench.common import SCRATCH, Timer, publish
from bench.replay import repeated_capture
from collectors.capture import read_capture
from collectors.registry import get_dialect
from schemas import RecordBuffer, rows_to_arrow
from storage.sink import Sink, SinkOptions, last_committed
from streaming.local import LocalConsumer, LocalPublisher

NAME = "local_sink"
TITLE = "Local transport and sink throughput (`bench/local_sink.py`)"
COLUMNS = ("frames", "rows", "publish_rows_per_s", "log_mb", "sink_rows_per_s", "lake_mb", "units")
CHUNK_FRAMES = 1_000


def normalised_chunks(frames: int) -> tuple[list[RecordBuffer], int, int]:
    """Records of the repeated sample in chunks of CHUNK_FRAMES frames; also frame and row counts."""
    normaliser = get_dialect("binance").new_normaliser()
    chunks = []
    buf = RecordBuffer()
    n = 0
    last_ts = 0
    for item in read_capture(repeated_capture(frames)):
        if item is None:
            normaliser.on_disconnect(last_ts, buf)
            continue
        assert isinstance(item, tuple)
        last_ts = item[0]
        normaliser.on_frame(item[0], item[1], buf)
        n += 1
        if n % CHUNK_FRAMES == 0:
            chunks.append(buf.take())
    chunks.append(buf.take())
    return chunks, n, sum(len(c) for c in chunks)


async def _publish(log_dir: Path, chunks: list[RecordBuffer]) -> None:
    pub = LocalPublisher(log_dir)
    await pub.start()
    for c in chunks:
        await pub.publish(c)
        await asyncio.sleep(0)
    await pub.close()


def measure(frames: int) -> dict[str, Any]:
    """One publish run and one sink run over the same records."""
    chunks, n, rows = normalised_chunks(frames)
    rows_to_arrow("trades", [])  # pyarrow's one-time start-up cost is not what is measured
    work = Path(tempfile.mkdtemp(prefix="bench-local-sink-", dir=SCRATCH))
    try:
        log_dir, lake = work / "log", work / "lake"
        with Timer() as t_pub:
            asyncio.run(_publish(log_dir, chunks))
        log_bytes = sum(p.stat().st_size for p in log_dir.glob("*.seg"))
        sink = Sink(LocalConsumer(log_dir), lake, SinkOptions(until_idle_s=0.0, poll_timeout_s=0.0))
        with Timer() as t_sink:
            stats = asyncio.run(sink.run())
        assert last_committed(lake, "local") >= 0
        lake_bytes = sum(p.stat().st_size for p in lake.rglob("*.parquet"))
        written = sum(stats.rows.values())
        if written != rows:
            raise RuntimeError(f"the lake holds {written} rows, {rows} were published")
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return {
        "frames": n,
        "rows": rows,
        "publish_s": t_pub.elapsed,
        "publish_rows_per_s": rows / t_pub.elapsed,
        "log_mb": log_bytes / 1e6,
        "sink_s": t_sink.elapsed,
        "sink_rows_per_s": rows / t_sink.elapsed,
        "lake_mb": lake_bytes / 1e6,
        "units": stats.units,
    }


def main(argv: list[str] | None = None) -> int:
    """Command line entry point."""
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--frames", type=int, default=100_000, help="at least this many frames (100,000)")
    p.add_argument("--no-save", action="store_true", help="print JSON only, do not append to RESULTS.md")
    args = p.parse_args(argv)
    publish(NAME, TITLE, COLUMNS, measure(args.frames), save=not args.no_save)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
