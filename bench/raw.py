"""The cost of the raw archive (issue 17): bytes per event, collector CPU per frame, sink CPU.

Run: ``.venv/bin/python -m bench.raw [--frames N] [--no-save]``. Frames come from the real Binance
sample (repeated, see bench/replay.py). Measured in one run:
1. collector side, per frame: the normaliser (for scale) and :class:`collectors.raw.RawRecorder`
   (append to the batch; zstd when a batch closes at the default 256 KiB / 1 s);
2. bytes: compressed raw per normalised event (row of trades/book/bbo/feed_events), and the raw
   archive's lake size against the normalised datasets' lake size;
3. the sink (CPU seconds of the process, all threads) draining a local log of the normalised records
   alone, then of the same records plus the raw rows, into empty lakes (after a warm-up run,
   alternating, 3 runs each, the least of each reported).
"""

from __future__ import annotations

import argparse
import asyncio
import shutil
import tempfile
import time
from pathlib import Path
from typing import Any

from bench.common import SCRATCH, publish
from bench.replay import repeated_capture
from collectors.capture import read_capture
from collectors.raw import RawRecorder, RawSettings, parser_version
from collectors.registry import get_dialect
from schemas import RecordBuffer, rows_to_arrow
from storage.sink import Sink, SinkOptions
from streaming.local import LocalConsumer, LocalPublisher

NAME = "raw"
TITLE = "Raw archive: bytes per event, collector and sink CPU (`bench/raw.py`)"
COLUMNS = (
    "frames",
    "events",
    "frame_bytes_per_event",
    "raw_bytes_per_event",
    "normalise_us_per_frame",
    "raw_us_per_frame",
    "lake_mb",
    "raw_lake_mb",
    "sink_cpu_s",
    "sink_cpu_s_with_raw",
    "sink_cpu_increase_pct",
)
CHUNK_FRAMES = 1_000
#: sink runs of each kind (the least CPU of each is reported)
REPEATS = 3


def _frames(frames: int) -> list[tuple[int, bytes] | None]:
    items: list[tuple[int, bytes] | None] = []
    for item in read_capture(repeated_capture(frames)):
        if item is None or isinstance(item, tuple):
            items.append(item)
    return items


def _normalise(items: list[tuple[int, bytes] | None]) -> tuple[list[RecordBuffer], float]:
    normaliser = get_dialect("binance").new_normaliser()
    chunks = []
    buf = RecordBuffer()
    last_ts = n = 0
    started = time.process_time()
    for item in items:
        if item is None:
            normaliser.on_disconnect(last_ts, buf)
            continue
        last_ts = item[0]
        normaliser.on_frame(item[0], item[1], buf)
        n += 1
        if n % CHUNK_FRAMES == 0:
            chunks.append(buf.take())
    chunks.append(buf.take())
    return chunks, time.process_time() - started


def _raw_rows(items: list[tuple[int, bytes] | None]) -> tuple[list[tuple[Any, ...]], float]:
    normaliser = get_dialect("binance").new_normaliser()
    rec = RawRecorder("binance", "binance-0@1", parser_version(type(normaliser)), RawSettings())
    rows = []
    started = time.process_time()
    for item in items:
        row = rec.disconnect(0) if item is None else rec.frame(item[0], item[1])
        if row is not None:
            rows.extend(row)
    last = rec.close()
    if last is not None:
        rows.extend(last)
    return rows, time.process_time() - started


async def _publish(log_dir: Path, chunks: list[RecordBuffer]) -> None:
    pub = LocalPublisher(log_dir)
    await pub.start()
    for c in chunks:
        await pub.publish(c)
        await asyncio.sleep(0)
    await pub.close()


def _copy(chunks: list[RecordBuffer]) -> list[RecordBuffer]:
    out = []
    for c in chunks:
        copy = RecordBuffer()
        copy.extend(c)
        out.append(copy)
    return out


def _sink(chunks: list[RecordBuffer], work: Path) -> tuple[float, dict[str, int]]:
    """CPU seconds of the sink draining the chunks' log into an empty lake; lake bytes per dataset."""
    log_dir, lake = work / "log", work / "lake"
    published = sum(len(c) for c in chunks)
    asyncio.run(_publish(log_dir, _copy(chunks)))  # publishing empties the buffers
    sink = Sink(LocalConsumer(log_dir), lake, SinkOptions(until_idle_s=0.0, poll_timeout_s=0.0))
    started = time.process_time()
    stats = asyncio.run(sink.run())
    cpu = time.process_time() - started
    if sum(stats.rows.values()) != published:
        raise RuntimeError(f"the lake holds {sum(stats.rows.values())} rows, {published} were published")
    sizes: dict[str, int] = {}
    for p in lake.rglob("*.parquet"):
        ds = p.relative_to(lake).parts[0]
        sizes[ds] = sizes.get(ds, 0) + p.stat().st_size
    return cpu, sizes


def measure(frames: int) -> dict[str, Any]:
    """One run: collector-side costs, then the sink without and with raw over the same frames."""
    items = _frames(frames)
    n = sum(1 for i in items if i is not None)
    frame_bytes = sum(len(i[1]) for i in items if i is not None)
    rows_to_arrow("trades", [])  # pyarrow's one-time start-up cost is not what is measured
    chunks, t_norm = _normalise(items)
    raw, t_raw = _raw_rows(items)
    events = sum(len(c) for c in chunks)
    raw_bytes = sum(len(r[-1]) for r in raw)
    with_raw = [*chunks, RecordBuffer(raw=raw)]
    work = Path(tempfile.mkdtemp(prefix="bench-raw-", dir=SCRATCH))
    plain_s, raw_s = [], []
    try:
        _sink(chunks[:5], work / "warm-up")  # imports and first-call costs are not what is measured
        for i in range(REPEATS):  # alternating, the least of each: the machine is shared
            cpu, sizes = _sink(chunks, work / f"plain-{i}")
            plain_s.append(cpu)
            cpu, sizes_raw = _sink(with_raw, work / f"with-raw-{i}")
            raw_s.append(cpu)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    cpu_plain, cpu_raw = min(plain_s), min(raw_s)
    return {
        "frames": n,
        "events": events,
        "raw_batches": len(raw),
        "frame_bytes_per_event": frame_bytes / events,
        "raw_bytes_per_event": raw_bytes / events,
        "raw_compression_ratio": frame_bytes / raw_bytes,
        "normalise_us_per_frame": t_norm / n * 1e6,
        "raw_us_per_frame": t_raw / n * 1e6,
        "lake_mb": sum(sizes.values()) / 1e6,
        "raw_lake_mb": sizes_raw.get("raw", 0) / 1e6,
        "sink_cpu_s": cpu_plain,
        "sink_cpu_s_with_raw": cpu_raw,
        "sink_cpu_increase_pct": (cpu_raw / cpu_plain - 1) * 100,
    }


def main(argv: list[str] | None = None) -> int:
    """Command line entry point."""
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--frames", type=int, default=200_000, help="at least this many frames (200,000)")
    p.add_argument("--no-save", action="store_true", help="print JSON only, do not append to RESULTS.md")
    args = p.parse_args(argv)
    publish(NAME, TITLE, COLUMNS, measure(args.frames), save=not args.no_save)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
