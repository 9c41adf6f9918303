"""``ticktape collect`` with the broker acknowledgement of every published row timed (benchmarks only).

``python -m bench.collect_probe <ticktape arguments>`` runs ``ticktape.cli.main`` unchanged, except that
the publisher the command builds gets a delivery listener (``KafkaPublisher.on_delivery``) and its
``publish`` is timed. When the command ends, it writes to the ``.npz`` file named by
``TICKTAPE_PROBE_OUT`` (all times integer ns since the epoch):

- ``ack``, ``recv``: per row of trades, book and bbo, its broker acknowledgement and its ``ts_recv``
  (per message the listener keeps two references, nothing per row);
- ``publish``, ``oldest``: per ``publish`` call, when it was called and the oldest ``ts_recv`` among
  the first rows of its trades, book and bbo (rows are in receive order): the collector's own part of
  the delay (receive, normalise, queue) against aiokafka's and the broker's;
- ``gc_at``, ``gc_ms``, ``gc_gen``: every garbage collection, when it ended, how long, which generation;
- ``req_start``, ``req_end``: every produce request of aiokafka's sender (its round trip to the broker);
- ``lag_at``, ``lag_ms``: the event loop's lateness when above 1 ms (a 1 ms timer on the collector's
  loop): a slow request with no lag beside it was the broker's, not the collector's process.

``TICKTAPE_PROBE_STALLS`` (a file name, optional): a thread writes there the collector thread's stack
whenever its loop has not ticked for 20 ms (once per stall), to tell a blocking call from descheduling.

``TICKTAPE_PROBE_KAFKA`` (JSON object, optional) overrides :class:`streaming.kafka.KafkaSettings`
fields of that publisher before it starts (``{"producers": 2, "linger_ms": 0}``): settings compared
side by side in one bench run.

:func:`delays` turns them into percentiles over a time window (the bench leaves out the start).
"""

from __future__ import annotations

import asyncio
import gc
import json
import os
import sys
import threading
import time
import traceback
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

#: The market data timed (the other datasets' rows carry no receive time in column 3).
DATASETS = frozenset(("trades", "book", "bbo"))


def delays(path: Path, since_ns: int) -> dict[str, Any]:
    """Percentiles (ms) of what ``path`` recorded for rows received from ``since_ns`` on."""
    data = np.load(path)
    recv, ack = data["recv"], data["ack"]
    keep = recv >= since_ns
    delay = (ack[keep] - recv[keep]) / 1e6
    pub = data["publish"]
    in_collector = (pub - data["oldest"])[data["oldest"] >= since_ns] / 1e6
    req_keep = data["req_start"] >= since_ns
    request = (data["req_end"] - data["req_start"])[req_keep] / 1e6
    gc_keep = data["gc_at"] >= since_ns
    gc_ms, gc_gen = data["gc_ms"][gc_keep], data["gc_gen"][gc_keep]

    def q(values: np.ndarray, p: float) -> float | None:
        return float(np.percentile(values, p)) if len(values) else None

    return {
        "ack_rows": int(keep.sum()),
        "ack_p50_ms": q(delay, 50),
        "ack_p99_ms": q(delay, 99),
        "ack_max_ms": float(delay.max()) if len(delay) else None,
        "recv_to_publish_p50_ms": q(in_collector, 50),
        "recv_to_publish_p99_ms": q(in_collector, 99),
        "request_p50_ms": q(request, 50),
        "request_p99_ms": q(request, 99),
        "request_max_ms": float(request.max()) if len(request) else None,
        "loop_lag_max_ms": float(data["lag_ms"][data["lag_at"] >= since_ns].max(initial=0.0)),
        "requests_per_s": float(req_keep.sum() / ((data["req_start"].max() - since_ns) / 1e9))
        if req_keep.any()
        else None,
        "gc_full_collections": int((gc_gen == 2).sum()),
        "gc_max_ms": float(gc_ms.max()) if len(gc_ms) else 0.0,
        "gc_total_ms": float(gc_ms.sum()),
    }


def main(argv: list[str] | None = None) -> int:
    """Runs ``ticktape`` with ``argv``; writes what it measured to ``$TICKTAPE_PROBE_OUT``."""
    from ticktape import cli
    from ticktape.commands import collect

    target = Path(os.environ["TICKTAPE_PROBE_OUT"])
    acks: list[int] = []
    stamps: list[Sequence[int]] = []
    publishes: list[tuple[int, int]] = []
    collections: list[tuple[int, float, int]] = []
    requests: list[tuple[int, int]] = []
    lags: list[tuple[int, float]] = []
    kafka_overrides = json.loads(os.environ.get("TICKTAPE_PROBE_KAFKA") or "{}")

    from aiokafka.producer.sender import Sender

    send_request = Sender._send_produce_req

    async def timed_request(self: Any, node_id: int, batches: Any) -> Any:
        start = time.time_ns()
        try:
            return await send_request(self, node_id, batches)
        finally:
            requests.append((start, time.time_ns()))

    Sender._send_produce_req = timed_request

    def on_delivery(dataset: str, ts_recv: Sequence[int], ack_ns: int) -> None:
        if dataset in DATASETS:
            acks.append(ack_ns)
            stamps.append(ts_recv)

    build = collect.publisher_from_args

    def with_listener(args: Any, **overrides: Any) -> Any:
        publisher = build(args, **overrides)
        if not hasattr(publisher, "on_delivery"):
            raise SystemExit(f"{type(publisher).__name__} reports no deliveries: use --transport kafka")
        publisher.on_delivery = on_delivery
        settings = getattr(publisher, "settings", None)
        for name, value in kafka_overrides.items():
            if not hasattr(settings, name):
                raise SystemExit(f"TICKTAPE_PROBE_KAFKA: no setting {name!r}")
            setattr(settings, name, value)
        publish = publisher.publish
        start = publisher.start

        async def ticking_start() -> None:
            await start()
            asyncio.get_running_loop().create_task(ticker(), name="probe-loop-lag")

        publisher.start = ticking_start  # type: ignore[method-assign]

        async def timed_publish(records: Any) -> None:
            firsts = [rows[0][3] for rows in (records.trades, records.book, records.bbo) if rows]
            if firsts:
                publishes.append((time.time_ns(), min(firsts)))
            await publish(records)

        publisher.publish = timed_publish  # type: ignore[method-assign]
        return publisher

    last_tick = [time.perf_counter()]
    stall_stacks: list[str] = []
    stall_file = os.environ.get("TICKTAPE_PROBE_STALLS")
    main_thread = threading.get_ident()

    def watch() -> None:
        # A stalled loop: the stack of its thread, once per stall (20 ms without a tick).
        reported = 0.0
        while True:
            time.sleep(0.005)
            tick = last_tick[0]
            if time.perf_counter() - tick > 0.02 and tick != reported:
                reported = tick
                frame = sys._current_frames().get(main_thread)
                stall_stacks.append("".join(traceback.format_stack(frame)[-12:]) if frame else "?")

    if stall_file:
        threading.Thread(target=watch, daemon=True, name="probe-stalls").start()

    async def ticker() -> None:
        while True:
            last_tick[0] = time.perf_counter()
            due = time.perf_counter() + 0.001
            await asyncio.sleep(0.001)
            late = (time.perf_counter() - due) * 1e3
            if late > 1.0:
                lags.append((time.time_ns(), late))

    collect.publisher_from_args = with_listener
    started = [0.0]

    def on_gc(phase: str, info: dict[str, Any]) -> None:
        if phase == "start":
            started[0] = time.perf_counter()
        else:
            collections.append((time.time_ns(), (time.perf_counter() - started[0]) * 1e3, info["generation"]))

    gc.callbacks.append(on_gc)
    try:
        return cli.main(sys.argv[1:] if argv is None else argv)
    finally:
        gc.callbacks.remove(on_gc)
        if stall_file:
            Path(stall_file).write_text("\n----\n".join(stall_stacks))
        counts = np.fromiter((len(s) for s in stamps), dtype=np.int64, count=len(stamps))
        recv = np.fromiter((t for s in stamps for t in s), dtype=np.int64, count=int(counts.sum()))
        pub = np.asarray(publishes, dtype=np.int64).reshape(-1, 2)
        col = np.asarray(collections, dtype=np.float64).reshape(-1, 3)
        req = np.asarray(requests, dtype=np.int64).reshape(-1, 2)
        lag = np.asarray(lags, dtype=np.float64).reshape(-1, 2)
        np.savez(
            target,
            ack=np.repeat(np.asarray(acks, dtype=np.int64), counts),
            recv=recv,
            publish=pub[:, 0],
            oldest=pub[:, 1],
            gc_at=col[:, 0].astype(np.int64),
            gc_ms=col[:, 1],
            gc_gen=col[:, 2].astype(np.int64),
            req_start=req[:, 0],
            req_end=req[:, 1],
            lag_at=lag[:, 0].astype(np.int64),
            lag_ms=lag[:, 1],
        )


if __name__ == "__main__":
    raise SystemExit(main())
