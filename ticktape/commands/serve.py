"""``ticktape serve``: the quality dashboard, /api/quality and /metrics for a running deployment.

Collectors publish to a transport; this process consumes the same transport (its own consumer group,
so the sink's positions are untouched), feeds every record to a :class:`quality.live.QualityTracker`
and serves it. While it catches up with records older than ``--catch-up-s`` it skips them (counted):
ages and latencies are about now, and replaying an hour of backlog through live scores would only
produce an hour of false alarms.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import sys
import time

import pyarrow as pa
import pyarrow.compute as pc

from quality.live import QualityTracker
from quality.server import QualityServer
from schemas import RECORD_DATASETS, REPLICA_FIELD, RecordBuffer, arrow_to_rows
from storage.arbitrate import StreamArbiter
from streaming.base import ConsumedBatch, Consumer
from ticktape.config import enable_config, quality_config_of
from ticktape.runtime import arbitration_options, parse_list, stop_event_on_signals, wait_or_timeout
from ticktape.transport_args import TransportArgsError, add_transport_args, consumer_from_args

log = logging.getLogger(__name__)

#: Consumer group of this process (the sink has its own).
GROUP = "ticktape-quality"
NS = 1_000_000_000


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Adds the ``serve`` subcommand."""
    p = subparsers.add_parser(
        "serve",
        help="serve the quality dashboard, /api/quality and /metrics from a transport",
        description=(
            "Consumes the records collectors publish (its own consumer group) and serves the quality "
            "dashboard at /, the JSON API at /api/quality and Prometheus metrics at /metrics."
        ),
    )
    add_transport_args(p)
    p.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1)")
    p.add_argument("--port", type=int, default=8321, help="port (default 8321; 0 picks a free one)")
    p.add_argument(
        "--exchanges",
        default="",
        help="comma-separated exchange ids expected to report (shown as silent until they do)",
    )
    p.add_argument(
        "--catch-up-s",
        type=float,
        default=60.0,
        help="records received longer ago than this are skipped while catching up (default 60)",
    )
    p.add_argument(
        "--duration", type=float, help="stop after this many seconds (default: run until signalled)"
    )
    p.set_defaults(func=run)
    enable_config(p, "serve")


def run(args: argparse.Namespace) -> int:
    """Serves until SIGINT/SIGTERM (or ``--duration``)."""
    try:
        consumer = consumer_from_args(args, group=GROUP)
    except TransportArgsError as exc:
        print(f"ticktape serve: {exc}", file=sys.stderr)
        return 2
    tracker = QualityTracker(quality_config_of(args), exchanges=parse_list(args.exchanges))
    try:
        return asyncio.run(_serve(args, consumer, tracker))
    except OSError as exc:
        print(f"ticktape serve: {exc}", file=sys.stderr)
        return 1


class Feeder:
    """Moves consumed batches into the tracker, skipping the stale backlog.

    Collector replicas (README, "Replicas") are arbitrated as the sink does (in memory, per stream),
    so the tracker scores the merged stream: one copy of every event, and the merged book's gaps
    (``merged_gap``); a replica's own events (its disconnects, gaps) are its collector's health,
    exported by that collector, and are not scored as the exchange's here.
    """

    def __init__(self, tracker: QualityTracker, catch_up_s: float) -> None:
        self.tracker = tracker
        self.catch_up_ns = int(catch_up_s * NS)
        self.skipped_rows = 0
        self.observed_rows = 0
        self._arbiters: dict[str, StreamArbiter] = {}
        self._options = arbitration_options()

    def feed(self, batches: list[ConsumedBatch]) -> None:
        """Observes every fresh batch (one RecordBuffer per consumed batch)."""
        horizon = time.time_ns() - self.catch_up_ns
        for batch in batches:
            if (
                batch.dataset not in RECORD_DATASETS
                or batch.dataset in ("quality", "raw")  # raw frames carry nothing the tracker reads
                or batch.table.num_rows == 0
            ):
                continue
            newest = pc.max(batch.table.column("ts_recv").cast(pa.int64())).as_py()
            if newest is not None and newest < horizon:
                self.skipped_rows += batch.table.num_rows
                continue
            arbiter = self._arbiters.get(batch.stream)
            if arbiter is None:
                arbiter = self._arbiters[batch.stream] = StreamArbiter(self._options)
            tables = arbiter.process({batch.dataset: batch.table})
            out = RecordBuffer()
            for dataset, table in tables.items():
                if dataset == "feed_events" and REPLICA_FIELD in table.column_names:
                    replica = table.column(REPLICA_FIELD)
                    if replica.null_count < table.num_rows:
                        table = table.filter(pc.is_null(replica))
                out.rows(dataset).extend(arrow_to_rows(table))
            self.tracker.observe(out)
            self.observed_rows += batch.table.num_rows


async def _serve(args: argparse.Namespace, consumer: Consumer, tracker: QualityTracker) -> int:
    stop = asyncio.Event()
    stop_event_on_signals(stop)
    server = QualityServer(tracker, host=args.host, port=args.port)
    await consumer.start()
    try:
        await server.start()
    except OSError:
        await consumer.close()
        raise
    print(
        f"quality: {server.url}/   metrics: {server.url}/metrics   api: {server.url}/api/quality", flush=True
    )
    feeder = Feeder(tracker, args.catch_up_s)
    committed: dict[str, int] = {}

    async def pump() -> None:
        while not stop.is_set():
            batches = await consumer.poll(0.25)
            feeder.feed(batches)
            for b in batches:
                committed[b.stream] = max(committed.get(b.stream, -1), b.last)
            # Our group's position only saves catch-up work after a restart: commit now and then.
            for stream, last in list(committed.items()):
                await consumer.commit(stream, last)
            committed.clear()

    task = asyncio.create_task(pump(), name="quality-consumer")
    try:
        waiter = asyncio.create_task(wait_or_timeout(stop, args.duration))
        done, _ = await asyncio.wait({task, waiter}, return_when=asyncio.FIRST_COMPLETED)
        if task in done:
            task.result()  # a consumer failure ends the command with its error
    finally:
        stop.set()
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        await server.stop()
        await consumer.close()
    log.info("served: %d rows observed, %d stale rows skipped", feeder.observed_rows, feeder.skipped_rows)
    return 0
