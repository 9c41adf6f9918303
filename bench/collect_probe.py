"""``ticktape collect`` with the broker acknowledgement of every published row timed (benchmarks only).

``python -m bench.collect_probe <ticktape arguments>`` runs ``ticktape.cli.main`` unchanged, except that
the publisher the command builds gets a delivery listener (``KafkaPublisher.on_delivery``): for every
acknowledged message of trades, book or bbo rows, the acknowledgement time and each row's ``ts_recv`` are kept (two appends per
message, nothing per row), and when the command ends the receive-to-acknowledgement delays of every
row are written as JSON to the file named by ``TICKTAPE_ACK_DELAYS`` (count, p50, p99, max in ms,
and the delays after ``skip_s`` seconds of the first row, ``steady_*``).
"""

from __future__ import annotations

import gc
import json
import os
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

#: The market data timed (the other datasets' rows carry no receive time in column 3).
DATASETS = frozenset(("trades", "book", "bbo"))
#: Rows received in the first seconds (connection, snapshots) are reported apart.
SKIP_S = 2.0


def summarise(acks: list[int], stamps: list[Sequence[int]], skip_s: float = SKIP_S) -> dict[str, Any]:
    """Delays (ms) of every row: acknowledgement time minus its ``ts_recv``."""
    if not acks:
        return {"rows": 0}
    counts = np.fromiter((len(s) for s in stamps), dtype=np.int64, count=len(stamps))
    recv = np.fromiter((t for s in stamps for t in s), dtype=np.int64, count=int(counts.sum()))
    ack = np.repeat(np.asarray(acks, dtype=np.int64), counts)
    delay = (ack - recv) / 1e6
    steady = delay[recv >= recv.min() + int(skip_s * 1e9)]

    def q(values: np.ndarray, p: float) -> float:
        return float(np.percentile(values, p)) if len(values) else float("nan")

    return {
        "rows": len(delay),
        "p50_ms": q(delay, 50),
        "p99_ms": q(delay, 99),
        "max_ms": float(delay.max()),
        "steady_rows": len(steady),
        "steady_p50_ms": q(steady, 50),
        "steady_p99_ms": q(steady, 99),
        "steady_max_ms": float(steady.max()) if len(steady) else float("nan"),
    }


def main(argv: list[str] | None = None) -> int:
    """Runs ``ticktape`` with ``argv``; writes the delays to ``$TICKTAPE_ACK_DELAYS``."""
    from ticktape import cli
    from ticktape.commands import collect

    target = Path(os.environ["TICKTAPE_ACK_DELAYS"])
    acks: list[int] = []
    stamps: list[Sequence[int]] = []

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
        return publisher

    collect.publisher_from_args = with_listener
    pauses: dict[int, list[float]] = {0: [], 1: [], 2: []}
    started: list[float] = [0.0]

    def on_gc(phase: str, info: dict[str, Any]) -> None:
        if phase == "start":
            started[0] = time.perf_counter()
        else:
            pauses[info["generation"]].append(time.perf_counter() - started[0])

    gc.callbacks.append(on_gc)
    try:
        return cli.main(sys.argv[1:] if argv is None else argv)
    finally:
        summary = summarise(acks, stamps)
        summary["gc"] = {
            gen: {"count": len(p), "total_ms": sum(p) * 1e3, "max_ms": max(p, default=0.0) * 1e3}
            for gen, p in pauses.items()
        }
        target.write_text(json.dumps(summary))
        raw = os.environ.get("TICKTAPE_ACK_DELAYS_RAW")  # every message's (ack, first ts_recv, rows)
        if raw:
            np.save(raw, np.array([(a, s[0], len(s)) for a, s in zip(acks, stamps, strict=True) if s]))


if __name__ == "__main__":
    raise SystemExit(main())
