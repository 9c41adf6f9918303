"""Kraken Futures v1: the shared recording (2021-07-22: book snapshots and deltas, trade snapshots and
trades, ``ticker_lite``), documented ticker and trade messages for what it lacks (``ticker`` with sizes,
funding, mark and open interest; liquidation trades), and the per-product book sequence rule.

What differs from today's API: the recorder subscribed ``ticker_lite`` (best prices, no sizes, no time);
ticktape subscribes ``ticker``, which adds the sizes, the time and the derivatives fields. Linear
``PF_`` perpetuals did not exist yet; the recording has inverse ``PI_`` perpetuals and ``FI_`` futures.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import orjson
import pytest

from collectors.base import Subscription
from collectors.book import L2Book
from collectors.capture import read_capture, replay_capture
from collectors.registry import get_dialect
from collectors.venues.kraken_futures import KrakenFuturesNormaliser
from schemas import RecordBuffer
from tests.collectors.bad_input import events_of

SAMPLE = "kraken-futures/kraken-futures_cryptofeed.capture.gz"
MS = 1_000_000


@pytest.fixture(scope="module")
def frames(samples: Path) -> list[tuple[int, dict[str, Any]]]:
    return [(i[0], orjson.loads(i[1])) for i in read_capture(samples / SAMPLE) if isinstance(i, tuple)]


@pytest.fixture(scope="module")
def records(samples: Path) -> RecordBuffer:
    return replay_capture(KrakenFuturesNormaliser(), samples / SAMPLE)


def test_trades_equal_the_messages(frames, records) -> None:
    expected = []
    seen: set[str] = set()
    for ts, f in frames:
        if f.get("feed") == "trade_snapshot":
            trades = list(reversed(f["trades"]))  # sent newest first; kept oldest first
        elif f.get("feed") == "trade" and "event" not in f:
            trades = [f]
        else:
            continue
        for t in trades:
            if t["uid"] not in seen:
                seen.add(t["uid"])
                expected.append((ts, t))
    assert len(expected) == 1003 and sum(1 for _, f in frames if f.get("feed") == "trade" and "uid" in f) == 3
    assert len(records.trades) == len(expected)
    for (ts, t), row in zip(expected, records.trades, strict=True):
        exchange, symbol, ts_ex, ts_recv, trade_id, price, size, side, _flags = row
        assert (exchange, symbol, ts_recv) == ("kraken-futures", t["product_id"], ts)
        assert trade_id == t["uid"] and ts_ex == t["time"] * MS
        assert (price, size, side) == (t["price"], t["qty"], t["side"])  # side is the taker's
    assert records.liquidations == []  # every recorded trade is a "fill"


def test_book_sequence_has_no_false_gap(frames, records) -> None:
    books = [f for _, f in frames if f.get("feed") == "book" and "event" not in f]
    assert len(books) == 7014
    assert records.feed_events == []
    assert {r[9] for r in records.book} == {0}
    assert [r[8] for r in records.book if not r[7]] == [f["seq"] for f in books]
    assert all(
        r[2] == f["timestamp"] * MS for r, f in zip((r for r in records.book if not r[7]), books, strict=True)
    )


def test_book_tops_equal_ticker_lite_at_equal_time(records) -> None:
    """Walking book and bbo rows in receive order, every ``ticker_lite`` bid/ask equals the book's top."""
    rows = sorted(
        [(r[3], 0, i, r) for i, r in enumerate(records.book)]
        + [(r[3], 1, i, r) for i, r in enumerate(records.bbo)]
    )
    books: dict[str, L2Book] = {}
    snapshot_of: tuple[str, int] | None = None
    compared = 0
    for _, kind, _, row in rows:
        book = books.setdefault(row[1], L2Book())
        if kind == 0:
            if row[7] and snapshot_of != (row[1], row[3]):
                book.clear()
            snapshot_of = (row[1], row[3]) if row[7] else None
            book.set_level(row[4], row[5], row[6])
            continue
        bid, ask = book.best_bid(), book.best_ask()
        assert (bid[0] if bid else None, ask[0] if ask else None) == (row[4], row[6]), row
        assert row[5] is None and row[7] is None  # ticker_lite carries no sizes
        compared += 1
    assert compared == 107


# -- documented messages --------------------------------------------------------------------------------

# Shaped as Kraken documents the ticker; index, premium, last, change, the funding fields, openInterest,
# markPrice and next_funding_rate_time are the values of its example (PI_XBTUSD); time, bid, ask, sizes
# and volume were filled in (the example shows placeholders there).
TICKER = {
    "time": 1612270825253,
    "feed": "ticker",
    "product_id": "PI_XBTUSD",
    "bid": 34832.5,
    "ask": 34847.5,
    "bid_size": 42864,
    "ask_size": 2300,
    "volume": 262306237,
    "dtm": 0,
    "leverage": "50x",
    "index": 34803.45,
    "premium": 0.1,
    "last": 34852,
    "change": 2.995109121267192,
    "funding_rate": 3.891007752e-9,
    "funding_rate_prediction": 4.2233756e-9,
    "suspended": False,
    "tag": "perpetual",
    "pair": "XBT:USD",
    "openInterest": 107706940,
    "markPrice": 34844.25,
    "maturityTime": 0,
    "relative_funding_rate": 0.000135046879166667,
    "relative_funding_rate_prediction": 0.000146960125,
    "next_funding_rate_time": 1612281600000,
}


def _feed(norm: KrakenFuturesNormaliser, *frames: Any) -> RecordBuffer:
    out = RecordBuffer()
    for i, frame in enumerate(frames):
        norm.on_frame(
            1_700_000_000_000_000_000 + i, frame if isinstance(frame, str) else orjson.dumps(frame), out
        )
    return out


def test_ticker_gives_bbo_funding_mark_and_open_interest() -> None:
    out = _feed(KrakenFuturesNormaliser(), TICKER)
    ts = 1612270825253 * MS
    recv = 1_700_000_000_000_000_000
    assert [r[:9] for r in out.bbo] == [
        ("kraken-futures", "PI_XBTUSD", ts, recv, 34832.5, 42864.0, 34847.5, 2300.0, None)
    ]
    assert [r[:7] for r in out.funding] == [
        ("kraken-futures", "PI_XBTUSD", ts, recv, 0.000135046879166667, 0.000146960125, 1612281600000 * MS)
    ]
    assert [r[:6] for r in out.mark_price] == [("kraken-futures", "PI_XBTUSD", ts, recv, 34844.25, 34803.45)]
    assert [r[:5] for r in out.open_interest] == [("kraken-futures", "PI_XBTUSD", ts, recv, 107706940.0)]
    # a zero rate is left out of the message: it is 0, not missing
    quiet = {k: v for k, v in TICKER.items() if not k.startswith("relative_funding")}
    out = _feed(KrakenFuturesNormaliser(), {**quiet, "product_id": "PF_XBTUSD"})
    assert [r[1] for r in out.funding] == ["BTC-USD-PERP"] and out.funding[0][4:6] == (0.0, 0.0)
    # a dated future has no funding
    out = _feed(KrakenFuturesNormaliser(), {**TICKER, "product_id": "FI_XBTUSD_210924", "tag": "quarter"})
    assert out.funding == [] and len(out.mark_price) == 1


def test_liquidation_trades_are_also_liquidations() -> None:
    trade = {"feed": "trade", "product_id": "PF_XBTUSD", "uid": "8a2be12f-7a3f-4f8f-a111-d1b5200ab1d0",
             "side": "sell", "type": "liquidation", "seq": 421135, "time": 1790360004381, "qty": 0.0002,
             "price": 83994.0}  # fmt: skip
    out = _feed(KrakenFuturesNormaliser(), trade, trade)
    assert [r[1:2] + r[4:8] for r in out.trades] == [("BTC-USD-PERP", trade["uid"], 83994.0, 0.0002, "sell")]
    assert [r[1:3] + r[4:8] for r in out.liquidations] == [
        ("BTC-USD-PERP", 1790360004381 * MS, trade["uid"], "sell", 83994.0, 0.0002)
    ]


def test_older_messages_without_uid_or_time() -> None:
    """Kraken's older trade example has no ``uid``: its per-product ``seq`` identifies it."""
    trade = {"feed": "trade", "product_id": "FI_XBTUSD_190426", "side": "buy", "type": "fill", "seq": 5271,
             "time": 1554076802518, "qty": 3.0, "price": 4088.5}  # fmt: skip
    out = _feed(KrakenFuturesNormaliser(), trade, trade)
    assert [r[1:3] + r[4:8] for r in out.trades] == [
        ("FI_XBTUSD_190426", 1554076802518 * MS, "seq:5271", 4088.5, 3.0, "buy")
    ]
    assert events_of(out) == []


def _snapshot(seq: int) -> dict[str, Any]:
    return {"feed": "book_snapshot", "product_id": "PF_XBTUSD", "timestamp": 1700000000000, "seq": seq,
            "tickSize": None, "bids": [{"price": 100.0, "qty": 2.0}], "asks": [{"price": 101.0, "qty": 1.0}]}  # fmt: skip


def _delta(seq: int, price: float = 100.0, qty: float = 3.0, side: str = "buy") -> dict[str, Any]:
    return {"feed": "book", "product_id": "PF_XBTUSD", "side": side, "seq": seq, "price": price, "qty": qty,
            "timestamp": 1700000000001}  # fmt: skip


def test_book_seq_gap_resubscribes_and_a_step_back_is_an_error() -> None:
    norm = KrakenFuturesNormaliser()
    out = _feed(norm, _snapshot(10), _delta(11), _delta(11), _delta(13))
    assert [e[4] for e in out.feed_events] == ["parse_error", "gap"]
    assert norm.resubscribe_requests == {"PF_XBTUSD"}
    frames = get_dialect("kraken-futures").resubscribe_frames(["PF_XBTUSD"], Subscription(("PF_XBTUSD",)))
    assert [orjson.loads(f)["event"] for f in frames] == ["unsubscribe", "subscribe"]
    out = _feed(norm, _delta(14), _snapshot(20), _delta(21, 101.0, 0.0, "sell"))
    assert [e[4] for e in out.feed_events] == ["resync"]
    assert norm.resubscribe_requests == set()
    book = norm.symbols.book("PF_XBTUSD").book
    assert book.best_bid() == (100.0, 2.0) and book.best_ask() is None


def test_events_and_symbols() -> None:
    out = _feed(
        KrakenFuturesNormaliser(), '{"event":"alert","message":"Bad request"}', '{"event":"info","version":1}'
    )
    assert [e[4] for e in out.feed_events] == ["venue_error"]
    dialect = get_dialect("kraken-futures")
    for native, symbol in (("PF_XBTUSD", "BTC-USD-PERP"), ("PF_ETHUSD", "ETH-USD-PERP"), ("PI_XBTUSD", "PI_XBTUSD"),
                           ("FI_XBTUSD_210924", "FI_XBTUSD_210924")):  # fmt: skip
        assert dialect.normalise_symbol(native) == symbol
        assert dialect.native_symbol(symbol) == native
    frames = [
        orjson.loads(f) for f in dialect.subscribe_frames(Subscription(("PF_XBTUSD",), dialect.channels))
    ]
    assert [f["feed"] for f in frames] == ["trade", "book", "ticker", "heartbeat"]
