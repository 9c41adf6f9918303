"""Bybit v5 linear (``bybit``): documented message examples, sequence rules, bad input, and the
simulator end to end through the shared connection lifecycle (real websocket on loopback).

There is no Bybit recording in ../shared/samples, so the parser is checked on the examples of Bybit's
v5 documentation (websocket/public/orderbook, trade, ticker; values copied as facts).
"""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import Any

import orjson
import pytest
import websockets

from collectors.base import DialectOptions, Subscription
from collectors.capture import replay_capture
from collectors.registry import get_dialect
from collectors.simulator import SimulatorConfig
from collectors.venues.bybit.common import RESUBSCRIBE_AGAIN_AFTER, BybitNormaliser
from collectors.venues.bybit.linear import BybitDialect
from collectors.venues.bybit.simulator import BybitSimulator
from schemas import Flags, RecordBuffer
from tests.collectors.bad_input import assert_parse_error_then_flowing
from tests.collectors.book_replay import tops_by_seq
from tests.collectors.test_connection import running

MS = 1_000_000

# -- documented examples (Bybit v5 docs) --------------------------------------------------------------

DOC_BOOK_SNAPSHOT = {
    "topic": "orderbook.50.BTCUSDT",
    "type": "snapshot",
    "ts": 1671179923028,
    "data": {
        "s": "BTCUSDT",
        "b": [["17440.00", "40.833"], ["17439.50", "0.513"], ["17416.00", "6.156"], ["17415.50", "32.268"]],
        "a": [["17440.50", "78.815"], ["17441.00", "8.858"], ["17464.50", "4.901"], ["17465.00", "5.744"]],
        "u": 13079592,
        "seq": 22520573250,
    },
}
# The documented delta (ts 1671179923046, asks only); its u follows the documented +1 rule.
DOC_BOOK_DELTA = {
    "topic": "orderbook.50.BTCUSDT",
    "type": "delta",
    "ts": 1671179923046,
    "data": {
        "s": "BTCUSDT",
        "b": [],
        "a": [["17440.50", "78.857"], ["17442.00", "1.510"]],
        "u": 13079593,
        "seq": 22520573253,
    },
}
DOC_TRADE = {
    "topic": "publicTrade.BTCUSDT",
    "type": "snapshot",
    "ts": 1672304486868,
    "data": [
        {
            "T": 1672304486865,
            "s": "BTCUSDT",
            "S": "Buy",
            "v": "0.001",
            "p": "16578.50",
            "L": "PlusTick",
            "i": "20f43950-d8dd-5b31-9112-a178eb6023af",
            "BT": False,
            "seq": 1783284617,
        }
    ],
}
DOC_TICKER = {
    "topic": "tickers.BTCUSDT",
    "type": "snapshot",
    "data": {
        "symbol": "BTCUSDT",
        "tickDirection": "PlusTick",
        "price24hPcnt": "0.017103",
        "lastPrice": "17216.00",
        "prevPrice24h": "16926.50",
        "highPrice24h": "17281.50",
        "lowPrice24h": "16915.00",
        "prevPrice1h": "17238.00",
        "markPrice": "17217.33",
        "indexPrice": "17227.36",
        "openInterest": "68744.761",
        "openInterestValue": "1183601235.91",
        "turnover24h": "1570383121.943499",
        "volume24h": "91705.276",
        "nextFundingTime": "1673280000000",
        "fundingRate": "-0.000212",
        "bid1Price": "17215.50",
        "bid1Size": "84.489",
        "ask1Price": "17216.00",
        "ask1Size": "83.020",
    },
    "cs": 24987956059,
    "ts": 1673272861686,
}


def compare_tops_with_bbo(out: RecordBuffer) -> int:
    """Asserts that the book rebuilt from ``book`` rows has the bbo's top at every equal cross
    sequence; returns how many bbo rows were compared."""
    tops = tops_by_seq(out.book)
    compared = 0
    for row in out.bbo:
        top = tops.get((row[1], row[8]))
        if top is None:
            continue
        (bp, bs), (ap, as_) = top
        assert (bp, bs, ap, as_) == row[4:8], f"{row[1]} seq {row[8]}"
        compared += 1
    return compared


def _f(msg: dict[str, Any]) -> bytes:
    return orjson.dumps(msg)


def _feed(
    n: BybitNormaliser, *msgs: dict[str, Any] | bytes, ts: int = 1_700_000_000_000 * MS
) -> RecordBuffer:
    out = RecordBuffer()
    for i, m in enumerate(msgs):
        n.on_frame(ts + i, m if isinstance(m, bytes) else _f(m), out)
    return out


def _book(
    kind: str, u: int, bids=(), asks=(), sym: str = "BTCUSDT", seq: int | None = None
) -> dict[str, Any]:
    return {
        "topic": f"orderbook.50.{sym}",
        "type": kind,
        "ts": 1_700_000_000_000,
        "cts": 1_699_999_999_990,
        "data": {
            "s": sym,
            "b": [list(b) for b in bids],
            "a": [list(a) for a in asks],
            "u": u,
            "seq": seq or u * 10,
        },
    }


def test_documented_book_snapshot_and_delta() -> None:
    n = BybitNormaliser()
    out = _feed(n, DOC_BOOK_SNAPSHOT, DOC_BOOK_DELTA)
    # the documented example is ~11 months older than the receive time: flagged and evented once
    assert [e[4] for e in out.feed_events] == ["bad_ts_exchange"]
    assert all(r[10] & Flags.BAD_TS_EXCHANGE for r in out.book)
    snap = [r for r in out.book if r[7]]
    assert len(snap) == 8
    assert all(r[:2] == ("bybit", "BTC-USDT-PERP") for r in out.book)
    # no cts in the documented example: ts (ms) is the exchange time; seq is the cross sequence
    assert all(r[2] == 1671179923028 * MS and r[8] == 22520573250 and r[9] == 0 for r in snap)
    assert all(r[10] & Flags.SNAPSHOT for r in snap)
    delta = [r for r in out.book if not r[7]]
    assert [(r[4], r[5], r[6], r[8]) for r in delta] == [
        ("ask", 17440.5, 78.857, 22520573253),
        ("ask", 17442.0, 1.51, 22520573253),
    ]
    assert delta[0][2] == 1671179923046 * MS
    book = n.books["BTCUSDT"]
    assert book.book.best_bid() == (17440.0, 40.833)
    assert book.book.best_ask() == (17440.5, 78.857)
    assert book.last_seq == 13079593 and book.epoch == 0


def test_documented_trade() -> None:
    out = _feed(BybitNormaliser(), DOC_TRADE)
    assert out.trades == [
        (
            "bybit",
            "BTC-USDT-PERP",
            1672304486865 * MS,
            1_700_000_000_000 * MS,
            "20f43950-d8dd-5b31-9112-a178eb6023af",
            16578.5,
            0.001,
            "buy",
            # received ~11 months after the trade time; no SNAPSHOT: Bybit sends no trade backlog
            int(Flags.OUTDATED | Flags.BAD_TS_EXCHANGE),
        )
    ]


def test_documented_ticker_snapshot_then_delta() -> None:
    n = BybitNormaliser()
    delta = {
        "topic": "tickers.BTCUSDT",
        "type": "delta",
        "data": {"symbol": "BTCUSDT", "ask1Price": "17216.50", "ask1Size": "1.5"},
        "cs": 24987956060,
        "ts": 1673272861786,
    }
    no_quote_change = {
        "topic": "tickers.BTCUSDT",
        "type": "delta",
        "data": {"symbol": "BTCUSDT", "markPrice": "17217.40"},
        "cs": 24987956061,
        "ts": 1673272861886,
    }
    out = _feed(n, DOC_TICKER, delta, no_quote_change)
    assert [r[2:] for r in out.bbo] == [
        (
            1673272861686 * MS,
            1_700_000_000_000 * MS,
            17215.5,
            84.489,
            17216.0,
            83.02,
            24987956059,
            Flags.OUTDATED | Flags.BAD_TS_EXCHANGE,  # the documented ticker is ~10 months old
        ),
        (
            1673272861786 * MS,
            1_700_000_000_000 * MS + 1,
            17215.5,
            84.489,
            17216.5,
            1.5,
            24987956060,
            Flags.OUTDATED | Flags.BAD_TS_EXCHANGE,
        ),
    ]


def test_replies_pongs_and_failed_subscriptions() -> None:
    n = BybitNormaliser()
    out = _feed(
        n,
        b'{"success":true,"ret_msg":"","conn_id":"c1","req_id":"subscribe-1","op":"subscribe"}',
        b'{"success":true,"ret_msg":"pong","conn_id":"c1","req_id":"","op":"ping"}',
        b'{"req_id":"x","op":"pong","args":["1675418560633"],"conn_id":"c1"}',
        b'{"success":false,"ret_msg":"error:handler not found,topic:orderbook.7.BTCUSDT","conn_id":"c1",'
        b'"req_id":"subscribe-2","op":"subscribe"}',
    )
    assert [e[4] for e in out.feed_events] == ["subscribe_error"]
    assert "orderbook.7.BTCUSDT" in orjson.loads(out.feed_events[0][5])["ret_msg"]
    assert n.parse_errors == 0


# -- sequence rules ---------------------------------------------------------------------------------


def test_gap_keeps_rows_flagged_and_resubscribes_only_that_symbol() -> None:
    n = BybitNormaliser()
    out = _feed(
        n,
        _book("snapshot", 100, [("100", "1")], [("101", "1")]),
        _book("snapshot", 500, [("200", "1")], [("201", "1")], sym="ETHUSDT"),
        _book("delta", 101, [("100.5", "2")]),
        _book("delta", 103, [("100.6", "3")]),  # 102 missing
        _book("delta", 501, asks=[("201", "2")], sym="ETHUSDT"),
        _book("delta", 104, [("100.7", "3")]),
    )
    gaps = [e for e in out.feed_events if e[4] == "gap"]
    assert [(e[1], orjson.loads(e[5])["missing"]) for e in gaps] == [("BTC-USDT-PERP", 1)]
    assert n.resubscribe_requests == {"BTCUSDT"}
    flagged = [r for r in out.book if r[10] & Flags.MAYBE_BAD_BOOK]
    assert [(r[1], r[5]) for r in flagged] == [("BTC-USDT-PERP", 100.6), ("BTC-USDT-PERP", 100.7)]
    assert n.books["ETHUSDT"].synced and n.books["ETHUSDT"].book.best_ask() == (201.0, 2.0)
    # The resubscribe brings a snapshot: resync event, epoch 1, rows clean again.
    n.resubscribe_requests.clear()
    out2 = _feed(
        n, _book("snapshot", 110, [("99", "1")], [("101", "1")]), _book("delta", 111, [("99.5", "1")])
    )
    assert [(e[1], e[4], orjson.loads(e[5])["epoch"]) for e in out2.feed_events] == [
        ("BTC-USDT-PERP", "resync", 1)
    ]
    assert all(r[9] == 1 and not r[10] & Flags.MAYBE_BAD_BOOK for r in out2.book)
    assert n.books["ETHUSDT"].epoch == 0


def test_u_equal_one_is_a_service_restart_snapshot() -> None:
    n = BybitNormaliser()
    out = _feed(
        n,
        _book("snapshot", 700, [("100", "1")], [("101", "1")]),
        _book("delta", 1, [("90", "1")], [("91", "1")]),  # u == 1: overwrite, whatever the type
        _book("delta", 2, [("90.5", "1")]),
    )
    resync = [orjson.loads(e[5]) for e in out.feed_events if e[4] == "resync"]
    assert resync == [{"epoch": 1, "seq": 10, "reason": "service restart (u=1)"}]
    assert "gap" not in {e[4] for e in out.feed_events}
    assert n.books["BTCUSDT"].book.best_bid() == (90.5, 1.0)
    assert n.books["BTCUSDT"].book.best_ask() == (91.0, 1.0)


def test_identical_snapshot_at_same_u_changes_nothing_but_a_new_one_resyncs() -> None:
    n = BybitNormaliser()
    snap = _book("snapshot", 700, [("100", "1")], [("101", "1")])
    out = _feed(
        n, snap, _book("delta", 701, [("100", "2")]), _book("snapshot", 701, [("100", "2")], [("101", "1")])
    )
    assert not out.feed_events and n.books["BTCUSDT"].epoch == 0
    assert len(out.book) == 3  # the repeated snapshot emits nothing
    out = _feed(n, _book("snapshot", 705, [("100", "3")], [("101", "1")]))
    assert [e[4] for e in out.feed_events] == ["resync"] and n.books["BTCUSDT"].epoch == 1


def test_duplicate_and_backwards_sequence() -> None:
    n = BybitNormaliser()
    out = _feed(
        n,
        _book("snapshot", 700, [("100", "1")], [("101", "1")]),
        _book("delta", 701, [("100", "2")]),
        _book("delta", 701, [("100", "2")]),  # repeated: ignored
        _book("delta", 699, [("100", "9")]),  # backwards: the stream cannot be trusted
    )
    kinds = [(e[4], orjson.loads(e[5])) for e in out.feed_events]
    assert kinds[0] == ("duplicate", {"u": 701})
    assert kinds[1][0] == "gap" and kinds[1][1]["backwards"] is True
    assert n.resubscribe_requests == {"BTCUSDT"}


def test_delta_before_any_snapshot_is_dropped_and_asks_for_a_snapshot() -> None:
    n = BybitNormaliser()
    out = _feed(n, _book("delta", 5, [("100", "1")]))
    assert not out.book and n.dropped_unsynced == 1 and n.resubscribe_requests == {"BTCUSDT"}


def test_resubscribe_is_asked_once_then_again_if_no_snapshot_comes() -> None:
    n = BybitNormaliser()
    _feed(n, _book("snapshot", 100, [("100", "1")], [("101", "1")]), _book("delta", 102, [("100", "2")]))
    assert n.resubscribe_requests == {"BTCUSDT"}
    n.resubscribe_requests.clear()  # the connection sent the frames
    _feed(n, *[_book("delta", 103 + i, [("100", str(i + 3))]) for i in range(RESUBSCRIBE_AGAIN_AFTER)])
    assert n.resubscribe_requests == set()  # no storm while the snapshot is on its way
    _feed(n, _book("delta", 103 + RESUBSCRIBE_AGAIN_AFTER, [("100", "1")]))
    assert n.resubscribe_requests == {"BTCUSDT"}  # it never came: ask again
    n.resubscribe_requests.clear()
    _feed(n, _book("snapshot", 900, [("100", "1")], [("101", "1")]), _book("delta", 902, [("100", "2")]))
    assert n.resubscribe_requests == {"BTCUSDT"}  # a new gap after the resync asks at once


def test_disconnect_resets_books_and_trade_ids_survive() -> None:
    n = BybitNormaliser()
    out = _feed(n, _book("snapshot", 700, [("100", "1")], [("101", "1")]), DOC_TRADE)
    n.on_disconnect(0, out)
    out = _feed(n, DOC_TRADE, _book("snapshot", 800, [("100", "1")], [("101", "1")]))
    assert not out.trades
    assert [e[4] for e in out.feed_events] == ["duplicate", "resync"]


def test_orderbook_1_is_the_bbo_with_its_own_sequence() -> None:
    n = BybitNormaliser()

    def top(kind: str, u: int, bids=(), asks=(), seq: int = 0) -> dict[str, Any]:
        msg = _book(kind, u, bids, asks, seq=seq or u)
        msg["topic"] = "orderbook.1.BTCUSDT"
        return msg

    out = _feed(
        n,
        top("snapshot", 50, [("100", "1")], [("101", "1")]),
        top("delta", 51, [("100.5", "2"), ("100", "0")]),
        top("snapshot", 51, [("100.5", "2")], [("101", "1")]),  # the 3 s re-push, same u
        top("delta", 53, asks=[("100.9", "1"), ("101", "0")]),  # 52 lost
        top("snapshot", 60, [("100.5", "2")], [("100.8", "1")]),
    )
    assert [r[4:10] for r in out.bbo] == [
        (100.0, 1.0, 101.0, 1.0, 50, 0),
        (100.5, 2.0, 101.0, 1.0, 51, 0),
        (100.5, 2.0, 101.0, 1.0, 51, 0),
        (100.5, 2.0, 100.9, 1.0, 53, Flags.MAYBE_BAD_BOOK),
        (100.5, 2.0, 100.8, 1.0, 60, 0),
    ]
    assert [(e[2], e[4]) for e in out.feed_events] == [("bbo", "gap"), ("bbo", "resync")]
    assert not out.book


# -- bad input ----------------------------------------------------------------------------------------

GOOD_TRADE = _f(
    {
        "topic": "publicTrade.ETHUSDT",
        "type": "snapshot",
        "ts": 1700000000000,
        "data": [
            {"T": 1700000000000, "s": "ETHUSDT", "S": "Sell", "v": "1", "p": "2000", "i": "t-7", "BT": False}
        ],
    }
)


def _trade(**over: Any) -> bytes:
    item = {"T": 1700000000000, "s": "BTCUSDT", "S": "Buy", "v": "1", "p": "100", "i": "x"}
    item.update(over)
    item = {k: v for k, v in item.items() if v is not None}
    return _f({"topic": "publicTrade.BTCUSDT", "type": "snapshot", "ts": 1700000000000, "data": [item]})


@pytest.mark.parametrize(
    "frame",
    [
        b'{"topic":"publicTrade.BTCUSDT","type":"snapshot","data":[{"T":1',  # truncated JSON
        b'{"topic":"kline.5.BTCUSDT","type":"snapshot","ts":1,"data":[]}',  # unknown topic
        b'{"foo":"bar"}',  # neither a topic nor a reply
        _trade(p=None),  # missing price
        _trade(p="abc"),
        _trade(p="NaN"),
        _trade(p="-5"),
        _trade(v="inf"),
        _trade(S="Up"),
        _trade(T="yesterday"),
        b'{"topic":"publicTrade.../../etcUSDT","type":"snapshot","ts":1,"data":[]}',
        b'{"topic":"orderbook.50.../x","type":"snapshot","ts":1,"data":{"b":[],"a":[],"u":1}}',
        _f(_book("snapshot", 5, [("100", "NaN")])),
        _f(_book("snapshot", 5, [("-1", "1")])),
        _f({**_book("snapshot", 5), "type": "partial"}),
        _f({**_book("snapshot", 5), "data": {"s": "BTCUSDT", "b": [], "a": [], "u": "5"}}),
        b"\xff\xfe{",  # invalid UTF-8
        b"[]",
    ],
)
def test_bad_input_is_a_parse_error_and_others_keep_flowing(frame: bytes) -> None:
    assert_parse_error_then_flowing(BybitNormaliser(), frame, GOOD_TRADE, ["t-7"])


def test_empty_frame_is_a_parse_error() -> None:
    out = _feed(BybitNormaliser(), b"", GOOD_TRADE)
    assert [e[4] for e in out.feed_events] == ["parse_error"] and [r[4] for r in out.trades] == ["t-7"]


def test_malformed_delta_leaves_a_synced_book_untouched() -> None:
    n = BybitNormaliser()
    _feed(n, _book("snapshot", 700, [("100", "1")], [("101", "1")]))
    out = _feed(
        n, _book("delta", 701, [("100.5", "1")], [("-1", "1")]), _book("delta", 701, [("100.5", "1")])
    )
    assert [e[4] for e in out.feed_events] == ["parse_error"]
    assert n.books["BTCUSDT"].book.best_bid() == (100.5, 1.0) and n.books["BTCUSDT"].last_seq == 701


# -- dialect ---------------------------------------------------------------------------------------


def test_symbols_topics_and_subscribe_frames() -> None:
    d = get_dialect("bybit")
    assert isinstance(d, BybitDialect)
    assert [d.native_symbol(s) for s in ("BTC-USDT-PERP", "btcusdt", "ETH-USDC-PERP", "BTC-26DEC25")] == [
        "BTCUSDT",
        "BTCUSDT",
        "ETHPERP",
        "BTC-26DEC25",
    ]
    assert [d.normalise_symbol(s) for s in ("BTCUSDT", "1000PEPEUSDT", "ETHPERP", "BTC-26DEC25")] == [
        "BTC-USDT-PERP",
        "1000PEPE-USDT-PERP",
        "ETH-USDC-PERP",
        "BTC-26DEC25",
    ]
    assert d.connection_url("wss://stream.bybit.com/", Subscription(("BTCUSDT",))) == (
        "wss://stream.bybit.com/v5/public/linear"
    )
    symbols = tuple(f"S{i}USDT" for i in range(40))
    frames = [orjson.loads(f) for f in d.subscribe_frames(Subscription(symbols))]
    assert [len(f["args"]) for f in frames] == [100, 20] and all(f["op"] == "subscribe" for f in frames)
    assert frames[0]["args"][:3] == ["publicTrade.S0USDT", "orderbook.50.S0USDT", "orderbook.1.S0USDT"]
    re = [orjson.loads(f) for f in d.resubscribe_frames(["BTCUSDT"], Subscription(("BTCUSDT",)))]
    assert [(f["op"], f["args"]) for f in re] == [
        ("unsubscribe", ["orderbook.50.BTCUSDT", "orderbook.1.BTCUSDT"]),
        ("subscribe", ["orderbook.50.BTCUSDT", "orderbook.1.BTCUSDT"]),
    ]
    tick = BybitDialect(DialectOptions(book_depth=200, extra={"bbo_source": "tickers"}))
    assert tick.topics("BTCUSDT", ("book", "bbo")) == ["orderbook.200.BTCUSDT", "tickers.BTCUSDT"]
    with pytest.raises(ValueError, match="book depth 7"):
        BybitDialect(DialectOptions(book_depth=7))
    with pytest.raises(ValueError, match="bbo_source"):
        BybitDialect(DialectOptions(extra={"bbo_source": "bookTicker"}))


# -- simulator ------------------------------------------------------------------------------------


async def _collect_raw(dialect: BybitDialect, sub: Subscription, frames: int, **faults: Any) -> list[bytes]:
    sim = dialect.simulator(SimulatorConfig(symbols=sub.symbols, rate_hz=400))
    await sim.start()
    got: list[bytes] = []
    try:
        async with websockets.connect(dialect.connection_url(sim.ws_url, sub)) as ws:
            for text in dialect.subscribe_frames(sub):
                await ws.send(text)
            await ws.send('{"op":"ping","req_id":"p1"}')
            while len(got) < frames:
                got.append(await asyncio.wait_for(ws.recv(decode=False), 5))
    finally:
        await sim.stop()
    return got


@pytest.mark.parametrize("bbo_source", ["orderbook.1", "tickers"])
async def test_simulator_round_trip_books_match_bbo(bbo_source: str) -> None:
    dialect = BybitDialect(DialectOptions(extra={"bbo_source": bbo_source}))
    frames = await _collect_raw(dialect, Subscription(("BTCUSDT", "ETHUSDT")), 1200)
    n = dialect.new_normaliser()
    out = _feed(n, *frames, ts=time.time_ns())  # the simulator stamps frames with the real clock
    assert n.parse_errors == 0 and not out.feed_events
    for sym in ("BTC-USDT-PERP", "ETH-USDT-PERP"):
        assert any(r[1] == sym for r in out.trades) and any(r[1] == sym for r in out.bbo)
    assert compare_tops_with_bbo(out) > 100
    assert all(not n.books[s].book.is_crossed() for s in n.books)


async def test_simulator_rejects_unknown_topics() -> None:
    dialect = BybitDialect()
    sim = dialect.simulator(SimulatorConfig(symbols=("BTCUSDT",)))
    await sim.start()
    try:
        async with websockets.connect(dialect.connection_url(sim.ws_url, Subscription(("BTCUSDT",)))) as ws:
            await ws.send('{"op":"subscribe","args":["orderbook.7.BTCUSDT"],"req_id":"r"}')
            reply = await asyncio.wait_for(ws.recv(decode=False), 5)
    finally:
        await sim.stop()
    out = _feed(dialect.new_normaliser(), reply)
    assert [e[4] for e in out.feed_events] == ["subscribe_error"]


# -- end to end through the connection lifecycle ---------------------------------------------------


async def test_dropped_update_resyncs_only_that_symbol_live(tmp_path: Path) -> None:
    capture = tmp_path / "bybit.capture"
    async with running("bybit", capture=capture) as run:
        await run.until(
            lambda: run.count("book", "ETH-USDT-PERP") > 30 and run.count("bbo", "BTC-USDT-PERP") > 10
        )
        run.sim.faults.drop_updates["BTCUSDT"] = 1
        await run.until(lambda: len(run.events("resync", "BTC-USDT-PERP")) >= 1)
        eth_before = run.count("book", "ETH-USDT-PERP")
        await run.until(lambda: run.count("book", "ETH-USDT-PERP") > eth_before + 10)
        btc_after = len(run.got.book)
        await run.until(lambda: any(r[1] == "BTC-USDT-PERP" and r[9] == 1 for r in run.got.book[btc_after:]))
    gaps = run.events("gap")
    assert {e[1] for e in gaps} == {"BTC-USDT-PERP"} and all(e[2] == "book" for e in gaps)
    assert not run.events("gap", "ETH-USDT-PERP") and not run.events("resync", "ETH-USDT-PERP")
    assert not run.events("parse_error")
    # rows between the gap and the resync carry MAYBE_BAD_BOOK; the others do not
    eth = [r for r in run.got.book if r[1] == "ETH-USDT-PERP"]
    assert all(not r[10] & Flags.MAYBE_BAD_BOOK and r[9] == 0 for r in eth)
    # capture then replay gives exactly the live records
    replayed = replay_capture(get_dialect("bybit").new_normaliser(), capture)
    assert replayed.trades == run.got.trades
    assert replayed.book == run.got.book
    assert replayed.bbo == run.got.bbo
    assert replayed.feed_events == [e for e in run.got.feed_events if e[2] != "connection"]


async def test_orderbook_service_restart_and_reconnect_live() -> None:
    async with running("bybit") as run:
        await run.until(lambda: run.count("book", "BTC-USDT-PERP") > 20)
        assert isinstance(run.sim, BybitSimulator)
        run.sim.restart_orderbook_service("BTCUSDT")
        await run.until(lambda: len(run.events("resync", "BTC-USDT-PERP")) >= 1)
        reasons = [orjson.loads(e[5])["reason"] for e in run.events("resync", "BTC-USDT-PERP")]
        assert reasons == ["service restart (u=1)"]
        assert not run.events("gap")
        await run.sim.disconnect_all()
        await run.until(
            lambda: run.collector.stats.connects >= 2 and len(run.events("resync", "ETH-USDT-PERP")) >= 1
        )
        before = run.count("trades", "ETH-USDT-PERP")
        await run.until(lambda: run.count("trades", "ETH-USDT-PERP") > before + 3)
    assert not run.events("parse_error") and not run.events("subscribe_error")
    trade_ids = [r[4] for r in run.got.trades]
    assert len(trade_ids) == len(set(trade_ids))


@pytest.mark.parametrize("exchange", ["bybit", "bybit-spot"])
async def test_duplicated_reordered_and_lagging_updates_live(exchange: str) -> None:
    perp = "-PERP" if exchange == "bybit" else ""
    btc, eth = f"BTC-USDT{perp}", f"ETH-USDT{perp}"
    async with running(exchange) as run:
        await run.until(lambda: run.count("book", btc) > 20 and run.count("book", eth) > 20)
        run.sim.faults.duplicate_updates["BTCUSDT"] = 3
        await run.until(lambda: len(run.events("duplicate", btc)) >= 3)
        assert run.events("gap") == []  # a repeated message is ignored, not a gap
        run.sim.faults.reorder_updates["ETHUSDT"] = 1
        await run.until(lambda: len(run.events("resync", eth)) == 1)
        assert run.events("gap", btc) == [] and run.events("resync", btc) == []
        # exchange time falling 5 s behind while frames keep flowing: rows are flagged OUTDATED
        run.sim.faults.ts_lag_ns = 5_000_000_000
        start = len(run.got.book)
        await run.until(lambda: sum(1 for r in run.got.book[start:] if r[10] & Flags.OUTDATED) > 10)
    assert not run.events("parse_error")


# -- derivatives channels (issue 15): tickers' mark/index/funding/open interest, allLiquidation ---------
DOC_ALL_LIQUIDATION = {
    "topic": "allLiquidation.ROSEUSDT",
    "type": "snapshot",
    "ts": 1739502303204,
    "data": [{"T": 1739502302929, "s": "ROSEUSDT", "S": "Sell", "v": "20000", "p": "0.04499"}],
}


def test_documented_ticker_gives_mark_funding_and_open_interest_rows_equal_to_it() -> None:
    n = BybitNormaliser()
    recv = 1673272861686 * MS + 4 * MS
    out = RecordBuffer()
    n.on_frame(recv, _f(DOC_TICKER), out)
    ts = 1673272861686 * MS
    assert out.mark_price == [("bybit", "BTC-USDT-PERP", ts, recv, 17217.33, 17227.36, 0)]
    assert out.funding == [("bybit", "BTC-USDT-PERP", ts, recv, -0.000212, None, 1673280000000 * MS, 0)]
    assert out.open_interest == [("bybit", "BTC-USDT-PERP", ts, recv, 68744.761, 1183601235.91, 0)]
    # deltas carry what changed: each dataset gets a row only when one of its fields came, merged
    mark_only = {
        **DOC_TICKER,
        "type": "delta",
        "ts": 1673272861786,
        "data": {"symbol": "BTCUSDT", "markPrice": "17217.40"},
    }
    funding_only = {
        **DOC_TICKER,
        "type": "delta",
        "ts": 1673272861886,
        "data": {"symbol": "BTCUSDT", "fundingRate": "0.0001"},
    }
    oi_only = {
        **DOC_TICKER,
        "type": "delta",
        "ts": 1673272861986,
        "data": {"symbol": "BTCUSDT", "openInterest": "68745"},
    }
    quote_only = {
        **DOC_TICKER,
        "type": "delta",
        "ts": 1673272862086,
        "data": {"symbol": "BTCUSDT", "bid1Size": "1"},
    }
    out = RecordBuffer()
    for i, msg in enumerate((mark_only, funding_only, oi_only, quote_only)):
        n.on_frame(recv + (i + 1) * 100 * MS, _f(msg), out)
    assert [r[2:6] for r in out.mark_price] == [(1673272861786 * MS, recv + 100 * MS, 17217.40, 17227.36)]
    assert [r[2:7] for r in out.funding] == [
        (1673272861886 * MS, recv + 200 * MS, 0.0001, None, 1673280000000 * MS)
    ]
    assert [r[2:6] for r in out.open_interest] == [
        (1673272861986 * MS, recv + 300 * MS, 68745.0, 1183601235.91)
    ]
    assert out.feed_events == []


def test_tickers_subscribed_for_derivatives_add_no_second_bbo_stream() -> None:
    default = BybitDialect()  # bbo from orderbook.1
    assert default.topics("BTCUSDT", default.channels) == [
        "publicTrade.BTCUSDT",
        "orderbook.50.BTCUSDT",
        "orderbook.1.BTCUSDT",
        "tickers.BTCUSDT",
        "allLiquidation.BTCUSDT",
    ]
    out = RecordBuffer()
    default.new_normaliser().on_frame(1673272861690 * MS, _f(DOC_TICKER), out)
    assert out.bbo == [] and len(out.mark_price) == 1  # bbo comes from orderbook.1 only
    tickers = BybitDialect(DialectOptions(extra={"bbo_source": "tickers"}))
    assert tickers.topics("BTCUSDT", ("bbo", "funding", "mark")) == ["tickers.BTCUSDT"]
    out = RecordBuffer()
    tickers.new_normaliser().on_frame(1673272861690 * MS, _f(DOC_TICKER), out)
    assert len(out.bbo) == 1 and len(out.funding) == 1
    sub = Subscription(("BTCUSDT",), ("trades", "book", "funding"))
    frames = [orjson.loads(f) for f in default.resubscribe_frames(["BTCUSDT"], sub)]
    assert [f["args"] for f in frames] == [["orderbook.50.BTCUSDT", "tickers.BTCUSDT"]] * 2


def test_documented_all_liquidation_stores_the_liquidation_orders_side() -> None:
    recv = 1739502303204 * MS + 5 * MS
    out = RecordBuffer()
    BybitNormaliser().on_frame(recv, _f(DOC_ALL_LIQUIDATION), out)
    # S is the liquidated position's side: Sell (a short) is closed by a buy order, the taker side
    assert out.liquidations == [
        ("bybit", "ROSE-USDT-PERP", 1739502302929 * MS, recv, None, "buy", 0.04499, 20000.0, 0)
    ]
    long_closed = {**DOC_ALL_LIQUIDATION, "data": [{**DOC_ALL_LIQUIDATION["data"][0], "S": "Buy"}]}
    out = RecordBuffer()
    BybitNormaliser().on_frame(recv, _f(long_closed), out)
    assert out.liquidations[0][5] == "sell"


@pytest.mark.parametrize(
    "msg",
    [
        {**DOC_ALL_LIQUIDATION, "data": [{**DOC_ALL_LIQUIDATION["data"][0], "S": "Long"}]},
        {**DOC_ALL_LIQUIDATION, "data": [{**DOC_ALL_LIQUIDATION["data"][0], "p": "NaN"}]},
        {**DOC_ALL_LIQUIDATION, "data": [{**DOC_ALL_LIQUIDATION["data"][0], "s": "BTCUSDT"}]},
        {
            **DOC_ALL_LIQUIDATION,
            "data": [DOC_ALL_LIQUIDATION["data"][0], {"T": 1, "S": "Buy", "v": "-1", "p": "1"}],
        },
        {**DOC_TICKER, "data": {**DOC_TICKER["data"], "fundingRate": "2"}},
        {**DOC_TICKER, "data": {**DOC_TICKER["data"], "markPrice": "-1"}},
    ],
)
def test_bad_derivatives_messages_are_parse_errors_without_rows(msg: dict[str, Any]) -> None:
    out = RecordBuffer()
    BybitNormaliser().on_frame(1739502303209 * MS, _f(msg), out)
    assert [e[4] for e in out.feed_events] == ["parse_error"]
    assert not (out.liquidations or out.mark_price or out.funding or out.open_interest or out.bbo)


async def test_simulator_serves_the_derivatives_channels() -> None:
    async with running("bybit", ("BTCUSDT", "ETHUSDT")) as run:
        await run.until(
            lambda: all(
                run.count(ds, s) > 1
                for ds in ("mark_price", "funding", "open_interest", "liquidations")
                for s in ("BTC-USDT-PERP", "ETH-USDT-PERP")
            )
        )
    assert not {e[4] for e in run.got.feed_events} & {"parse_error", "gap", "subscribe_error"}
    for row in run.got.open_interest:
        assert row[2] is not None and row[5] is not None and row[5] > row[4]
    assert {r[5] for r in run.got.liquidations} == {"buy", "sell"}
