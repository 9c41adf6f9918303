"""Hyperliquid: the shared recording (whole books per block, trades), documented bbo and asset-context
messages, and what is particular to a venue whose every book message is the whole book."""

from __future__ import annotations

from pathlib import Path

import orjson
import pytest

from collectors.base import Subscription
from collectors.capture import read_capture, replay_capture
from collectors.registry import get_dialect
from collectors.venues.hyperliquid import HyperliquidNormaliser
from schemas import Flags, RecordBuffer
from tests.collectors.book_replay import tops_by_seq

SAMPLE = "hyperliquid/btc_20250126.capture.gz"
MS = 1_000_000


@pytest.fixture(scope="module")
def frames(samples: Path) -> list[tuple[int, dict]]:
    return [(i[0], orjson.loads(i[1])) for i in read_capture(samples / SAMPLE) if isinstance(i, tuple)]


@pytest.fixture(scope="module")
def records(samples: Path) -> RecordBuffer:
    return replay_capture(HyperliquidNormaliser(), samples / SAMPLE)


def test_trades_equal_the_messages(frames, records) -> None:
    expected = [(ts, t) for ts, f in frames if f["channel"] == "trades" for t in f["data"]]
    assert len(expected) > 0
    assert len(records.trades) == len(expected)
    for (ts, t), row in zip(expected, records.trades, strict=True):
        exchange, symbol, ts_ex, ts_recv, trade_id, price, size, side, _flags = row
        assert (exchange, symbol) == ("hyperliquid", "BTC-USDC-PERP")
        assert ts_recv == ts and ts_ex == t["time"] * MS
        assert trade_id == str(t["tid"])
        assert (price, size) == (float(t["px"]), float(t["sz"]))
        assert side == {"B": "buy", "A": "sell"}[t["side"]]


def test_every_book_message_is_rebuilt_exactly_from_the_rows(frames, records) -> None:
    books = [(ts, f["data"]) for ts, f in frames if f["channel"] == "l2Book"]
    assert len(books) > 40
    # one snapshot (the first message), then changes only: no resync, one epoch
    assert records.feed_events == []
    assert {r[9] for r in records.book} == {0}
    assert all(r[7] for r in records.book if r[3] == books[0][0])
    assert not any(r[7] for r in records.book if r[3] != books[0][0])
    # replaying the rows up to each message's receive time gives exactly that message's book
    by_recv: dict[int, list[tuple]] = {}
    for row in records.book:
        by_recv.setdefault(row[3], []).append(row)
    held: dict[str, dict[float, float]] = {"bid": {}, "ask": {}}
    for ts, data in books:
        for row in by_recv.get(ts, []):
            side, price, size = row[4], row[5], row[6]
            if size == 0.0:
                held[side].pop(price, None)
            else:
                held[side][price] = size
        want_bids = {float(lv["px"]): float(lv["sz"]) for lv in data["levels"][0]}
        want_asks = {float(lv["px"]): float(lv["sz"]) for lv in data["levels"][1]}
        assert held["bid"] == want_bids and held["ask"] == want_asks
        assert all(r[2] == data["time"] * MS for r in by_recv.get(ts, []))


def test_tops_follow_the_messages(frames, records) -> None:
    tops = tops_by_seq(records.book)
    assert tops  # seq is null for this venue: one key per symbol holds the final top
    last = [f["data"] for _, f in frames if f["channel"] == "l2Book"][-1]
    (bid, _), (ask, _) = tops[("BTC-USDC-PERP", None)]
    assert (bid, ask) == (float(last["levels"][0][0]["px"]), float(last["levels"][1][0]["px"]))


# Shaped as Hyperliquid documents the ``bbo`` and ``activeAssetCtx`` feeds.
BBO = {
    "channel": "bbo",
    "data": {
        "coin": "ETH",
        "time": 1765000000123,
        "bbo": [{"px": "3012.4", "sz": "12.5", "n": 3}, {"px": "3012.5", "sz": "4.0", "n": 1}],
    },
}
CTX = {
    "channel": "activeAssetCtx",
    "data": {
        "coin": "ETH",
        "ctx": {
            "dayNtlVlm": "1169046.29406",
            "prevDayPx": "3015.1",
            "markPx": "3012.45",
            "midPx": "3012.45",
            "funding": "-0.0000135",
            "openInterest": "688.11",
            "oraclePx": "3011.9",
            "premium": "0.00031774",
            "impactPxs": ["3012.4", "3012.5"],
        },
    },
}


def test_bbo_and_asset_context() -> None:
    n = HyperliquidNormaliser()
    out = RecordBuffer()
    ts = 1765000000200 * MS
    n.on_frame(ts, orjson.dumps(BBO), out)
    n.on_frame(ts + 1, orjson.dumps(CTX), out)
    assert out.feed_events == []
    assert out.bbo == [
        ("hyperliquid", "ETH-USDC-PERP", 1765000000123 * MS, ts, 3012.4, 12.5, 3012.5, 4.0, None, 0)
    ]
    assert out.funding == [("hyperliquid", "ETH-USDC-PERP", None, ts + 1, -0.0000135, None, None, 0)]
    assert out.mark_price == [("hyperliquid", "ETH-USDC-PERP", None, ts + 1, 3012.45, 3011.9, 0)]
    assert out.open_interest == [("hyperliquid", "ETH-USDC-PERP", None, ts + 1, 688.11, None, 0)]


def test_one_sided_bbo_is_null_on_that_side() -> None:
    n = HyperliquidNormaliser()
    out = RecordBuffer()
    msg = {"channel": "bbo", "data": {**BBO["data"], "bbo": [None, {"px": "3012.5", "sz": "4.0", "n": 1}]}}
    n.on_frame(1765000000200 * MS, orjson.dumps(msg), out)
    assert out.bbo[0][4:8] == (None, None, 3012.5, 4.0)


def test_repeated_trades_are_dropped_and_spot_or_builder_coins_rejected() -> None:
    n = HyperliquidNormaliser()
    out = RecordBuffer()
    trade = {"coin": "BTC", "side": "A", "px": "97000.0", "sz": "0.5", "hash": "0x0", "time": 1765000000000}
    frame = orjson.dumps({"channel": "trades", "data": [{**trade, "tid": 7}]})
    n.on_frame(1765000000100 * MS, frame, out)
    n.on_frame(1765000000200 * MS, frame, out)  # sent again after a resubscription
    assert [r[4] for r in out.trades] == ["7"] and out.trades[0][7] == "sell"
    assert [e[4] for e in out.feed_events] == ["duplicate"]
    for coin in ("@107", "xyz:SP500", "../x"):
        n.on_frame(1, orjson.dumps({"channel": "trades", "data": [{**trade, "coin": coin, "tid": 8}]}), out)
    assert [e[4] for e in out.feed_events][1:] == ["parse_error"] * 3
    assert len(out.trades) == 1


def test_subscriptions_share_one_context_feed_and_flags_outdated() -> None:
    dialect = get_dialect("hyperliquid")
    sub = Subscription(("BTC",), ("trades", "funding", "mark", "open_interest"))
    frames = [orjson.loads(f) for f in dialect.subscribe_frames(sub)]
    assert [f["subscription"]["type"] for f in frames] == ["trades", "activeAssetCtx"]
    assert (
        dialect.native_symbol("ETH-USDC-PERP") == "ETH" and dialect.normalise_symbol("ETH") == "ETH-USDC-PERP"
    )
    n = HyperliquidNormaliser()
    out = RecordBuffer()
    n.on_frame((1765000000123 + 3_000) * MS, orjson.dumps(BBO), out)  # 3 s old
    assert out.bbo[0][-1] & Flags.OUTDATED
