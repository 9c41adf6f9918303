"""The Avro codec, pure Python against compiled, per dataset: µs per row, in one process, interleaved.

Run: ``.venv/bin/python -m bench.codec [--rounds N] [--no-save]``. Rows: the real recordings where
they hold the dataset (binance: trades, book, bbo; deribit: mark_price, open_interest; bitget:
feed_events), repeated to at least ``--rows``; the other datasets repeat an example row
(``EXAMPLES``). Both sides run the same rows in alternation, best of ``--rounds`` each.

- ``encode``: what ``KafkaPublisher.publish`` does with one dataset's rows: group by key, encode,
  pack into values (pure: ``group_by_key`` + the generated encoder per row; compiled:
  ``codec.encode_keyed``).
- ``decode``: what the Kafka consumer does with those values (16 KiB values: a few hundred book
  rows each): decode, drop retries, build the Arrow table of each run (pure: ``decode_message`` to
  row tuples + ``rows_to_arrow``; compiled: ``decode_columns`` straight to Arrow buffers).
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable
from typing import Any

from bench.common import SAMPLES, emit, record
from collectors.capture import replay_capture
from collectors.registry import get_dialect
from schemas import DATASETS, rows_to_arrow
from streaming import codec
from streaming.base import PublisherStats
from streaming.kafka import _encode_parts, group_by_key

NAME = "codec"
TITLE = "Avro codec, pure Python against compiled (`bench/codec.py`)"
COLUMNS = (
    "dataset",
    "source",
    "rows",
    "encode_pure_us",
    "encode_native_us",
    "encode_speedup",
    "decode_pure_us",
    "decode_native_us",
    "decode_speedup",
)
VALUE_BYTES = 16 * 1024
RECORDED = {
    "trades": ("binance", "ethusdt_20240808.capture.gz"),
    "book": ("binance", "ethusdt_20240808.capture.gz"),
    "bbo": ("binance", "ethusdt_20240808.capture.gz"),
    "mark_price": ("deribit", "deribit_cryptofeed.capture.gz"),
    "open_interest": ("deribit", "deribit_cryptofeed.capture.gz"),
    "feed_events": ("bitget", "bitget_cryptofeed_2.capture.gz"),
}


#: One row of each dataset that no recording here holds (the test examples of tests/streaming).
EXAMPLES: dict[str, tuple[Any, ...]] = {
    "quality": ("binance", None, "all", 2, 1, 2, 300, 0.01, None, -1.27, 0.5, 0.1, 0.0, 0, 0, 97.5, "OK"),
    "instruments": (
        "deribit", "BTC-27DEC26-100000-C", "BTC-27DEC26-100000-C", "option", "BTC", "USD", "BTC",
        0.0005, 0.1, 1.0, 1798358400000000000, 100000.0, "call", "trading", 1723075200124567000,
    ),
    "funding": ("binance-futures", "BTC-USDT-PERP", 1, 2, 0.0001, None, 1723104000000000000, 8),
    "liquidations": ("binance-futures", "ETH-USDT-PERP", 1, 2, None, "sell", 2600.5, 1.25, 0),
    "raw": (
        "binance", "binance-0@1764892800000000000", 3, 1723075200124567000, 1723075200224567000, 2, 256,
        "zstd", "0.1.0+ab12", bytes(range(256)),
    ),
}  # fmt: skip


def dataset_rows(dataset: str, at_least: int) -> tuple[list[tuple[Any, ...]], str]:
    """Rows of ``dataset`` and where they come from."""
    if dataset in RECORDED:
        exchange, name = RECORDED[dataset]
        rows = replay_capture(get_dialect(exchange).new_normaliser(), SAMPLES / exchange / name).rows(dataset)
        source = f"{exchange} recording"
    else:
        rows = [EXAMPLES[dataset]]
        source = "example row"
    return (rows * (at_least // len(rows) + 1))[: max(at_least, len(rows))], source


def encode_pure(dataset: str, rows: list[tuple[Any, ...]]) -> list[bytes]:
    enc = codec.python_encoder(dataset)
    stats = PublisherStats(extra={"encode_errors": 0})
    values: list[bytes] = []
    for group in group_by_key(rows).values():
        values.extend(v for v, _ in _encode_parts(dataset, enc, group, VALUE_BYTES, stats, []))
    return values


def encode_native(dataset: str, rows: list[tuple[Any, ...]]) -> list[bytes]:
    parts = codec.encode_keyed(dataset, rows, VALUE_BYTES)
    assert parts is not None
    return [v for _, v, _, _ in parts]


def _error(i: int, exc: codec.CodecError) -> tuple[Any, ...]:
    raise AssertionError(f"value {i} does not decode: {exc}")


def decode(consume: Callable[..., Any], values: list[bytes]) -> int:
    # distinct keys: the repeated sample gives equal values, which are not producer retries here
    messages = [(i, b"k%d" % i, v) for i, v in enumerate(values)]
    batches, _ = consume("bench.0", messages, codec.RecentMessages(), _error)
    return sum(b.table.num_rows for b in batches)


def best(fn: Callable[[], Any], rounds: int) -> float:
    times = []
    for _ in range(rounds):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return min(times)


def measure(dataset: str, at_least: int, rounds: int) -> dict[str, Any]:
    native = codec._native()
    if native is None:
        raise SystemExit(f"the compiled codec is needed: {codec.native_status()}")
    rows, source = dataset_rows(dataset, at_least)
    values = encode_native(dataset, rows)
    assert values == encode_pure(dataset, rows)
    rows_to_arrow(dataset, rows[:10])  # pyarrow's start-up is not measured
    native_consume = codec._consume_native
    pure_consume = codec._consume_python
    assert decode(native_consume, values) == decode(pure_consume, values) == len(rows)
    times: dict[str, list[float]] = {k: [] for k in ("ep", "en", "dp", "dn")}
    for _ in range(rounds):  # alternate: the neighbours' load falls on both sides
        times["ep"].append(best(lambda: encode_pure(dataset, rows), 1))
        times["en"].append(best(lambda: encode_native(dataset, rows), 1))
        times["dp"].append(best(lambda: decode(pure_consume, values), 1))
        times["dn"].append(best(lambda: decode(native_consume, values), 1))
    us = {k: min(v) / len(rows) * 1e6 for k, v in times.items()}
    return {
        "dataset": dataset,
        "source": source,
        "rows": len(rows),
        "values": len(values),
        "encode_pure_us": us["ep"],
        "encode_native_us": us["en"],
        "encode_speedup": us["ep"] / us["en"],
        "decode_pure_us": us["dp"],
        "decode_native_us": us["dn"],
        "decode_speedup": us["dp"] / us["dn"],
    }


def main(argv: list[str] | None = None) -> int:
    """Command line entry point."""
    p = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    p.add_argument("--rows", type=int, default=100_000, help="rows per dataset, at least (100,000)")
    p.add_argument("--rounds", type=int, default=5, help="alternating rounds, best of each (5)")
    p.add_argument("--no-save", action="store_true", help="print JSON only, do not append to RESULTS.md")
    p.add_argument("datasets", nargs="*", default=list(DATASETS))
    args = p.parse_args(argv)
    for dataset in args.datasets:
        result = measure(dataset, args.rows, args.rounds)
        emit(result)
        if not args.no_save:
            record(NAME, TITLE, COLUMNS, result)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
