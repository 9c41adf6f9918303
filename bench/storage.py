"""Storage: Parquet bytes per event in the lake, against the raw frame bytes and the gzip'd capture.

Each real recording (``../shared/samples``) is replayed into an empty lake by the same code as
``ticktape replay`` (one unit: one zstd Parquet file per dataset, sorted by symbol and ts_recv). Raw
bytes are the frames exactly as received (the capture's receive-time prefix and newline excluded);
the gzip figure is the capture file as a collector writes it. Target: Parquet <= 1/10 of raw.
Run: ``python -m bench.storage [--no-save]``.
"""

from __future__ import annotations

import argparse
import shutil
import tempfile
from collections import Counter
from pathlib import Path
from typing import Any

from bench.common import SAMPLES, SCRATCH, publish
from collectors.capture import read_capture
from ticktape.commands.replay import replay_to_lake

NAME = "storage"
TITLE = "Storage: Parquet against raw frames (`bench/storage.py`)"
COLUMNS = (
    "exchange",
    "frames",
    "events",
    "raw_bytes",
    "gzip_bytes",
    "parquet_bytes",
    "parquet_bytes_per_event",
    "raw_over_parquet",
    "gzip_over_parquet",
)
RECORDINGS: dict[str, Path] = {
    "binance": SAMPLES / "binance" / "ethusdt_20240808.capture.gz",
    "binance-futures": SAMPLES / "binance-futures" / "ethusdt_20240808.capture.gz",
    "okx": SAMPLES / "okx" / "okx_20220513.capture.gz",
}


def measure(exchange: str, capture: Path) -> dict[str, Any]:
    """Replays one capture into a fresh lake and compares sizes."""
    raw = frames = 0
    for item in read_capture(capture):
        if isinstance(item, tuple):
            frames += 1
            raw += len(item[1])
    SCRATCH.mkdir(parents=True, exist_ok=True)
    lake = Path(tempfile.mkdtemp(prefix="bench-storage-", dir=SCRATCH))
    try:
        stats, _ = replay_to_lake(capture, exchange, lake)
        per_dataset: Counter[str] = Counter()
        for f in lake.rglob("*.parquet"):
            per_dataset[f.relative_to(lake).parts[0]] += f.stat().st_size
    finally:
        shutil.rmtree(lake, ignore_errors=True)
    parquet = sum(per_dataset.values())
    events = sum(stats.rows.values())
    return {
        "exchange": exchange,
        "frames": frames,
        "events": events,
        "raw_bytes": raw,
        "gzip_bytes": capture.stat().st_size,
        "parquet_bytes": parquet,
        "parquet_bytes_per_event": parquet / events,
        "raw_bytes_per_frame": raw / frames,
        "raw_over_parquet": raw / parquet,
        "gzip_over_parquet": capture.stat().st_size / parquet,
        "parquet_bytes_by_dataset": dict(per_dataset),
        "events_by_dataset": dict(stats.rows),
        "target_raw_over_parquet": 10.0,
    }


def main(argv: list[str] | None = None) -> int:
    """Command line entry point."""
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--quick", action="store_true", help="accepted for symmetry: this benchmark is quick")
    p.add_argument("--no-save", action="store_true", help="print JSON only, do not append to RESULTS.md")
    args = p.parse_args(argv)
    for exchange, capture in RECORDINGS.items():
        publish(NAME, TITLE, COLUMNS, measure(exchange, capture), save=not args.no_save)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
