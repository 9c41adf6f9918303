"""BitMEX: there is no BitMEX recording in ../shared, so these tests use the message examples BitMEX
documents (https://www.bitmex.com/app/wsAPI, and the 2023 announcement of arbitrary level ids with a
price on every orderBookL2 row, https://blog.bitmex.com/api_announcement/removing-id-schema-on-orderbook-feeds/,
checked 2026-12-05), with values written out so that each record can be compared with its message; and
the simulator end to end, whose book must equal its own quote stream at every equal timestamp.
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import orjson

from collectors.base import Subscription
from collectors.book import L2Book
from collectors.registry import get_dialect
from collectors.venues.bitmex import BitmexNormaliser
from schemas import RecordBuffer
from tests.collectors.bad_input import events_of
from tests.collectors.test_contract import Live

TS = 1_700_000_000_000_000_000


def _run(n: BitmexNormaliser, *messages: Any) -> RecordBuffer:
    out = RecordBuffer()
    for i, msg in enumerate(messages):
        n.on_frame(TS + i, msg if isinstance(msg, str) else orjson.dumps(msg), out)
    return out


def _l2(action: str, rows: list[dict[str, Any]], symbol: str = "XBTUSD") -> dict[str, Any]:
    msg: dict[str, Any] = {"table": "orderBookL2", "action": action, "data": rows}
    if action == "partial":
        msg.update(keys=["symbol", "id", "side"], filter={"symbol": symbol})
    return msg


def _row(
    level_id: int, side: str, price: float, size: int | None, ts: str, symbol: str = "XBTUSD"
) -> dict[str, Any]:
    row: dict[str, Any] = {"symbol": symbol, "id": level_id, "side": side, "price": price, "timestamp": ts}
    if size is not None:
        row["size"] = size
    return row


def _ns(iso: str) -> int:
    from collectors.events import iso_to_ns

    return iso_to_ns(iso)


PARTIAL = _l2(
    "partial",
    [
        _row(8798309900, "Sell", 26903.5, 1200, "2023-05-19T08:51:43.000Z"),
        _row(8798309850, "Sell", 26903.0, 500, "2023-05-19T08:51:43.000Z"),
        _row(8798309700, "Buy", 26901.5, 9000, "2023-05-19T08:51:43.000Z"),
    ],
)
# the announcement's "new implementation" examples: an insert, an update and a delete of one level
INSERT = _l2("insert", [_row(8798309800, "Buy", 26902, 32800, "2023-05-19T08:51:43.911Z")])
UPDATE = _l2("update", [_row(8798309800, "Buy", 26902, 42800, "2023-05-19T08:51:44.911Z")])
DELETE = _l2("delete", [_row(8798309800, "Buy", 26902, None, "2023-05-19T08:51:45.911Z")])


def test_l2_partial_insert_update_delete_become_rows_by_price() -> None:
    n = BitmexNormaliser()
    out = _run(n, PARTIAL, INSERT, UPDATE, DELETE)
    assert events_of(out) == []
    got = [(r[1], r[2], r[4], r[5], r[6], r[7], r[8], r[9]) for r in out.book]
    snap = _ns("2023-05-19T08:51:43.000Z")
    assert got == [
        ("BTC-USD-PERP", snap, "bid", 26901.5, 9000.0, True, None, 0),
        ("BTC-USD-PERP", snap, "ask", 26903.5, 1200.0, True, None, 0),
        ("BTC-USD-PERP", snap, "ask", 26903.0, 500.0, True, None, 0),
        ("BTC-USD-PERP", _ns("2023-05-19T08:51:43.911Z"), "bid", 26902.0, 32800.0, False, None, 0),
        ("BTC-USD-PERP", _ns("2023-05-19T08:51:44.911Z"), "bid", 26902.0, 42800.0, False, None, 0),
        ("BTC-USD-PERP", _ns("2023-05-19T08:51:45.911Z"), "bid", 26902.0, 0.0, False, None, 0),
    ]
    book = n.symbols.book("XBTUSD").book
    assert (book.best_bid(), book.best_ask()) == ((26901.5, 9000.0), (26903.0, 500.0))


def test_an_unknown_id_is_a_gap_for_that_symbol_only() -> None:
    n = BitmexNormaliser()
    eth_partial = _l2("partial", [_row(1, "Buy", 1800.0, 10, "2023-05-19T08:51:43.000Z", "ETHUSD")], "ETHUSD")
    _run(n, PARTIAL, eth_partial)
    # the insert of level 8798309800 was lost: its update names an id we never saw
    out = _run(
        n,
        UPDATE,
        _l2("update", [_row(1, "Buy", 1800.0, 12, "2023-05-19T08:51:44.000Z", "ETHUSD")]),
    )
    assert [(e[1], e[4]) for e in events_of(out)] == [("BTC-USD-PERP", "gap")]
    assert orjson.loads(out.feed_events[0][5])["reason"] == "update of an unknown id"
    assert n.resubscribe_requests == {"XBTUSD"}
    assert [(r[1], r[5], r[6]) for r in out.book] == [("ETH-USD-PERP", 1800.0, 12.0)]
    # until the new partial, XBTUSD messages are not applied; the partial resyncs it in a new epoch
    out = _run(n, DELETE, PARTIAL)
    assert [(e[1], e[4]) for e in out.feed_events] == [("BTC-USD-PERP", "resync")]
    assert {r[9] for r in out.book} == {1} and all(r[7] for r in out.book)
    frames = get_dialect("bitmex").resubscribe_frames(["XBTUSD"], Subscription(("XBTUSD",)))
    assert [orjson.loads(f) for f in frames] == [
        {"op": "unsubscribe", "args": ["orderBookL2:XBTUSD"]},
        {"op": "subscribe", "args": ["orderBookL2:XBTUSD"]},
    ]


def test_inconsistent_ids_are_gaps() -> None:
    cases = [
        _l2("delete", [_row(42, "Sell", 26903.0, None, "2023-05-19T08:51:44.000Z")]),  # unknown id
        _l2("insert", [_row(8798309850, "Sell", 26904.0, 5, "2023-05-19T08:51:44.000Z")]),  # held id
        _l2("insert", [_row(77, "Sell", 26903.0, 5, "2023-05-19T08:51:44.000Z")]),  # held price level
        _l2("update", [_row(8798309850, "Sell", 26904.0, 5, "2023-05-19T08:51:44.000Z")]),  # id moved
    ]
    for case in cases:
        n = BitmexNormaliser()
        _run(n, PARTIAL)
        out = _run(n, case)
        assert [e[4] for e in out.feed_events] == ["gap"], case
        assert out.book == []


TRADE = {
    "table": "trade",
    "action": "insert",
    "data": [
        {
            "timestamp": "2023-05-19T08:51:43.911Z",
            "symbol": "XBTUSD",
            "side": "Sell",
            "size": 100,
            "price": 26902,
            "tickDirection": "MinusTick",
            "trdMatchID": "00000000-006d-1000-0000-000d1a3f8c21",
            "grossValue": 371720,
            "homeNotional": 0.0037172,
            "foreignNotional": 100,
            "trdType": "Regular",
        },
        {
            "timestamp": "2023-05-19T08:51:43.912Z",
            "symbol": "XBTUSD",
            "side": "Buy",
            "size": 2500,
            "price": 26902.5,
            "tickDirection": "PlusTick",
            "trdMatchID": "00000000-006d-1000-0000-000d1a3f8c22",
            "grossValue": 9292900,
            "homeNotional": 0.092929,
            "foreignNotional": 2500,
            "trdType": "Regular",
        },
    ],
}


def test_trades_equal_the_messages_and_a_partial_repeat_is_dropped() -> None:
    n = BitmexNormaliser()
    out = _run(n, TRADE)
    assert [r[:8] for r in out.trades] == [
        (
            "bitmex",
            "BTC-USD-PERP",
            _ns(t["timestamp"]),
            TS,
            t["trdMatchID"],
            float(t["price"]),
            float(t["size"]),
            t["side"].lower(),
        )
        for t in TRADE["data"]
    ]
    # a resubscription's partial repeats the latest trade: not stored twice, not an anomaly
    out = _run(n, {**TRADE, "action": "partial", "data": TRADE["data"][1:]})
    assert out.trades == [] and out.feed_events == []


def test_quote_instrument_and_liquidation_values_equal_the_messages() -> None:
    n = BitmexNormaliser()
    quote = {
        "table": "quote",
        "action": "insert",
        "data": [
            {
                "timestamp": "2023-05-19T08:51:44.104Z",
                "symbol": "XBTUSD",
                "bidSize": 9000,
                "bidPrice": 26901.5,
                "askPrice": 26902,
                "askSize": 5100,
            }
        ],
    }
    out = _run(n, quote)
    assert [r[1:9] for r in out.bbo] == [
        ("BTC-USD-PERP", _ns("2023-05-19T08:51:44.104Z"), TS, 26901.5, 9000.0, 26902.0, 5100.0, None)
    ]

    partial = {
        "table": "instrument",
        "action": "partial",
        "data": [
            {
                "symbol": "XBTUSD",
                "state": "Open",
                "markPrice": 26905.63,
                "fairPrice": 26905.63,
                "indicativeSettlePrice": 26899.12,
                "openInterest": 410923300,
                "openValue": 1527449896200,
                "fundingRate": 0.0001,
                "indicativeFundingRate": 0.000075,
                "fundingTimestamp": "2023-05-19T12:00:00.000Z",
                "lastPrice": 26902,
                "timestamp": "2023-05-19T08:51:40.000Z",
            }
        ],
    }
    mark_update = {
        "table": "instrument",
        "action": "update",
        "data": [
            {
                "symbol": "XBTUSD",
                "markPrice": 26906.1,
                "fairPrice": 26906.1,
                "timestamp": "2023-05-19T08:51:45.000Z",
            }
        ],
    }
    funding_update = {
        "table": "instrument",
        "action": "update",
        "data": [
            {
                "symbol": "XBTUSD",
                "indicativeFundingRate": 0.00008,
                "openInterest": 410925300,
                "timestamp": "2023-05-19T08:51:50.000Z",
            }
        ],
    }
    other_update = {
        "table": "instrument",
        "action": "update",
        "data": [{"symbol": "XBTUSD", "lastPrice": 26903, "timestamp": "2023-05-19T08:51:51.000Z"}],
    }
    out = _run(n, partial, mark_update, funding_update, other_update)
    t0, t1, t2 = (
        _ns("2023-05-19T08:51:40.000Z"),
        _ns("2023-05-19T08:51:45.000Z"),
        _ns("2023-05-19T08:51:50.000Z"),
    )
    assert [(r[2], r[4], r[5]) for r in out.mark_price] == [(t0, 26905.63, 26899.12), (t1, 26906.1, 26899.12)]
    assert [(r[2], r[4], r[5]) for r in out.open_interest] == [
        (t0, 410923300.0, None),
        (t2, 410925300.0, None),
    ]
    next_funding = _ns("2023-05-19T12:00:00.000Z")
    assert [(r[2], r[4], r[5], r[6]) for r in out.funding] == [
        (t0, 0.0001, 0.000075, next_funding),
        (t2, 0.0001, 0.00008, next_funding),
    ]

    liquidation = {
        "table": "liquidation",
        "action": "insert",
        "data": [
            {
                "orderID": "8b4a95db-815a-f93a-c9a2-ffbbabeddbac",
                "symbol": "TRXZ19",
                "side": "Buy",
                "price": 2.17e-06,
                "leavesQty": 5000,
            }
        ],
    }
    filled = {
        "table": "liquidation",
        "action": "update",
        "data": [{"orderID": "8b4a95db-815a-f93a-c9a2-ffbbabeddbac", "symbol": "TRXZ19", "leavesQty": 2000}],
    }
    done = {
        "table": "liquidation",
        "action": "delete",
        "data": [{"orderID": "8b4a95db-815a-f93a-c9a2-ffbbabeddbac", "symbol": "TRXZ19"}],
    }
    out = _run(n, liquidation, filled, {**liquidation, "action": "partial"}, done)
    assert [r[1:9] for r in out.liquidations] == [
        ("TRXZ19", None, TS, "8b4a95db-815a-f93a-c9a2-ffbbabeddbac", "buy", 2.17e-06, 5000.0, 0)
    ]
    assert out.feed_events == []


def test_pong_welcome_and_answers_are_not_records() -> None:
    n = BitmexNormaliser()
    out = _run(
        n,
        "pong",
        {
            "info": "Welcome to the BitMEX Realtime API.",
            "version": "2.0.0",
            "timestamp": "2023-05-19T08:51:40.000Z",
            "docs": "https://www.bitmex.com/app/wsAPI",
            "limit": {"remaining": 39},
        },
        {
            "success": True,
            "subscribe": "trade:XBTUSD",
            "request": {"op": "subscribe", "args": ["trade:XBTUSD"]},
        },
        {
            "status": 400,
            "error": "Unknown table: trades",
            "meta": {},
            "request": {"op": "subscribe", "args": ["trades:XBTUSD"]},
        },
    )
    assert [e[4] for e in out.feed_events] == ["venue_error"]
    assert n.parse_errors == 0
    assert get_dialect("bitmex").app_ping == ("ping", 5.0)


def test_subscription_and_symbols() -> None:
    dialect = get_dialect("bitmex")
    [frame] = dialect.subscribe_frames(Subscription(("XBTUSD",), dialect.channels))
    assert orjson.loads(frame) == {
        "op": "subscribe",
        "args": [
            "trade:XBTUSD",
            "orderBookL2:XBTUSD",
            "quote:XBTUSD",
            "instrument:XBTUSD",
            "liquidation:XBTUSD",
        ],
    }
    pairs = {
        "XBTUSD": "BTC-USD-PERP",
        "XBTUSDT": "BTC-USDT-PERP",
        "ETHUSD": "ETH-USD-PERP",
        "SOLUSDT": "SOL-USDT-PERP",
        "XBTZ26": "XBTZ26",
        "XBTUSDTZ26": "XBTUSDTZ26",
    }
    for native, symbol in pairs.items():
        assert dialect.normalise_symbol(native) == symbol
        assert dialect.native_symbol(symbol) == native


async def test_simulated_books_equal_the_quotes_at_equal_timestamps(tmp_path: Path) -> None:
    """End to end over a websocket: the book kept by level id equals BitMEX's own quote stream."""
    live = Live(get_dialect("bitmex"), tmp_path / "sim.capture.gz")
    await live.start()
    try:
        await live.until("quotes", lambda: all(live.count("bbo", s) > 40 for s in live.symbols))
        await live.sim.disconnect_all()
        await asyncio.sleep(0.5)
        await live.until(
            "quotes after the reconnect", lambda: all(live.count("bbo", s) > 80 for s in live.symbols)
        )
    finally:
        await live.stop()
    assert [e[4] for e in live.got.feed_events if e[4] not in ("connect", "disconnect", "resync")] == []
    books: dict[str, L2Book] = {}
    tops: dict[tuple[str, int], tuple[Any, Any]] = {}
    snapshot_of: dict[str, tuple[int, int]] = {}
    for row in live.got.book:
        book = books.setdefault(row[1], L2Book())
        if row[7] and snapshot_of.get(row[1]) != (row[3], row[9]):
            book.clear()
            snapshot_of[row[1]] = (row[3], row[9])
        book.set_level(row[4], row[5], row[6])
        tops[(row[1], row[2])] = (book.best_bid(), book.best_ask())
    compared = 0
    for row in live.got.bbo:
        top = tops.get((row[1], row[2]))
        if top is not None:
            assert top == ((row[4], row[5]), (row[6], row[7])), row
            compared += 1
    assert compared > 100
