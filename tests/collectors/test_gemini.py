"""Gemini market data v2: the shared recording (2026, current API), the first whole book of each symbol,
replayed trades, and what the feed lacks (no book time, no sequence, no bbo stream)."""

from __future__ import annotations

from pathlib import Path

import orjson
import pytest

from collectors.capture import read_capture, replay_capture
from collectors.registry import get_dialect
from collectors.venues.gemini import GeminiNormaliser
from schemas import Flags, RecordBuffer
from tests.collectors.bad_input import assert_parse_error_then_flowing

SAMPLE = "gemini/gemini_cryptofeed.capture.gz"
MS = 1_000_000


@pytest.fixture(scope="module")
def messages(samples: Path) -> list[tuple[int, dict]]:
    return [(i[0], orjson.loads(i[1])) for i in read_capture(samples / SAMPLE) if isinstance(i, tuple)]


@pytest.fixture(scope="module")
def records(samples: Path) -> RecordBuffer:
    return replay_capture(GeminiNormaliser(), samples / SAMPLE)


def test_trades_equal_the_messages(messages, records) -> None:
    expected: list[tuple[int, dict, bool]] = []
    seen: set[tuple[str, int]] = set()
    for ts, m in messages:
        batch = [(t, True) for t in m.get("trades", [])] if m["type"] == "l2_updates" else []
        if m["type"] == "trade":
            batch = [(m, False)]
        for t, replayed in batch:
            if (t["symbol"], t["tid"]) not in seen:
                seen.add((t["symbol"], t["tid"]))
                expected.append((ts, t, replayed))
    assert len(expected) > 500
    assert len(records.trades) == len(expected)
    for (ts, t, replayed), row in zip(expected, records.trades, strict=True):
        exchange, symbol, ts_ex, ts_recv, trade_id, price, size, side, flags = row
        assert exchange == "gemini" and symbol == get_dialect("gemini").normalise_symbol(t["symbol"])
        assert ts_recv == ts and ts_ex == t["timestamp"] * MS
        assert trade_id == str(t["tid"])
        assert (price, size, side) == (float(t["price"]), float(t["quantity"]), t["side"])
        assert bool(flags & Flags.SNAPSHOT) == replayed


def test_first_message_of_each_symbol_is_its_book(messages, records) -> None:
    firsts: dict[str, int] = {}
    for ts, m in messages:
        if m["type"] == "l2_updates":
            firsts.setdefault(m["symbol"], ts)
    assert len(firsts) == 10
    names = {get_dialect("gemini").normalise_symbol(s): ts for s, ts in firsts.items()}
    assert {"BTC-USD", "BTC-USDC-PERP", "ETH-USDT", "BTC-GBP"} <= set(names)
    for row in records.book:
        assert row[7] == (row[3] == names[row[1]])  # snapshot rows are exactly the first message's
        assert row[2] is None and row[8] is None and row[9] == 0  # no book time, no sequence, one epoch
    parse_errors = [e for e in records.feed_events if e[4] == "parse_error"]
    assert parse_errors == []
    # a whole-book first message lists levels of size > 0 only: its rows are the book
    btc = [r for r in records.book if r[1] == "BTC-USD" and r[7]]
    assert len(btc) > 20 and all(r[6] > 0 for r in btc)


def test_crossed_or_empty_books_are_only_what_the_feed_sent(records) -> None:
    # Rebuild every book from the rows: best bid stays below best ask (the feed is consistent).
    books: dict[str, dict[str, dict[float, float]]] = {}
    for row in records.book:
        sides = books.setdefault(row[1], {"bid": {}, "ask": {}})
        if row[6] == 0.0:
            sides[row[4]].pop(row[5], None)
        else:
            sides[row[4]][row[5]] = row[6]
    for symbol, sides in books.items():
        assert sides["bid"] and sides["ask"], symbol
        assert max(sides["bid"]) < min(sides["ask"]), symbol
    assert [e for e in records.feed_events if e[4] == "crossed_book"] == []


def test_replayed_trades_are_not_stored_twice_across_reconnects() -> None:
    n = GeminiNormaliser()
    out = RecordBuffer()
    trade = {
        "type": "trade",
        "symbol": "BTCUSD",
        "event_id": 1,
        "tid": 99,
        "price": "97000",
        "quantity": "0.1",
        "side": "sell",
        "timestamp": 1765000000000,
    }
    first = {
        "type": "l2_updates",
        "symbol": "BTCUSD",
        "changes": [["buy", "96999", "1"], ["sell", "97001", "2"]],
        "trades": [trade],
    }
    n.on_frame(1, orjson.dumps(first), out)
    n.on_disconnect(2, out)
    n.on_frame(3, orjson.dumps(first), out)  # the new connection replays the same recent trade
    assert [r[4] for r in out.trades] == ["99"] and out.trades[0][8] & Flags.SNAPSHOT
    assert [e[4] for e in out.feed_events] == ["resync", "duplicate"]
    assert {r[9] for r in out.book} == {0, 1}


def test_bad_frames_are_parse_errors() -> None:
    good = {
        "type": "trade",
        "symbol": "ETHUSD",
        "event_id": 1,
        "tid": 5,
        "price": "3000",
        "quantity": "1",
        "side": "buy",
        "timestamp": 1765000000000,
    }
    assert_parse_error_then_flowing(
        GeminiNormaliser(), orjson.dumps({**good, "side": "maker"}), orjson.dumps(good), ["5"]
    )
    out = RecordBuffer()
    n = GeminiNormaliser()
    n.on_frame(1, orjson.dumps({"type": "l2_updates", "symbol": "../etc", "changes": []}), out)
    n.on_frame(
        2, orjson.dumps({"type": "l2_updates", "symbol": "BTCUSD", "changes": [["hold", "1", "1"]]}), out
    )
    assert [e[4] for e in out.feed_events] == ["parse_error", "parse_error"] and out.book == []


def test_one_subscription_carries_book_and_trades() -> None:
    from collectors.base import Subscription

    dialect = get_dialect("gemini")
    frames = dialect.subscribe_frames(Subscription(("BTCUSD", "ETHUSD"), ("trades", "book")))
    assert [orjson.loads(f) for f in frames] == [
        {"type": "subscribe", "subscriptions": [{"name": "l2", "symbols": ["BTCUSD", "ETHUSD"]}]}
    ]
    assert "bbo" not in dialect.channels
