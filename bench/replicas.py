"""The cost of collector replicas (issue 17): sink CPU per event with and without arbitration, and
bytes per event of the ``replica`` column.

Run: ``.venv/bin/python -m bench.replicas [--frames N] [--no-save]``. Frames come from the real
Binance sample (repeated, see bench/replay.py), normalised once (not timed). Then:
1. collector side: :func:`streaming.replica.stamp_replica` per row (what ``--replica`` adds), and the
   Avro wire bytes of a record with and without a replica (Kafka, Kinesis);
2. the sink (CPU seconds of the process, all threads; the least of 3 alternating runs after a
   warm-up) draining a local log into an empty lake:
   - ``single``: one collector's records, arbitration off (the sink as before replicas);
   - ``single_arb``: the same records, arbitration on (the default): the cost for single-collector
     users, expected ~0;
   - ``replicas_arb``: two replicas' copies of the same records (a's chunk of 1,000 frames, then b's),
     arbitrated into one copy (the lake then holds exactly the single run's events);
   - ``replicas_all``: the same two copies with arbitration off (every copy lands in the lake);
3. bytes: the Parquet bytes of the ``replica`` column per event, all null (single) and stamped.
"""

from __future__ import annotations

import argparse
import asyncio
import shutil
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq

from bench.common import SCRATCH, publish
from bench.raw import _copy, _frames, _normalise, _publish
from schemas import RECORD_DATASETS, RecordBuffer, rows_to_arrow
from storage.arbitrate import ArbitrationOptions
from storage.sink import Sink, SinkOptions
from streaming import codec
from streaming.local import LocalConsumer
from streaming.replica import stamp_replica

NAME = "replicas"
TITLE = "Replicas: sink CPU per event with and without arbitration, bytes of the replica column (`bench/replicas.py`)"
COLUMNS = (
    "frames",
    "events",
    "stamp_us_per_row",
    "avro_bytes_per_event",
    "avro_replica_bytes_per_event",
    "sink_us_per_event_single",
    "sink_us_per_event_single_arb",
    "single_arb_ratio",
    "sink_us_per_event_replicas_arb",
    "replicas_arb_ratio",
    "sink_us_per_event_replicas_all",
    "parquet_replica_bytes_per_event_null",
    "parquet_replica_bytes_per_event_stamped",
)
REPEATS = 3


def _stamped(chunks: list[RecordBuffer], replica: str) -> list[RecordBuffer]:
    return [stamp_replica(c, replica) for c in _copy(chunks)]


def _interleaved(a: list[RecordBuffer], b: list[RecordBuffer]) -> list[RecordBuffer]:
    out = []
    for x, y in zip(a, b, strict=True):
        out += [x, y]
    return out


def _sink(chunks: list[RecordBuffer], work: Path, arbitrate: bool) -> tuple[float, dict[str, int], int]:
    """CPU seconds of the sink draining the chunks' log; rows in the lake per dataset; replica column
    bytes."""
    log_dir, lake = work / "log", work / "lake"
    asyncio.run(_publish(log_dir, _copy(chunks)))
    options = SinkOptions(
        until_idle_s=0.0, poll_timeout_s=0.0, arbitration=ArbitrationOptions() if arbitrate else None
    )
    sink = Sink(LocalConsumer(log_dir), lake, options)
    started = time.process_time()
    stats = asyncio.run(sink.run())
    cpu = time.process_time() - started
    replica_bytes = 0
    for p in lake.rglob("*.parquet"):
        meta = pq.ParquetFile(p).metadata
        for g in range(meta.num_row_groups):
            group = meta.row_group(g)
            for c in range(group.num_columns):
                if group.column(c).path_in_schema == "replica":
                    replica_bytes += group.column(c).total_compressed_size
    return cpu, dict(stats.rows), replica_bytes


def _stamp_cost(chunks: list[RecordBuffer]) -> float:
    copies = _copy(chunks)
    rows = sum(len(c) for c in copies)
    started = time.process_time()
    for c in copies:
        stamp_replica(c, "a")
    return (time.process_time() - started) / rows * 1e6


def _avro_bytes(chunks: list[RecordBuffer]) -> tuple[float, float]:
    """Wire bytes per event of the Avro encoding without and with a replica (``a``)."""
    plain = stamped = n = 0
    for c in chunks[:20]:
        for ds in RECORD_DATASETS:
            rows = c.rows(ds)
            if rows:
                plain += len(codec.encode_rows(ds, rows))
                stamped += len(codec.encode_rows(ds, [(*r, "a") for r in rows]))
                n += len(rows)
    return plain / n, (stamped - plain) / n


def measure(frames: int) -> dict[str, Any]:
    items = _frames(frames)
    n = sum(1 for i in items if i is not None)
    rows_to_arrow("trades", [])  # pyarrow's one-time start-up cost is not what is measured
    chunks, _ = _normalise(items)
    events = sum(len(c) for c in chunks)
    both = _interleaved(_stamped(chunks, "a"), _stamped(chunks, "b"))
    stamp_us = _stamp_cost(chunks)
    avro_plain, avro_replica = _avro_bytes(chunks)
    work = Path(tempfile.mkdtemp(prefix="bench-replicas-", dir=SCRATCH))
    runs: dict[str, list[float]] = {"single": [], "single_arb": [], "replicas_arb": [], "replicas_all": []}
    lake_rows: dict[str, dict[str, int]] = {}
    col_bytes: dict[str, int] = {}
    try:
        _sink(both[:10], work / "warm-up", True)
        for i in range(REPEATS):  # alternating, the least of each: the machine is shared
            for name, data, arbitrate in (
                ("single", chunks, False),
                ("single_arb", chunks, True),
                ("replicas_arb", both, True),
                ("replicas_all", both, False),
            ):
                cpu, rows, replica_bytes = _sink(data, work / f"{name}-{i}", arbitrate)
                runs[name].append(cpu)
                lake_rows[name] = rows
                col_bytes[name] = replica_bytes
    finally:
        shutil.rmtree(work, ignore_errors=True)
    market = ("trades", "book", "bbo")
    if any(lake_rows["replicas_arb"].get(d) != lake_rows["single"].get(d) for d in market):
        raise RuntimeError(
            f"arbitration kept {lake_rows['replicas_arb']} rows, one copy is {lake_rows['single']}"
        )
    best = {k: min(v) for k, v in runs.items()}
    per_event = {k: v / events * 1e6 for k, v in best.items()}
    return {
        "frames": n,
        "events": events,
        "stamp_us_per_row": stamp_us,
        "avro_bytes_per_event": avro_plain,
        "avro_replica_bytes_per_event": avro_replica,
        "sink_us_per_event_single": per_event["single"],
        "sink_us_per_event_single_arb": per_event["single_arb"],
        "single_arb_ratio": best["single_arb"] / best["single"],
        "sink_us_per_event_replicas_arb": per_event["replicas_arb"],
        "replicas_arb_ratio": best["replicas_arb"] / best["single"],
        "sink_us_per_event_replicas_all": per_event["replicas_all"],
        "parquet_replica_bytes_per_event_null": col_bytes["single"] / events,
        "parquet_replica_bytes_per_event_stamped": col_bytes["replicas_arb"] / events,
        "spread_single_s": statistics.pstdev(runs["single"]),
        "lake_rows_replicas_all": sum(lake_rows["replicas_all"].values()),
        "arbitration_events": lake_rows["replicas_arb"].get("feed_events", 0)
        - lake_rows["single"].get("feed_events", 0),
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
