"""``make bench``: runs the benchmarks, each printing JSON and appending its figures to bench/RESULTS.md.

Usage: ``python -m bench.run [--quick] [--no-save] [NAME ...]``, e.g. ``python -m bench.run replay``.
Without names every benchmark runs, in the order below, each in its own process (a benchmark's
imports, caches and garbage never colour the next one's figures). The default sizes keep the whole
run under about 15 minutes on the 2-core development machine; ``--quick`` runs each at a fraction
of that. The soak runs 5 minutes here; the issue's 30-minute soak is
``python -m bench.soak --minutes 30``.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import time
from dataclasses import dataclass

from bench.common import emit


@dataclass(frozen=True)
class Benchmark:
    """One benchmark module and how it is run."""

    module: str
    what: str
    quick_args: tuple[str, ...] = ("--quick",)
    args: tuple[str, ...] = ()


BENCHMARKS: dict[str, Benchmark] = {
    "replay": Benchmark(
        "bench.replay", "ticktape replay, whole process, >= 500k real Binance frames, vs orjson.loads"
    ),
    "vs_cryptofeed": Benchmark(
        "bench.vs_cryptofeed",
        "issue 18 in one run: orjson, replay, normalise-to-Arrow, cryptofeed's Binance handler",
    ),
    "normalise": Benchmark("bench.normalise", "normalise-only frames/s and records/s, every exchange id"),
    "book_engine": Benchmark(
        "bench.book_engine", "compiled vs pure-Python book engine: normalise and whole replay, side by side"
    ),
    "storage": Benchmark("bench.storage", "Parquet bytes per event vs raw frames and gzip'd capture"),
    "vwap": Benchmark("bench.vwap", "DuckDB per-minute VWAP per symbol over 10 M synthetic trades"),
    "book_at": Benchmark(
        "bench.book_at", "ticktape book at an instant over a day of book rows", ("--rows", "5000000")
    ),
    "local_sink": Benchmark("bench.local_sink", "local transport and sink rows/s", ("--frames", "50000")),
    "raw": Benchmark(
        "bench.raw",
        "raw archive: bytes per event, collector us/frame, sink CPU with and without",
        ("--frames", "50000"),
    ),
    "replicas": Benchmark(
        "bench.replicas",
        "replicas: sink CPU per event with and without arbitration, bytes of the replica column",
        ("--frames", "20000"),
    ),
    "e2e": Benchmark(
        "bench.e2e",
        "simulator -> collect -> transport (local, Kafka) -> sink -> lake, delay and rate",
        args=("--seconds", "20"),
    ),
    "collector_loop": Benchmark(
        "bench.collector_loop",
        "recorded Binance frames -> collect -> Kafka -> lake: collector events per CPU s, ack p99",
        ("--seconds", "5"),
    ),
    "codec": Benchmark(
        "bench.codec",
        "Avro codec per dataset: pure Python vs compiled, encode and decode us/row",
        ("--rows", "20000"),
    ),
    "rows_arrow": Benchmark(
        "bench.rows_arrow",
        "rows to Arrow and the lake sort on a replay's units: reference vs compiled, us/row",
    ),
    "kafka_e2e": Benchmark(
        "bench.kafka_e2e",
        "collector -> Kafka (tansu) -> lake, rows/s and receive-to-ack delay",
        ("--frames", "50000", "--seconds", "5"),
    ),
    "soak": Benchmark("bench.soak", "collector and sink RSS under 20k messages/s with faults"),
}


def main(argv: list[str] | None = None) -> int:
    """Runs the selected benchmarks; exit 1 when any of them failed (the others still run)."""
    p = argparse.ArgumentParser(description="Run ticktape's benchmarks (figures go to bench/RESULTS.md).")
    p.add_argument(
        "names", nargs="*", metavar="NAME", help=f"benchmarks to run (default all: {', '.join(BENCHMARKS)})"
    )
    p.add_argument("--quick", action="store_true", help="smaller inputs and shorter runs")
    p.add_argument("--no-save", action="store_true", help="print JSON only, do not append to RESULTS.md")
    p.add_argument("--list", action="store_true", help="list the benchmarks and exit")
    args = p.parse_args(argv)
    if args.list:
        for name, b in BENCHMARKS.items():
            print(f"{name:<12} {b.what}")
        return 0
    unknown = [n for n in args.names if n not in BENCHMARKS]
    if unknown:
        p.error(f"unknown benchmark(s) {', '.join(unknown)}; known: {', '.join(BENCHMARKS)}")
    failed = []
    for name in args.names or list(BENCHMARKS):
        b = BENCHMARKS[name]
        cmd = [sys.executable, "-m", b.module, *(b.quick_args if args.quick else b.args)]
        if args.no_save:
            cmd.append("--no-save")
        print(f"# {name}: {b.what}", file=sys.stderr, flush=True)
        start = time.perf_counter()
        code = subprocess.call(cmd)
        elapsed = time.perf_counter() - start
        if code != 0:
            failed.append(name)
            emit({"bench": name, "error": f"exit code {code}", "seconds": round(elapsed, 1)})
        print(f"# {name}: {'failed' if code else 'done'} in {elapsed:.0f} s", file=sys.stderr, flush=True)
    if failed:
        print(f"failed: {', '.join(failed)}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
