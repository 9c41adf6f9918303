"""``ArbitrationOptions.min_keys``: the newest keys of a quiet symbol outlive the key window (a venue
that sends recent trades again to a connection that subscribes repeats them long after); 0 (the
sink's default) leaves the window alone in charge."""

from __future__ import annotations

from typing import Any

import pyarrow as pa

from schemas import arrow_to_rows, rows_to_arrow
from storage.arbitrate import ArbitrationOptions, StreamArbiter

S = 1_000_000_000


def _trade(replica: str, ts: int, trade_id: str) -> tuple[Any, ...]:
    return ("bitget", "BTC-USDT", ts, ts, trade_id, 100.0, 1.0, "buy", 0, replica)


ROWS = [
    _trade("a", 0, "1"),
    _trade("a", 1 * S, "2"),
    _trade("a", 2 * S, "3"),
    _trade("a", 500 * S, "4"),  # a quiet symbol: the window (120 s) forgets 1, 2 and 3 here
    # b subscribes later and first receives the symbol's recent trades again (3, 4), then a new one
    _trade("b", 600 * S, "3"),
    _trade("b", 600 * S, "4"),
    _trade("b", 601 * S, "5"),
]


def _kept(options: ArbitrationOptions) -> list[tuple[str, str, str]]:
    arbiter = StreamArbiter(options)
    out = arbiter.process({"trades": pa.Table.from_batches([rows_to_arrow("trades", ROWS)])})
    return [(r[1], r[4], r[9]) for r in arrow_to_rows(out["trades"])]


def test_the_newest_keys_outlive_the_window() -> None:
    first = [("BTC-USDT", "1", "a"), ("BTC-USDT", "2", "a"), ("BTC-USDT", "3", "a"), ("BTC-USDT", "4", "a")]
    # the window alone forgot trade 3: b's copy is taken again
    assert _kept(ArbitrationOptions(key_window_s=120.0)) == [
        *first,
        ("BTC-USDT", "3", "b"),
        ("BTC-USDT", "5", "b"),
    ]
    # the newest two are kept whatever their age: 3 and 4 once, 5 new
    assert _kept(ArbitrationOptions(key_window_s=120.0, min_keys=2)) == [*first, ("BTC-USDT", "5", "b")]
    # max_keys still bounds them (one key: b's 3 is new, and then its 4 too)
    assert _kept(ArbitrationOptions(key_window_s=120.0, min_keys=2, max_keys=1)) == [
        *first,
        ("BTC-USDT", "3", "b"),
        ("BTC-USDT", "4", "b"),
        ("BTC-USDT", "5", "b"),
    ]
