"""End to end on this machine: simulator -> ``ticktape collect`` -> transport -> ``ticktape sink`` -> lake.

The exchange simulator (Binance spot dialect, websocket and REST on loopback) runs in this process;
the collector and the sink are real ``ticktape`` processes, as deployed, talking through the local
transport and, in a second pass, through Kafka (the tests' tansu broker, in memory, on loopback). Each run drives the simulator at a fixed market rate for ``--seconds`` and then checks,
once the sink has drained the log, that nothing was lost: every row the collector published is in the
lake, the collector connected once (the simulator never dropped it as a slow consumer) and no book
gap was recorded. Two runs:

- *delay*: about 20,000 events/s; receive-to-durable delay per row = the Parquet file's modification
  time (written, then fsynced and renamed) minus the row's ``ts_recv``; p50/p99 over the rows after
  the first two seconds (connection and snapshots; the sink is started first). The sink
  runs with ``--flush-idle``/``--max-delay`` of ``--max-delay`` seconds: that setting, not the
  pipeline, sets the delay floor (small units make small files; compaction merges them later);
- *max*: the simulator asked for twice that rate; sustained events/s = data rows in the lake / the
  span of their receive times (what the machine actually carried, nothing lost).

The CPU share of each process (collector, sink, this process with the simulator) says which one limits.

An event is one record (trade, book level change, bbo). Run: ``python -m bench.e2e [--quick]``.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import re
import shutil
import signal
import sys
import tempfile
import time
from collections.abc import Callable, Coroutine, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import duckdb
import numpy as np
import pyarrow.parquet as pq

from bench.common import SCRATCH, RssSampler, cpu_share, load_average, publish, ticktape_cmd
from collectors.registry import get_dialect
from collectors.simulator import ExchangeSimulator, SimulatorConfig
from schemas import RECORD_DATASETS

NAME = "e2e"
TITLE = "End to end: simulator -> collect -> transport (local, Kafka) -> sink -> lake (`bench/e2e.py`)"
COLUMNS = (
    "transport",
    "run",
    "seconds",
    "sim_frames_per_s",
    "events_per_s",
    "lost_rows",
    "duplicate_trades",
    "reconnects",
    "sink_max_delay_s",
    "delay_p50_ms",
    "delay_p99_ms",
    "events_per_collector_cpu_s",
)
EXCHANGE = "binance"
#: Sixteen symbols: the simulator steps every symbol once per tick, and its ticks come at most about
#: once per millisecond (asyncio's sleep resolution), so the rate is reached with many symbols.
SYMBOLS = tuple(
    f"{base}USDT"
    for base in (
        "BTC", "ETH", "SOL", "XRP", "DOGE", "ADA", "AVAX", "LINK",
        "DOT", "LTC", "BNB", "TRX", "ATOM", "NEAR", "FIL", "UNI",
    )
)  # fmt: skip
#: Rows per simulated market step of the Binance simulator (depth levels + bbo + trades), measured.
ROWS_PER_STEP = 3.6
#: Seconds the sink gets to start before the collector does.
SINK_WARMUP_S = 6.0
#: Data rows of the first seconds (connection, snapshots, first units) are left out of the delay figures.
DELAY_WARMUP_S = 2.0
#: Longest wait for the sink to commit what the collector published.
DRAIN_TIMEOUT_S = 120.0
_COLLECT_STATS = re.compile(
    r"(\d+) frames, (\d+) rows published, (\d+) connects, (\d+) snapshots, (\d+) rows dropped"
)


@dataclass
class PipelineRun:
    """What one pipeline run measured."""

    seconds: float  # from the first to the last data row's ts_recv
    sim_frames: int
    collector: dict[str, int]
    lake_rows: int
    gaps: int
    duplicate_trades: int
    delays_ms: np.ndarray
    rss: dict[str, list[tuple[float, int, float]]] = field(default_factory=dict)
    faults: int = 0

    @property
    def lost_rows(self) -> int:
        """Rows the collector published that are not in the lake (negative: the lake holds more)."""
        return self.collector.get("rows", 0) - self.lake_rows


#: When set (``--profile DIR``), the collector runs under ``py-spy record`` writing raw stacks there.
PROFILE_DIR: Path | None = None


async def _start(
    name: str, *args: str, log_dir: Path, cmd: list[str] | None = None, env: dict[str, str] | None = None
) -> asyncio.subprocess.Process:
    """Starts ``ticktape <args>`` (or ``cmd <args>``), its output in ``log_dir/<name>.log``."""
    out = open(log_dir / f"{name}.log", "wb")  # noqa: SIM115 - inherited by the child, closed below
    cmd = cmd or ticktape_cmd()
    if name == "collect" and PROFILE_DIR is not None:
        spy = Path(sys.executable).with_name("py-spy")
        target = PROFILE_DIR / f"collect-{time.strftime('%H%M%S')}.txt"
        cmd = [str(spy), "record", "-r", "200", "-f", "raw", "-o", str(target), "--", *cmd]
    try:
        return await asyncio.create_subprocess_exec(
            *cmd, *args, stdout=out, stderr=out, env={**os.environ, **env} if env else None
        )
    finally:
        out.close()


async def run_pipeline(
    rate_hz: float,
    seconds: float,
    *,
    work: Path,
    sink_max_delay_s: float = 1.0,
    symbols: tuple[str, ...] = SYMBOLS,
    rss_interval_s: float = 1.0,
    faults: Callable[[ExchangeSimulator, float], Coroutine[Any, Any, int]] | None = None,
    transport: list[str] | None = None,
) -> PipelineRun:
    """One run: simulator at ``rate_hz`` steps/s per symbol, collector and sink processes, lake checked.

    ``faults(sim, seconds)``, when given, runs beside the market for ``seconds`` and returns how many
    faults it injected. ``transport`` holds the transport flags of both processes (default: a local
    log in ``work``).
    """
    lake = work / "lake"
    transport = transport or ["--transport", "local", "--log", str(work / "log")]
    sim = get_dialect(EXCHANGE).simulator(SimulatorConfig(symbols=symbols, rate_hz=rate_hz))
    await sim.start()
    sink = await _start(
        "sink",
        "sink",
        *transport, "--lake", str(lake),
        "--flush-idle", str(sink_max_delay_s), "--max-delay", str(sink_max_delay_s),
        log_dir=work,
    )  # fmt: skip
    await asyncio.sleep(SINK_WARMUP_S)  # the sink is up (imports, recovery) before data flows
    collect = await _start(
        "collect",
        "collect",
        "--exchange", EXCHANGE, "--symbols", ",".join(symbols),
        "--ws-url", sim.ws_url, "--rest-url", sim.rest_url,
        *transport, "--duration", str(seconds),
        log_dir=work,
    )  # fmt: skip
    sampler = RssSampler(
        {"collector": collect.pid, "sink": sink.pid, "bench+simulator": os.getpid()}, rss_interval_s
    )
    sampler.start()
    injected = 0
    fault_task = asyncio.create_task(faults(sim, seconds)) if faults is not None else None
    started = time.monotonic()
    try:
        code = await asyncio.wait_for(collect.wait(), timeout=seconds + 120)
        elapsed = time.monotonic() - started
        if fault_task is not None:
            injected = await asyncio.wait_for(fault_task, timeout=60)
        if code != 0:
            raise RuntimeError(
                f"ticktape collect exited {code}: {(work / 'collect.log').read_text()[-2000:]}"
            )
        sim_frames = sim.frames_sent
        await sim.stop()
        stats = _collector_stats(work)
        # Let the sink drain the transport and commit everything the collector published (or give up
        # after DRAIN_TIMEOUT_S: missing rows then show as lost), then stop it as containers do.
        deadline = time.monotonic() + DRAIN_TIMEOUT_S
        while _committed_rows(lake) < stats["rows"] and time.monotonic() < deadline:
            await asyncio.sleep(0.5)
        sink.send_signal(signal.SIGTERM)
        sink_code = await asyncio.wait_for(sink.wait(), timeout=120)
        if sink_code != 0:
            raise RuntimeError(f"ticktape sink exited {sink_code}: {(work / 'sink.log').read_text()[-2000:]}")
    finally:
        sampler.stop()
        for proc in (collect, sink):
            if proc.returncode is None:
                proc.kill()
                await proc.wait()
        await sim.stop()
    lake_rows, gaps, duplicates, recv, delays = _lake_facts(lake)
    span = (recv.max() - recv.min()) / 1e9 if len(recv) > 1 else elapsed
    steady = delays[recv >= recv.min() + DELAY_WARMUP_S * 1e9] if len(recv) else delays
    return PipelineRun(
        seconds=span,
        sim_frames=sim_frames,
        collector=stats,
        lake_rows=lake_rows,
        gaps=gaps,
        duplicate_trades=duplicates,
        delays_ms=steady,
        rss=sampler.samples,
        faults=injected,
    )


def _collector_stats(work: Path) -> dict[str, int]:
    """The counters ``ticktape collect`` prints when it stops."""
    m = _COLLECT_STATS.search((work / "collect.log").read_text())
    if m is None:
        raise RuntimeError(f"no collector summary in {work / 'collect.log'}")
    return dict(
        zip(("frames", "rows", "connects", "snapshots", "dropped"), map(int, m.groups()), strict=True)
    )


def _committed_rows(lake: Path) -> int:
    """Rows in the lake's visible Parquet files (their footers only)."""
    total = 0
    for f in lake.glob("*/exchange=*/date=*/*.parquet"):
        with contextlib.suppress(OSError):
            total += pq.read_metadata(f).num_rows
    return total


def _lake_facts(lake: Path) -> tuple[int, int, int, np.ndarray, np.ndarray]:
    """Rows in the lake, book gap events, repeated trades, and ``ts_recv`` (ns) and receive-to-durable
    delay (ms) of the data rows (trades, book, bbo)."""
    con = duckdb.connect()
    total = 0
    recvs: list[np.ndarray] = []
    delays: list[np.ndarray] = []
    for dataset in ("trades", "book", "bbo", "feed_events", "instruments"):
        files = sorted(p for p in lake.glob(f"{dataset}/exchange=*/date=*/*.parquet"))
        for f in files:
            ts = con.execute(
                "SELECT epoch_ns(ts_recv) FROM read_parquet(?, hive_partitioning = false)", [str(f)]
            ).fetchnumpy()
            values = next(iter(ts.values()))
            total += len(values)
            if dataset not in ("feed_events", "instruments"):
                recv = values.astype(np.int64)
                recvs.append(recv)
                delays.append((os.stat(f).st_mtime_ns - recv) / 1e6)
    gaps = 0
    if list(lake.glob("feed_events/exchange=*/date=*/*.parquet")):
        row = con.execute(
            "SELECT count(*) FROM read_parquet(?, hive_partitioning = true) WHERE kind = 'gap'",
            [str(lake / "feed_events" / "**" / "*.parquet")],
        ).fetchone()
        gaps = row[0] if row else 0
    duplicates = 0
    if list(lake.glob("trades/exchange=*/date=*/*.parquet")):
        # The normaliser drops repeated trade ids, so a repeated one in the lake came from the transport.
        row = con.execute(
            "SELECT count(*) - count(DISTINCT (symbol, trade_id)) FROM read_parquet(?, hive_partitioning = true)",
            [str(lake / "trades" / "**" / "*.parquet")],
        ).fetchone()
        duplicates = row[0] if row else 0
    con.close()
    if not recvs:
        return total, int(gaps), int(duplicates), np.zeros(0, np.int64), np.zeros(0)
    return total, int(gaps), int(duplicates), np.concatenate(recvs), np.concatenate(delays)


def summarise(run: str, r: PipelineRun, sink_max_delay_s: float) -> dict[str, Any]:
    """The figures of one run."""
    data_rows = r.collector["rows"]
    q = (lambda p: float(np.percentile(r.delays_ms, p))) if len(r.delays_ms) else (lambda p: float("nan"))
    return {
        "run": run,
        "seconds": r.seconds,
        "sim_frames_per_s": r.sim_frames / r.seconds,
        "collector_frames": r.collector["frames"],
        "events": data_rows,
        "events_per_s": data_rows / r.seconds,
        "lake_rows": r.lake_rows,
        "lost_rows": r.lost_rows,
        "dropped_rows": r.collector["dropped"],
        "reconnects": r.collector["connects"] - 1,
        "gaps": r.gaps,
        "duplicate_trades": r.duplicate_trades,
        "sink_max_delay_s": sink_max_delay_s,
        "delay_p50_ms": q(50),
        "delay_p99_ms": q(99),
        "delay_max_ms": float(r.delays_ms.max()) if len(r.delays_ms) else float("nan"),
        "cpu_share": {name: round(cpu_share(s), 2) for name, s in r.rss.items()},
        # What one core could carry: events per CPU second the collector used (start-up included).
        "events_per_collector_cpu_s": data_rows / r.rss["collector"][-1][2]
        if r.rss.get("collector")
        else None,
        "load": load_average(),
    }


def main(argv: list[str] | None = None) -> int:
    """Command line entry point."""
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--quick", action="store_true", help="10 s runs")
    p.add_argument("--seconds", type=float, default=None, help="length of each run (default 30, quick 10)")
    p.add_argument("--rate", type=float, default=20_000, help="events/s of the delay run (20,000)")
    p.add_argument("--max-delay", type=float, default=0.5, help="sink --flush-idle/--max-delay (0.5 s)")
    p.add_argument("--runs", default="delay,max", help="which runs: delay, max (comma-separated)")
    p.add_argument(
        "--transports", default="local,kafka", help="local and/or kafka (a tansu broker on loopback)"
    )
    p.add_argument(
        "--profile", type=Path, default=None, help="run the collector under py-spy, raw stacks to this folder"
    )
    p.add_argument("--no-save", action="store_true", help="print JSON only, do not append to RESULTS.md")
    args = p.parse_args(argv)
    if args.profile is not None:
        global PROFILE_DIR
        args.profile.mkdir(parents=True, exist_ok=True)
        PROFILE_DIR = args.profile
    seconds = args.seconds or (10.0 if args.quick else 30.0)
    # "max": twice the events the machine sustained in earlier runs; the figure is what got through.
    plans = {
        "delay": args.rate / ROWS_PER_STEP / len(SYMBOLS),
        "max": 2 * args.rate / ROWS_PER_STEP / len(SYMBOLS),
    }
    runs = args.runs.split(",")
    transports = args.transports.split(",")
    for name in runs:
        if name not in plans:
            p.error(f"unknown run {name!r}; known: {', '.join(plans)}")
    for name in transports:
        if name not in ("local", "kafka"):
            p.error(f"unknown transport {name!r}; known: local, kafka")
    SCRATCH.mkdir(parents=True, exist_ok=True)
    for name in transports:
        with contextlib.ExitStack() as stack:
            kafka = stack.enter_context(kafka_transport()) if name == "kafka" else None
            for run in runs:
                flags = kafka(run) if kafka is not None else None
                work = Path(tempfile.mkdtemp(prefix=f"bench-e2e-{run}-", dir=SCRATCH))
                try:
                    r = asyncio.run(
                        run_pipeline(
                            plans[run], seconds, work=work, sink_max_delay_s=args.max_delay, transport=flags
                        )
                    )
                finally:
                    shutil.rmtree(work, ignore_errors=True)
                result = {"transport": name, **summarise(run, r, args.max_delay)}
                publish(NAME, TITLE, COLUMNS, result, save=not args.no_save)
    return 0


@contextlib.contextmanager
def kafka_transport() -> Iterator[Callable[[str], list[str]]]:
    """A tansu broker (the tests' Kafka); yields ``flags(run)``: both processes' transport flags.

    Every run gets topics of its own (``bench<pid><run>.<dataset>``): a sink with a fresh lake reads
    its topics from the start, so sharing topics would mix one run's records into the next.
    """
    from streaming.kafka import KafkaSettings, ensure_topics
    from tests.support.services import tansu_broker

    with tansu_broker() as broker:

        def flags(run: str) -> list[str]:
            prefix = f"bench{os.getpid()}{run}"
            settings = KafkaSettings(bootstrap=broker.address, topic_prefix=prefix)
            asyncio.run(ensure_topics(settings, [settings.topic(d) for d in RECORD_DATASETS]))
            return ["--transport", "kafka", "--kafka-bootstrap", broker.address, "--topic-prefix", prefix]

        yield flags


if __name__ == "__main__":
    raise SystemExit(main())
