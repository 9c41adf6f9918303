"""Kraken websocket v2: documented message examples, checksum rules, bad input, and the simulator
through the real connection lifecycle (round trip, dropped update, corrupted checksum, replay).

No real Kraken recording is available; the book, trade and ticker examples below are the ones in
Kraken's v2 API documentation (docs.kraken.com, "Book (Level 2)", "Trade", "Ticker").
"""

from __future__ import annotations

import zlib
from pathlib import Path

import orjson
import pytest

from collectors.base import DialectOptions, Subscription
from collectors.book import L2Book
from collectors.capture import replay_capture
from collectors.events import iso_to_ns
from collectors.registry import get_dialect
from collectors.venues.kraken import KrakenDialect, KrakenNormaliser, kraken_checksum
from schemas import Flags, RecordBuffer
from tests.collectors.bad_input import assert_parse_error_then_flowing
from tests.collectors.test_connection import running

# -- documented examples (docs.kraken.com, websocket v2 "Book (Level 2)") -----------------------------
DOC_ACK = (
    '{"method":"subscribe","result":{"channel":"book","depth":10,"snapshot":true,"symbol":"MATIC/USD"},'
    '"success":true,"time_in":"2023-10-06T17:35:55.219022Z","time_out":"2023-10-06T17:35:55.219067Z"}'
)
DOC_BIDS = [
    ("0.5666", "4831.75496356"),
    ("0.5665", "6658.22734739"),
    ("0.5664", "18724.91513344"),
    ("0.5663", "11563.92544914"),
    ("0.5662", "14006.65365711"),
    ("0.5661", "17454.85679807"),
    ("0.566", "18097.1547"),
    ("0.5659", "33644.89175666"),
    ("0.5658", "148.3464"),
    ("0.5657", "606.70854372"),
]
DOC_ASKS = [
    ("0.5668", "4410.79769741"),
    ("0.5669", "4655.40412487"),
    ("0.567", "49844.89424998"),
    ("0.5671", "24306.41678"),
    ("0.5672", "29783.25223475"),
    ("0.5673", "57234.71239278"),
    ("0.5674", "45065.04744"),
    ("0.5675", "5912.76380354"),
    ("0.5676", "42514.92434778"),
    ("0.5677", "36304.0847022"),
]
DOC_SNAPSHOT_CHECKSUM = 2439117997
DOC_UPDATE_CHECKSUM = 2114181697
DOC_TS = "2023-10-06T17:35:55.440295Z"
DOC_TRADE = (
    '{"channel":"trade","type":"update","data":[{"symbol":"MATIC/USD","side":"buy","price":0.5147,'
    '"qty":6423.46326,"ord_type":"limit","trade_id":4665846,"timestamp":"2023-09-25T07:48:36.925533Z"},'
    '{"symbol":"MATIC/USD","side":"sell","price":0.5147,"qty":1136.19677815,"ord_type":"limit",'
    '"trade_id":4665847,"timestamp":"2023-09-25T07:49:36.925603Z"}]}'
)
DOC_TICKER = (
    '{"channel":"ticker","type":"snapshot","data":[{"symbol":"ALGO/USD","bid":0.10025,"bid_qty":740.0,'
    '"ask":0.10036,"ask_qty":1361.44813783,"last":0.10035,"volume":997038.98383185,"vwap":0.10148,'
    '"low":0.09979,"high":0.10285,"change":-0.00017,"change_pct":-0.17}]}'
)
TS_RECV = 1_696_613_756_000_000_000  # 2023-10-06T17:35:56Z


def levels_json(levels: list[tuple[str, str]]) -> str:
    return ",".join(f'{{"price":{p},"qty":{q}}}' for p, q in levels)


def book_frame(
    kind: str,
    bids: list[tuple[str, str]],
    asks: list[tuple[str, str]],
    checksum: int,
    symbol: str = "MATIC/USD",
    ts: str | None = DOC_TS,
) -> str:
    stamp = f',"timestamp":"{ts}"' if ts else ""
    return (
        f'{{"channel":"book","type":"{kind}","data":[{{"symbol":"{symbol}","bids":[{levels_json(bids)}],'
        f'"asks":[{levels_json(asks)}],"checksum":{checksum}{stamp}}}]}}'
    )


def kraken_crc(bids: list[tuple[str, str]], asks: list[tuple[str, str]]) -> int:
    """Independent reference: the documented algorithm, straight from the text."""

    def render(p: str, q: str) -> str:
        return p.replace(".", "").lstrip("0") + q.replace(".", "").lstrip("0")

    asks_sorted = sorted(asks, key=lambda lv: float(lv[0]))[:10]
    bids_sorted = sorted(bids, key=lambda lv: -float(lv[0]))[:10]
    text = "".join(render(p, q) for p, q in asks_sorted) + "".join(render(p, q) for p, q in bids_sorted)
    return zlib.crc32(text.encode())


def test_documented_snapshot_and_update_verify_their_checksums() -> None:
    n = KrakenNormaliser(depth=10)
    out = RecordBuffer()
    n.on_frame(TS_RECV, DOC_ACK, out)
    n.on_frame(TS_RECV, book_frame("snapshot", DOC_BIDS, DOC_ASKS, DOC_SNAPSHOT_CHECKSUM), out)
    update = book_frame("update", [("0.5657", "1098.3947558")], [], DOC_UPDATE_CHECKSUM)
    n.on_frame(TS_RECV + 1, update, out)
    assert out.feed_events == []
    assert n.checksums_verified == 2 and n.checksum_failures == 0
    # The documented example drops trailing zeros (0.566, 18097.1547): it verifies once padded to
    # the pair's precision (4 and 8 decimals), as the module docstring explains.
    assert n.checksums_padded == 2
    assert n.depths == {"MATIC/USD": 10}
    snap = [r for r in out.book if r[7]]
    assert len(snap) == 20 and all(r[10] & Flags.SNAPSHOT and r[9] == 0 for r in snap)
    assert snap[0][:8] == (
        "kraken",
        "MATIC-USD",
        iso_to_ns(DOC_TS),
        TS_RECV,
        "bid",
        0.5666,
        4831.75496356,
        True,
    )
    assert out.book[-1] == (
        "kraken",
        "MATIC-USD",
        iso_to_ns(DOC_TS),
        TS_RECV + 1,
        "bid",
        0.5657,
        1098.3947558,
        False,
        None,
        0,
        0,
    )
    book = n.books["MATIC/USD"].book
    assert book.best_bid() == (0.5666, 4831.75496356) and book.best_ask() == (0.5668, 4410.79769741)


def test_checksum_over_exact_wire_text_with_trailing_zeros() -> None:
    bids = [("100.10", "1.50000000"), ("100.00", "0.00100000")]
    asks = [("100.20", "2.00000000"), ("100.30", "0.25000000")]
    n = KrakenNormaliser(depth=10)
    out = RecordBuffer()
    n.on_frame(TS_RECV, book_frame("snapshot", bids, asks, kraken_crc(bids, asks), "BTC/USD"), out)
    assert n.checksums_verified == 1 and n.checksums_padded == 0 and out.feed_events == []
    # The wire strings are what the book keeps (a float would have lost the zeros).
    assert n.books["BTC/USD"].book.top("bid", 1)[0][2:] == ("100.10", "1.50000000")
    assert kraken_checksum(n.books["BTC/USD"].book) == kraken_crc(bids, asks)


def test_book_is_truncated_to_the_subscribed_depth() -> None:
    bids = [(f"{100 - i}.0", "1.0") for i in range(10)]
    asks = [(f"{101 + i}.0", "1.0") for i in range(10)]
    n = KrakenNormaliser(depth=10)
    out = RecordBuffer()
    n.on_frame(TS_RECV, book_frame("snapshot", bids, asks, kraken_crc(bids, asks), "BTC/USD"), out)
    # An insert in the middle pushes the worst bid (91.0) out of scope: Kraken sends no removal.
    new_bids = sorted([*bids, ("95.5", "2.0")], key=lambda lv: -float(lv[0]))[:10]
    n.on_frame(
        TS_RECV + 1, book_frame("update", [("95.5", "2.0")], [], kraken_crc(new_bids, asks), "BTC/USD"), out
    )
    assert out.feed_events == [] and n.checksums_verified == 2
    book = n.books["BTC/USD"].book
    assert book.depth("bid") == 10 and 91.0 not in book.bids
    assert out.book[-1][4:8] == ("bid", 91.0, 0.0, False)  # the truncation is in the lake too


def test_checksum_mismatch_resyncs_only_that_symbol() -> None:
    n = KrakenNormaliser(depth=10)
    out = RecordBuffer()
    lv_b, lv_a = [("100.0", "1.0")], [("101.0", "1.0")]
    for sym in ("BTC/USD", "ETH/USD"):
        n.on_frame(TS_RECV, book_frame("snapshot", lv_b, lv_a, kraken_crc(lv_b, lv_a), sym), out)
    bad = book_frame("update", [("100.5", "3.0")], [], 12345, "BTC/USD")
    n.on_frame(TS_RECV + 1, bad, out)
    good_bids = [("100.5", "1.0"), *lv_b]
    n.on_frame(
        TS_RECV + 2, book_frame("update", [("100.5", "1.0")], [], kraken_crc(good_bids, lv_a), "ETH/USD"), out
    )
    kinds = [(e[1], e[4]) for e in out.feed_events]
    assert kinds == [("BTC-USD", "checksum_mismatch")]
    assert orjson.loads(out.feed_events[0][5])["expected"] == 12345
    assert n.resubscribe_requests == {"BTC/USD"}
    btc_update = [r for r in out.book if r[1] == "BTC-USD" and not r[7]]
    assert btc_update and all(r[10] & Flags.MAYBE_BAD_BOOK for r in btc_update)
    assert all(r[10] == 0 for r in out.book if r[1] == "ETH-USD" and not r[7])
    # Rows until the new snapshot stay flagged; the snapshot resyncs with epoch 1.
    n.on_frame(TS_RECV + 3, book_frame("update", [("99.0", "1.0")], [], 1, "BTC/USD"), out)
    assert out.book[-1][10] & Flags.MAYBE_BAD_BOOK and n.checksum_failures == 1
    n.on_frame(TS_RECV + 4, book_frame("snapshot", lv_b, lv_a, kraken_crc(lv_b, lv_a), "BTC/USD"), out)
    assert [(e[1], e[4], orjson.loads(e[5])["epoch"]) for e in out.feed_events[1:]] == [
        ("BTC-USD", "resync", 1)
    ]
    assert n.resubscribe_requests == set() and n.books["BTC/USD"].synced


def test_resubscribe_frames_renew_only_the_book() -> None:
    dialect = KrakenDialect(DialectOptions(book_depth=10))
    sub = Subscription(("BTC/USD", "ETH/USD"))
    frames = [orjson.loads(f) for f in dialect.resubscribe_frames(["BTC/USD"], sub)]
    assert [(f["method"], f["params"]["channel"], f["params"]["symbol"]) for f in frames] == [
        ("unsubscribe", "book", ["BTC/USD"]),
        ("subscribe", "book", ["BTC/USD"]),
    ]
    assert frames[1]["params"]["depth"] == 10
    subs = [orjson.loads(f)["params"] for f in dialect.subscribe_frames(sub)]
    assert {p["channel"] for p in subs} == {"trade", "book", "ticker"}
    assert next(p for p in subs if p["channel"] == "ticker")["event_trigger"] == "bbo"


def test_documented_trades_exact() -> None:
    n = KrakenNormaliser()
    out = RecordBuffer()
    t1, t2 = iso_to_ns("2023-09-25T07:48:36.925533Z"), iso_to_ns("2023-09-25T07:49:36.925603Z")
    assert t1 == 1_695_628_116_925_533_000
    recv = t2 + 20_000_000  # 20 ms after the second trade: the first one is a minute old (OUTDATED)
    n.on_frame(recv, DOC_TRADE, out)
    assert out.trades == [
        ("kraken", "MATIC-USD", t1, recv, "4665846", 0.5147, 6423.46326, "buy", Flags.OUTDATED),
        ("kraken", "MATIC-USD", t2, recv, "4665847", 0.5147, 1136.19677815, "sell", 0),
    ]


def test_snapshot_trades_are_flagged_and_not_repeated_after_reconnect() -> None:
    n = KrakenNormaliser()
    out = RecordBuffer()
    snapshot = DOC_TRADE.replace('"type":"update"', '"type":"snapshot"')
    n.on_frame(TS_RECV, snapshot, out)
    assert all(r[8] & Flags.SNAPSHOT for r in out.trades)
    n.on_disconnect(TS_RECV + 1, out)
    n.on_frame(TS_RECV + 2, snapshot, out)  # the same 2 trades again on the new subscription
    assert len(out.trades) == 2
    # the documented trades are days older than TS_RECV: one bad_ts_exchange event, then the duplicates
    assert [e[4] for e in out.feed_events] == [
        "duplicate",
        "duplicate",
    ]  # replayed history: OUTDATED, no bad clock


def test_documented_ticker_is_a_bbo_row() -> None:
    n = KrakenNormaliser()
    out = RecordBuffer()
    n.on_frame(TS_RECV, DOC_TICKER, out)
    assert out.bbo == [
        ("kraken", "ALGO-USD", None, TS_RECV, 0.10025, 740.0, 0.10036, 1361.44813783, None, Flags.SNAPSHOT)
    ]


def test_heartbeat_status_and_acks_make_no_records_but_errors_are_recorded() -> None:
    n = KrakenNormaliser()
    out = RecordBuffer()
    for frame in (
        '{"channel":"heartbeat"}',
        '{"channel":"status","type":"update","data":[{"version":"2.0.0","system":"online","api_version":"v2","connection_id":1}]}',
        '{"method":"pong","req_id":1,"time_in":"2023-10-06T17:35:55.219022Z","time_out":"2023-10-06T17:35:55.219067Z"}',
    ):
        n.on_frame(TS_RECV, frame, out)
    assert len(out) == 0
    n.on_frame(
        TS_RECV,
        '{"method":"subscribe","error":"Currency pair not supported","success":false,"symbol":"XYZ/USD"}',
        out,
    )
    assert [e[4] for e in out.feed_events] == ["subscribe_error"]


GOOD_TRADE = (
    '{"channel":"trade","type":"update","data":[{"symbol":"ETH/USD","side":"buy","price":2000.1,"qty":1.5,'
    '"ord_type":"market","trade_id":7,"timestamp":"2023-09-25T07:48:36.925533Z"}]}'
)


def _trade(**fields: object) -> str:
    item: dict[str, object] = {
        "symbol": "BTC/USD",
        "side": "buy",
        "price": 1.0,
        "qty": 1.0,
        "ord_type": "market",
        "trade_id": 1,
        "timestamp": "2023-09-25T07:48:36.925533Z",
    }
    item.update(fields)
    item = {k: v for k, v in item.items() if v is not None}
    return orjson.dumps({"channel": "trade", "type": "update", "data": [item]}).decode()


@pytest.mark.parametrize(
    "frame",
    [
        '{"channel":"trade","type":"update","data":[{"symbol":"BTC/USD"',  # truncated JSON
        '{"channel":"ohlc","type":"update","data":[]}',  # unknown channel
        '{"foo":1}',  # neither channel nor method
        _trade(price=None),  # missing field
        _trade(price="abc"),
        _trade(price=-5.0),
        '{"channel":"trade","type":"update","data":[{"symbol":"BTC/USD","side":"buy","price":NaN,"qty":1,"trade_id":1,"timestamp":"2023-09-25T07:48:36Z"}]}',
        _trade(symbol="../../etc/USD"),
        _trade(timestamp="yesterday"),
        _trade(side="up"),
        b'\xff\xfe{"channel"',  # invalid UTF-8
        "[]",
        '{"channel":"book","type":"update","data":[{"symbol":"BTC/USD","bids":[{"price":-1,"qty":1}],"asks":[],"checksum":1}]}',
        '{"channel":"book","type":"snapshot","data":[{"symbol":"BTC/USD","bids":[{"price":1}],"asks":[],"checksum":1}]}',
        '{"channel":"book","type":"snapshot","data":[{"symbol":"BTC/USD","bids":[],"asks":[]}]}',  # no checksum
    ],
)
def test_bad_input_is_a_parse_error_and_others_keep_flowing(frame: str | bytes) -> None:
    assert_parse_error_then_flowing(KrakenNormaliser(), frame, GOOD_TRADE, ["7"])


def test_one_bad_item_does_not_cost_the_other_symbols_of_the_message() -> None:
    n = KrakenNormaliser()
    out = RecordBuffer()
    good = orjson.loads(GOOD_TRADE)["data"][0]
    frame = orjson.dumps({"channel": "trade", "type": "update", "data": [{"symbol": "BTC/USD"}, good]})
    n.on_frame(1, frame, out)
    assert [e[4] for e in out.feed_events] == ["parse_error"] and [r[1] for r in out.trades] == ["ETH-USD"]


def test_symbols() -> None:
    d = KrakenDialect()
    assert d.native_symbol("BTC-USD") == "BTC/USD" and d.native_symbol("xbt/usd") == "BTC/USD"
    assert d.normalise_symbol("XDG/EUR") == "DOGE-EUR"
    assert d.connection_url("wss://ws.kraken.com", None) == "wss://ws.kraken.com/v2"  # type: ignore[arg-type]


# -- the simulator through the real connection lifecycle ---------------------------------------------
SYMBOLS = ("BTC/USD", "ETH/USD")


@pytest.fixture(autouse=True)
def depth_10(monkeypatch: pytest.MonkeyPatch) -> None:
    # Depth 10: every visible change is covered by the checksum, so a dropped update is always caught.
    monkeypatch.setattr("collectors.venues.kraken.DEFAULT_BOOK_DEPTH", 10)


async def test_simulator_round_trip_verifies_every_checksum(tmp_path: Path) -> None:
    capture = tmp_path / "kraken.capture"
    async with running("kraken", SYMBOLS, capture=capture, rate_hz=60) as run:
        await run.until(
            lambda: (
                run.count("book", "ETH-USD") > 200
                and run.count("trades", "BTC-USD") > 10
                and run.count("bbo", "BTC-USD") > 10
            )
        )
        normaliser = run.collector.connections[0].normaliser
        assert isinstance(normaliser, KrakenNormaliser)
        assert normaliser.checksums_verified > 50 and normaliser.checksum_failures == 0
        assert normaliser.parse_errors == 0 and normaliser.checksums_padded == 0
    assert [e for e in run.got.feed_events if e[2] != "connection"] == []
    snapshot_trades = [r for r in run.got.trades if r[8] & Flags.SNAPSHOT]
    assert len({r[4] for r in run.got.trades}) == len(run.got.trades)  # no trade twice
    assert all(r[1] in ("BTC-USD", "ETH-USD") for r in snapshot_trades)
    # Capture then replay gives exactly the live records.
    replayed = replay_capture(get_dialect("kraken").new_normaliser(), capture)
    assert (replayed.trades, replayed.book, replayed.bbo) == (run.got.trades, run.got.book, run.got.bbo)


async def test_dropped_update_is_caught_by_the_checksum_and_only_that_symbol_resyncs() -> None:
    async with running("kraken", SYMBOLS, rate_hz=60) as run:
        await run.until(lambda: run.count("book", "ETH-USD") > 50)
        run.sim.faults.drop_updates["BTC/USD"] = 1
        await run.until(lambda: len(run.events("resync", "BTC-USD")) == 1)
        eth_before = run.count("book", "ETH-USD")
        await run.until(
            lambda: run.count("book", "ETH-USD") > eth_before + 20 and run.count("book", "BTC-USD") > 0
        )
        assert len(run.events("checksum_mismatch", "BTC-USD")) == 1
        assert run.events("checksum_mismatch", "ETH-USD") == [] and run.events("resync", "ETH-USD") == []
        btc_epochs = {r[9] for r in run.got.book if r[1] == "BTC-USD"}
        assert btc_epochs == {0, 1}
        assert {r[9] for r in run.got.book if r[1] == "ETH-USD"} == {0}
        normaliser = run.collector.connections[0].normaliser
        verified = normaliser.checksums_verified  # type: ignore[attr-defined]
        await run.until(lambda: normaliser.checksums_verified > verified + 20)  # type: ignore[attr-defined]
        assert normaliser.checksum_failures == 1  # type: ignore[attr-defined]


async def test_corrupted_checksum_is_detected_and_resynced() -> None:
    async with running("kraken", SYMBOLS, rate_hz=60) as run:
        await run.until(lambda: run.count("book", "BTC-USD") > 50)
        run.sim.faults.corrupt_checksums["ETH/USD"] = 1
        await run.until(lambda: len(run.events("resync", "ETH-USD")) == 1)
        mismatch = run.events("checksum_mismatch", "ETH-USD")
        assert len(mismatch) == 1
        detail = orjson.loads(mismatch[0][5])
        assert detail["expected"] != detail["computed"]
        assert run.events("checksum_mismatch", "BTC-USD") == []


async def test_rebuilt_book_equals_the_bbo_ticker_that_follows_it() -> None:
    # Kraken has no sequence numbers: rows are replayed in arrival order (a step's ticker frame
    # arrives after its book frame), and every ticker must show the rebuilt book's best bid/ask.
    async with running("kraken", SYMBOLS, rate_hz=60) as run:
        await run.until(lambda: run.count("bbo", "BTC-USD") > 30 and run.count("bbo", "ETH-USD") > 30)
    merged = sorted(
        [(r[3], 0, r) for r in run.got.book] + [(r[3], 1, r) for r in run.got.bbo],
        key=lambda item: (item[0], item[1]),
    )
    books: dict[str, L2Book] = {}
    last_snapshot: dict[str, int] = {}
    compared = 0
    for ts_recv, kind, row in merged:
        book = books.setdefault(row[1], L2Book())
        if kind == 0:
            if row[7] and last_snapshot.get(row[1]) != ts_recv:
                book.clear()  # a snapshot run resets the book
                last_snapshot[row[1]] = ts_recv
            book.set_level(row[4], row[5], row[6])
        elif not row[9] & Flags.SNAPSHOT:
            assert (book.best_bid(), book.best_ask()) == ((row[4], row[5]), (row[6], row[7]))
            compared += 1
    assert compared > 60


def test_overdue_resync_snapshot_is_requested_again() -> None:
    n = KrakenNormaliser(depth=10)
    out = RecordBuffer()
    lv_b, lv_a = [("100.0", "1.0")], [("101.0", "1.0")]
    n.on_frame(TS_RECV, book_frame("snapshot", lv_b, lv_a, kraken_crc(lv_b, lv_a), "BTC/USD"), out)
    n.on_frame(TS_RECV, book_frame("update", [("100.5", "1.0")], [], 1, "BTC/USD"), out)  # mismatch
    assert n.resubscribe_requests == {"BTC/USD"}
    n.resubscribe_requests.clear()  # sent by the connection; the answer never comes
    update = book_frame("update", [("99.0", "1.0")], [], 1, "BTC/USD")
    for _ in range(n.resync_watch.every):
        n.on_frame(TS_RECV, update, out)
    assert n.resubscribe_requests == {"BTC/USD"}
    assert [e[4] for e in out.feed_events] == ["checksum_mismatch", "resync_retry"]
    assert n.checksum_failures == 1  # no checksum is checked while the book waits


async def test_bad_frames_and_lagging_clock_through_the_simulator() -> None:
    async with running("kraken", SYMBOLS, rate_hz=60) as run:
        await run.until(lambda: run.count("book", "BTC-USD") > 30)
        run.sim.faults.malformed_frames = 1
        run.sim.faults.invalid_utf8_frames = 1
        await run.until(lambda: len(run.events("parse_error")) == 2)
        run.sim.faults.ts_lag_ns = 5_000_000_000
        before = len(run.got.book)
        await run.until(lambda: any(r[10] & Flags.OUTDATED for r in run.got.book[before:]))
        assert run.events("checksum_mismatch") == [] and run.events("resync") == []


def test_crossed_book_is_reported() -> None:
    n = KrakenNormaliser(depth=10)
    out = RecordBuffer()
    bids, asks = [("100.0", "1.0")], [("101.0", "1.0")]
    n.on_frame(TS_RECV, book_frame("snapshot", bids, asks, kraken_crc(bids, asks), "BTC/USD"), out)
    crossed = [("101.5", "1.0"), *bids]
    n.on_frame(
        TS_RECV, book_frame("update", [("101.5", "1.0")], [], kraken_crc(crossed, asks), "BTC/USD"), out
    )
    assert [(e[4], orjson.loads(e[5])["bid"]) for e in out.feed_events] == [("crossed_book", [101.5, 1.0])]
