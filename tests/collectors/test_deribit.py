"""Deribit: the shared recording (2021: books with change_id/prev_change_id and tickers of ten options),
documented message examples for what it lacks (trades, liquidations, perpetual funding), and the
venue's rules: the change_id chain per instrument, heartbeat answers, symbols.

The recording was made on ``raw`` channels (an authorised connection); we subscribe ``100ms``, whose
messages have the same fields (aggregated, so consecutive ``change_id`` values are further apart). It
holds no trades (options, 30 seconds) and no perpetual, so trades, liquidations and funding are checked
on messages built as Deribit documents them (docs.deribit.com, subscriptions ``trades``/``ticker``,
checked 2026-12-05).
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import orjson
import pytest

from collectors.base import Subscription
from collectors.book import L2Book
from collectors.capture import read_capture, replay_capture
from collectors.registry import get_dialect
from collectors.venues.deribit import TEST_REPLY, DeribitNormaliser
from schemas import RecordBuffer
from tests.collectors.bad_input import events_of
from tests.collectors.test_contract import Live

SAMPLE = "deribit/deribit_cryptofeed.capture.gz"
MS = 1_000_000


@pytest.fixture(scope="module")
def frames(samples: Path) -> list[tuple[int, dict[str, Any]]]:
    return [(i[0], orjson.loads(i[1])) for i in read_capture(samples / SAMPLE) if isinstance(i, tuple)]


@pytest.fixture(scope="module")
def records(samples: Path) -> RecordBuffer:
    return replay_capture(DeribitNormaliser(), samples / SAMPLE)


def _notes(frames: list[tuple[int, dict[str, Any]]], kind: str) -> list[tuple[int, dict[str, Any]]]:
    return [
        (ts, f["params"]["data"])
        for ts, f in frames
        if f.get("method") == "subscription" and f["params"]["channel"].startswith(kind + ".")
    ]


def test_recording_has_no_false_gap_and_one_epoch(frames, records) -> None:
    books = _notes(frames, "book")
    assert len(books) == 46
    assert records.feed_events == []  # no gap, no parse error, nothing crossed
    assert {r[9] for r in records.book} == {0}
    # every change continued its instrument's chain
    last: dict[str, int] = {}
    for _, data in books:
        if data["type"] == "change":
            assert data["prev_change_id"] == last[data["instrument_name"]]
        last[data["instrument_name"]] = data["change_id"]
    # every level of every message became one row, with the message's change_id and timestamp
    expected = [
        (
            d["instrument_name"],
            d["timestamp"] * MS,
            side,
            float(lv[1]),
            0.0 if lv[0] == "delete" else lv[2],
            d["change_id"],
        )
        for _, d in books
        for side, levels in (("bid", d["bids"]), ("ask", d["asks"]))
        for lv in levels
    ]
    got = [(r[1], r[2], r[4], r[5], r[6], r[8]) for r in records.book]
    assert got == expected


def test_book_tops_equal_the_ticker_at_equal_timestamps(frames) -> None:
    """After each book message, the rebuilt book's best bid and ask equal the ticker of the same
    instrument stamped with the same exchange time (raw channels: both reflect the same event)."""
    normaliser = DeribitNormaliser()
    books: dict[str, L2Book] = {}
    tops: dict[tuple[str, int], tuple[Any, Any]] = {}
    for ts, frame in frames:
        out = RecordBuffer()
        normaliser.on_frame(ts, orjson.dumps(frame), out)
        if not out.book:
            continue
        book = books.setdefault(out.book[0][1], L2Book())
        if out.book[0][7]:
            book.clear()  # a snapshot
        for row in out.book:
            book.set_level(row[4], row[5], row[6])
        tops[(out.book[0][1], out.book[0][2])] = (book.best_bid(), book.best_ask())
    compared = 0
    for _, data in _notes(frames, "ticker"):
        top = tops.get((data["instrument_name"], data["timestamp"] * MS))
        if top is None:
            continue
        bid = (data["best_bid_price"], data["best_bid_amount"]) if data["best_bid_price"] else None
        ask = (data["best_ask_price"], data["best_ask_amount"]) if data["best_ask_price"] else None
        assert top == (bid, ask), data["instrument_name"]
        compared += 1
    assert compared == 36  # every ticker stamped like a book message of its instrument


def test_ticker_values_equal_the_messages(frames, records) -> None:
    tickers = _notes(frames, "ticker")
    assert len(tickers) == len(records.bbo) == len(records.mark_price) == len(records.open_interest) == 89
    for (ts, d), bbo, mark, oi in zip(
        tickers, records.bbo, records.mark_price, records.open_interest, strict=True
    ):
        ts_ex = d["timestamp"] * MS
        assert bbo[1:4] == mark[1:4] == oi[1:4] == (d["instrument_name"], ts_ex, ts)
        assert bbo[4:8] == (
            d["best_bid_price"] or None,
            d["best_bid_amount"] if d["best_bid_price"] else None,
            d["best_ask_price"] or None,
            d["best_ask_amount"] if d["best_ask_price"] else None,
        )
        assert mark[4:6] == (d["mark_price"], d["index_price"])
        assert oi[4:6] == (d["open_interest"], None)
    assert records.funding == []  # options have no funding


# -- documented examples -------------------------------------------------------------------------

TRADES = {
    "jsonrpc": "2.0",
    "method": "subscription",
    "params": {
        "channel": "trades.BTC-PERPETUAL.100ms",
        "data": [
            {
                "trade_seq": 30289432,
                "trade_id": "48079254",
                "timestamp": 1590484156350,
                "tick_direction": 0,
                "price": 8950.0,
                "mark_price": 8948.9,
                "instrument_name": "BTC-PERPETUAL",
                "index_price": 8955.88,
                "direction": "sell",
                "amount": 10.0,
            },
            {
                "trade_seq": 30289433,
                "trade_id": "48079255",
                "timestamp": 1590484156351,
                "tick_direction": 1,
                "price": 8949.5,
                "mark_price": 8948.9,
                "instrument_name": "BTC-PERPETUAL",
                "index_price": 8955.88,
                "direction": "buy",
                "amount": 2500.0,
                "liquidation": "M",
            },
            {
                "trade_seq": 30289434,
                "trade_id": "48079256",
                "timestamp": 1590484156352,
                "tick_direction": 3,
                "price": 8949.0,
                "mark_price": 8948.9,
                "instrument_name": "BTC-PERPETUAL",
                "index_price": 8955.88,
                "direction": "sell",
                "amount": 120.0,
                "liquidation": "MT",
            },
        ],
    },
}

PERP_TICKER = {
    "jsonrpc": "2.0",
    "method": "subscription",
    "params": {
        "channel": "ticker.BTC-PERPETUAL.100ms",
        "data": {
            "timestamp": 1623060194301,
            "stats": {
                "volume_usd": 284061480,
                "volume": 7871.02139035,
                "price_change": 0.7229,
                "low": 35213.5,
                "high": 36824.5,
            },
            "state": "open",
            "settlement_price": 36169.49,
            "open_interest": 502097590,
            "min_price": 35898.37,
            "max_price": 36991.72,
            "mark_price": 36446.51,
            "last_price": 36457.5,
            "interest_value": 1.7362511643080387,
            "instrument_name": "BTC-PERPETUAL",
            "index_price": 36441.64,
            "funding_8h": 0.0000211,
            "estimated_delivery_price": 36441.64,
            "current_funding": 0.00001,
            "best_bid_price": 36442.5,
            "best_bid_amount": 5000,
            "best_ask_price": 36443,
            "best_ask_amount": 100,
        },
    },
}


def _run(
    normaliser: DeribitNormaliser, *messages: dict[str, Any], ts: int = 1_700_000_000_000_000_000
) -> RecordBuffer:
    out = RecordBuffer()
    for i, msg in enumerate(messages):
        normaliser.on_frame(ts + i, orjson.dumps(msg), out)
    return out


def test_trades_and_liquidations_equal_the_documented_messages() -> None:
    out = _run(DeribitNormaliser(), TRADES)
    ts = 1_700_000_000_000_000_000
    assert [r[:8] for r in out.trades] == [
        ("deribit", "BTC-USD-PERP", 1590484156350 * MS, ts, "48079254", 8950.0, 10.0, "sell"),
        ("deribit", "BTC-USD-PERP", 1590484156351 * MS, ts, "48079255", 8949.5, 2500.0, "buy"),
        ("deribit", "BTC-USD-PERP", 1590484156352 * MS, ts, "48079256", 8949.0, 120.0, "sell"),
    ]
    # "M": the maker (a seller, against a buying taker) was liquidated; "MT": both sides were
    assert [(r[1], r[2], r[4], r[5], r[6], r[7]) for r in out.liquidations] == [
        ("BTC-USD-PERP", 1590484156351 * MS, "48079255", "sell", 8949.5, 2500.0),
        ("BTC-USD-PERP", 1590484156352 * MS, "48079256", "sell", 8949.0, 120.0),
        ("BTC-USD-PERP", 1590484156352 * MS, "48079256", "buy", 8949.0, 120.0),
    ]
    assert events_of(out) == []


def test_perpetual_ticker_values_equal_the_documented_message() -> None:
    out = _run(DeribitNormaliser(), PERP_TICKER)
    ts_ex = 1623060194301 * MS
    assert [r[1:9] for r in out.bbo] == [
        ("BTC-USD-PERP", ts_ex, out.bbo[0][3], 36442.5, 5000.0, 36443.0, 100.0, None)
    ]
    assert [r[1:3] + r[4:6] for r in out.mark_price] == [("BTC-USD-PERP", ts_ex, 36446.51, 36441.64)]
    assert [r[1:3] + r[4:6] for r in out.open_interest] == [("BTC-USD-PERP", ts_ex, 502097590.0, None)]
    assert [r[1:3] + r[4:7] for r in out.funding] == [("BTC-USD-PERP", ts_ex, 0.0000211, 0.00001, None)]


def _book(inst: str, kind: str, change_id: int, prev: int | None, bids: list, asks: list) -> dict[str, Any]:
    data: dict[str, Any] = {
        "type": kind,
        "timestamp": 1700000000000 + change_id,
        "instrument_name": inst,
        "change_id": change_id,
        "bids": bids,
        "asks": asks,
    }
    if prev is not None:
        data["prev_change_id"] = prev
    return {
        "jsonrpc": "2.0",
        "method": "subscription",
        "params": {"channel": f"book.{inst}.100ms", "data": data},
    }


def test_a_broken_change_id_chain_is_a_gap_for_that_instrument_only() -> None:
    n = DeribitNormaliser()
    snaps = [
        _book(inst, "snapshot", 100, None, [["new", 99.5, 10.0]], [["new", 100.5, 20.0]])
        for inst in ("BTC-PERPETUAL", "ETH-PERPETUAL")
    ]
    out = _run(n, *snaps)
    assert out.feed_events == [] and len(out.book) == 4
    # BTC: prev_change_id 101 does not follow 100 (a message was missed); ETH continues its chain
    out = _run(
        n,
        _book("BTC-PERPETUAL", "change", 102, 101, [["change", 99.5, 11.0]], []),
        _book("ETH-PERPETUAL", "change", 105, 100, [], [["delete", 100.5, 0.0], ["new", 101.0, 3.0]]),
    )
    assert [(e[1], e[4]) for e in out.feed_events] == [("BTC-USD-PERP", "gap")]
    assert orjson.loads(out.feed_events[0][5])["expected_prev_change_id"] == 100
    assert n.resubscribe_requests == {"BTC-PERPETUAL"}
    assert [(r[1], r[4], r[5], r[6], r[8]) for r in out.book] == [
        ("ETH-USD-PERP", "ask", 100.5, 0.0, 105),
        ("ETH-USD-PERP", "ask", 101.0, 3.0, 105),
    ]
    # the resubscription's snapshot resyncs BTC in a new epoch
    out = _run(n, _book("BTC-PERPETUAL", "snapshot", 110, None, [["new", 99.0, 1.0]], [["new", 100.0, 2.0]]))
    assert [(e[1], e[4]) for e in out.feed_events] == [("BTC-USD-PERP", "resync")]
    assert {r[9] for r in out.book} == {1}
    resub = get_dialect("deribit").resubscribe_frames(["BTC-PERPETUAL"], Subscription(("BTC-PERPETUAL",)))
    assert [orjson.loads(f)["method"] for f in resub] == ["public/unsubscribe", "public/subscribe"]
    assert orjson.loads(resub[1])["params"]["channels"] == ["book.BTC-PERPETUAL.100ms"]


def test_a_test_request_is_answered_with_public_test() -> None:
    n = DeribitNormaliser()
    out = _run(
        n,
        {"jsonrpc": "2.0", "method": "heartbeat", "params": {"type": "heartbeat"}},
        {"jsonrpc": "2.0", "method": "heartbeat", "params": {"type": "test_request"}},
    )
    assert out.feed_events == []
    assert list(n.replies) == [TEST_REPLY]
    assert orjson.loads(TEST_REPLY)["method"] == "public/test"


def test_subscription_and_symbols() -> None:
    dialect = get_dialect("deribit")
    frames = [
        orjson.loads(f) for f in dialect.subscribe_frames(Subscription(("BTC-PERPETUAL",), dialect.channels))
    ]
    assert frames[0]["method"] == "public/set_heartbeat" and frames[0]["params"]["interval"] >= 10
    assert frames[1]["params"]["channels"] == [
        "trades.BTC-PERPETUAL.100ms",
        "book.BTC-PERPETUAL.100ms",
        "ticker.BTC-PERPETUAL.100ms",
    ]
    pairs = {
        "BTC-PERPETUAL": "BTC-USD-PERP",
        "ETH_USDC-PERPETUAL": "ETH-USDC-PERP",
        "BTC-27DEC26": "BTC-27DEC26",
        "BTC-27DEC26-100000-C": "BTC-27DEC26-100000-C",
        "XRP_USDC-30MAY25-2d2-C": "XRP_USDC-30MAY25-2D2-C",
    }
    for native, symbol in pairs.items():
        assert dialect.normalise_symbol(native) == symbol
        assert dialect.native_symbol(symbol) == native
        assert dialect.native_symbol(native) == native


async def test_the_live_connection_answers_test_requests(tmp_path: Path) -> None:
    """The simulator closes a connection that leaves MAX_UNANSWERED test requests unanswered, as Deribit
    does; sent five times a second, twelve of them must all be answered on one connection."""
    live = Live(get_dialect("deribit"), tmp_path / "hb.capture.gz")
    live.sim.config.heartbeat_interval_s = 0.2
    await live.start()
    try:
        await asyncio.sleep(2.5)
        assert live.collector is not None
        assert live.collector.stats.connects == 1
        assert live.sim.connections_total == 1
        assert all(s.state.get("unanswered", 0) <= 1 for s in live.sim.sessions)
    finally:
        await live.stop()
