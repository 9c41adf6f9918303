"""Bitget (``bitget`` spot, ``bitget-futures`` USDT-M): the shared 2022 recordings of the retired v1
API (real checksums), documented v2 message examples and rules, and the simulator round trip.

What the v1 recordings (``../shared/samples/bitget``) differ in from current v2, as the module says:
``instType`` ``sp``/``mc`` (v2: ``SPOT``/``USDT-FUTURES``); trades are ``[ts, price, size, side]``
arrays without a trade id (v2: objects with ``tradeId``); books carry the same CRC32 checksum but no
``seq``/``pseq`` (the rows get made-up ``v1:...`` trade ids); tickers have ``bestBid``/``bestAsk`` without sizes (no bbo rows from them).
"""

from __future__ import annotations

import time
import zlib
from collections import Counter
from pathlib import Path
from typing import Any

import orjson
import pytest
import websockets

from collectors.base import DialectOptions, Subscription
from collectors.book import L2Book
from collectors.capture import read_capture, replay_capture
from collectors.registry import get_dialect
from collectors.simulator import SimulatorConfig
from collectors.venues.bitget import bitget_checksum
from collectors.venues.bitget.client import BitgetDialect, BitgetNormaliser
from collectors.venues.bitget.futures import BitgetFuturesDialect, BitgetFuturesNormaliser
from collectors.venues.bitget.spot import BitgetSpotDialect, BitgetSpotNormaliser
from schemas import Flags, RecordBuffer
from tests.collectors.bad_input import assert_parse_error_then_flowing
from tests.collectors.book_replay import assert_tops_match_bbo
from tests.collectors.test_connection import running

SPOT_SAMPLE = "bitget/bitget_cryptofeed.capture.gz"
FUTURES_SAMPLE = "bitget/bitget_cryptofeed_2.capture.gz"


def _signed(text: str) -> int:
    crc = zlib.crc32(text.encode())
    return crc - 2**32 if crc >= 2**31 else crc


# -- the 2022 v1 recordings --------------------------------------------------------------------------


def _frames(samples: Path, name: str) -> list[tuple[int, dict[str, Any]]]:
    items = read_capture(samples / name)
    return [(item[0], orjson.loads(item[1])) for item in items if isinstance(item, tuple)]


def _pushes(frames: list[tuple[int, dict[str, Any]]], channel: str) -> list[tuple[int, dict[str, Any]]]:
    return [(ts, f) for ts, f in frames if f.get("arg", {}).get("channel") == channel and "data" in f]


CASES = [
    # (exchange id, sample, symbol suffix, trades, book pushes, ignored pushes, instruments)
    ("bitget", SPOT_SAMPLE, "", 430, 443, 171, 8),
    ("bitget-futures", FUTURES_SAMPLE, "-PERP", 125, 194, 244, 2),
]


@pytest.fixture(scope="module", params=CASES, ids=[c[0] for c in CASES])
def recording(request: pytest.FixtureRequest, samples: Path) -> Any:
    exchange, sample, suffix, *counts = request.param
    normaliser = get_dialect(exchange).new_normaliser()
    assert isinstance(normaliser, BitgetNormaliser)
    out = replay_capture(normaliser, samples / sample)
    return exchange, suffix, counts, _frames(samples, sample), normaliser, out


def test_v1_trades_equal_the_messages_field_by_field(recording: Any) -> None:
    exchange, suffix, (n_trades, *_), frames, _, out = recording
    expected = [(ts, f, t) for ts, f in _pushes(frames, "trade") for t in f["data"]]
    assert len(out.trades) == len(expected) == n_trades
    for (ts, f, t), row in zip(expected, out.trades, strict=True):
        ex, symbol, ts_ex, ts_recv, trade_id, price, size, side, flags = row
        inst = f["arg"]["instId"]
        assert (ex, symbol) == (exchange, f"{inst[:-4]}-USDT{suffix}")
        assert (ts_ex, ts_recv) == (int(t[0]) * 1_000_000, ts)
        assert (price, size, side) == (float(t[1]), float(t[2]), t[3])
        assert trade_id == f"v1:{t[0]}:{t[1]}:{t[2]}:{t[3]}"  # made up from the wire: v1 has no id
        # the subscribe snapshot (recent trades) is flagged, live updates are not
        assert bool(flags & Flags.SNAPSHOT) == (f["action"] == "snapshot")


def test_v1_every_checksum_verifies_without_false_gap(recording: Any) -> None:
    _, _, (_, n_books, n_ignored, n_instruments), frames, normaliser, out = recording
    books = _pushes(frames, "books")
    assert normaliser.checksums_verified == len(books) == n_books
    assert normaliser.checksums_unverified == 0
    assert out.feed_events == [] and normaliser.parse_errors == 0
    assert normaliser.resubscribe_requests == set()
    assert {r[9] for r in out.book} == {0}  # one epoch per book: no resync
    assert len({r[1] for r in out.book if r[7]}) == n_instruments
    # candles and v1 tickers are recognised and counted, never rows; v1 tickers give no bbo (on futures
    # they give the derivatives rows, test_v1_futures_tickers_give_mark_funding_and_open_interest)
    others = [
        f for _, f in frames if f.get("arg", {}).get("channel") in ("ticker", "candle1m") and "data" in f
    ]
    assert len(others) == n_ignored
    if normaliser.derivatives:
        others = [f for f in others if f["arg"]["channel"] != "ticker"]
    assert normaliser.ignored_pushes == len(others)
    assert out.bbo == []


def test_v1_book_rows_follow_the_wire(recording: Any) -> None:
    _, _, _, frames, _, out = recording
    books = _pushes(frames, "books")
    ts, first = next((ts, f) for ts, f in books if f["action"] == "update")
    inst = first["arg"]["instId"]
    entry = first["data"][0]
    symbol_rows = [r for r in out.book if r[3] == ts and not r[7]]
    wire = [("bid", float(p), float(s)) for p, s in entry["bids"]]
    wire += [("ask", float(p), float(s)) for p, s in entry["asks"]]
    assert [(r[4], r[5], r[6]) for r in symbol_rows] == wire
    assert all(r[1].startswith(inst[:-4]) and r[2] == int(entry["ts"]) * 1_000_000 for r in symbol_rows)
    assert all(r[8] is None for r in symbol_rows)  # v1 has no seq


# -- documented v2 messages ----------------------------------------------------------------------------

# Spot trade push, as on https://www.bitget.com/api-doc/spot/websocket/public/Trades-Channel
DOC_SPOT_TRADE = (
    b'{"action":"snapshot","arg":{"instType":"SPOT","channel":"trade","instId":"BTCUSDT"},'
    b'"data":[{"ts":"1695709835822","price":"26293.4","size":"0.0013","side":"buy",'
    b'"tradeId":"1000000000"}],"ts":1695711090682}'
)
# Futures trade push, as on https://www.bitget.com/api-doc/contract/websocket/public/New-Trades-Channel
DOC_FUTURES_TRADE = (
    b'{"action":"snapshot","arg":{"instType":"USDT-FUTURES","channel":"trade","instId":"BTCUSDT"},'
    b'"data":[{"ts":"1695716760565","price":"27000.5","size":"0.001","side":"buy","tradeId":"1111111111"},'
    b'{"ts":"1695716759514","price":"27000.0","size":"0.001","side":"sell","tradeId":"1111111111"}],'
    b'"ts":1695716761589}'
)


def test_documented_trade_pushes() -> None:
    n = BitgetSpotNormaliser()
    out = RecordBuffer()
    n.on_frame(1_695_709_835_900_000_000, DOC_SPOT_TRADE, out)
    assert out.trades == [
        (
            "bitget",
            "BTC-USDT",
            1_695_709_835_822_000_000,
            1_695_709_835_900_000_000,
            "1000000000",
            26293.4,
            0.0013,
            "buy",
            int(Flags.SNAPSHOT),
        )
    ]
    f = BitgetFuturesNormaliser()
    out = RecordBuffer()
    f.on_frame(1_695_716_761_600_000_000, DOC_FUTURES_TRADE.replace(b'"snapshot"', b'"update"'), out)
    # Both trades of the example, though it gives them one placeholder id: an update is never dropped.
    assert [(r[1], r[2], r[4], r[5], r[6], r[7]) for r in out.trades] == [
        ("BTC-USDT-PERP", 1_695_716_760_565_000_000, "1111111111", 27000.5, 0.001, "buy"),
        ("BTC-USDT-PERP", 1_695_716_759_514_000_000, "1111111111", 27000.0, 0.001, "sell"),
    ]


def test_documented_checksum_strings() -> None:
    # The two worked examples of the Depth Channel page: bid1:ask1:bid2:ask2..., a short side stops.
    book = L2Book()
    for side, levels in (
        ("bid", [("43231.1", "4"), ("43231", "6")]),
        ("ask", [("43232.8", "9"), ("43232.9", "8")]),
    ):
        for p, s in levels:
            book.set_level(side, float(p), float(s), p, s)
    assert bitget_checksum(book) == _signed("43231.1:4:43232.8:9:43231:6:43232.9:8")
    short = L2Book()
    short.set_level("bid", 3366.1, 7.0, "3366.1", "7")
    for p, s in (("3366.8", "9"), ("3368", "8"), ("3372", "8")):
        short.set_level("ask", float(p), float(s), p, s)
    assert bitget_checksum(short) == _signed("3366.1:7:3366.8:9:3368:8:3372:8")


def _book(
    action: str,
    seq: int | None,
    pseq: int | None = None,
    bids: list[tuple[str, str]] | None = None,
    asks: list[tuple[str, str]] | None = None,
    inst: str = "BTCUSDT",
    checksum: int | None = None,
    inst_type: str = "SPOT",
) -> bytes:
    entry: dict[str, Any] = {
        "asks": [list(x) for x in asks or []],
        "bids": [list(x) for x in bids or []],
        "ts": "1695716059516",
    }
    if seq is not None:
        entry["seq"] = seq
    if pseq is not None:
        entry["pseq"] = pseq
    if checksum is not None:
        entry["checksum"] = checksum
    arg = {"instType": inst_type, "channel": "books", "instId": inst}
    return orjson.dumps({"action": action, "arg": arg, "data": [entry], "ts": 1695716059516})


DOC_BIDS = [("43231.1", "4"), ("43231", "6")]
DOC_ASKS = [("43232.8", "9"), ("43232.9", "8")]
DOC_CHECKSUM = _signed("43231.1:4:43232.8:9:43231:6:43232.9:8")


def test_checksum_on_the_documented_book_verifies_and_a_wrong_one_resubscribes() -> None:
    n = BitgetSpotNormaliser()
    out = RecordBuffer()
    n.on_frame(1, _book("snapshot", 10, None, DOC_BIDS, DOC_ASKS, checksum=DOC_CHECKSUM), out)
    n.on_frame(2, _book("snapshot", 10, None, DOC_BIDS, DOC_ASKS, inst="ETHUSDT"), out)
    assert out.feed_events == [] and n.checksums_verified == 1 and n.checksums_unverified == 1
    # remove bid2: the book is 43231.1:4:43232.8:9:43232.9:8
    ok = _signed("43231.1:4:43232.8:9:43232.9:8")
    n.on_frame(3, _book("update", 11, 10, [("43231", "0")], checksum=ok), out)
    assert out.feed_events == [] and n.checksums_verified == 2
    before = len(out.book)
    n.on_frame(4, _book("update", 12, 11, [("43231.2", "1")], checksum=ok), out)
    assert [(e[1], e[4]) for e in out.feed_events] == [("BTC-USDT", "checksum_mismatch")]
    detail = orjson.loads(out.feed_events[0][5])
    assert detail["checksum"] == ok and detail["computed"] != ok
    assert out.book[before:] and all(r[10] & Flags.MAYBE_BAD_BOOK for r in out.book[before:])
    assert n.resubscribe_requests == {"BTCUSDT"} and n.books["ETHUSDT"].synced
    n.on_frame(5, _book("update", 13, 12, [("43231.3", "1")], checksum=ok), out)
    assert n.updates_skipped == 1  # waiting for the new snapshot
    n.on_frame(6, _book("snapshot", 20, None, DOC_BIDS, DOC_ASKS, checksum=DOC_CHECKSUM), out)
    (resync,) = [e for e in out.feed_events if e[4] == "resync"]
    assert resync[1] == "BTC-USDT" and orjson.loads(resync[5])["epoch"] == 1


def test_sequence_rules() -> None:
    n = BitgetFuturesNormaliser()
    out = RecordBuffer()
    inst_type = "USDT-FUTURES"
    n.on_frame(1, _book("snapshot", 10, None, DOC_BIDS, DOC_ASKS, inst_type=inst_type), out)
    n.on_frame(2, _book("snapshot", 10, None, DOC_BIDS, DOC_ASKS, inst="ETHUSDT", inst_type=inst_type), out)
    n.on_frame(3, _book("update", 15, 10, [("43231.5", "1")], inst_type=inst_type), out)  # pseq continues
    n.on_frame(4, _book("update", 15, 10, [("43231.5", "1")], inst_type=inst_type), out)  # the same again
    n.on_frame(5, _book("update", 3, 0, [("43231.6", "1")], inst_type=inst_type), out)  # restart: pseq 0
    n.on_frame(6, _book("update", 7, None, [("43231.7", "1")], inst_type=inst_type), out)  # seq only
    n.on_frame(7, _book("update", 6, None, [("43231.8", "1")], inst_type=inst_type), out)  # backwards
    assert [e[4] for e in out.feed_events] == ["duplicate", "duplicate"]
    book = n.books["BTCUSDT"]
    assert book.synced and book.last_seq == 7 and n.sequence_restarts == 1
    assert book.book.best_bid() == (43231.7, 1.0)
    assert [r[8] for r in out.book if not r[7]] == [15, 3, 7]
    # a lost push: pseq is not the last seq -> a gap for that instrument only
    n.on_frame(8, _book("update", 30, 20, [("43231.9", "1")], inst_type=inst_type), out)
    n.on_frame(9, _book("update", 12, 10, [("43231.9", "1")], inst="ETHUSDT", inst_type=inst_type), out)
    (gap,) = [e for e in out.feed_events if e[4] == "gap"]
    assert gap[1] == "BTC-USDT-PERP" and orjson.loads(gap[5])["expected_pseq"] == 7
    assert n.resubscribe_requests == {"BTCUSDT"} and n.books["ETHUSDT"].synced


def test_books1_is_the_bbo_with_the_book_seq() -> None:
    # The top level of the documented books5 example, pushed on books1 (snapshot every time).
    frame = (
        b'{"action":"snapshot","arg":{"instType":"SPOT","channel":"books1","instId":"BTCUSDT"},'
        b'"data":[{"asks":[["26274.9","0.0009"]],"bids":[["26274.8","0.0009"]],"checksum":0,"seq":123,'
        b'"ts":"1695710946294"}],"ts":1695710946294}'
    )
    n = BitgetSpotNormaliser()
    out = RecordBuffer()
    n.on_frame(1_695_710_946_300_000_000, frame, out)
    assert out.bbo == [
        (
            "bitget",
            "BTC-USDT",
            1_695_710_946_294_000_000,
            1_695_710_946_300_000_000,
            26274.8,
            0.0009,
            26274.9,
            0.0009,
            123,
            0,
        )
    ]


def test_ticker_bbo_has_no_sequence() -> None:
    frame = (
        b'{"action":"snapshot","arg":{"instType":"USDT-FUTURES","channel":"ticker","instId":"BTCUSDT"},'
        b'"data":[{"instId":"BTCUSDT","lastPr":"27000.5","bidPr":"27000","askPr":"27000.5",'
        b'"bidSz":"2.71","askSz":"8.76","ts":"1695716760565"}],"ts":1695716760565}'
    )
    n = BitgetFuturesNormaliser()
    out = RecordBuffer()
    n.on_frame(1_695_716_760_600_000_000, frame, out)
    assert [r[1:] for r in out.bbo] == [
        (
            "BTC-USDT-PERP",
            1_695_716_760_565_000_000,
            1_695_716_760_600_000_000,
            27000.0,
            2.71,
            27000.5,
            8.76,
            None,
            0,
        )
    ]


def test_control_messages() -> None:
    n = BitgetSpotNormaliser()
    out = RecordBuffer()
    n.on_frame(1, b"pong", out)
    n.on_frame(
        2, b'{"event":"subscribe","arg":{"instType":"SPOT","channel":"books","instId":"BTCUSDT"}}', out
    )
    n.on_frame(
        3, b'{"event":"unsubscribe","arg":{"instType":"SPOT","channel":"books","instId":"BTCUSDT"}}', out
    )
    n.on_frame(
        4,
        b'{"event":"error","arg":{"instType":"SPOT","channel":"books","instId":"NOPEUSDT"},'
        b'"code":30001,"msg":"instType:SPOT,channel:books,instId:NOPEUSDT doesn\'t exist"}',
        out,
    )
    assert [(e[1], e[4]) for e in out.feed_events] == [("NOPE-USDT", "exchange_error")]
    assert orjson.loads(out.feed_events[0][5])["code"] == "30001"


def test_trade_snapshot_after_reconnect_drops_stored_trades() -> None:
    n = BitgetSpotNormaliser()
    out = RecordBuffer()
    live = DOC_SPOT_TRADE.replace(b'"snapshot"', b'"update"')
    n.on_frame(1, live, out)
    n.on_disconnect(2, out)
    n.on_frame(3, DOC_SPOT_TRADE, out)  # the recent trades Bitget sends on subscribe
    assert [r[4] for r in out.trades] == ["1000000000"] and n.trades_replayed == 1
    assert not out.trades[0][8] & Flags.SNAPSHOT  # the live push was stored, not the replay


GOOD_TRADE = (
    b'{"action":"update","arg":{"instType":"SPOT","channel":"trade","instId":"ETHUSDT"},'
    b'"data":[{"ts":"1700000000000","price":"2","size":"3","side":"sell","tradeId":"7"}],"ts":1700000000000}'
)


def _trade(**fields: Any) -> bytes:
    trade = {"ts": "1700000000000", "price": "1", "size": "1", "side": "buy", "tradeId": "1"}
    trade.update(fields)
    inst = trade.pop("inst", "BTCUSDT")
    arg = {"instType": "SPOT", "channel": "trade", "instId": inst}
    return orjson.dumps({"action": "update", "arg": arg, "data": [trade]})


@pytest.mark.parametrize(
    "frame",
    [
        b'{"action":"update","arg":{"instType":"SPOT","channel":"trade","instId":"BTCUSDT"},"data":[{"ts":',
        b"[1, 2, 3]",
        _trade(price="abc"),
        _trade(price="NaN"),
        _trade(price="-3"),
        _trade(price="1e400"),
        _trade(size="inf"),
        _trade(side="up"),
        _trade(tradeId=12),
        _trade(ts="yesterday"),
        _trade(inst="../../etc"),
        _trade(inst=5),
        b'{"action":"update","arg":{"instType":"USDT-FUTURES","channel":"trade","instId":"BTCUSDT"},"data":[]}',
        b'{"action":"update","arg":{"instType":"SPOT","channel":"candles","instId":"BTCUSDT"},"data":[]}',
        b'{"action":"update","arg":{"instType":"SPOT","channel":"kline","instId":"BTCUSDT"},"data":[]}',
        b'{"action":"merge","arg":{"instType":"SPOT","channel":"trade","instId":"BTCUSDT"},"data":[]}',
        b'{"action":"update","arg":{"instType":"SPOT","channel":"books","instId":"BTCUSDT"},"data":[{"asks":"x","bids":[],"ts":"1"}]}',
        b'{"action":"snapshot","arg":{"instType":"SPOT","channel":"books","instId":"BTCUSDT"},"data":[{"asks":[["NaN","1"]],"bids":[],"ts":"1"}]}',
        b'{"action":"snapshot","arg":{"instType":"SPOT","channel":"books","instId":"BTCUSDT"},"data":[{"asks":[],"bids":[],"ts":"1","seq":-4}]}',
        b'{"action":"snapshot","arg":{"instType":"SPOT","channel":"books","instId":"BTCUSDT"},"data":[{"asks":[],"bids":[],"ts":"1","checksum":"12"}]}',
        b'{"action":"snapshot","arg":{"instType":"SPOT","channel":"books1","instId":"BTCUSDT"},"data":[{"asks":[["-1","1"]],"bids":[],"ts":"1"}]}',
        b'{"event":"surprise"}',
        b"\xff\xfe",
    ],
)
def test_hostile_frames_are_parse_errors_and_data_keeps_flowing(frame: bytes) -> None:
    assert_parse_error_then_flowing(BitgetSpotNormaliser(), frame, GOOD_TRADE, ["7"])


def test_dialects_and_registry() -> None:
    spot, futures = get_dialect("bitget"), get_dialect("bitget-futures")
    assert isinstance(spot, BitgetSpotDialect) and isinstance(futures, BitgetFuturesDialect)
    assert spot.book_checksum and spot.sequenced_book and spot.max_streams_per_connection == 50
    assert spot.app_ping == ("ping", 25.0)
    assert spot.native_symbol("BTC-USDT") == "BTCUSDT" == futures.native_symbol("btc-usdt-perp")
    assert spot.normalise_symbol("ETHUSDT") == "ETH-USDT"
    assert futures.normalise_symbol("ETHUSDT") == "ETH-USDT-PERP"
    sub = Subscription(("BTCUSDT", "ETHUSDT"))
    assert spot.connection_url("ws://127.0.0.1:9", sub) == "ws://127.0.0.1:9/v2/ws/public"
    assert (
        futures.connection_url("wss://ws.bitget.com/v2/ws/public", sub) == "wss://ws.bitget.com/v2/ws/public"
    )
    (frame,) = futures.subscribe_frames(sub)
    assert orjson.loads(frame) == {
        "op": "subscribe",
        "args": [
            {"instType": "USDT-FUTURES", "channel": c, "instId": s}
            for s in ("BTCUSDT", "ETHUSDT")
            for c in ("trade", "books", "books1")
        ],
    }
    unsub, resub = spot.resubscribe_frames(["ETHUSDT"], sub)
    assert orjson.loads(unsub) == {
        "op": "unsubscribe",
        "args": [{"instType": "SPOT", "channel": "books", "instId": "ETHUSDT"}],
    }
    assert orjson.loads(resub)["op"] == "subscribe"
    # the largest subscription one connection carries still fits in one request
    many = Subscription(tuple(f"X{i}USDT" for i in range(17)))
    assert len(spot.subscribe_frames(many)) == 2  # 51 arguments, 50 per request
    ticker = BitgetSpotDialect(DialectOptions(extra={"bbo_channel": "ticker"}))
    assert '"ticker"' in ticker.subscribe_frames(sub)[0]
    with pytest.raises(ValueError, match="bbo_channel"):
        BitgetSpotDialect(DialectOptions(extra={"bbo_channel": "books5"}))
    assert BitgetDialect.app_ping is not None and BitgetDialect.app_ping[1] < 30  # Bitget: every 30 s


def test_checksum_verification_can_be_switched_off() -> None:
    n = BitgetSpotDialect(DialectOptions(verify_checksums=False)).new_normaliser()
    out = RecordBuffer()
    n.on_frame(1, _book("snapshot", 10, None, DOC_BIDS, DOC_ASKS, checksum=12345), out)
    assert out.feed_events == []


# -- through the simulator, a real websocket and the shared connection lifecycle ---------------------

VENUES = [("bitget", ""), ("bitget-futures", "-PERP")]


def _normaliser(run: Any) -> BitgetNormaliser:
    normaliser = run.collector.connections[0].normaliser
    assert isinstance(normaliser, BitgetNormaliser)
    return normaliser


@pytest.mark.parametrize(("exchange", "suffix"), VENUES)
async def test_simulator_round_trip_books_match_books1_and_checksums_verify(
    exchange: str, suffix: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A short text-ping interval so that ping/pong runs inside the test (Bitget's is 30 s).
    monkeypatch.setattr(BitgetDialect, "app_ping", ("ping", 0.2))
    btc, eth = f"BTC-USDT{suffix}", f"ETH-USDT{suffix}"
    async with running(exchange, ("BTCUSDT", "ETHUSDT")) as run:
        await run.until(
            lambda: (
                run.count("bbo", btc) > 60
                and run.count("bbo", eth) > 60
                and run.count("trades", btc) > 5
                and _normaliser(run).checksums_verified > 100
                and run.sim.pings >= 3
            )
        )
    kinds = {e[4] for e in run.got.feed_events}
    assert not kinds & {"parse_error", "gap", "checksum_mismatch", "resync", "exchange_error", "duplicate"}
    assert _normaliser(run).checksums_unverified == 0
    assert assert_tops_match_bbo(run.got.book, run.got.bbo) > 100  # books1 carries the book's seq
    assert {r[1] for r in run.got.trades} == {btc, eth}
    assert {r[0] for r in run.got.trades} == {exchange}


@pytest.mark.parametrize(("exchange", "suffix"), VENUES)
async def test_dropped_update_resubscribes_only_that_book(exchange: str, suffix: str) -> None:
    btc, eth = f"BTC-USDT{suffix}", f"ETH-USDT{suffix}"
    async with running(exchange, ("BTCUSDT", "ETHUSDT")) as run:
        await run.until(lambda: run.count("book", btc) > 20)
        run.sim.faults.drop_updates["ETHUSDT"] = 1
        await run.until(lambda: len(run.events("resync", eth)) == 1)
        btc_before = run.count("book", btc)
        await run.until(lambda: run.count("book", btc) > btc_before + 20)
        (gap,) = run.events("gap", eth)
        assert orjson.loads(gap[5])["pseq"] != orjson.loads(gap[5])["expected_pseq"]
        assert run.events("gap", btc) == [] and run.events("resync", btc) == []
        assert run.events("checksum_mismatch") == []  # the sequence caught it first
        assert {r[9] for r in run.got.book if r[1] == eth} == {0, 1}
        assert {r[9] for r in run.got.book if r[1] == btc} == {0}
        # resynced by resubscribing, not by reconnecting: one connect per connection (futures: v2 and v3)
        assert run.collector.stats.connects == len(run.collector.connections)


@pytest.mark.parametrize(("exchange", "suffix"), VENUES)
async def test_corrupted_checksum_is_detected_and_resynced(exchange: str, suffix: str) -> None:
    btc, eth = f"BTC-USDT{suffix}", f"ETH-USDT{suffix}"
    async with running(exchange, ("BTCUSDT", "ETHUSDT")) as run:
        await run.until(lambda: run.count("book", btc) > 20)
        run.sim.faults.corrupt_checksums["BTCUSDT"] = 1
        await run.until(lambda: len(run.events("resync", btc)) == 1)
        (mismatch,) = run.events("checksum_mismatch", btc)
        detail = orjson.loads(mismatch[5])
        assert detail["checksum"] != detail["computed"]
        flagged = [r for r in run.got.book if r[10] & Flags.MAYBE_BAD_BOOK]
        assert flagged and {r[1] for r in flagged} == {btc} and {r[9] for r in flagged} == {0}
        eth_before = run.count("book", eth)
        await run.until(lambda: run.count("book", eth) > eth_before + 20)
        assert run.events("checksum_mismatch", eth) == [] and run.events("gap") == []


@pytest.mark.parametrize(("exchange", "suffix"), VENUES)
async def test_reconnect_drops_replayed_trades_and_replay_equals_live(
    exchange: str, suffix: str, tmp_path: Path
) -> None:
    btc, eth = f"BTC-USDT{suffix}", f"ETH-USDT{suffix}"
    capture = tmp_path / f"{exchange}.capture"
    async with running(exchange, ("BTCUSDT", "ETHUSDT"), capture=capture) as run:
        await run.until(lambda: run.count("trades", btc) > 5 and run.count("trades", eth) > 5)
        connections = len(run.collector.connections)  # futures: v2 and the v3 liquidation connection
        await run.sim.disconnect_all()
        await run.until(
            lambda: run.collector.stats.connects >= 2 * connections and len(run.events("resync", btc)) == 1
        )
        await run.until(lambda: len(run.events("resync", eth)) == 1 and _normaliser(run).trades_replayed > 5)
    ids = [(r[1], r[4]) for r in run.got.trades]
    assert len(ids) == len(set(ids))
    # one capture per connection when there are several; trades, books and bbo all ride the first
    files = [capture] if connections == 1 else sorted(tmp_path.glob(f"{exchange}.conn*.capture"))
    assert len(files) == connections
    replayed = RecordBuffer()
    for path in files:
        replayed.extend(replay_capture(get_dialect(exchange).new_normaliser(), path))
    assert replayed.trades == run.got.trades and replayed.book == run.got.book and replayed.bbo == run.got.bbo
    assert Counter(replayed.liquidations) == Counter(run.got.liquidations)
    live_events = [e for e in run.got.feed_events if e[2] != "connection"]
    assert Counter(replayed.feed_events) == Counter(live_events)


async def test_simulator_protocol_ping_errors_and_ticker() -> None:
    dialect = BitgetFuturesDialect(DialectOptions(extra={"bbo_channel": "ticker"}))
    symbols = ("BTCUSDT", "ETHUSDT")
    sim = dialect.simulator(SimulatorConfig(symbols=symbols, rate_hz=50))
    await sim.start()
    try:
        async with websockets.connect(dialect.connection_url(sim.ws_url, Subscription(symbols))) as ws:
            await ws.send("ping")
            assert await ws.recv() == "pong"
            bad = '{"op":"subscribe","args":[{"instType":"SPOT","channel":"books","instId":"BTCUSDT"}]}'
            await ws.send(bad)  # spot instType on the futures venue
            error = orjson.loads(await ws.recv())
            assert error["event"] == "error" and error["code"] == 30001
            await ws.send(dialect.subscribe_frames(Subscription(("BTCUSDT",), ("bbo",)))[0])
            n = dialect.new_normaliser()
            out = RecordBuffer()
            while len(out.bbo) < 5:
                n.on_frame(time.time_ns(), await ws.recv(), out)
            assert out.feed_events == [] and {r[8] for r in out.bbo} == {None}
            assert {r[1] for r in out.bbo} == {"BTC-USDT-PERP"}
    finally:
        await sim.stop()


def test_a_bogus_sequence_cannot_freeze_a_book() -> None:
    # A frame with an absurd (but valid) seq passes; the real updates then all look "behind" it.
    n = BitgetSpotNormaliser()
    out = RecordBuffer()
    n.on_frame(1, _book("snapshot", 10, None, DOC_BIDS, DOC_ASKS), out)
    n.on_frame(2, _book("update", 9_000_000_000_000_000_000, 10, [("43231.5", "1")]), out)
    for i in range(50):
        n.on_frame(3 + i, _book("update", 11 + i, 10 + i, [("43231.6", str(i + 1))]), out)
    kinds = [e[4] for e in out.feed_events]
    assert kinds == ["duplicate"] * 49 + ["gap"]
    assert n.resubscribe_requests == {"BTCUSDT"} and not n.books["BTCUSDT"].synced
    n.on_frame(60, _book("snapshot", 2**63, None, DOC_BIDS, DOC_ASKS), out)  # past a Java long
    assert out.feed_events[-1][4] == "parse_error"


# -- derivatives channels (issue 15) -----------------------------------------------------------------


def test_v1_futures_tickers_give_mark_funding_and_open_interest(samples: Path) -> None:
    """The 2022 recording's ``mc`` tickers, value by value: ``systemTime`` the exchange time,
    ``markPrice``/``indexPrice``, ``capitalRate`` with ``nextSettleTime``, ``holding`` (v1 names of
    v2's ``ts``, ``fundingRate``, ``nextFundingTime``, ``holdingAmount``)."""
    out = replay_capture(get_dialect("bitget-futures").new_normaliser(), samples / FUTURES_SAMPLE)
    tickers = [(ts, f, t) for ts, f in _pushes(_frames(samples, FUTURES_SAMPLE), "ticker") for t in f["data"]]
    assert len(tickers) > 100
    assert len(out.mark_price) == len(out.funding) == len(out.open_interest) == len(tickers)
    for (ts, f, t), mark, funding, oi in zip(
        tickers, out.mark_price, out.funding, out.open_interest, strict=True
    ):
        symbol = f"{f['arg']['instId'][:-4]}-USDT-PERP"
        ts_ex = t["systemTime"] * 1_000_000
        assert mark[:6] == (
            "bitget-futures",
            symbol,
            ts_ex,
            ts,
            float(t["markPrice"]),
            float(t["indexPrice"]),
        )
        assert funding[:7] == (
            "bitget-futures",
            symbol,
            ts_ex,
            ts,
            float(t["capitalRate"]),
            None,
            t["nextSettleTime"] * 1_000_000,
        )
        assert oi[:6] == ("bitget-futures", symbol, ts_ex, ts, float(t["holding"]), None)


# v2 USDT-FUTURES ticker push with the documented fields (page: contract/websocket/public/Tickers-Channel)
V2_TICKER = (
    '{"action":"snapshot","arg":{"instType":"USDT-FUTURES","channel":"ticker","instId":"BTCUSDT"},'
    '"data":[{"instId":"BTCUSDT","lastPr":"109822.5","bidPr":"109815.8","askPr":"109815.9","bidSz":"2.469",'
    '"askSz":"3.321","open24h":"112171.9","high24h":"113271.5","low24h":"108660","change24h":"-0.03045",'
    '"fundingRate":"0.0001","nextFundingTime":"1756195200000","markPrice":"109822.7",'
    '"indexPrice":"109867.6857822380165048","holdingAmount":"21425.2578","baseVolume":"4075.2916",'
    '"quoteVolume":"451366093.334","openUtc":"110104.2","symbolType":"1","symbol":"BTCUSDT",'
    '"deliveryPrice":"0","ts":"1756180111636"}],"ts":1756180111642}'
)


def test_v2_futures_ticker_every_value_and_no_second_bbo() -> None:
    ts = 1756180111636_000_000
    n, out = get_dialect("bitget-futures").new_normaliser(), RecordBuffer()
    n.on_frame(5, V2_TICKER, out)
    assert out.feed_events == [] and out.bbo == []  # bbo comes from books1 (the default)
    assert [r[:6] for r in out.mark_price] == [
        ("bitget-futures", "BTC-USDT-PERP", ts, 5, 109822.7, 109867.6857822380165048)
    ]
    assert [r[:7] for r in out.funding] == [
        ("bitget-futures", "BTC-USDT-PERP", ts, 5, 0.0001, None, 1756195200000_000_000)
    ]
    assert [r[:6] for r in out.open_interest] == [
        ("bitget-futures", "BTC-USDT-PERP", ts, 5, 21425.2578, None)
    ]
    # with the ticker as the bbo source, one push gives the bbo row too
    as_bbo = BitgetFuturesDialect(DialectOptions(extra={"bbo_channel": "ticker"})).new_normaliser()
    out2 = RecordBuffer()
    as_bbo.on_frame(5, V2_TICKER, out2)
    assert [r[2:8] for r in out2.bbo] == [(ts, 5, 109815.8, 2.469, 109815.9, 3.321)]
    assert len(out2.mark_price) == len(out2.funding) == len(out2.open_interest) == 1
    # spot tickers carry none of it
    spot = V2_TICKER.replace("USDT-FUTURES", "SPOT")
    out3 = RecordBuffer()
    BitgetSpotNormaliser().on_frame(5, spot, out3)
    assert len(out3.bbo) == 1 and not (out3.mark_price or out3.funding or out3.open_interest)


# the push example of the Tickers-Channel page itself, verbatim (read 2026-12-05 through a stored copy at
# the same path on a mirror domain: https://sanqianwenhua.xyz/api-doc/contract/websocket/public/Tickers-Channel;
# Bitget's address: https://www.bitget.com/api-doc/contract/websocket/public/Tickers-Channel)
V2_TICKER_DOC = (
    '{"action":"snapshot","arg":{"instType":"USDT-FUTURES","channel":"ticker","instId":"BTCUSDT"},'
    '"data":[{"instId":"BTCUSDT","lastPr":"27000.5","bidPr":"27000","askPr":"27000.5","bidSz":"2.71",'
    '"askSz":"8.76","open24h":"27000.5","high24h":"30668.5","low24h":"26999.0","change24h":"-0.00002",'
    '"fundingRate":"0.000010","nextFundingTime":"1695722400000","markPrice":"27000.0","indexPrice":"25702.4",'
    '"holdingAmount":"929.502","baseVolume":"368.900","quoteVolume":"10152429.961","openUtc":"27000.5",'
    '"symbolType":1,"symbol":"BTCUSDT","deliveryPrice":"0","ts":"1695715383021"}],"ts":1695715383039}'
)


def test_v2_futures_ticker_example_of_the_documentation() -> None:
    ts = 1695715383021_000_000
    n, out = get_dialect("bitget-futures").new_normaliser(), RecordBuffer()
    n.on_frame(7, V2_TICKER_DOC, out)
    assert out.feed_events == []
    assert [r[:6] for r in out.mark_price] == [("bitget-futures", "BTC-USDT-PERP", ts, 7, 27000.0, 25702.4)]
    assert [r[:7] for r in out.funding] == [
        ("bitget-futures", "BTC-USDT-PERP", ts, 7, 0.00001, None, 1695722400000_000_000)
    ]
    assert [r[:6] for r in out.open_interest] == [("bitget-futures", "BTC-USDT-PERP", ts, 7, 929.502, None)]


def test_hostile_futures_tickers_are_parse_errors_without_partial_rows() -> None:
    for bad in (
        V2_TICKER.replace('"0.0001"', '"3"'),
        V2_TICKER.replace('"109822.7"', '"-1"'),
        V2_TICKER.replace('"109822.7"', '"NaN"'),
        V2_TICKER.replace('"21425.2578"', '"-5"'),
        V2_TICKER.replace('"1756195200000"', '"soon"'),
        V2_TICKER.replace('"ts":"1756180111636"', '"ts":"x"'),
        V2_TICKER.replace('"data":[{', '"data":[7,{'),
    ):
        n, out = get_dialect("bitget-futures").new_normaliser(), RecordBuffer()
        n.on_frame(1, bad, out)
        assert [e[4] for e in out.feed_events] == ["parse_error"], bad
        assert not (out.mark_price or out.funding or out.open_interest or out.bbo), bad
        n.on_frame(2, V2_TICKER, out)
        assert len(out.mark_price) == 1


def test_futures_derivatives_ride_one_ticker_subscription() -> None:
    dialect = get_dialect("bitget-futures")
    assert set(dialect.channels) == {
        "trades",
        "book",
        "bbo",
        "funding",
        "mark",
        "open_interest",
        "liquidations",
    }
    sub = Subscription(("BTCUSDT",), ("trades", "bbo", "funding", "mark", "open_interest"))
    args = orjson.loads(dialect.subscribe_frames(sub)[0])["args"]
    assert [a["channel"] for a in args] == ["trade", "books1", "ticker"]
    as_bbo = BitgetFuturesDialect(DialectOptions(extra={"bbo_channel": "ticker"}))
    args = orjson.loads(as_bbo.subscribe_frames(sub)[0])["args"]
    assert [a["channel"] for a in args] == ["trade", "ticker"]
    assert "funding" not in get_dialect("bitget").channels


# -- liquidations: the unified-account (v3) ``liquidation`` topic ------------------------------------
#: The push example of https://www.bitget.com/api-doc/uta/websocket/public/Liquidation-Channel, verbatim
#: (checked 2026-12-05 through stored copies of that page): ``side`` the liquidated position's side,
#: ``amount`` in the quote coin
LIQUIDATION_DOC = (
    '{"data":[{"symbol":"BTCUSDT","side":"buy","price":"89000","amount":"37.722858","ts":"1736371332162"}],'
    '"arg":{"instType":"usdt-futures","topic":"liquidation"},"action":"update","ts":1736371332162}'
)


def test_liquidation_example_of_the_documentation() -> None:
    n, out = get_dialect("bitget-futures").new_normaliser(), RecordBuffer()
    n.on_frame(1736371332200000000, LIQUIDATION_DOC, out)
    assert out.feed_events == []
    # a long was liquidated ("buy"): the closing order sold; size in base coin = amount / price
    assert out.liquidations == [
        (
            "bitget-futures",
            "BTC-USDT-PERP",
            1736371332162000000,
            1736371332200000000,
            None,
            "sell",
            89000.0,
            37.722858 / 89000.0,
            0,
        )
    ]
    short = LIQUIDATION_DOC.replace('"side":"buy"', '"side":"sell"')
    n.on_frame(1736371332300000000, short, out)
    assert out.liquidations[-1][5] == "buy"


def test_liquidations_of_symbols_of_other_connections_are_dropped_and_counted() -> None:
    n = get_dialect("bitget-futures").new_normaliser()
    n.subscribe(["ETH-USDT-PERP"])
    out = RecordBuffer()
    two = LIQUIDATION_DOC.replace(
        '"data":[{',
        '"data":[{"symbol":"ETHUSDT","side":"sell","price":"3000","amount":"600","ts":"1736371332100"},{',
    )
    n.on_frame(1736371332200000000, two, out)
    assert [(r[1], r[5], r[6], r[7]) for r in out.liquidations] == [("ETH-USDT-PERP", "buy", 3000.0, 0.2)]
    assert n.liquidations_of_other_symbols == 1 and out.feed_events == []


def test_hostile_liquidations_are_parse_errors_without_partial_rows() -> None:
    for bad in (
        LIQUIDATION_DOC.replace('"side":"buy"', '"side":"long"'),
        LIQUIDATION_DOC.replace('"89000"', '"-1"'),
        LIQUIDATION_DOC.replace('"89000"', '"NaN"'),
        LIQUIDATION_DOC.replace('"37.722858"', '"0"'),
        LIQUIDATION_DOC.replace('"37.722858"', '"1e308"'),
        LIQUIDATION_DOC.replace('"ts":"1736371332162"', '"ts":"x"'),
        LIQUIDATION_DOC.replace('"BTCUSDT"', '"../x"'),
        LIQUIDATION_DOC.replace('"usdt-futures"', '"coin-futures"'),
        LIQUIDATION_DOC.replace('"data":[{', '"data":[7,{'),
    ):
        n, out = get_dialect("bitget-futures").new_normaliser(), RecordBuffer()
        n.on_frame(1, bad, out)
        assert [e[4] for e in out.feed_events] == ["parse_error"], bad
        assert out.liquidations == [], bad
        n.on_frame(2, LIQUIDATION_DOC, out)
        assert len(out.liquidations) == 1
    # spot has no liquidation topic: a push is a parse error there
    spot, out = get_dialect("bitget").new_normaliser(), RecordBuffer()
    spot.on_frame(1, LIQUIDATION_DOC, out)
    assert [e[4] for e in out.feed_events] == ["parse_error"] and out.liquidations == []


def test_liquidations_ride_their_own_v3_connection() -> None:
    from collectors.connection import split_subscription

    dialect = get_dialect("bitget-futures")
    subs = split_subscription(dialect, ["BTCUSDT", "ETHUSDT"], dialect.channels)
    assert [s.channels for s in subs] == [
        ("trades", "book", "bbo", "funding", "mark", "open_interest"),
        ("liquidations",),
    ]
    assert dialect.connection_url("wss://ws.bitget.com", subs[0]) == "wss://ws.bitget.com/v2/ws/public"
    assert (
        dialect.connection_url("wss://ws.bitget.com/v2/ws/public", subs[1])
        == "wss://ws.bitget.com/v3/ws/public"
    )
    assert (
        dialect.connection_url("wss://ws.bitget.com/v3/ws/public", subs[0])
        == "wss://ws.bitget.com/v2/ws/public"
    )
    # one subscription for every symbol of the product type (the request of the page's example)
    assert [orjson.loads(f) for f in dialect.subscribe_frames(subs[1])] == [
        {"op": "subscribe", "args": [{"instType": "usdt-futures", "topic": "liquidation"}]}
    ]
    assert dialect.resubscribe_frames(["BTCUSDT"], subs[1]) == []
    spot = get_dialect("bitget")
    assert (
        "liquidations" not in spot.channels and len(split_subscription(spot, ["BTCUSDT"], spot.channels)) == 1
    )


def test_the_all_symbols_liquidation_topic_takes_one_connection() -> None:
    """v3 ``liquidation`` is one topic for every USDT future: however many symbols, one connection
    carries it (each more would receive the whole stream again); the v2 channels split as before."""
    from collectors.connection import split_subscription

    dialect = get_dialect("bitget-futures")
    symbols = [f"C{i:03d}USDT" for i in range(120)]
    subs = split_subscription(dialect, symbols, dialect.channels)
    liquidations = [s for s in subs if "liquidations" in s.channels]
    assert len(liquidations) == 1 and liquidations[0].symbols == tuple(symbols)
    assert liquidations[0].channels == ("liquidations",)
    v2 = [s for s in subs if "liquidations" not in s.channels]
    assert len(v2) >= 2 and sum(len(s.symbols) for s in v2) == 120
    for sub in v2:
        assert (
            len(sub.symbols) * dialect.streams_per_symbol(sub.channels) <= dialect.max_streams_per_connection
        )
