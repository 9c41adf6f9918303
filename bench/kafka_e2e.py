"""Collector -> Kafka -> lake throughput, and receive-to-acknowledgement delay at a fixed rate.

Run: ``.venv/bin/python -m bench.kafka_e2e [--frames N] [--rate R] [--seconds S] [--no-save]``.
A tansu broker (the test broker, in memory) is started on loopback. Records come from the real
Binance sample (repeated, bench/replay.py), normalised beforehand (the normalisers have their own
benchmarks); an *event* is one record (a trade, one book level change, a bbo).

1. Codec: ``streaming.codec`` encoding of every row (µs per row), the collector's hot path.
2. Throughput: a sink process (``storage.sink.Sink`` on a ``KafkaConsumer``) is started first; then
   the publisher sends every chunk of 1,000 frames' records. Timed from the first publish until the
   sink has committed every row to the lake (zstd Parquet, fsync, commit markers).
3. Delay: rows are published at ``--rate`` events/s for ``--seconds`` (paced every 10 ms), each with
   ``ts_recv`` set when it is handed to the publisher (its "receive"); the delay is broker
   acknowledgement time minus ``ts_recv`` (acks=all, linger 1 ms, no compression: the defaults).
"""

from __future__ import annotations

import argparse
import asyncio
import multiprocessing
import shutil
import tempfile
import time
from pathlib import Path
from typing import Any

from bench.common import SCRATCH, Timer, percentile, publish
from bench.local_sink import normalised_chunks
from schemas import RECORD_DATASETS, RecordBuffer, rows_to_arrow
from storage.sink import Sink, SinkOptions
from streaming import codec
from streaming.kafka import KafkaConsumer, KafkaPublisher, KafkaSettings, ensure_topics
from tests.support.services import tansu_broker

NAME = "kafka_e2e"
TITLE = "Collector -> Kafka -> lake (`bench/kafka_e2e.py`)"
COLUMNS = (
    "rows",
    "encode_us_per_row",
    "publish_rows_per_s",
    "e2e_rows_per_s",
    "rate",
    "delay_p50_ms",
    "delay_p99_ms",
    "delay_max_ms",
)
PREFIX = "bench"


def encode_speed(chunks: list[RecordBuffer]) -> float:
    """Microseconds per row to encode every row of the chunks."""
    rows = 0
    with Timer() as t:
        for chunk in chunks:
            for dataset in RECORD_DATASETS:
                data = chunk.rows(dataset)
                codec.encode_rows(dataset, data)
                rows += len(data)
    return t.elapsed / rows * 1e6


def _sink_process(bootstrap: str, lake: str, expected: int, done: Any) -> None:
    """Drains the topics into ``lake`` until ``expected`` rows are committed; reports the time."""

    async def run() -> None:
        consumer = KafkaConsumer(KafkaSettings(bootstrap=bootstrap, topic_prefix=PREFIX), group_id=None)
        sink = Sink(consumer, lake, SinkOptions(poll_timeout_s=0.05, flush_idle_s=0.2))
        stop = asyncio.Event()

        async def watch() -> None:
            while sum(sink.stats.rows.values()) < expected:
                await asyncio.sleep(0.01)
            stop.set()

        watcher = asyncio.create_task(watch())
        await sink.run(stop)
        watcher.cancel()
        done.send((time.time(), sum(sink.stats.rows.values())))

    asyncio.run(run())


async def _publish_all(bootstrap: str, chunks: list[RecordBuffer]) -> float:
    pub = KafkaPublisher(KafkaSettings(bootstrap=bootstrap, topic_prefix=PREFIX, idempotence="auto"))
    await pub.start()
    t0 = time.time()
    for chunk in chunks:
        await pub.publish(chunk)
    await pub.close()
    return t0


async def _paced(
    bootstrap: str, rows: list[tuple[str, tuple[Any, ...]]], rate: int, seconds: float, linger_ms: int = 1
) -> list[float]:
    """Publishes ``rate`` rows/s for ``seconds``; returns receive-to-ack delays in ms."""
    delays: list[float] = []

    def on_delivery(dataset: str, ts_recv: Any, ack_ns: int) -> None:
        delays.extend((ack_ns - t) / 1e6 for t in ts_recv)

    settings = KafkaSettings(
        bootstrap=bootstrap, topic_prefix=f"{PREFIX}-paced", idempotence="auto", linger_ms=linger_ms
    )
    pub = KafkaPublisher(settings, on_delivery=on_delivery)
    await pub.start()
    tick = 0.01
    per_tick = max(1, int(rate * tick))
    start = time.monotonic()
    i = 0
    n = 0
    while time.monotonic() - start < seconds:
        buf = RecordBuffer()
        now = time.time_ns()
        for _ in range(per_tick):
            dataset, row = rows[i]
            i = (i + 1) % len(rows)
            buf.rows(dataset).append((*row[:3], now, *row[4:]))
        n += per_tick
        await pub.publish(buf)
        # Keep the schedule (not "sleep 10 ms after the work"): the offered rate stays `rate`.
        next_at = start + n / rate
        await asyncio.sleep(max(0.0, next_at - time.monotonic()))
    await pub.close()
    return delays


def measure(frames: int, rate: int, seconds: float, linger_ms: int = 1) -> dict[str, Any]:
    """The three measurements against one broker."""
    chunks, n_frames, n_rows = normalised_chunks(frames)
    rows_to_arrow("trades", [])  # pyarrow's one-time start-up cost is not what is measured
    flat = [(d, r) for c in chunks[:50] for d in RECORD_DATASETS for r in c.rows(d)]
    encode_us = encode_speed(chunks)
    work = Path(tempfile.mkdtemp(prefix="bench-kafka-", dir=SCRATCH))
    try:
        with tansu_broker() as broker:
            settings = KafkaSettings(bootstrap=broker.address, topic_prefix=PREFIX)
            asyncio.run(ensure_topics(settings, [settings.topic(d) for d in RECORD_DATASETS]))
            ctx = multiprocessing.get_context("spawn")
            recv, send = ctx.Pipe(duplex=False)
            proc = ctx.Process(target=_sink_process, args=(broker.address, str(work / "lake"), n_rows, send))
            proc.start()
            time.sleep(8)  # the sink process imports and connects before the clock starts
            with Timer() as t_pub:
                t0 = asyncio.run(_publish_all(broker.address, chunks))
            if not recv.poll(600):
                raise RuntimeError("the sink did not commit every row within 10 minutes")
            t_end, written = recv.recv()
            proc.join(60)
            if written != n_rows:
                raise RuntimeError(f"the lake holds {written} rows, {n_rows} were published")
            delays = asyncio.run(_paced(broker.address, flat, rate, seconds, linger_ms))
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return {
        "frames": n_frames,
        "rows": n_rows,
        "encode_us_per_row": encode_us,
        "publish_s": t_pub.elapsed,
        "publish_rows_per_s": n_rows / t_pub.elapsed,
        "e2e_s": t_end - t0,
        "e2e_rows_per_s": n_rows / (t_end - t0),
        "rate": rate,
        "delayed_rows": len(delays),
        "delay_p50_ms": percentile(delays, 0.5),
        "delay_p99_ms": percentile(delays, 0.99),
        "delay_max_ms": max(delays) if delays else float("nan"),
    }


def main(argv: list[str] | None = None) -> int:
    """Command line entry point."""
    p = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    p.add_argument("--frames", type=int, default=100_000, help="at least this many frames (100,000)")
    p.add_argument("--rate", type=int, default=20_000, help="events/s of the delay run (20,000)")
    p.add_argument("--seconds", type=float, default=15.0, help="length of the delay run (15 s)")
    p.add_argument(
        "--linger-ms", type=int, default=1, help="producer linger of the delay run (1, the default)"
    )
    p.add_argument("--no-save", action="store_true", help="print JSON only, do not append to RESULTS.md")
    args = p.parse_args(argv)
    SCRATCH.mkdir(parents=True, exist_ok=True)
    result = measure(args.frames, args.rate, args.seconds, args.linger_ms)
    publish(NAME, TITLE, COLUMNS, result, save=not args.no_save)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
