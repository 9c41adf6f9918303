"""Coinbase Advanced Trade: documented message examples, the connection-wide sequence rule, bad input,
and the simulator through the real connection lifecycle (round trip, dropped update, replay).

No real Advanced Trade recording is available; the l2_data, market_trades, ticker and heartbeats
examples below are the ones in Coinbase's Advanced Trade websocket documentation.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import orjson
import pytest

from collectors.base import Subscription
from collectors.capture import replay_capture
from collectors.events import ParseError, iso_to_ns, ns_to_iso
from collectors.registry import get_dialect
from collectors.venues.coinbase import CoinbaseDialect, CoinbaseNormaliser
from schemas import Flags, RecordBuffer
from tests.collectors.bad_input import assert_parse_error_then_flowing
from tests.collectors.book_replay import tops_by_seq
from tests.collectors.test_connection import running

# -- documented examples ------------------------------------------------------------------------------
DOC_L2_SNAPSHOT = """{
  "channel": "l2_data", "client_id": "", "timestamp": "2023-02-09T20:32:50.714964855Z", "sequence_num": 0,
  "events": [{"type": "snapshot", "product_id": "BTC-USD", "updates": [
    {"side": "bid", "event_time": "1970-01-01T00:00:00Z", "price_level": "21921.73", "new_quantity": "0.06317902"},
    {"side": "bid", "event_time": "1970-01-01T00:00:00Z", "price_level": "21921.3", "new_quantity": "0.02"},
    {"side": "offer", "event_time": "1970-01-01T00:00:00Z", "price_level": "21921.74", "new_quantity": "0.5"}
  ]}]
}"""
DOC_MARKET_TRADES = """{
  "channel": "market_trades", "client_id": "", "timestamp": "2023-02-09T20:19:35.39625135Z", "sequence_num": 0,
  "events": [{"type": "snapshot", "trades": [
    {"trade_id": "000000000", "product_id": "ETH-USD", "price": "1260.01", "size": "0.3", "side": "BUY",
     "time": "2019-08-14T20:42:27.265Z"}
  ]}]
}"""
DOC_TICKER = """{
  "channel": "ticker", "client_id": "", "timestamp": "2023-02-09T20:30:37.167359596Z", "sequence_num": 0,
  "events": [{"type": "snapshot", "tickers": [
    {"type": "ticker", "product_id": "BTC-USD", "price": "21932.98", "volume_24_h": "16038.28770938",
     "low_24_h": "21835.29", "high_24_h": "23011.18", "low_52_w": "15460", "high_52_w": "48240",
     "price_percent_chg_24_h": "-4.15775596190603", "best_bid": "21931.98", "best_bid_quantity": "8000.21",
     "best_ask": "21933.98", "best_ask_quantity": "8038.07770938"}
  ]}]
}"""
DOC_HEARTBEAT = """{
  "channel": "heartbeats", "client_id": "", "timestamp": "2023-06-23T20:31:26.122969572Z", "sequence_num": 0,
  "events": [{"current_time": "2023-06-23 20:31:56.121961769 +0000 UTC m=+91717.525857105",
              "heartbeat_counter": "3049"}]
}"""
DOC_SUBSCRIPTIONS = (
    '{"channel":"subscriptions","client_id":"","timestamp":"2023-02-09T20:32:50.714964855Z","sequence_num":0,'
    '"events":[{"subscriptions":{"level2":["BTC-USD"],"market_trades":["BTC-USD","ETH-USD"]}}]}'
)


def with_seq(frame: str, seq: int) -> str:
    msg = orjson.loads(frame)
    msg["sequence_num"] = seq
    return orjson.dumps(msg).decode()


def message(
    channel: str, seq: int, events: list[dict[str, Any]], ts: str = "2023-02-09T20:32:51.000000000Z"
) -> str:
    return orjson.dumps(
        {"channel": channel, "client_id": "", "timestamp": ts, "sequence_num": seq, "events": events}
    ).decode()


def l2(
    seq: int, product: str, kind: str, updates: list[tuple[str, str, str]], ts: str = "2023-02-09T20:32:51.1Z"
) -> str:
    rows = [{"side": s, "event_time": ts, "price_level": p, "new_quantity": q} for s, p, q in updates]
    return message("l2_data", seq, [{"type": kind, "product_id": product, "updates": rows}])


def trades(seq: int, items: list[tuple[str, str]], kind: str = "update") -> str:
    rows = [
        {
            "trade_id": tid,
            "product_id": product,
            "price": "100.5",
            "size": "0.1",
            "side": "SELL",
            "time": "2023-02-09T20:32:51Z",
        }
        for tid, product in items
    ]
    return message("market_trades", seq, [{"type": kind, "trades": rows}])


RECV = iso_to_ns("2023-02-09T20:32:51.5Z")


def test_documented_level2_snapshot_and_update() -> None:
    n = CoinbaseNormaliser()
    out = RecordBuffer()
    n.on_frame(RECV, DOC_L2_SNAPSHOT, out)
    ts_msg = iso_to_ns("2023-02-09T20:32:50.714964855Z")
    # Snapshot levels carry the zero event_time placeholder: they take the message time instead.
    assert out.book == [
        ("coinbase", "BTC-USD", ts_msg, RECV, "bid", 21921.73, 0.06317902, True, 0, 0, Flags.SNAPSHOT),
        ("coinbase", "BTC-USD", ts_msg, RECV, "bid", 21921.3, 0.02, True, 0, 0, Flags.SNAPSHOT),
        ("coinbase", "BTC-USD", ts_msg, RECV, "ask", 21921.74, 0.5, True, 0, 0, Flags.SNAPSHOT),
    ]
    n.on_frame(
        RECV + 1, l2(1, "BTC-USD", "update", [("bid", "21921.73", "0"), ("offer", "21922.0", "1.25")]), out
    )
    assert out.book[3:] == [
        (
            "coinbase",
            "BTC-USD",
            iso_to_ns("2023-02-09T20:32:51.1Z"),
            RECV + 1,
            "bid",
            21921.73,
            0.0,
            False,
            1,
            0,
            0,
        ),
        (
            "coinbase",
            "BTC-USD",
            iso_to_ns("2023-02-09T20:32:51.1Z"),
            RECV + 1,
            "ask",
            21922.0,
            1.25,
            False,
            1,
            0,
            0,
        ),
    ]
    book = n.books["BTC-USD"].book
    assert book.best_bid() == (21921.3, 0.02) and book.best_ask() == (21921.74, 0.5)
    assert out.feed_events == []


def test_documented_market_trades_snapshot_is_flagged_and_side_is_the_taker() -> None:
    n = CoinbaseNormaliser()
    out = RecordBuffer()
    n.on_frame(RECV, DOC_MARKET_TRADES, out)
    t = iso_to_ns("2019-08-14T20:42:27.265Z")
    # BUY is the maker's side: the taker sold.
    assert out.trades == [
        (
            "coinbase",
            "ETH-USD",
            t,
            RECV,
            "000000000",
            1260.01,
            0.3,
            "sell",
            # the documented trade is 3.5 years older than the receive time; replayed history (SNAPSHOT)
            # is old by nature: OUTDATED, not BAD_TS_EXCHANGE (that flag is for clocks that are off)
            Flags.SNAPSHOT | Flags.OUTDATED,
        )
    ]


def test_documented_ticker_is_a_bbo_row() -> None:
    n = CoinbaseNormaliser()
    out = RecordBuffer()
    recv = iso_to_ns("2023-02-09T20:30:37.2Z")
    n.on_frame(recv, DOC_TICKER, out)
    assert out.bbo == [
        (
            "coinbase",
            "BTC-USD",
            iso_to_ns("2023-02-09T20:30:37.167359596Z"),
            recv,
            21931.98,
            8000.21,
            21933.98,
            8038.07770938,
            0,
            Flags.SNAPSHOT,
        )
    ]


def test_heartbeats_and_subscriptions_count_in_the_sequence_but_make_no_records() -> None:
    n = CoinbaseNormaliser()
    out = RecordBuffer()
    n.on_frame(RECV, DOC_SUBSCRIPTIONS, out)
    n.on_frame(RECV, with_seq(DOC_HEARTBEAT, 1), out)
    n.on_frame(RECV, with_seq(DOC_L2_SNAPSHOT, 2), out)
    n.on_frame(RECV, with_seq(DOC_HEARTBEAT, 3), out)
    n.on_frame(RECV, l2(4, "BTC-USD", "update", [("bid", "21921.5", "1")]), out)
    assert out.feed_events == [] and n.heartbeats == 2 and n.last_seq == 4
    assert len(out.trades) == 0 and len(out.bbo) == 0 and len(out.book) == 4


def test_one_counter_across_channels_and_products_gives_no_false_gaps() -> None:
    n = CoinbaseNormaliser()
    out = RecordBuffer()
    frames = [
        with_seq(DOC_L2_SNAPSHOT, 0),
        l2(1, "ETH-USD", "snapshot", [("bid", "1500", "1"), ("offer", "1501", "1")]),
        trades(2, [("10", "BTC-USD"), ("11", "ETH-USD")]),
        l2(3, "BTC-USD", "update", [("bid", "21921.5", "1")]),
        with_seq(DOC_TICKER, 4),
        l2(5, "ETH-USD", "update", [("offer", "1502", "2")]),
        with_seq(DOC_HEARTBEAT, 6),
    ]
    for frame in frames:
        n.on_frame(RECV, frame, out)
    assert out.feed_events == [] and n.sequence_gaps == 0


def test_sequence_gap_resyncs_every_book_of_the_connection_but_trades_keep_flowing() -> None:
    n = CoinbaseNormaliser()
    out = RecordBuffer()
    n.on_frame(RECV, with_seq(DOC_L2_SNAPSHOT, 0), out)
    n.on_frame(RECV, l2(1, "ETH-USD", "snapshot", [("bid", "1500", "1"), ("offer", "1501", "1")]), out)
    n.on_frame(RECV, l2(3, "BTC-USD", "update", [("bid", "21921.5", "1")]), out)  # 2 is missing
    gaps = [(e[1], e[4], orjson.loads(e[5])) for e in out.feed_events]
    assert [(s, k) for s, k, _ in gaps] == [("BTC-USD", "gap"), ("ETH-USD", "gap")]
    assert gaps[0][2] == {"expected": 2, "sequence_num": 3, "missing": 1, "unattributed": True, "epoch": 0}
    assert n.resubscribe_requests == {"BTC-USD", "ETH-USD"}
    assert out.book[-1][10] & Flags.MAYBE_BAD_BOOK  # the update after the gap
    n.on_frame(RECV, trades(4, [("12", "BTC-USD")]), out)
    assert [r[4] for r in out.trades] == ["12"]
    n.on_frame(RECV, with_seq(DOC_L2_SNAPSHOT, 5), out)
    assert out.feed_events[-1][1] == "BTC-USD" and out.feed_events[-1][4] == "resync"
    assert orjson.loads(out.feed_events[-1][5])["epoch"] == 1
    assert n.resubscribe_requests == {"ETH-USD"}


def test_duplicate_message_is_skipped_and_reordered_one_is_a_gap() -> None:
    n = CoinbaseNormaliser()
    out = RecordBuffer()
    n.on_frame(RECV, with_seq(DOC_L2_SNAPSHOT, 0), out)
    update = l2(1, "BTC-USD", "update", [("bid", "21921.5", "1")])
    n.on_frame(RECV, update, out)
    rows = len(out.book)
    n.on_frame(RECV, update, out)
    assert len(out.book) == rows and [e[4] for e in out.feed_events] == ["duplicate"]
    n.on_frame(RECV, l2(3, "BTC-USD", "update", [("bid", "21921.6", "1")]), out)
    n.on_frame(RECV, l2(2, "BTC-USD", "update", [("bid", "21921.7", "1")]), out)  # arrives late
    kinds = [(e[1], e[4]) for e in out.feed_events]
    # The second gap finds no synced book (it is resyncing): it is recorded connection-wide.
    assert kinds == [(None, "duplicate"), ("BTC-USD", "gap"), (None, "gap")]
    assert "backwards" in orjson.loads(out.feed_events[-1][5])["reason"]
    assert n.last_seq == 3


def test_trades_are_deduplicated_in_any_order_across_reconnects() -> None:
    n = CoinbaseNormaliser()
    out = RecordBuffer()
    n.on_frame(RECV, trades(0, [("103", "BTC-USD"), ("102", "BTC-USD"), ("101", "BTC-USD")], "snapshot"), out)
    n.on_frame(RECV, trades(1, [("104", "BTC-USD")]), out)
    n.on_disconnect(RECV, out)
    n.on_frame(RECV, trades(0, [("104", "BTC-USD"), ("103", "BTC-USD"), ("105", "BTC-USD")], "snapshot"), out)
    assert [r[4] for r in out.trades] == ["103", "102", "101", "104", "105"]
    assert [bool(r[8] & Flags.SNAPSHOT) for r in out.trades] == [True, True, True, False, True]
    dup = [orjson.loads(e[5]) for e in out.feed_events if e[4] == "duplicate"]
    assert dup == [{"trades": 2, "trade_ids": ["104", "103"], "snapshot": True}]


def test_subscribe_and_resubscribe_frames() -> None:
    dialect = CoinbaseDialect()
    sub = Subscription(("BTC-USD", "ETH-USD"))
    frames = [orjson.loads(f) for f in dialect.subscribe_frames(sub)]
    assert frames[0] == {"type": "subscribe", "channel": "heartbeats"}
    assert {(f["channel"], tuple(f["product_ids"])) for f in frames[1:]} == {
        ("market_trades", ("BTC-USD", "ETH-USD")),
        ("level2", ("BTC-USD", "ETH-USD")),
        ("ticker", ("BTC-USD", "ETH-USD")),
    }
    resub = [orjson.loads(f) for f in dialect.resubscribe_frames(["ETH-USD"], sub)]
    assert [(f["type"], f["channel"], f["product_ids"]) for f in resub] == [
        ("unsubscribe", "level2", ["ETH-USD"]),
        ("subscribe", "level2", ["ETH-USD"]),
    ]


def test_symbols() -> None:
    d = CoinbaseDialect()
    assert d.native_symbol("btc/usd") == "BTC-USD" and d.normalise_symbol("BTC-USD") == "BTC-USD"
    assert d.native_symbol("BTC-USDC-PERP") == "BTC-PERP-INTX"
    assert d.normalise_symbol("BTC-PERP-INTX") == "BTC-USDC-PERP"
    assert d.normalise_symbol("BIT-28JUN24-CDE") == "BIT-28JUN24-CDE"


GOOD_TRADE = trades(1, [("7", "ETH-USD")])  # the next sequence_num after any frame below


def _trade(**fields: Any) -> str:
    item: dict[str, Any] = {
        "trade_id": "1",
        "product_id": "BTC-USD",
        "price": "1.5",
        "size": "2",
        "side": "BUY",
        "time": "2023-02-09T20:32:51Z",
    }
    item.update(fields)
    item = {k: v for k, v in item.items() if v is not None}
    return message("market_trades", 0, [{"type": "update", "trades": [item]}])


@pytest.mark.parametrize(
    "frame",
    [
        '{"channel":"market_trades","client_id":"","timestamp":"2023',  # truncated JSON
        message("candles", 0, []),  # unknown channel
        '{"foo":1}',  # no channel
        _trade(price=None),  # missing field
        _trade(price="abc"),
        _trade(price="NaN"),
        _trade(price="-1"),
        _trade(product_id="../../etc"),
        _trade(time="yesterday"),
        _trade(side="UP"),
        b'\xff\xfe{"channel"',  # invalid UTF-8
        "[]",
        '{"channel":"l2_data","timestamp":"2023-02-09T20:32:51Z","sequence_num":"x","events":[]}',
        l2(0, "BTC-USD", "snapshot", [("bid", "-5", "1")]),
        l2(0, "BTC-USD", "snapshot", [("middle", "5", "1")]),
        message("l2_data", 0, [{"type": "snapshot", "product_id": "BTC-USD"}]),  # no updates
    ],
)
def test_bad_input_is_a_parse_error_and_others_keep_flowing(frame: str | bytes) -> None:
    assert_parse_error_then_flowing(CoinbaseNormaliser(), frame, GOOD_TRADE, ["7"])


def test_bad_level_leaves_the_book_untouched() -> None:
    n = CoinbaseNormaliser()
    out = RecordBuffer()
    n.on_frame(RECV, with_seq(DOC_L2_SNAPSHOT, 0), out)
    rows = len(out.book)
    n.on_frame(RECV, l2(1, "BTC-USD", "update", [("bid", "21921.9", "1"), ("offer", "21922", "abc")]), out)
    assert len(out.book) == rows and n.books["BTC-USD"].book.best_bid() == (21921.73, 0.06317902)
    assert [e[4] for e in out.feed_events] == ["parse_error"]


# -- the simulator through the real connection lifecycle ---------------------------------------------
SYMBOLS = ("BTC-USD", "ETH-USD")


async def test_simulator_round_trip_and_replay(tmp_path: Path) -> None:
    capture = tmp_path / "coinbase.capture.gz"
    async with running("coinbase", SYMBOLS, capture=capture, rate_hz=60) as run:
        await run.until(
            lambda: (
                run.count("book", "ETH-USD") > 200
                and run.count("trades", "BTC-USD") > 10
                and run.count("bbo", "BTC-USD") > 10
            )
        )
        normaliser = run.collector.connections[0].normaliser
        assert isinstance(normaliser, CoinbaseNormaliser)
        assert normaliser.parse_errors == 0 and normaliser.sequence_gaps == 0
        for native, book in normaliser.books.items():
            assert book.synced and not book.book.is_crossed(), native
    assert [e for e in run.got.feed_events if e[2] != "connection"] == []
    assert len({r[4] for r in run.got.trades}) == len(run.got.trades)
    replayed = replay_capture(get_dialect("coinbase").new_normaliser(), capture)
    assert (replayed.trades, replayed.book, replayed.bbo) == (run.got.trades, run.got.book, run.got.bbo)


async def test_dropped_update_is_a_gap_and_books_resync_while_trades_flow() -> None:
    async with running("coinbase", SYMBOLS, rate_hz=60) as run:
        await run.until(lambda: run.count("book", "ETH-USD") > 50)
        run.sim.faults.drop_updates["BTC-USD"] = 1
        await run.until(lambda: len(run.events("resync")) == 2)
        trades_before = run.count("trades", "ETH-USD")
        await run.until(lambda: run.count("trades", "ETH-USD") > trades_before + 3)
        gaps = run.events("gap")
        assert sorted(e[1] for e in gaps) == ["BTC-USD", "ETH-USD"]
        assert all(orjson.loads(e[5])["missing"] == 1 for e in gaps)
        # The counter cannot say which product lost the update: both books resync, once.
        assert {e[1] for e in run.events("resync")} == {"BTC-USD", "ETH-USD"}
        assert {r[9] for r in run.got.book if r[1] == "BTC-USD"} == {0, 1}
        normaliser = run.collector.connections[0].normaliser
        assert all(b.synced for b in normaliser.books.values())  # type: ignore[attr-defined]


async def test_reconnect_brings_new_snapshots_and_no_duplicate_trades() -> None:
    async with running("coinbase", SYMBOLS, rate_hz=60) as run:
        await run.until(lambda: run.count("trades", "BTC-USD") > 5)
        await run.sim.disconnect_all()
        await run.until(lambda: run.collector.stats.connects >= 2 and len(run.events("resync")) >= 2)
        ids = [r[4] for r in run.got.trades]
        assert len(ids) == len(set(ids))
        assert run.events("gap") == []  # a new connection restarts sequence_num at 0: not a gap


async def test_rebuilt_book_equals_the_ticker_that_follows_each_update() -> None:
    # In each market step the simulator sends the trades, then the l2 update (sequence_num s), then
    # the ticker (s + 1): the book rebuilt from the lake's rows must show the ticker's best bid/ask.
    async with running("coinbase", SYMBOLS, rate_hz=60) as run:
        await run.until(lambda: run.count("bbo", "BTC-USD") > 30 and run.count("bbo", "ETH-USD") > 30)
    tops = tops_by_seq(run.got.book)
    compared = 0
    for row in run.got.bbo:
        if row[9] & Flags.SNAPSHOT:
            continue
        top = tops.get((row[1], row[8] - 1))
        assert top is not None, f"no book state just before ticker {row[8]}"
        (bid_p, bid_s), (ask_p, ask_s) = top
        assert (bid_p, bid_s, ask_p, ask_s) == row[4:8], f"mismatch at sequence_num {row[8]}"
        compared += 1
    assert compared > 60


def test_overdue_snapshot_is_requested_again_and_a_gap_renews_waiting_books() -> None:
    n = CoinbaseNormaliser()
    out = RecordBuffer()
    n.on_frame(RECV, with_seq(DOC_L2_SNAPSHOT, 0), out)
    n.on_frame(RECV, l2(2, "BTC-USD", "update", [("bid", "21921.5", "1")]), out)  # 1 is missing
    n.on_frame(
        RECV, l2(3, "ETH-USD", "update", [("bid", "1500", "1")]), out
    )  # no snapshot seen: it may be what was lost
    assert n.resubscribe_requests == {"BTC-USD"}
    n.resubscribe_requests.clear()  # sent by the connection; the answers never come
    for seq in range(4, 4 + n.resync_watch.every - 1):
        n.on_frame(RECV, l2(seq, "BTC-USD", "update", [("bid", "21921.5", "1")]), out)
    retries = [(e[1], orjson.loads(e[5])) for e in out.feed_events if e[4] == "resync_retry"]
    assert retries == [("BTC-USD", {"updates_waited": n.resync_watch.every})]
    assert n.resubscribe_requests == {"BTC-USD"}
    # Another gap asks again for every book of the connection, the ones still waiting included.
    n.resubscribe_requests.clear()
    n.on_frame(RECV, l2(5000, "ETH-USD", "update", [("bid", "1500", "1")]), out)
    assert n.resubscribe_requests == {"BTC-USD", "ETH-USD"}


async def test_duplicated_and_reordered_messages_through_the_simulator() -> None:
    async with running("coinbase", SYMBOLS, rate_hz=60) as run:
        await run.until(lambda: run.count("book", "BTC-USD") > 30)
        run.sim.faults.duplicate_updates["BTC-USD"] = 2
        await run.until(lambda: len(run.events("duplicate")) == 2)
        assert run.events("gap") == []  # a repeated sequence_num is skipped, not a gap
        run.sim.faults.reorder_updates["ETH-USD"] = 1
        await run.until(lambda: len(run.events("resync")) >= 2)
        reasons = [orjson.loads(e[5]) for e in run.events("gap")]
        assert reasons and all("missing" in r or "backwards" in r.get("reason", "") for r in reasons)


async def test_bad_frames_and_lagging_clock_through_the_simulator() -> None:
    async with running("coinbase", SYMBOLS, rate_hz=60) as run:
        await run.until(lambda: run.count("book", "BTC-USD") > 30)
        run.sim.faults.malformed_frames = 1
        run.sim.faults.invalid_utf8_frames = 1
        await run.until(lambda: len(run.events("parse_error")) == 2)
        run.sim.faults.ts_lag_ns = 5_000_000_000
        before = len(run.got.trades)
        await run.until(lambda: any(r[8] & Flags.OUTDATED for r in run.got.trades[before:]))
        assert run.events("gap") == [] and run.events("resync") == []


def test_gap_on_a_connection_without_books_is_recorded_connection_wide() -> None:
    n = CoinbaseNormaliser()
    out = RecordBuffer()
    n.on_frame(RECV, trades(0, [("1", "BTC-USD")]), out)
    n.on_frame(RECV, trades(2, [("3", "BTC-USD")]), out)  # 1 is missing
    assert [(e[1], e[2], e[4], orjson.loads(e[5])) for e in out.feed_events] == [
        (None, "connection", "gap", {"expected": 1, "sequence_num": 2, "missing": 1})
    ]
    assert [r[4] for r in out.trades] == ["1", "3"] and n.resubscribe_requests == set()


def test_crossed_book_is_reported() -> None:
    n = CoinbaseNormaliser()
    out = RecordBuffer()
    n.on_frame(RECV, with_seq(DOC_L2_SNAPSHOT, 0), out)
    n.on_frame(RECV, l2(1, "BTC-USD", "update", [("bid", "21922", "1")]), out)  # above the 21921.74 ask
    assert [(e[4], orjson.loads(e[5])) for e in out.feed_events] == [
        ("crossed_book", {"bid": [21922.0, 1.0], "ask": [21921.74, 0.5], "sequence_num": 1})
    ]


def test_rfc3339_timestamps_keep_nanoseconds() -> None:
    assert iso_to_ns("2023-02-09T20:32:50.714964855Z") == 1_675_974_770_714_964_855
    assert iso_to_ns("2023-02-09T21:32:50.714964855+01:00") == 1_675_974_770_714_964_855
    assert iso_to_ns("2023-02-09T20:32:50Z") == 1_675_974_770_000_000_000
    assert iso_to_ns("2023-02-09T20:32:50.1234567891Z") == 1_675_974_770_123_456_789  # truncated
    assert ns_to_iso(1_675_974_770_714_964_855) == "2023-02-09T20:32:50.714964855Z"
    assert ns_to_iso(1_675_974_770_714_964_855, 6) == "2023-02-09T20:32:50.714964Z"
    for bad in ("2023-02-09T20:32:50", "2023-02-09T20:32:50.Z", "2023-13-09T20:32:50Z", "yesterday", 5, None):
        with pytest.raises(ParseError):
            iso_to_ns(bad)


def test_usdc_products_that_serve_the_usd_book_are_refused_by_name() -> None:
    """-USDC product ids return the -USD data on market channels: collecting both would store one
    book twice; USDT-USDC and EURC-USDC have books of their own."""
    d = get_dialect("coinbase")
    with pytest.raises(ValueError, match="BTC-USDC returns the data of BTC-USD"):
        d.native_symbol("btc-usdc")
    assert d.native_symbol("USDT-USDC") == "USDT-USDC" and d.native_symbol("EURC-USDC") == "EURC-USDC"
    assert d.native_symbol("BTC-USDC-PERP") == "BTC-PERP-INTX"  # the perpetual is its own product


def test_collect_refuses_an_aliased_usdc_product_with_a_clear_message(tmp_path, capsys) -> None:
    from ticktape.cli import main

    code = main(
        ["collect", "--exchange", "coinbase", "--symbols", "BTC-USD,BTC-USDC", "--log", str(tmp_path / "log")]
    )
    assert code == 2
    assert "BTC-USDC returns the data of BTC-USD" in capsys.readouterr().err
