"""``ticktape sink``: drains a transport into the Parquet lake, exactly once (storage.sink)."""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import logging
import signal
import sys
from pathlib import Path
from typing import TextIO

from storage.lake import check_stream_id
from storage.sink import Sink, SinkOptions, SinkStats
from streaming.local import LogCorruptError, LogError
from ticktape.config import enable_config
from ticktape.runtime import arbitration_options
from ticktape.transport_args import TransportArgsError, add_transport_args, consumer_from_args

log = logging.getLogger(__name__)


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Adds the ``sink`` subcommand."""
    defaults = SinkOptions()
    p = subparsers.add_parser(
        "sink",
        help="write what a transport carries into the Parquet lake (exactly once)",
        description="Consume a transport and write the lake. Resumes after its last commit marker; "
        "SIGTERM flushes, commits and exits 0.",
    )
    add_transport_args(p)
    p.add_argument("--lake", required=True, metavar="DIR", help="lake root directory")
    p.add_argument(
        "--until-idle", type=float, metavar="SECONDS", help="exit once nothing new arrived for this long"
    )
    p.add_argument(
        "--stream-id",
        metavar="ID",
        help="local transport: the stream id in file names and commit markers (default local); "
        "give each log feeding one lake its own",
    )
    p.add_argument(
        "--flush-rows",
        type=int,
        default=defaults.flush_rows,
        metavar="N",
        help="end a unit (one file per dataset, exchange and date) at this many rows (default %(default)s)",
    )
    p.add_argument(
        "--flush-entries",
        type=int,
        default=defaults.flush_entries,
        metavar="N",
        help="end a unit at this many transport batches (default %(default)s)",
    )
    p.add_argument(
        "--flush-idle",
        type=float,
        default=defaults.flush_idle_s,
        metavar="SECONDS",
        help="end a unit when its stream is quiet this long (default %(default)s)",
    )
    p.add_argument(
        "--max-delay",
        type=float,
        default=defaults.max_delay_s,
        metavar="SECONDS",
        help="end a unit at the latest this long after its first batch (default %(default)s)",
    )
    p.add_argument(
        "--skip-corrupt",
        action="store_true",
        help="local transport: skip a damaged range of the log (recorded as a log_corrupt feed event) "
        "instead of stopping there",
    )
    p.add_argument(
        "--metrics-port",
        type=int,
        metavar="PORT",
        help="serve Prometheus metrics (ticktape_sink_lag_seconds, rows, files) on this port",
    )
    p.add_argument(
        "--metrics-host", default="127.0.0.1", help="address of the metrics server (default 127.0.0.1)"
    )
    p.set_defaults(func=run)
    enable_config(p, "sink")


def print_summary(stats: SinkStats, lake: str, out: TextIO | None = None) -> None:
    """Prints what the sink wrote."""
    write = (out or sys.stdout).write
    write(
        f"sink: {stats.units} unit(s), {stats.files} file(s), {stats.bytes / 1e6:.1f} MB into {lake}; "
        f"{stats.batches} batch(es) read, {stats.skipped_batches} skipped as already written, "
        f"{stats.orphans_removed} orphan file(s) removed, {stats.rejected_rows} rejected row(s)\n"
    )
    for dataset, n in sorted(stats.rows.items()):
        write(f"  {dataset:<12} {n:>12,} rows\n")
    for stream_id, last in sorted(stats.committed.items()):
        write(f"  stream {stream_id}: committed through position {last}\n")


def local_group(lake: str) -> str:
    """The local log's consumer group of a sink: one per lake, so that the log's retention keeps
    every segment that any lake fed from it still needs."""
    digest = hashlib.sha256(str(Path(lake).resolve()).encode()).hexdigest()[:12]
    return f"sink-{digest}"


async def _run(args: argparse.Namespace) -> int:
    overrides = {}
    if args.stream_id:
        overrides["stream"] = args.stream_id
    if (args.transport or "local") == "local":
        overrides["group"] = local_group(args.lake)
        overrides["skip_corrupt"] = bool(getattr(args, "skip_corrupt", False))
    consumer = consumer_from_args(args, **overrides)
    options = SinkOptions(
        flush_rows=args.flush_rows,
        flush_entries=args.flush_entries,
        flush_idle_s=args.flush_idle,
        max_delay_s=args.max_delay,
        until_idle_s=args.until_idle,
        # Live with a metrics server: stay up and unhealthy on damage, so that probes and alerts see it.
        hold_on_failure=args.until_idle is None and getattr(args, "metrics_port", None) is not None,
        arbitration=arbitration_options(),
    )
    sink = Sink(consumer, Path(args.lake), options)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    metrics = None
    if getattr(args, "metrics_port", None) is not None:
        from ticktape.metrics import SinkMetricsServer

        metrics = SinkMetricsServer(sink.stats, args.metrics_host, args.metrics_port)
        await metrics.start()
    try:
        stats = await sink.run(stop)
    except LogCorruptError:
        print_summary(sink.stats, args.lake)  # what was delivered before the damage
        raise
    finally:
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.remove_signal_handler(sig)
        if metrics is not None:
            await metrics.stop()
    if stop.is_set():
        log.info("stopped by signal after flushing and committing")
    print_summary(stats, args.lake)
    return 0


def run(args: argparse.Namespace) -> int:
    """Runs the sink; returns the exit code."""
    for name in ("flush_rows", "flush_entries"):
        if getattr(args, name) <= 0:
            print(f"ticktape sink: --{name.replace('_', '-')} must be positive", file=sys.stderr)
            return 2
    if args.stream_id:
        try:
            check_stream_id(args.stream_id)
        except ValueError as exc:
            print(f"ticktape sink: --stream-id: {exc}", file=sys.stderr)
            return 2
    try:
        return asyncio.run(_run(args))
    except TransportArgsError as exc:
        print(f"ticktape sink: {exc}", file=sys.stderr)
        return 2
    except LogCorruptError as exc:
        print(f"ticktape sink: {exc}", file=sys.stderr)
        return 3
    except OSError as exc:
        from ticktape.cli import describe_failure

        print(f"ticktape sink: {describe_failure(exc)}", file=sys.stderr)
        return 1
    except (LogError, ValueError) as exc:
        print(f"ticktape sink: {exc}", file=sys.stderr)
        return 1
