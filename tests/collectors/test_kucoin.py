"""KuCoin spot (``kucoin``) and futures (``kucoin-futures``): the real 2021 spot recording, documented
message examples, the token flow and both simulators through the real connection layer.

What differs between the 2021 recording and KuCoin's current documentation (checked 2026-12-05):
- its ``trade.l2update`` messages carry no ``time`` (current ones do): their book rows have a null
  ``ts_exchange``;
- its REST snapshots came from ``/api/v3/market/orderbook/level2`` (public then, needs a key now; the
  collector uses the public ``level2_100``, same body shape); they sit in the requests file and are
  merged into the stream here, at their receive time, as the generated frames the collector writes;
- its trade ids are hex strings (current ones decimal strings): both are opaque ids here;
- it also carries ``/market/candles`` pushes that ticktape does not subscribe: they are parse errors.
There is no futures recording: the futures tests use the documented examples (docs-new pages 3470082,
3470084, 3470080, 3470087 for ``/contract/instrument``) and the simulator.
"""

from __future__ import annotations

import asyncio
import gzip
import logging
from pathlib import Path
from typing import Any, ClassVar

import orjson
import pytest
import websockets

from collectors.base import Subscription
from collectors.capture import replay_capture
from collectors.connection import Collector
from collectors.registry import get_dialect
from collectors.simulator import SimulatorConfig
from collectors.venues.kucoin.client import PING_FRAME, parse_bullet, snapshot_frame
from collectors.venues.kucoin.futures import SNAPSHOT_TOPIC as FUTURES_SNAPSHOT
from collectors.venues.kucoin.futures import (
    KucoinFuturesDialect,
    KucoinFuturesNormaliser,
)
from collectors.venues.kucoin.spot import SNAPSHOT_TOPIC as SPOT_SNAPSHOT
from collectors.venues.kucoin.spot import KucoinSpotNormaliser
from schemas import Flags, RecordBuffer
from tests.collectors.book_replay import assert_tops_match_bbo
from tests.collectors.test_connection import FAST, Run, running

SAMPLE = "kucoin/kucoin_cryptofeed.capture.gz"
REQUESTS = "kucoin/kucoin_cryptofeed.requests.jsonl.gz"


# -- the real recording ----------------------------------------------------------------------------
@pytest.fixture(scope="module")
def sample_frames(samples: Path) -> list[tuple[int, dict[str, Any]]]:
    frames = []
    with gzip.open(samples / SAMPLE, "rb") as fh:
        for line in fh:
            ts, _, text = line.rstrip(b"\n").partition(b" ")
            frames.append((int(ts), orjson.loads(text)))
    return frames


@pytest.fixture(scope="module")
def rest_snapshots(samples: Path) -> list[tuple[int, str, dict[str, Any]]]:
    """``(ts_ns, symbol, body)`` of the recorded REST book snapshots."""
    out = []
    with gzip.open(samples / REQUESTS, "rb") as fh:
        for line in fh:
            rest = orjson.loads(line).get("rest")
            if rest and "/orderbook/" in rest["url"]:
                out.append((rest["ts_ns"], rest["url"].split("symbol=")[1], orjson.loads(rest["body"])))
    return out


@pytest.fixture(scope="module")
def merged_capture(samples: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The recording with its REST snapshots merged in at their receive times (the collector's format)."""
    lines: list[tuple[int, int, bytes]] = []
    with gzip.open(samples / SAMPLE, "rb") as fh:
        for i, line in enumerate(fh):
            ts, _, text = line.rstrip(b"\n").partition(b" ")
            lines.append((int(ts), i, text))
    with gzip.open(samples / REQUESTS, "rb") as fh:
        for line in fh:
            rest = orjson.loads(line).get("rest")
            if rest and "/orderbook/" in rest["url"]:
                symbol = rest["url"].split("symbol=")[1]
                lines.append(
                    (rest["ts_ns"], -1, snapshot_frame(SPOT_SNAPSHOT, symbol, rest["body"]).encode())
                )
    path = tmp_path_factory.mktemp("kucoin") / "merged.capture.gz"
    with gzip.open(path, "wb") as out:
        for ts, _, text in sorted(lines, key=lambda x: (x[0], x[1])):
            out.write(b"%d %s\n" % (ts, text))
    return path


@pytest.fixture(scope="module")
def sample_records(merged_capture: Path) -> RecordBuffer:
    return replay_capture(KucoinSpotNormaliser(), merged_capture)


def test_trades_equal_the_match_messages_field_by_field(sample_frames, sample_records) -> None:
    matches = [(ts, f["data"]) for ts, f in sample_frames if f.get("subject") == "trade.l3match"]
    assert len(sample_records.trades) == len(matches) == 18
    for (ts, d), row in zip(matches, sample_records.trades, strict=True):
        exchange, symbol, ts_ex, ts_recv, trade_id, price, size, side, _flags = row
        assert (exchange, symbol) == ("kucoin", d["symbol"])
        assert ts_recv == ts
        assert ts_ex == int(d["time"])  # nanoseconds, as sent
        assert trade_id == d["tradeId"]
        assert price == float(d["price"]) and size == float(d["size"])
        assert side == d["side"]  # KuCoin's side is the taker's


def test_bbo_rows_equal_the_ticker_messages(sample_frames, sample_records) -> None:
    tickers = [(ts, f) for ts, f in sample_frames if f.get("subject") == "trade.ticker"]
    assert len(sample_records.bbo) == len(tickers) == 830
    for (ts, f), row in zip(tickers, sample_records.bbo, strict=True):
        d = f["data"]
        assert row[1] == f["topic"].split(":")[1] and row[3] == ts and row[2] == d["time"] * 1_000_000
        assert row[4:9] == (
            float(d["bestBid"]),
            float(d["bestBidSize"]),
            float(d["bestAsk"]),
            float(d["bestAskSize"]),
            int(d["sequence"]),
        )


def test_no_false_gap_and_every_book_synced(sample_records, merged_capture) -> None:
    kinds = [e[4] for e in sample_records.feed_events]
    assert "gap" not in kinds and "duplicate" not in kinds and "resync" not in kinds
    # the only parse errors are the candle pushes cryptofeed subscribed and ticktape does not normalise
    errors = [orjson.loads(e[5]) for e in sample_records.feed_events if e[4] == "parse_error"]
    assert len(errors) == 6 and all("/market/candles" in e["frame"] for e in errors)
    n = KucoinSpotNormaliser()
    replay_capture(n, merged_capture)
    assert len(n.symbols.books) == 9 and all(b.synced and not b.pending for b in n.symbols.books.values())
    assert n.snapshot_requests == set()
    assert all(r[9] == 0 for r in sample_records.book)


def test_rebuilt_books_equal_the_ticker_at_equal_sequence(sample_records) -> None:
    assert assert_tops_match_bbo(sample_records.book, sample_records.bbo) >= 700


def test_buffered_increments_after_the_snapshot_sequence_are_applied(
    sample_frames, rest_snapshots, sample_records
) -> None:
    # Increments received before their symbol's snapshot and ending after its sequence must be in the
    # book (buffered, then played back); those wholly before it must not.
    seqs = {(r[1], r[8]) for r in sample_records.book if not r[7]}
    straddling = behind = 0
    for snap_ts, symbol, body in rest_snapshots:
        snap_seq = int(body["data"]["sequence"])
        for ts, f in sample_frames:
            d = f.get("data", {})
            if ts >= snap_ts or f.get("subject") != "trade.l2update" or d["symbol"] != symbol:
                continue
            has_levels = any(float(c[0]) != 0 for side in ("asks", "bids") for c in d["changes"][side])
            if d["sequenceEnd"] > snap_seq and has_levels:
                straddling += 1
                assert (symbol, d["sequenceEnd"]) in seqs
            elif d["sequenceEnd"] <= snap_seq:
                behind += 1
                assert (symbol, d["sequenceEnd"]) not in seqs
    assert straddling + behind > 0


# -- documented examples ---------------------------------------------------------------------------
def _spot_snapshot(symbol: str, seq: int, bids: list[list[str]], asks: list[list[str]]) -> str:
    body = orjson.dumps(
        {"code": "200000", "data": {"time": 1729816425000, "sequence": str(seq), "bids": bids, "asks": asks}}
    )
    return snapshot_frame(SPOT_SNAPSHOT, symbol, body)


def _l2(symbol: str, start: int, end: int, asks: list[list[str]] = (), bids: list[list[str]] = ()) -> bytes:  # type: ignore[assignment]
    return orjson.dumps(
        {
            "topic": f"/market/level2:{symbol}",
            "type": "message",
            "subject": "trade.l2update",
            "data": {
                "changes": {"asks": list(asks), "bids": list(bids)},
                "sequenceEnd": end,
                "sequenceStart": start,
                "symbol": symbol,
                "time": 1729816425625,
            },
        }
    )


DOC_BIDS = [["3988.51", "56"], ["3988.50", "15"], ["3988.49", "100"], ["3988.48", "10"]]
DOC_ASKS = [["3988.62", "8"], ["3988.61", "32"], ["3988.60", "47"], ["3988.59", "3"]]


def _levels(n: Any, native: str) -> tuple[list[tuple[float, float]], list[tuple[float, float]]]:
    book = n.symbols.books[native].book
    return (
        [(p, v[0]) for p, v in book.bids.items()],
        [(p, v[0]) for p, v in book.asks.items()],
    )


def test_spot_calibration_example_of_the_documentation() -> None:
    # docs-new 3470068: snapshot at sequence 16, then one increment whose changes carry sequences
    # 16 (ignored: in the snapshot), 19 (remove 3988.61), 15 (ignored) and 18 (bid 3988.50 -> 44).
    n = KucoinSpotNormaliser()
    out = RecordBuffer()
    inc = _l2(
        "BTC-USDT",
        15,
        19,
        asks=[["3988.59", "3", "16"], ["3988.61", "0", "19"], ["3988.62", "8", "15"]],
        bids=[["3988.50", "44", "18"]],
    )
    n.on_frame(1, inc, out)  # arrives before the snapshot: buffered, snapshot requested
    assert n.snapshot_requests == {"BTC-USDT"} and not out.book
    n.on_frame(2, _spot_snapshot("BTC-USDT", 16, DOC_BIDS, DOC_ASKS), out)
    bids, asks = _levels(n, "BTC-USDT")
    assert bids == [(3988.51, 56.0), (3988.50, 44.0), (3988.49, 100.0), (3988.48, 10.0)]
    assert asks == [(3988.59, 3.0), (3988.60, 47.0), (3988.62, 8.0)]
    updates = [r for r in out.book if not r[7]]
    assert [(r[4], r[5], r[6], r[8]) for r in updates] == [
        ("bid", 3988.5, 44.0, 19),
        ("ask", 3988.61, 0.0, 19),
    ]
    assert n.symbols.books["BTC-USDT"].last_seq == 19 and out.feed_events == []


def test_spot_price_zero_change_only_advances_the_sequence() -> None:
    n = KucoinSpotNormaliser()
    out = RecordBuffer()
    n.on_frame(1, _spot_snapshot("BTC-USDT", 10, DOC_BIDS, DOC_ASKS), out)
    n.on_frame(2, _l2("BTC-USDT", 11, 11, asks=[["0", "0", "11"]]), out)
    n.on_frame(3, _l2("BTC-USDT", 12, 12, bids=[["3988.52", "1", "12"]]), out)
    assert out.feed_events == [] and n.symbols.books["BTC-USDT"].last_seq == 12
    assert [(r[5], r[8]) for r in out.book if not r[7]] == [(3988.52, 12)]


def test_spot_gap_resyncs_only_that_symbol_and_repeats_are_counted() -> None:
    n = KucoinSpotNormaliser()
    out = RecordBuffer()
    for sym in ("BTC-USDT", "ETH-USDT"):
        n.on_frame(1, _spot_snapshot(sym, 10, DOC_BIDS, DOC_ASKS), out)
    n.on_frame(2, _l2("BTC-USDT", 11, 12, bids=[["3988.52", "1", "12"]]), out)
    n.on_frame(3, _l2("BTC-USDT", 11, 12, bids=[["3988.52", "1", "12"]]), out)  # repeated
    n.on_frame(4, _l2("BTC-USDT", 14, 14, bids=[["3988.53", "1", "14"]]), out)  # 13 missing
    n.on_frame(5, _l2("ETH-USDT", 11, 11, asks=[["3988.58", "1", "11"]]), out)
    kinds = [(e[1], e[4]) for e in out.feed_events]
    assert kinds == [("BTC-USDT", "duplicate"), ("BTC-USDT", "gap")]
    assert orjson.loads(out.feed_events[1][5])["missing"] == 1
    assert n.snapshot_requests == {"BTC-USDT"} and n.symbols.books["ETH-USDT"].last_seq == 11
    n.on_frame(6, _spot_snapshot("BTC-USDT", 13, DOC_BIDS, DOC_ASKS), out)
    resync = [e for e in out.feed_events if e[4] == "resync"]
    assert [(e[1], orjson.loads(e[5])["epoch"]) for e in resync] == [("BTC-USDT", 1)]
    assert n.symbols.books["BTC-USDT"].last_seq == 14  # the buffered increment was played back
    assert any(r[5] == 3988.53 and r[9] == 1 for r in out.book)
    gap_rows = [r for r in out.book if r[1] == "BTC-USDT" and r[8] == 14]
    assert gap_rows and all(not r[10] & Flags.MAYBE_BAD_BOOK for r in gap_rows)


def _fut_snapshot(symbol: str, seq: int) -> str:
    body = orjson.dumps(
        {
            "code": "200000",
            "data": {
                "sequence": seq,
                "symbol": symbol,
                "asks": [[3988.59, 3], [3988.60, 47], [3988.61, 32], [3988.62, 8]],
                "bids": [[3988.51, 56], [3988.50, 15], [3988.49, 100], [3988.48, 10]],
                "ts": 1731897467182000000,
            },
        }
    )
    return snapshot_frame(FUTURES_SNAPSHOT, symbol, body)


def _fut_l2(symbol: str, seq: int, change: str) -> bytes:
    return orjson.dumps(
        {
            "topic": f"/contractMarket/level2:{symbol}",
            "type": "message",
            "subject": "level2",
            "sn": seq,
            "data": {"sequence": seq, "change": change, "timestamp": 1731897467182},
        }
    )


def test_futures_construction_example_of_the_documentation() -> None:
    # docs-new 3470082: snapshot at 16, then 17 "3988.50,buy,44" and 18 "3988.61,sell,0".
    n = KucoinFuturesNormaliser()
    out = RecordBuffer()
    n.on_frame(1, _fut_l2("XBTUSDTM", 16, "3988.51,buy,56"), out)  # before the snapshot, in it
    n.on_frame(2, _fut_l2("XBTUSDTM", 17, "3988.50,buy,44"), out)
    n.on_frame(3, _fut_snapshot("XBTUSDTM", 16), out)
    n.on_frame(4, _fut_l2("XBTUSDTM", 18, "3988.61,sell,0"), out)
    bids, asks = _levels(n, "XBTUSDTM")
    assert bids == [(3988.51, 56.0), (3988.50, 44.0), (3988.49, 100.0), (3988.48, 10.0)]
    assert asks == [(3988.59, 3.0), (3988.60, 47.0), (3988.62, 8.0)]
    assert {r[1] for r in out.book} == {"BTC-USDT-PERP"} and out.feed_events == []
    snap = [r for r in out.book if r[7]]
    assert snap[0][2] == 1731897467182000000 and snap[0][8] == 16
    n.on_frame(5, _fut_l2("XBTUSDTM", 20, "3988.63,sell,1"), out)  # 19 missing
    assert [e[4] for e in out.feed_events] == ["gap"] and n.snapshot_requests == {"XBTUSDTM"}


def test_futures_execution_and_ticker_v2_examples() -> None:
    n = KucoinFuturesNormaliser()
    out = RecordBuffer()
    execution = (
        b'{"topic":"/contractMarket/execution:XBTUSDTM","type":"message","subject":"match","sn":1794100537695,'
        b'"data":{"symbol":"XBTUSDTM","sequence":1794100537695,"side":"buy","size":2,"price":"90503.9",'
        b'"takerOrderId":"247822202957807616","makerOrderId":"247822167163555840","tradeId":"1794100537695",'
        b'"ts":1731898619520000000}}'
    )
    ticker = (
        b'{"topic":"/contractMarket/tickerV2:XBTUSDTM","type":"message","subject":"tickerV2","sn":1709284589209,'
        b'"data":{"symbol":"XBTUSDTM","sequence":1709284589209,"bestBidSize":713,"bestBidPrice":"88987.4",'
        b'"bestAskPrice":"88987.5","bestAskSize":1037,"ts":1731665526461000000}}'
    )
    n.on_frame(1731898619600000000, execution, out)
    n.on_frame(1731665526500000000, ticker, out)
    n.on_frame(1731898619700000000, execution, out)  # the same trade again: dropped and counted
    assert [r[:8] for r in out.trades] == [
        (
            "kucoin-futures",
            "BTC-USDT-PERP",
            1731898619520000000,
            1731898619600000000,
            "1794100537695",
            90503.9,
            2.0,
            "buy",
        )
    ]
    assert out.bbo[0][:9] == (
        "kucoin-futures",
        "BTC-USDT-PERP",
        1731665526461000000,
        1731665526500000000,
        88987.4,
        713.0,
        88987.5,
        1037.0,
        1709284589209,
    )
    assert [e[4] for e in out.feed_events] == ["duplicate"]


def test_futures_execution_in_the_older_documented_format() -> None:
    # The pre-2024 example: filled quantity in matchSize, unfilled rest in size, time in ns.
    n = KucoinFuturesNormaliser()
    out = RecordBuffer()
    old = (
        b'{"topic":"/contractMarket/execution:XBTUSDM","subject":"match","data":{"symbol":"XBTUSDM",'
        b'"sequence":36,"side":"buy","matchSize":1,"size":1,"price":"3200.0","takerOrderId":"5c9dd00870744d71c43f5e25",'
        b'"time":1553846281766256031,"makerOrderId":"5c9d852070744d0976909a0c","tradeId":"5c9dd00970744d6f5a3d32fc"},'
        b'"type":"message"}'
    )
    n.on_frame(1553846281800000000, old, out)
    row = out.trades[0]
    assert row[1:8] == (
        "BTC-USD-PERP",
        1553846281766256031,
        1553846281800000000,
        "5c9dd00970744d6f5a3d32fc",
        3200.0,
        1.0,
        "buy",
    )


def test_futures_instrument_topic_examples_give_mark_and_funding_rows() -> None:
    # docs-new 3470087 (checked 2026-12-05): the mark.index.price and funding.rate examples, verbatim
    n = KucoinFuturesNormaliser()
    out = RecordBuffer()
    mark = (
        b'{"topic":"/contract/instrument:XBTUSDTM","type":"message","subject":"mark.index.price",'
        b'"data":{"markPrice":90445.02,"indexPrice":90445.02,"granularity":1000,"timestamp":1731899129000}}'
    )
    funding = (
        b'{"topic":"/contract/instrument:XBTUSDTM","subject":"funding.rate",'
        b'"data":{"granularity":60000,"fundingRate":-0.002966,"timestamp":1551770400000}}'
    )
    # the classic page's mark example (different values, index below mark), with the type it omits
    classic = (
        b'{"topic":"/contract/instrument:XBTUSDTM","type":"message","subject":"mark.index.price",'
        b'"data":{"granularity":1000,"indexPrice":4000.23,"markPrice":4010.52,"timestamp":1551770400000}}'
    )
    n.on_frame(1731899129050000000, mark, out)
    n.on_frame(1551770400100000000, b'{"type":"message",' + funding[1:], out)
    n.on_frame(1551770400200000000, classic, out)
    assert [r[:6] for r in out.mark_price] == [
        ("kucoin-futures", "BTC-USDT-PERP", 1731899129000000000, 1731899129050000000, 90445.02, 90445.02),
        ("kucoin-futures", "BTC-USDT-PERP", 1551770400000000000, 1551770400200000000, 4010.52, 4000.23),
    ]
    assert [r[:7] for r in out.funding] == [
        ("kucoin-futures", "BTC-USDT-PERP", 1551770400000000000, 1551770400100000000, -0.002966, None, None)
    ]
    assert out.feed_events == [] and out.trades == [] and out.bbo == []


@pytest.mark.parametrize(
    "data",
    [
        b'"subject":"mark.index.price","data":{"markPrice":"NaN","indexPrice":1,"timestamp":1551770400000}',
        b'"subject":"mark.index.price","data":{"markPrice":-5,"indexPrice":1,"timestamp":1551770400000}',
        b'"subject":"mark.index.price","data":{"indexPrice":1,"timestamp":1551770400000}',
        b'"subject":"funding.rate","data":{"fundingRate":"x","timestamp":1551770400000}',
        b'"subject":"funding.rate","data":{"fundingRate":5,"timestamp":1551770400000}',
        b'"subject":"funding.rate","data":{"fundingRate":0.0001,"timestamp":"soon"}',
    ],
)
def test_bad_instrument_messages_are_parse_errors(data: bytes) -> None:
    n = KucoinFuturesNormaliser()
    out = RecordBuffer()
    n.on_frame(1, b'{"topic":"/contract/instrument:XBTUSDTM","type":"message",' + data + b"}", out)
    assert [e[4] for e in out.feed_events] == ["parse_error"]
    assert out.mark_price == [] and out.funding == []


def test_symbols() -> None:
    spot, fut = get_dialect("kucoin"), get_dialect("kucoin-futures")
    assert spot.native_symbol("btc/usdt") == "BTC-USDT" and spot.normalise_symbol("ETH-BTC") == "ETH-BTC"
    with pytest.raises(ValueError):
        spot.native_symbol("BTCUSDT")
    assert fut.native_symbol("BTC-USDT-PERP") == "XBTUSDTM" and fut.native_symbol("ETHUSDTM") == "ETHUSDTM"
    assert fut.normalise_symbol("XBTUSDTM") == "BTC-USDT-PERP"
    assert (
        fut.normalise_symbol("SOLUSDCM") == "SOL-USDC-PERP"
        and fut.normalise_symbol("XBTUSDM") == "BTC-USD-PERP"
    )
    assert fut.normalise_symbol("XBTMZ25") == "XBTMZ25"


def test_subscribe_frames() -> None:
    spot = get_dialect("kucoin").subscribe_frames(Subscription(("BTC-USDT", "ETH-USDT")))
    assert [orjson.loads(f)["topic"] for f in spot] == [
        "/market/match:BTC-USDT,ETH-USDT",
        "/market/level2:BTC-USDT,ETH-USDT",
        "/market/ticker:BTC-USDT,ETH-USDT",
    ]
    assert all(orjson.loads(f)["response"] is True for f in spot)
    fut = get_dialect("kucoin-futures").subscribe_frames(Subscription(("XBTUSDTM", "ETHUSDTM"), ("book",)))
    assert [orjson.loads(f)["topic"] for f in fut] == [
        "/contractMarket/level2:XBTUSDTM",
        "/contractMarket/level2:ETHUSDTM",
    ]
    # funding and mark share one topic: subscribed once per symbol
    deriv = get_dialect("kucoin-futures").subscribe_frames(Subscription(("XBTUSDTM",), ("funding", "mark")))
    assert [orjson.loads(f)["topic"] for f in deriv] == ["/contract/instrument:XBTUSDTM"]


@pytest.mark.parametrize(
    "frame",
    [
        b'{"topic":"/market/match:BTC-USDT","type":"message","data":{"price":"1',  # truncated JSON
        b'{"topic":"/market/match:BTC-USDT","type":"message","data":{"price":"NaN","size":"1","side":"buy","time":"1729843222921000000","tradeId":"1"}}',
        b'{"topic":"/market/match:BTC-USDT","type":"message","data":{"price":"-1","size":"1","side":"buy","time":"1729843222921000000","tradeId":"1"}}',
        b'{"topic":"/market/match:BTC-USDT","type":"message","data":{"price":"1e400","size":"1","side":"buy","time":"1729843222921000000","tradeId":"1"}}',
        b'{"topic":"/market/match:BTC-USDT","type":"message","data":{"price":"1","size":"1","side":"up","time":"1729843222921000000","tradeId":"1"}}',
        b'{"topic":"/market/match:../../etc","type":"message","data":{"price":"1","size":"1","side":"buy","time":"1729843222921000000","tradeId":"1"}}',
        b'{"topic":"/market/level2:BTC-USDT","type":"message","data":{"sequenceStart":"x","sequenceEnd":2,"changes":{}}}',
        b'{"topic":"/market/level2:BTC-USDT","type":"message","data":{"sequenceStart":9,"sequenceEnd":2,"changes":{"asks":[],"bids":[]}}}',
        b'{"topic":"/market/level2:BTC-USDT","type":"message","data":{"sequenceStart":1,"sequenceEnd":2,"changes":{"asks":[["1","x","2"]],"bids":[]}}}',
        b'{"topic":"/market/kline:BTC-USDT","type":"message","data":{}}',
        b'{"type":"snapshot","generated":true,"topic":"/market/level2Snapshot:BTC-USDT","data":{"code":"400100"}}',
        b'\xff\xfe{"type"',
        b"[]",
    ],
)
def test_bad_input_is_a_parse_error_and_others_keep_flowing(frame: bytes) -> None:
    n = KucoinSpotNormaliser()
    out = RecordBuffer()
    good = (
        b'{"topic":"/market/match:ETH-USDT","type":"message","subject":"trade.l3match","data":{"price":"2",'
        b'"size":"3","side":"sell","symbol":"ETH-USDT","time":"1729843222921000000","tradeId":"7"}}'
    )
    n.on_frame(1, frame, out)
    n.on_frame(2, good, out)
    assert [e[4] for e in out.feed_events] == ["parse_error"]
    assert orjson.loads(out.feed_events[0][5])["frame"]
    assert [r[4] for r in out.trades] == ["7"]


def test_control_messages_and_errors() -> None:
    n = KucoinSpotNormaliser()
    out = RecordBuffer()
    for frame in (b'{"id":"x","type":"welcome"}', b'{"id":"1","type":"ack"}', b'{"id":"p","type":"pong"}'):
        n.on_frame(1, frame, out)
    assert len(out) == 0
    n.on_frame(
        2, b'{"id":"1","type":"error","code":404,"data":"topic /market/level2:NOPE-USDT is not found"}', out
    )
    assert [e[4] for e in out.feed_events] == ["exchange_error"]


def test_parse_bullet() -> None:
    token, endpoint = parse_bullet(
        b'{"code":"200000","data":{"token":"abc","instanceServers":[{"endpoint":"wss://ws-api-spot.kucoin.com/",'
        b'"encrypt":true,"protocol":"websocket","pingInterval":18000,"pingTimeout":10000}]}}'
    )
    assert (token, endpoint) == ("abc", "wss://ws-api-spot.kucoin.com/")
    for bad in (
        b"{}",
        b'{"code":"429000","msg":"Too Many Requests"}',
        b'{"code":"200000","data":{"token":"a"}}',
        b"nope",
    ):
        with pytest.raises(ValueError):
            parse_bullet(bad)


# -- simulator round trips through the real connection layer ---------------------------------------
@pytest.mark.parametrize("exchange", ["kucoin", "kucoin-futures"])
async def test_simulator_round_trip_token_resync_and_replay(
    exchange: str, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)  # even debug logs must not show the token
    dialect = get_dialect(exchange)
    natives = dialect.demo_symbols
    first, second = (dialect.normalise_symbol(s) for s in natives)
    capture = tmp_path / "live.capture.gz"
    async with running(exchange, symbols=natives, capture=capture) as run:
        await run.until(
            lambda: all(
                run.count("trades", s) > 3 and run.count("book", s) > 20 and run.count("bbo", s) > 5
                for s in (first, second)
            )
        )
        run.sim.faults.drop_updates[natives[0]] = 1
        await run.until(lambda: len(run.events("resync", first)) == 1)
        before = run.count("book", second)
        await run.until(lambda: run.count("book", second) > before + 20)
        assert len(run.events("gap", first)) == 1
        assert run.events("gap", second) == [] and run.events("resync", second) == []
        await run.sim.disconnect_all()
        await run.until(lambda: run.collector.stats.connects == 2 and len(run.events("resync", second)) == 1)
        sim: Any = run.sim
        assert sim.bullets == 2 and sim.rejected_tokens == 0  # a fresh token for each connection
        tokens = set(sim.tokens)
    replayed = replay_capture(dialect.new_normaliser(), capture)
    assert replayed.trades == run.got.trades and replayed.book == run.got.book and replayed.bbo == run.got.bbo
    assert replayed.feed_events == [e for e in run.got.feed_events if e[2] != "connection"]
    trade_ids = [(r[1], r[4]) for r in run.got.trades]
    assert len(trade_ids) == len(set(trade_ids))
    assert assert_tops_match_bbo(run.got.book, run.got.bbo) > 20
    # the token is a credential: never in the capture, never in an event
    text = gzip.decompress(capture.read_bytes())
    assert tokens and not any(t.encode() in text for t in tokens)
    assert not any(t in e[5] for t in tokens for e in run.got.feed_events)
    assert not any(t in caplog.text for t in tokens), caplog.text[:3000]


async def test_bullet_429_pauses_then_connects() -> None:
    dialect = get_dialect("kucoin")
    sim = dialect.simulator(SimulatorConfig(symbols=dialect.demo_symbols, rate_hz=40))
    sim.faults.rest_429 = 1
    sim.faults.retry_after_s = 1.0
    await sim.start()
    got = RecordBuffer()

    async def sink(batch: RecordBuffer) -> None:
        got.extend(batch)

    collector = Collector(
        dialect, list(dialect.demo_symbols), sink, ws_url=sim.ws_url, rest_url=sim.rest_url, settings=FAST
    )
    await collector.start()
    try:
        run = Run(sim, collector, got)
        await run.until(lambda: run.count("bbo", "BTC-USDT") > 3)
    finally:
        await collector.stop()
        await sim.stop()
    assert collector.budget.rejections == 1
    disconnects = [orjson.loads(e[5]) for e in got.feed_events if e[4] == "disconnect"]
    assert disconnects and "429" in disconnects[0]["error"]


async def test_simulator_refuses_a_bad_token_and_answers_pings() -> None:
    dialect = get_dialect("kucoin-futures")
    sim: Any = dialect.simulator(SimulatorConfig(symbols=dialect.demo_symbols))
    await sim.start()
    try:
        async with websockets.connect(f"{sim.ws_url}/?token=forged&connectId=c1") as ws:
            error = orjson.loads(await asyncio.wait_for(ws.recv(), 5))
            assert error["type"] == "error" and error["code"] == 401 and error["id"] == "c1"
        assert sim.rejected_tokens == 1
        import aiohttp

        async with aiohttp.ClientSession() as http:
            url = await dialect.prepare_connection(
                http, sim.rest_url, sim.ws_url, Subscription(dialect.demo_symbols)
            )
        assert "token=" in url and "connectId=" in url
        async with websockets.connect(url) as ws:
            assert orjson.loads(await asyncio.wait_for(ws.recv(), 5))["type"] == "welcome"
            await ws.send(PING_FRAME)
            while (msg := orjson.loads(await asyncio.wait_for(ws.recv(), 5)))["type"] != "pong":
                pass
            assert msg["id"] == orjson.loads(PING_FRAME)["id"] and sim.pings == 1
    finally:
        await sim.stop()


class _QuickPing(KucoinFuturesDialect):
    app_ping: ClassVar[tuple[str, float] | None] = (PING_FRAME, 0.1)


async def test_collector_pings_and_ignores_pongs() -> None:
    dialect = _QuickPing()
    sim: Any = dialect.simulator(SimulatorConfig(symbols=dialect.demo_symbols, rate_hz=20))
    await sim.start()
    got = RecordBuffer()

    async def sink(batch: RecordBuffer) -> None:
        got.extend(batch)

    collector = Collector(
        dialect, list(dialect.demo_symbols), sink, ws_url=sim.ws_url, rest_url=sim.rest_url, settings=FAST
    )
    await collector.start()
    try:
        await Run(sim, collector, got).until(lambda: sim.pings >= 3)
    finally:
        await collector.stop()
        await sim.stop()
    assert not [e for e in got.feed_events if e[4] in ("parse_error", "exchange_error")]


@pytest.mark.parametrize("exchange", ["kucoin", "kucoin-futures"])
async def test_fetch_snapshot_frames_and_refusals(exchange: str) -> None:
    import aiohttp

    dialect = get_dialect(exchange)
    sim = dialect.simulator(SimulatorConfig(symbols=dialect.demo_symbols))
    await sim.start()
    try:
        async with aiohttp.ClientSession() as http:
            frame = await dialect.fetch_snapshot(http, sim.rest_url, dialect.demo_symbols[0])
            with pytest.raises(aiohttp.ClientResponseError) as refused:
                await dialect.fetch_snapshot(http, sim.rest_url, "NOPE")
    finally:
        await sim.stop()
    assert refused.value.status == 400
    n = dialect.new_normaliser()
    out = RecordBuffer()
    n.on_frame(1, frame, out)
    assert out.feed_events == [] and {r[7] for r in out.book} == {True} and len(out.book) > 20


# -- open interest: polled over REST ---------------------------------------------------------------

#: The ``data`` of the "Get Symbol Detail" example, verbatim (fields, values and number forms):
#: https://www.kucoin.com/docs/rest/futures-trading/market-data/get-symbol-detail (checked 2026-12-05)
CONTRACT_DETAIL_EXAMPLE = (
    b'{"code":"200000","data":{"symbol":"XBTUSDTM","rootSymbol":"USDT","type":"FFWCSX",'
    b'"firstOpenDate":1585555200000,"expireDate":null,"settleDate":null,"baseCurrency":"XBT",'
    b'"quoteCurrency":"USDT","settleCurrency":"USDT","maxOrderQty":1000000,"maxPrice":1000000.0,'
    b'"lotSize":1,"tickSize":0.1,"indexPriceTickSize":0.01,"multiplier":0.001,"initialMargin":0.008,'
    b'"maintainMargin":0.004,"maxRiskLimit":100000,"minRiskLimit":100000,"riskStep":50000,'
    b'"makerFeeRate":2.0E-4,"takerFeeRate":6.0E-4,"takerFixFee":0.0,"makerFixFee":0.0,'
    b'"settlementFee":null,"isDeleverage":true,"isQuanto":true,"isInverse":false,'
    b'"markMethod":"FairPrice","fairMethod":"FundingRate","fundingBaseSymbol":".XBTINT8H",'
    b'"fundingQuoteSymbol":".USDTINT8H","fundingRateSymbol":".XBTUSDTMFPI8H","indexSymbol":".KXBTUSDT",'
    b'"settlementSymbol":"","status":"Open","fundingFeeRate":6.41E-4,"predictedFundingFeeRate":5.5E-5,'
    b'"fundingRateGranularity":28800000,"openInterest":"6273644","turnoverOf24h":1.9110000807101517E9,'
    b'"volumeOf24h":21807.101,"markPrice":87351.75,"indexPrice":87357.57,"lastTradePrice":87319.4,'
    b'"nextFundingRateTime":1816952,"maxLeverage":125,"sourceExchanges":["okex","binance","kucoin",'
    b'"bybit","bitmart","gateio"],"premiumsSymbol1M":".XBTUSDTMPI","premiumsSymbol8H":".XBTUSDTMPI8H",'
    b'"fundingBaseSymbol1M":".XBTINT","fundingQuoteSymbol1M":".USDTINT","lowPrice":85201.8,'
    b'"highPrice":90000.0,"priceChgPct":-0.0033,"priceChg":-291.0,"k":490.0,"m":300.0,"f":1.3,'
    b'"mmrLimit":0.3,"mmrLevConstant":125.0,"supportCross":true,"buyLimit":91717.92,"sellLimit":82982.88}}'
)


def test_open_interest_poll_of_the_documented_contract_detail() -> None:
    from collectors.venues.kucoin.client import poll_frame
    from collectors.venues.kucoin.futures import CONTRACT_PATH

    frame = poll_frame(CONTRACT_PATH, "XBTUSDTM", CONTRACT_DETAIL_EXAMPLE)
    assert orjson.loads(frame)["data"] == orjson.loads(CONTRACT_DETAIL_EXAMPLE)  # the body, unchanged
    n = KucoinFuturesNormaliser()
    out = RecordBuffer()
    n.on_frame(1_764_900_000_000_000_000, frame, out)
    # openInterest "6273644" contracts; the answer has no time: ts_exchange null, no value
    assert out.open_interest == [
        ("kucoin-futures", "BTC-USDT-PERP", None, 1_764_900_000_000_000_000, 6273644.0, None, 0)
    ]
    assert out.feed_events == [] and out.mark_price == [] and out.funding == []


@pytest.mark.parametrize(
    "body",
    [
        b'{"code":"429000","msg":"Too Many Requests"}',
        b'{"code":"200000","data":{"symbol":"ETHUSDTM","openInterest":"5"}}',  # another contract
        b'{"code":"200000","data":{"symbol":"XBTUSDTM","openInterest":"-1"}}',
        b'{"code":"200000","data":{"symbol":"XBTUSDTM","openInterest":"NaN"}}',
        b'{"code":"200000","data":{"symbol":"XBTUSDTM","openInterest":"1e400"}}',
        b'{"code":"200000","data":{"symbol":"XBTUSDTM","openInterest":true}}',
        b'{"code":"200000","data":{"symbol":"XBTUSDTM"}}',
        b'{"code":"200000","data":[]}',
        b"null",
    ],
)
def test_bad_open_interest_answers_are_counted_and_others_keep_flowing(body: bytes) -> None:
    from collectors.venues.kucoin.client import poll_frame

    n = KucoinFuturesNormaliser()
    out = RecordBuffer()
    n.on_frame(1, poll_frame("/api/v1/contracts", "XBTUSDTM", body), out)
    n.on_frame(2, poll_frame("/api/v1/contracts", "XBTUSDTM", CONTRACT_DETAIL_EXAMPLE), out)
    n.on_frame(3, poll_frame("/api/v1/level2/snapshot", "XBTUSDTM", CONTRACT_DETAIL_EXAMPLE), out)
    assert [e[4] for e in out.feed_events] == ["parse_error", "parse_error"]
    assert [r[4] for r in out.open_interest] == [6273644.0]


def test_open_interest_is_polled_not_subscribed() -> None:
    d = get_dialect("kucoin-futures")
    assert "open_interest" in d.channels
    sub = Subscription(("XBTUSDTM", "ETHUSDTM"), ("trades", "open_interest"))
    assert [orjson.loads(f)["topic"] for f in d.subscribe_frames(sub)] == [
        "/contractMarket/execution:XBTUSDTM",
        "/contractMarket/execution:ETHUSDTM",
    ]
    assert d.rest_polls(sub) == [("open_interest", "XBTUSDTM"), ("open_interest", "ETHUSDTM")]
    assert d.rest_polls(Subscription(("XBTUSDTM",), ("trades", "book"))) == []
    assert d.poll_request_weight("open_interest", "XBTUSDTM") == 3  # "Public weight: 3"
    # the spot venue polls nothing
    assert get_dialect("kucoin").rest_polls(Subscription(("BTC-USDT",))) == []


async def test_fetch_poll_against_the_simulator_and_its_refusals() -> None:
    import aiohttp

    dialect = get_dialect("kucoin-futures")
    sim = dialect.simulator(SimulatorConfig(symbols=dialect.demo_symbols))
    await sim.start()
    try:
        async with aiohttp.ClientSession() as http:
            frame = await dialect.fetch_poll(http, sim.rest_url, "open_interest", "XBTUSDTM")
            # the instruments list shares the path prefix and still answers the list
            async with http.get(f"{sim.rest_url}/api/v1/contracts/active") as resp:
                listed = orjson.loads(await resp.read())["data"]
            with pytest.raises(aiohttp.ClientResponseError) as unknown:
                await dialect.fetch_poll(http, sim.rest_url, "open_interest", "NOPEUSDTM")
            sim.faults.rest_429 = 1
            with pytest.raises(aiohttp.ClientResponseError) as limited:
                await dialect.fetch_poll(http, sim.rest_url, "open_interest", "XBTUSDTM")
    finally:
        await sim.stop()
    assert unknown.value.status == 400 and limited.value.status == 429
    assert sorted(i["symbol"] for i in listed) == ["ETHUSDTM", "XBTUSDTM"]
    body = orjson.loads(frame)["data"]["data"]
    n = dialect.new_normaliser()
    out = RecordBuffer()
    n.on_frame(1, frame, out)
    assert out.feed_events == []
    assert [r[1:] for r in out.open_interest] == [
        ("BTC-USDT-PERP", None, 1, float(body["openInterest"]), None, 0)
    ]


async def test_futures_open_interest_round_trip_polls_into_the_capture(tmp_path: Path) -> None:
    """The polled open interest through the real connection layer: every row equals the answer received
    at its ts_recv, and the capture (which holds the generated poll frames) replays to the live rows."""
    from collectors.capture import read_capture

    capture = tmp_path / "live.capture.gz"
    async with running("kucoin-futures", ("XBTUSDTM", "ETHUSDTM"), capture=capture) as run:
        await run.until(
            lambda: all(
                run.count(ds, s) > 0
                for ds in ("mark_price", "funding", "open_interest")
                for s in ("BTC-USDT-PERP", "ETH-USDT-PERP")
            ),
            timeout_s=15.0,
        )
        assert run.sim.open_interest_requests >= 2
    assert not {e[4] for e in run.got.feed_events} & {"parse_error", "rest_error", "stale"}
    files = sorted(tmp_path.glob("live*"))
    polled = {
        ts: orjson.loads(frame)
        for path in files
        for item in read_capture(path)
        if isinstance(item, tuple)
        for ts, frame in [item]
        if frame.startswith(b'{"type":"poll"')
    }
    assert polled and all(p["generated"] is True for p in polled.values())
    for row in run.got.open_interest:
        data = polled[row[3]]["data"]["data"]
        assert row[2] is None and row[5] is None  # the answer carries no time and no value
        assert row[4] == float(data["openInterest"])
    replayed = RecordBuffer()
    for path in files:
        replayed.extend(replay_capture(get_dialect("kucoin-futures").new_normaliser(), path))
    for ds in ("mark_price", "funding", "open_interest"):
        assert sorted(replayed.rows(ds), key=repr) == sorted(run.got.rows(ds), key=repr), ds
