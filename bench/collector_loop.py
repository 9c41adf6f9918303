"""The collector alone on the live path: real Binance frames -> ``ticktape collect`` -> Kafka -> sink -> lake.

Run: ``python -m bench.collector_loop [--symbols 16] [--seconds 20] [--rate 20000] [--runs paced,max]
[--transport kafka|local] [--defer-sink] [--no-save]``.

The feed is :class:`bench.feed.RecordedFeed`: the real Binance recording of ``../shared/samples``,
one copy per symbol, pre-rendered websocket frames written in slices (a few per cent of a core at
100k events/s), so the collector's cost is measured without a Python simulator beside it on the
2 cores. ``ticktape collect`` and ``ticktape sink`` run as processes, as deployed; Kafka is the tests'
tansu broker on loopback, topics of their own per run.

Two runs:

- *paced*: ``--rate`` events/s (frames/s = rate / the recording's events per frame). The collector runs
  under :mod:`bench.collect_probe`, which times the broker acknowledgement of every row: receive
  (``ts_recv``) to acknowledgement p50/p99 of the rows received after the first second of the timed
  feed, the collector's own part of it (receive to ``publish``), and its garbage collections (Kafka
  only);
- *max*: the feed writes as fast as the collector reads (at most 2 MiB unread): what one collector
  process carries.

Each run counts the data rows (trades, book, bbo) in the lake against the rows the frames sent must
give (the recording normalised offline, per symbol, up to the frames each symbol received): ``lost``
must be 0. ``events_per_collector_cpu_s`` is lake rows per CPU second of the collector process from
the start of the timed feed until its socket was drained (start-up and snapshots left out).
``carried_events_per_s`` is lake rows over the span of their receive times.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import shutil
import signal
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import duckdb
import numpy as np

from bench import e2e
from bench.collect_probe import delays
from bench.common import SCRATCH, RssSampler, cpu_seconds, cpu_share, load_average, publish
from bench.e2e import SYMBOLS, _collector_stats, _committed_rows, _start, kafka_transport
from bench.feed import RecordedFeed, Recording, expected_rows, load_recording, make_feed

NAME = "collector_loop"
TITLE = (
    "Collector loop: recorded Binance frames -> collect -> Kafka -> sink -> lake (`bench/collector_loop.py`)"
)
COLUMNS = (
    "transport",
    "run",
    "symbols",
    "feed_s",
    "frames_sent",
    "events",
    "lost",
    "carried_events_per_s",
    "events_per_collector_cpu_s",
    "collector_us_per_event",
    "ack_p50_ms",
    "ack_p99_ms",
    "feed_cpu_share",
)
DRAIN_TIMEOUT_S = 120.0
#: Rows received in the first second of the timed feed are left out of the delay figures.
WARMUP_S = 1.0
SINK_WARMUP_S = 6.0


async def run_once(
    rec: Recording,
    counts: np.ndarray,
    *,
    run: str,
    rate: float,
    seconds: float,
    symbols: tuple[str, ...],
    transport: list[str],
    probe: bool,
    work: Path,
    defer_sink: bool = False,
) -> dict[str, Any]:
    """One run; the figures of the summary table. ``defer_sink``: the sink is stopped (SIGSTOP) while
    the feed runs and catches up after it (the broker then serves the collector alone)."""
    lake = work / "lake"
    per_frame = counts[-1] / len(rec.frames)
    frames_per_s = rate / per_frame if run == "paced" else 0.0
    feed = make_feed(symbols, frames_per_s, seconds)
    await feed.start()
    sink = await _start(
        "sink", "sink", *transport, "--lake", str(lake), "--flush-idle", "0.5", "--max-delay", "0.5",
        log_dir=work,
    )  # fmt: skip
    await asyncio.sleep(SINK_WARMUP_S)
    probe_file = work / "probe.npz"
    collect = await _start(
        "collect",
        "collect", "--exchange", "binance", "--symbols", ",".join(symbols),
        "--ws-url", feed.ws_url, "--rest-url", feed.rest_url, *transport,
        log_dir=work,
        cmd=[sys.executable, "-m", "bench.collect_probe"] if probe else None,
        env={"TICKTAPE_PROBE_OUT": str(probe_file)} if probe else None,
    )  # fmt: skip
    collector_pid = collect.pid
    if e2e.PROFILE_DIR is not None:  # py-spy runs the collector: measure and signal its child
        await asyncio.sleep(1.0)
        children = Path(f"/proc/{collect.pid}/task/{collect.pid}/children").read_text().split()
        collector_pid = int(children[0])
    sampler = RssSampler({"collector": collector_pid, "sink": sink.pid, "bench+feed": os.getpid()}, 1.0)
    sampler.start()
    feed_cpu0 = time.process_time()
    try:
        await asyncio.wait_for(feed.running.wait(), timeout=120)
        if defer_sink:
            os.kill(sink.pid, signal.SIGSTOP)
        timed_from_ns = time.time_ns() + int(WARMUP_S * 1e9)
        cpu0 = cpu_seconds(collector_pid) or 0.0
        feed_cpu0 = time.process_time()
        await asyncio.wait_for(feed.done.wait(), timeout=seconds + 120)
        if defer_sink:
            os.kill(sink.pid, signal.SIGCONT)
        feed_cpu = time.process_time() - feed_cpu0
        await _drained(feed)
        cpu1 = cpu_seconds(collector_pid) or 0.0
        os.kill(collector_pid, signal.SIGTERM)
        code = await asyncio.wait_for(collect.wait(), timeout=120)
        if code != 0:
            raise RuntimeError(f"collector exited {code}: {(work / 'collect.log').read_text()[-2000:]}")
        stats = _collector_stats(work)
        deadline = time.monotonic() + DRAIN_TIMEOUT_S
        while _committed_rows(lake) < stats["rows"] and time.monotonic() < deadline:
            await asyncio.sleep(0.5)
        sink.send_signal(signal.SIGTERM)
        await asyncio.wait_for(sink.wait(), timeout=120)
    finally:
        sampler.stop()
        if collector_pid != collect.pid:  # py-spy's child: killing py-spy leaves it running
            with contextlib.suppress(ProcessLookupError):
                os.kill(collector_pid, signal.SIGKILL)
        for proc in (collect, sink):
            if proc.returncode is None:
                proc.kill()
                await proc.wait()
        await feed.stop()
    assert feed.started_at is not None and feed.ended_at is not None
    feed_s = feed.ended_at - feed.started_at
    rows, recv = _lake_data_rows(lake)
    expected = len(symbols) * int(counts[feed.frames_sent_per_symbol() - len(rec.prologue)])
    span = (recv.max() - recv.min()) / 1e9 if len(recv) > 1 else float("nan")
    ack = delays(probe_file, timed_from_ns) if probe else {}
    collector_cpu = cpu1 - cpu0
    return {
        "run": run,
        "symbols": len(symbols),
        "rate": rate if run == "paced" else None,
        "feed_s": feed_s,
        "frames_sent": feed.frames_sent,
        "feed_frames_per_s": feed.sent / feed_s,
        "events": rows,
        "expected_events": expected,
        "lost": expected - rows,
        "collector_rows": stats["rows"],
        "reconnects": stats["connects"] - 1,
        "dropped_rows": stats["dropped"],
        "carried_events_per_s": rows / span,
        "collector_cpu_s": collector_cpu,
        "events_per_collector_cpu_s": rows / collector_cpu if collector_cpu > 0 else None,
        "collector_us_per_event": collector_cpu / rows * 1e6 if rows else None,
        "feed_max_backlog_mb": feed.max_backlog_bytes / 1e6,
        "feed_cpu_share": feed_cpu / feed_s,
        **ack,
        "cpu_share": {name: round(cpu_share(s), 2) for name, s in sampler.samples.items()},
        "load": load_average(),
    }


async def _drained(feed: RecordedFeed) -> None:
    """Waits until the collector has read what the feed wrote (the user-space send buffer empty, then
    a second for the kernel's buffers)."""
    deadline = time.monotonic() + 60
    for session in list(feed.sessions):
        transport = session.request.transport
        while transport is not None and transport.get_write_buffer_size() and time.monotonic() < deadline:
            await asyncio.sleep(0.05)
    await asyncio.sleep(1.0)


def _lake_data_rows(lake: Path) -> tuple[int, np.ndarray]:
    """Data rows (trades, book, bbo) in the lake and their receive times (ns)."""
    con = duckdb.connect()
    recvs: list[np.ndarray] = []
    for dataset in ("trades", "book", "bbo"):
        if not list(lake.glob(f"{dataset}/exchange=*/date=*/*.parquet")):
            continue
        got = con.execute(
            "SELECT epoch_ns(ts_recv) AS t FROM read_parquet(?, hive_partitioning = false)",
            [str(lake / dataset / "**" / "*.parquet")],
        ).fetchnumpy()
        recvs.append(got["t"].astype(np.int64))
    con.close()
    recv = np.concatenate(recvs) if recvs else np.zeros(0, np.int64)
    return len(recv), recv


def main(argv: list[str] | None = None) -> int:
    """Command line entry point."""
    p = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    p.add_argument("--symbols", type=int, default=16, help="copies of the recording, one per symbol (16)")
    p.add_argument("--seconds", type=float, default=20.0, help="longest timed feed per run (20 s)")
    p.add_argument("--rate", type=float, default=20_000, help="events/s of the paced run (20,000)")
    p.add_argument("--runs", default="paced,max", help="paced and/or max (comma-separated)")
    p.add_argument("--transport", default="kafka", choices=("kafka", "local"))
    p.add_argument(
        "--profile", type=Path, default=None, help="run the collector under py-spy, raw stacks to this folder"
    )
    p.add_argument(
        "--defer-sink",
        action="store_true",
        help="stop the sink while the feed runs (it catches up after): the broker serves the collector alone",
    )
    p.add_argument("--no-save", action="store_true", help="print JSON only, do not append to RESULTS.md")
    args = p.parse_args(argv)
    if args.profile is not None:
        args.profile.mkdir(parents=True, exist_ok=True)
        e2e.PROFILE_DIR = args.profile
    runs = args.runs.split(",")
    if unknown := set(runs) - {"paced", "max"}:
        p.error(f"unknown runs {sorted(unknown)}")
    if not 1 <= args.symbols <= len(SYMBOLS):
        p.error(f"--symbols must be 1..{len(SYMBOLS)}")
    symbols = SYMBOLS[: args.symbols]
    rec = load_recording()
    counts = expected_rows(rec)
    SCRATCH.mkdir(parents=True, exist_ok=True)
    with contextlib.ExitStack() as stack:
        kafka = stack.enter_context(kafka_transport()) if args.transport == "kafka" else None
        for run in runs:
            work = Path(tempfile.mkdtemp(prefix=f"bench-loop-{run}-", dir=SCRATCH))
            flags = (
                kafka(f"loop{run}")
                if kafka is not None
                else ["--transport", "local", "--log", str(work / "log")]
            )
            try:
                result = asyncio.run(
                    run_once(
                        rec, counts, run=run, rate=args.rate, seconds=args.seconds, symbols=symbols,
                        transport=flags, probe=kafka is not None and run == "paced", work=work,
                        defer_sink=args.defer_sink,
                    )
                )  # fmt: skip
            finally:
                shutil.rmtree(work, ignore_errors=True)
            publish(NAME, TITLE, COLUMNS, {"transport": args.transport, **result}, save=not args.no_save)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
