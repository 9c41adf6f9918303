"""Binance USD-M futures normaliser: the shared real recording, the ``pu`` chain, bad input."""

from __future__ import annotations

from pathlib import Path

import orjson
import pytest

from collectors.base import Subscription
from collectors.capture import read_capture, replay_capture
from collectors.registry import get_dialect
from collectors.venues.binance import snapshot_frame
from collectors.venues.binance_futures import BinanceFuturesDialect, BinanceFuturesNormaliser
from schemas import Flags, RecordBuffer
from tests.collectors.bad_input import assert_parse_error_then_flowing
from tests.collectors.book_replay import assert_tops_match_bbo
from tests.collectors.test_connection import running

SAMPLE = "binance-futures/ethusdt_20240808.capture.gz"


@pytest.fixture(scope="module")
def sample_frames(samples: Path) -> list[tuple[int, dict]]:
    items = read_capture(samples / SAMPLE)
    return [(item[0], orjson.loads(item[1])) for item in items if isinstance(item, tuple)]


@pytest.fixture(scope="module")
def sample_records(samples: Path) -> RecordBuffer:
    return replay_capture(BinanceFuturesNormaliser(), samples / SAMPLE)


def test_trades_exact(sample_frames, sample_records) -> None:
    trade_frames = [(ts, f["data"]) for ts, f in sample_frames if f["stream"].endswith("@trade")]
    assert len(sample_records.trades) == len(trade_frames) == 14076
    for (ts, d), row in zip(trade_frames, sample_records.trades, strict=True):
        exchange, symbol, ts_ex, ts_recv, trade_id, price, size, side, flags = row
        assert (exchange, symbol) == ("binance-futures", "ETH-USDT-PERP")
        assert ts_recv == ts and ts_ex == d["T"] * 1_000_000
        assert trade_id == str(d["t"])
        assert (price, size) == (float(d["p"]), float(d["q"]))
        assert side == ("sell" if d["m"] else "buy")
        assert flags & Flags.NEG_LATENCY  # the recording host's clock ran ~1.27 s behind


def test_book_ticker_rows_carry_event_time(sample_frames, sample_records) -> None:
    ticks = [(ts, f["data"]) for ts, f in sample_frames if f["stream"].endswith("@bookTicker")]
    assert len(sample_records.bbo) == len(ticks) == 53992
    for (ts, d), row in zip(ticks, sample_records.bbo, strict=True):
        assert row[2] == d["E"] * 1_000_000 and row[3] == ts
        assert row[4:9] == (float(d["b"]), float(d["B"]), float(d["a"]), float(d["A"]), d["u"])


def test_rebuilt_book_equals_book_ticker_at_equal_update_ids(sample_records) -> None:
    compared = assert_tops_match_bbo(sample_records.book, sample_records.bbo)
    assert compared > 500  # 551 equal update ids in this recording


def test_no_false_gaps_and_the_snapshot_is_joined(sample_frames, sample_records) -> None:
    assert sample_records.feed_events == []
    snap = next(f["data"] for _, f in sample_frames if f["stream"].endswith("depthSnapshot"))
    snapshot_rows = [r for r in sample_records.book if r[7]]
    assert len(snapshot_rows) == 2000
    assert all(r[2] == snap["E"] * 1_000_000 and r[8] == snap["lastUpdateId"] for r in snapshot_rows)
    # The first applied event is the one straddling lastUpdateId (futures rule, not spot's +1).
    L = snap["lastUpdateId"]
    straddling = next(
        f["data"]
        for _, f in sample_frames
        if "@depth@" in f["stream"] and f["data"]["U"] <= L <= f["data"]["u"]
    )
    first_update = next(r for r in sample_records.book if not r[7] and r[8] > L - 1)
    assert first_update[8] == straddling["u"]
    assert {r[9] for r in sample_records.book} == {0}


def _depth(first: int, last: int, pu: int, bids=(), asks=(), sym: str = "BTCUSDT") -> bytes:
    return orjson.dumps(
        {
            "stream": f"{sym.lower()}@depth@100ms",
            "data": {
                "e": "depthUpdate",
                "E": 1_700_000_000_000,
                "T": 1_700_000_000_000,
                "s": sym,
                "U": first,
                "u": last,
                "pu": pu,
                "b": [list(b) for b in bids],
                "a": [list(a) for a in asks],
            },
        }
    )


def _snapshot(last_id: int, sym: str = "BTCUSDT") -> str:
    body = orjson.dumps(
        {
            "lastUpdateId": last_id,
            "E": 1_700_000_000_001,
            "T": 1_700_000_000_000,
            "bids": [["100.0", "1.0"]],
            "asks": [["101.0", "2.0"]],
        }
    )
    return snapshot_frame(sym, body)


def _synced(n: BinanceFuturesNormaliser, out: RecordBuffer, sym: str = "BTCUSDT") -> None:
    # ids jump (100 -> 105 -> 120) as on the real feed: only the pu chain proves continuity
    n.on_frame(1, _depth(95, 100, 90, sym=sym), out)
    n.on_frame(2, _depth(101, 105, 100, sym=sym), out)
    n.on_frame(3, _snapshot(103, sym), out)
    assert n.books[sym].synced and n.books[sym].last_seq == 105


def test_first_event_must_straddle_last_update_id() -> None:
    n = BinanceFuturesNormaliser()
    out = RecordBuffer()
    _synced(n, out)
    # Non-contiguous ids are fine when pu names the previous u.
    n.on_frame(4, _depth(112, 120, 105, bids=[("100.5", "1")]), out)
    assert n.books["BTCUSDT"].last_seq == 120 and out.feed_events == []
    assert n.books["BTCUSDT"].book.best_bid() == (100.5, 1.0)


def test_event_equal_to_last_update_id_is_applied_first() -> None:
    # Futures: U <= lastUpdateId <= u, so an event with u == lastUpdateId is the first one applied.
    n = BinanceFuturesNormaliser()
    out = RecordBuffer()
    n.on_frame(1, _depth(95, 100, 90, bids=[("99.0", "3")]), out)
    n.on_frame(2, _snapshot(100), out)
    assert n.books["BTCUSDT"].synced and n.books["BTCUSDT"].last_seq == 100
    assert n.books["BTCUSDT"].book.depth("bid") == 2


def test_stale_snapshot_is_detected_and_refetched() -> None:
    n = BinanceFuturesNormaliser()
    out = RecordBuffer()
    n.on_frame(1, _depth(120, 130, 110), out)
    n.on_frame(2, _snapshot(100), out)  # older than every buffered event
    assert [e[4] for e in out.feed_events] == ["gap"]
    assert n.snapshot_requests == {"BTCUSDT"} and not n.books["BTCUSDT"].synced
    n.on_frame(3, _snapshot(125), out)
    assert n.books["BTCUSDT"].synced and n.books["BTCUSDT"].last_seq == 130
    assert [e[4] for e in out.feed_events] == ["gap", "resync"]


def test_pu_mismatch_resyncs_only_that_symbol() -> None:
    n = BinanceFuturesNormaliser()
    out = RecordBuffer()
    _synced(n, out, "BTCUSDT")
    _synced(n, out, "ETHUSDT")
    n.on_frame(4, _depth(130, 140, 125, bids=[("100.6", "1")], sym="BTCUSDT"), out)  # 105..125 missing
    n.on_frame(5, _depth(106, 110, 105, asks=[("101.5", "1")], sym="ETHUSDT"), out)
    gaps = [e for e in out.feed_events if e[4] == "gap"]
    assert [(e[1], orjson.loads(e[5])["expected_pu"]) for e in gaps] == [("BTC-USDT-PERP", 105)]
    assert n.snapshot_requests == {"BTCUSDT"}
    assert not n.books["BTCUSDT"].synced and n.books["ETHUSDT"].synced
    assert n.books["ETHUSDT"].last_seq == 110
    n.on_frame(6, _snapshot(135, "BTCUSDT"), out)
    resyncs = [e for e in out.feed_events if e[4] == "resync"]
    assert [(e[1], orjson.loads(e[5])["epoch"]) for e in resyncs] == [("BTC-USDT-PERP", 1)]
    assert n.books["BTCUSDT"].synced and n.books["BTCUSDT"].last_seq == 140
    assert any(r[1] == "BTC-USDT-PERP" and r[8] == 140 and r[9] == 1 for r in out.book)


def test_repeated_event_is_a_duplicate_not_a_gap() -> None:
    n = BinanceFuturesNormaliser()
    out = RecordBuffer()
    _synced(n, out)
    frame = _depth(112, 120, 105, bids=[("100.5", "1")])
    n.on_frame(4, frame, out)
    rows = len(out.book)
    n.on_frame(5, frame, out)  # the same event again (pu 105 != 120, u 120 <= 120)
    assert [e[4] for e in out.feed_events] == ["duplicate"]
    assert len(out.book) == rows and n.books["BTCUSDT"].synced


def test_sequence_going_backwards_is_not_applied() -> None:
    n = BinanceFuturesNormaliser()
    out = RecordBuffer()
    _synced(n, out)
    n.on_frame(4, _depth(90, 95, 85, bids=[("50", "1")]), out)
    assert [e[4] for e in out.feed_events] == ["duplicate"]
    assert n.books["BTCUSDT"].book.best_bid() == (100.0, 1.0)


def test_non_market_executions_are_not_trades() -> None:
    n = BinanceFuturesNormaliser()
    out = RecordBuffer()
    base = {"e": "trade", "E": 1, "T": 1_700_000_000_000, "s": "ETHUSDT", "p": "2", "q": "3", "m": False}
    n.on_frame(
        1, orjson.dumps({"stream": "ethusdt@trade", "data": {**base, "t": 1, "X": "INSURANCE_FUND"}}), out
    )
    n.on_frame(2, orjson.dumps({"stream": "ethusdt@trade", "data": {**base, "t": 2, "X": "MARKET"}}), out)
    assert [r[4] for r in out.trades] == ["2"]
    assert [e[4] for e in out.feed_events] == ["non_market_trade"]


@pytest.mark.parametrize(
    "frame",
    [
        b'{"stream":"btcusdt@trade","data":{"e":"trade","s":"BTCUSDT","t":1,"p":"1',
        b'{"stream":"btcusdt@markPrice","data":{}}',
        b'{"stream":"btcusdt@trade","data":{"s":"BTCUSDT","t":1,"q":"1","T":1700000000000,"m":true,"X":"MARKET"}}',
        b'{"stream":"btcusdt@trade","data":{"s":"BTCUSDT","t":1,"p":"-5","q":"1","T":1700000000000,"m":true}}',
        b'{"stream":"btcusdt@trade","data":{"s":"BTCUSDT","t":1,"p":"NaN","q":"1","T":1700000000000,"m":true}}',
        b'{"stream":"x@trade","data":{"s":"../../etcUSDT","t":1,"p":"1","q":"1","T":1700000000000,"m":true}}',
        b'{"stream":"btcusdt@bookTicker","data":{"u":1,"s":"BTCUSDT","b":"1","B":"1","a":"2","A":"1"}}',
        b"\xff\xfe{",
        b'"just a string"',
    ],
)
def test_bad_input_is_a_parse_error_and_others_keep_flowing(frame: bytes) -> None:
    good = (
        b'{"stream":"ethusdt@trade","data":{"s":"ETHUSDT","t":7,"p":"2","q":"3","T":1700000000000,'
        b'"m":false,"X":"MARKET"}}'
    )
    assert_parse_error_then_flowing(BinanceFuturesNormaliser(), frame, good, ["7"])


def test_bad_pu_is_a_parse_error() -> None:
    n = BinanceFuturesNormaliser()
    out = RecordBuffer()
    _synced(n, out)
    n.on_frame(4, _depth(112, 120, "105"), out)  # type: ignore[arg-type]
    assert [e[4] for e in out.feed_events] == ["parse_error"]
    assert n.books["BTCUSDT"].synced and n.books["BTCUSDT"].last_seq == 105


def test_symbols_and_dialect() -> None:
    d = get_dialect("binance-futures")
    assert isinstance(d, BinanceFuturesDialect)
    assert d.normalise_symbol("ETHUSDT") == "ETH-USDT-PERP"
    assert d.normalise_symbol("1000PEPEUSDT") == "1000PEPE-USDT-PERP"
    assert d.normalise_symbol("BTCUSDT_250926") == "BTCUSDT_250926"
    assert d.native_symbol("ETH-USDT-PERP") == d.native_symbol("ETHUSDT") == "ETHUSDT"
    assert d.native_symbol("btcusdt_250926") == "BTCUSDT_250926"
    assert d.snapshot_request_weight("ETHUSDT") == 20
    streams = "ethusdt@trade/ethusdt@depth@100ms/ethusdt@bookTicker"
    # --ws-url is a base URL: the route is derived, a given route or access path is dropped first
    for given in (
        "ws://127.0.0.1:1",
        "ws://127.0.0.1:1/",
        "ws://127.0.0.1:1/public",
        "ws://127.0.0.1:1/stream",
    ):
        assert (
            d.connection_url(given, Subscription(("ETHUSDT",)))
            == f"ws://127.0.0.1:1/public/stream?streams={streams}"
        )
    assert d.max_streams_per_connection == 1024  # the USD-M page's figure (not 200)


def test_routes_follow_the_2026_notice_and_a_connection_never_mixes_them() -> None:
    from collectors.connection import split_subscription
    from collectors.venues.binance_futures import stream_route

    assert [stream_route(f"btcusdt@{k}") for k in ("depth@100ms", "bookTicker", "trade")] == ["public"] * 3
    assert [stream_route(f"btcusdt@{k}") for k in ("aggTrade", "markPrice@1s", "kline_1m", "forceOrder")] == [
        "market"
    ] * 4
    d = get_dialect("binance-futures")
    subs = split_subscription(d, [f"S{i}USDT" for i in range(700)], ("trades", "book", "bbo"))
    assert [len(s.symbols) for s in subs] == [341, 341, 18]  # 1024 streams / 3 per symbol
    for sub in subs:
        assert "/public/stream?" in d.connection_url("wss://fstream.binance.com", sub)

    class CoinMargined(BinanceFuturesDialect):  # how binance-delivery (dstream) will turn routing off
        routed = False

    url = CoinMargined().connection_url(
        "wss://dstream.binance.com", Subscription(("BTCUSD_PERP",), ("book",))
    )
    assert url == "wss://dstream.binance.com/stream?streams=btcusd_perp@depth@100ms"


# -- through the simulator, a real websocket, REST snapshots and the shared connection lifecycle ---------


async def test_simulator_round_trip_book_equals_book_ticker() -> None:
    async with running("binance-futures", ("BTCUSDT", "ETHUSDT")) as run:
        await run.until(
            lambda: (
                run.count("bbo", "BTC-USDT-PERP") > 100
                and run.count("bbo", "ETH-USDT-PERP") > 100
                and run.count("trades", "ETH-USDT-PERP") > 10
            )
        )
    kinds = {e[4] for e in run.got.feed_events}
    assert not kinds & {"parse_error", "gap", "resync", "duplicate"}
    assert all(r[2] is not None for r in run.got.bbo)  # futures bookTicker carries E
    compared = assert_tops_match_bbo(run.got.book, run.got.bbo)
    assert compared > 150


async def test_dropped_update_is_a_gap_and_only_that_symbol_resyncs() -> None:
    async with running("binance-futures", ("BTCUSDT", "ETHUSDT")) as run:
        await run.until(lambda: run.count("book", "ETH-USDT-PERP") > 20)
        run.sim.faults.drop_updates["ETHUSDT"] = 1
        await run.until(lambda: len(run.events("resync", "ETH-USDT-PERP")) == 1)
        btc_before = run.count("book", "BTC-USDT-PERP")
        await run.until(lambda: run.count("book", "BTC-USDT-PERP") > btc_before + 20)
        (gap,) = run.events("gap", "ETH-USDT-PERP")
        assert "expected_pu" in orjson.loads(gap[5])
        assert run.events("gap", "BTC-USDT-PERP") == [] and run.events("resync", "BTC-USDT-PERP") == []
        assert {r[9] for r in run.got.book if r[1] == "ETH-USDT-PERP"} == {0, 1}
        # two first snapshots and one resync (besides the open interest polls)
        assert run.sim.rest_requests - run.sim.open_interest_requests == 3


async def test_duplicated_update_is_not_a_gap() -> None:
    async with running("binance-futures", ("BTCUSDT", "ETHUSDT")) as run:
        await run.until(lambda: run.count("book", "BTC-USDT-PERP") > 20)
        run.sim.faults.duplicate_updates["BTCUSDT"] = 2
        await run.until(lambda: len(run.events("duplicate", "BTC-USDT-PERP")) == 2)
        assert run.events("gap") == [] and run.events("resync") == []


async def test_collector_uses_only_the_routed_public_path_and_books_match_book_ticker() -> None:
    """Against a server routing as Binance does since 2026-04-23, from the base URL alone."""
    async with running("binance-futures", ("BTCUSDT", "ETHUSDT")) as run:
        await run.until(
            lambda: (
                all(run.count(ds, "ETH-USDT-PERP") > 20 for ds in ("trades", "book", "bbo"))
                and run.count("bbo", "BTC-USDT-PERP") > 50
            )
        )
    # never an unrouted path: trades, book, bbo on /public, the derivatives channels on /market
    assert set(run.sim.paths_used) == {"/public/stream", "/market/stream"}, run.sim.paths_used
    assert not {e[4] for e in run.got.feed_events} & {"parse_error", "gap"}
    assert assert_tops_match_bbo(run.got.book, run.got.bbo) > 50


async def test_unrouted_paths_deliver_no_depth_like_the_venue() -> None:
    import asyncio

    import websockets

    from collectors.simulator import SimulatorConfig

    sim = get_dialect("binance-futures").simulator(SimulatorConfig(symbols=("BTCUSDT",), rate_hz=50))
    await sim.start()
    try:
        got: dict[str, set[str]] = {}
        for path in ("/stream", "/public/stream", "/market/stream"):
            url = f"{sim.ws_url}{path}?streams=btcusdt@depth@100ms/btcusdt@bookTicker/btcusdt@aggTrade"
            kinds: set[str] = set()
            async with websockets.connect(url) as ws:
                end = asyncio.get_running_loop().time() + 0.6
                while (left := end - asyncio.get_running_loop().time()) > 0:
                    try:
                        kinds.add(
                            orjson.loads(await asyncio.wait_for(ws.recv(), left))["stream"].split("@")[1]
                        )
                    except TimeoutError:
                        break
            got[path] = kinds
    finally:
        await sim.stop()
    assert got["/stream"] == {"bookTicker"}  # unrouted: no depth
    assert got["/public/stream"] == {"depth", "bookTicker"}
    assert got["/market/stream"] == set()  # the simulator renders no aggTrade; public streams stay silent


# -- derivatives channels (issue 15): documented examples, the simulator, the open interest poll -------
# The shared recording has no markPrice/forceOrder streams: these are the examples of Binance's pages
# (Mark-Price-Stream and Liquidation-Order-Streams, USD-M, checked 2026-12-05), wrapped as combined
# stream frames as the collector receives them.
DOC_MARK_PRICE = {
    "e": "markPriceUpdate",
    "E": 1562305380000,
    "s": "BTCUSDT",
    "p": "11794.15000000",
    "i": "11784.62659091",
    "P": "11784.25641265",
    "r": "0.00038167",
    "T": 1562306400000,
}
DOC_FORCE_ORDER = {
    "e": "forceOrder",
    "E": 1568014460893,
    "o": {
        "s": "BTCUSDT",
        "S": "SELL",
        "o": "LIMIT",
        "f": "IOC",
        "q": "0.014",
        "p": "9910",
        "ap": "9910",
        "X": "FILLED",
        "l": "0.014",
        "z": "0.014",
        "T": 1568014460893,
    },
}
#: ``GET /fapi/v1/openInterest`` answer, the response example of
#: https://developers.binance.com/docs/derivatives/usds-margined-futures/market-data/rest-api/Open-Interest
#: (checked 2026-12-05), as a generated frame (the collector wraps it so)
OPEN_INTEREST_BODY = b'{"openInterest":"10659.509","symbol":"BTCUSDT","time":1589437530011}'


def _combined(stream: str, data: dict) -> bytes:
    return orjson.dumps({"stream": stream, "data": data})


def test_mark_price_event_gives_mark_and_funding_rows_equal_to_the_message() -> None:
    out = RecordBuffer()
    recv = 1562305380000 * 10**6 + 3_000_000  # 3 ms after the event: no time flag
    BinanceFuturesNormaliser().on_frame(recv, _combined("btcusdt@markPrice@1s", DOC_MARK_PRICE), out)
    assert out.feed_events == []
    assert out.mark_price == [
        ("binance-futures", "BTC-USDT-PERP", 1562305380000 * 10**6, recv, 11794.15, 11784.62659091, 0)
    ]
    assert out.funding == [
        (
            "binance-futures",
            "BTC-USDT-PERP",
            1562305380000 * 10**6,
            recv,
            0.00038167,
            None,
            1562306400000 * 10**6,
            0,
        )
    ]


def test_force_order_is_one_liquidation_row_with_the_orders_taker_side() -> None:
    out = RecordBuffer()
    recv = 1568014460893 * 10**6 + 3_000_000
    BinanceFuturesNormaliser().on_frame(recv, _combined("btcusdt@forceOrder", DOC_FORCE_ORDER), out)
    # SELL: the liquidation order sells (a long was liquidated); average price, filled quantity, o.T
    assert out.liquidations == [
        ("binance-futures", "BTC-USDT-PERP", 1568014460893 * 10**6, recv, None, "sell", 9910.0, 0.014, 0)
    ]
    partly = {**DOC_FORCE_ORDER, "o": {**DOC_FORCE_ORDER["o"], "ap": "0", "z": "0", "S": "BUY", "X": "NEW"}}
    out = RecordBuffer()
    BinanceFuturesNormaliser().on_frame(9, _combined("btcusdt@forceOrder", partly), out)
    assert out.liquidations[0][5:8] == ("buy", 9910.0, 0.014)  # nothing filled yet: order price and qty


def test_polled_open_interest_is_a_generated_frame_equal_to_the_answer() -> None:
    from collectors.venues.binance_futures import open_interest_frame

    frame = open_interest_frame("BTCUSDT", OPEN_INTEREST_BODY)
    assert orjson.loads(frame) == {
        "stream": "btcusdt@openInterest",
        "generated": True,
        "data": orjson.loads(OPEN_INTEREST_BODY),
    }
    out = RecordBuffer()
    recv = 1589437530011 * 10**6 + 3_000_000
    BinanceFuturesNormaliser().on_frame(recv, frame, out)
    assert out.open_interest == [
        ("binance-futures", "BTC-USDT-PERP", 1589437530011 * 10**6, recv, 10659.509, None, 0)
    ]


@pytest.mark.parametrize(
    "frame",
    [
        _combined("btcusdt@markPrice@1s", {**DOC_MARK_PRICE, "p": "NaN"}),
        _combined("btcusdt@markPrice@1s", {**DOC_MARK_PRICE, "r": "1.5"}),
        _combined("btcusdt@markPrice@1s", {**DOC_MARK_PRICE, "s": "../x"}),
        _combined("btcusdt@forceOrder", {**DOC_FORCE_ORDER, "o": {**DOC_FORCE_ORDER["o"], "S": "LONG"}}),
        _combined("btcusdt@forceOrder", {**DOC_FORCE_ORDER, "o": {**DOC_FORCE_ORDER["o"], "ap": "-1"}}),
        _combined("btcusdt@forceOrder", {**DOC_FORCE_ORDER, "o": "x"}),
        _combined("btcusdt@openInterest", {"openInterest": "-3", "symbol": "BTCUSDT", "time": 1}),
    ],
)
def test_bad_derivatives_frames_are_parse_errors_and_add_no_row(frame: bytes) -> None:
    out = RecordBuffer()
    BinanceFuturesNormaliser().on_frame(1, frame, out)
    assert [e[4] for e in out.feed_events] == ["parse_error"]
    assert not (out.mark_price or out.funding or out.liquidations or out.open_interest)


def test_derivatives_streams_are_on_market_and_open_interest_is_polled() -> None:
    d = get_dialect("binance-futures")
    assert set(d.channels) >= {"funding", "mark", "open_interest", "liquidations"}
    market = Subscription(("BTCUSDT", "ETHUSDT"), ("funding", "mark", "open_interest", "liquidations"))
    assert d.channel_groups(("trades", "book", "bbo", *market.channels)) == [
        ("trades", "book", "bbo"),
        market.channels,
    ]
    # funding and mark share one stream; open interest has none (REST)
    assert d.connection_url("wss://fstream.binance.com", market) == (
        "wss://fstream.binance.com/market/stream?streams="
        "btcusdt@markPrice@1s/btcusdt@forceOrder/ethusdt@markPrice@1s/ethusdt@forceOrder"
    )
    assert d.rest_polls(market) == [("open_interest", "BTCUSDT"), ("open_interest", "ETHUSDT")]
    assert d.rest_polls(Subscription(("BTCUSDT",), ("trades", "book"))) == []
    only_polled = Subscription(("BTCUSDT",), ("open_interest",))
    assert d.connection_url("wss://fstream.binance.com", only_polled) == "wss://fstream.binance.com/market/ws"


def test_polls_stay_within_a_share_of_the_rest_budget() -> None:
    from collectors.backoff import RestBudget
    from collectors.connection import POLL_BUDGET_SHARE, FeedConnection

    d = get_dialect("binance-futures")
    budget = RestBudget(weight_per_window=2400, window_s=60.0)  # limit 1200 after the safety margin
    conn = FeedConnection.__new__(FeedConnection)  # only the budget arithmetic is exercised
    conn.dialect, conn.budget = d, budget
    few = [("open_interest", f"S{i}USDT") for i in range(10)]
    assert conn.poll_interval(few) == d.poll_interval_s  # 10 weight per 10 s round: well inside
    many = [("open_interest", f"S{i}USDT") for i in range(500)]
    interval = conn.poll_interval(many)
    # a round of 500 weight may use at most a quarter of 1200 per 60 s: one round every 100 s
    assert interval == pytest.approx(60.0 * 500 / (1200 * POLL_BUDGET_SHARE))


async def test_simulator_round_trip_of_the_derivatives_channels(tmp_path: Path) -> None:
    """Mark, funding, liquidations and polled open interest through a real websocket and REST; the
    capture holds the generated open interest frames and its replay equals the live rows."""
    capture = tmp_path / "live.capture.gz"
    async with running("binance-futures", ("BTCUSDT", "ETHUSDT"), capture=capture) as run:
        await run.until(
            lambda: all(
                run.count(ds, s) > (0 if ds == "open_interest" else 1)
                for ds in ("mark_price", "funding", "liquidations", "open_interest")
                for s in ("BTC-USDT-PERP", "ETH-USDT-PERP")
            ),
            timeout_s=15.0,
        )
        assert run.sim.open_interest_requests >= 2  # polled: each symbol at once, then every 10 s
    assert not {e[4] for e in run.got.feed_events} & {"parse_error", "rest_error", "stale"}
    for row in run.got.funding:
        assert row[4] in (0.0001,) and row[6] is not None and row[6] % (8 * 3600 * 10**9) == 0
    for row in run.got.mark_price:
        assert row[2] is not None and row[5] is not None and row[4] > row[5]
    assert {r[5] for r in run.got.liquidations} <= {"buy", "sell"}
    files = sorted(tmp_path.glob("live*"))
    polled = [
        orjson.loads(item[1])
        for path in files
        for item in read_capture(path)
        if isinstance(item, tuple) and b"@openInterest" in item[1]
    ]
    assert polled and all(p["generated"] is True for p in polled)
    by_time = {
        (p["data"]["symbol"], p["data"]["time"] * 10**6): float(p["data"]["openInterest"]) for p in polled
    }
    live_oi = {
        (("BTCUSDT" if r[1].startswith("BTC") else "ETHUSDT"), r[2]): r[4] for r in run.got.open_interest
    }
    assert live_oi.items() <= by_time.items()  # every row equals its answer, value and time
    replayed = RecordBuffer()
    for path in files:
        replayed.extend(replay_capture(get_dialect("binance-futures").new_normaliser(), path))
    for ds in ("mark_price", "funding", "liquidations", "open_interest"):
        assert sorted(replayed.rows(ds)) == sorted(run.got.rows(ds)), ds
