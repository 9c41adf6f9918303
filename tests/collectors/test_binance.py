"""Binance spot normaliser on the shared real recording, and on bad input."""

from __future__ import annotations

import gzip
from pathlib import Path

import orjson
import pytest

from collectors.capture import replay_capture
from collectors.venues.binance import BinanceNormaliser, snapshot_frame
from schemas import Flags, RecordBuffer
from tests.collectors.book_replay import tops_by_seq

SAMPLE = "binance/ethusdt_20240808.capture.gz"


@pytest.fixture(scope="module")
def sample_frames(samples: Path) -> list[tuple[int, dict]]:
    frames = []
    with gzip.open(samples / SAMPLE, "rb") as fh:
        for line in fh:
            ts, _, text = line.rstrip(b"\n").partition(b" ")
            frames.append((int(ts), orjson.loads(text)))
    return frames


@pytest.fixture(scope="module")
def sample_records(samples: Path) -> RecordBuffer:
    return replay_capture(BinanceNormaliser(), samples / SAMPLE)


def test_one_trade_row_per_trade_frame_exact(sample_frames, sample_records) -> None:
    trade_frames = [(ts, f["data"]) for ts, f in sample_frames if f["stream"].endswith("@trade")]
    assert len(sample_records.trades) == len(trade_frames) == 6106
    for (ts, d), row in zip(trade_frames, sample_records.trades, strict=True):
        exchange, symbol, ts_ex, ts_recv, trade_id, price, size, side, flags = row
        assert (exchange, symbol) == ("binance", "ETH-USDT")
        assert ts_recv == ts
        assert ts_ex == d["T"] * 1_000_000
        assert trade_id == str(d["t"])
        assert price == float(d["p"]) and size == float(d["q"])
        assert side == ("sell" if d["m"] else "buy")
        # The recording host's clock ran ~1.27 s behind: raw latency is negative everywhere.
        assert flags & Flags.NEG_LATENCY


def test_one_bbo_row_per_book_ticker_frame(sample_frames, sample_records) -> None:
    ticks = [(ts, f["data"]) for ts, f in sample_frames if f["stream"].endswith("@bookTicker")]
    assert len(sample_records.bbo) == len(ticks) == 24077
    for (ts, d), row in zip(ticks, sample_records.bbo, strict=True):
        assert row[2] is None  # spot bookTicker has no event time
        assert row[3] == ts
        assert row[4:9] == (float(d["b"]), float(d["B"]), float(d["a"]), float(d["A"]), d["u"])


def test_rebuilt_book_matches_book_ticker_at_equal_update_ids(sample_records) -> None:
    tops = tops_by_seq(sample_records.book)
    compared = 0
    for row in sample_records.bbo:
        top = tops.get((row[1], row[8]))
        if top is None:
            continue
        (bid_p, bid_s), (ask_p, ask_s) = top
        assert (bid_p, bid_s, ask_p, ask_s) == row[4:8], f"mismatch at u={row[8]}"
        compared += 1
    assert compared > 100  # the recording has hundreds of equal update ids


def test_no_gap_events_and_one_snapshot(sample_records) -> None:
    kinds = [e[4] for e in sample_records.feed_events]
    assert "gap" not in kinds and "parse_error" not in kinds
    snapshot_rows = [r for r in sample_records.book if r[7]]
    assert snapshot_rows and all(r[9] == 0 and r[10] & Flags.SNAPSHOT for r in snapshot_rows)


def test_buffered_events_applied_after_snapshot(sample_frames, sample_records) -> None:
    # Depth events arrive before the snapshot in this recording: the book must not drop them.
    snap_index = next(i for i, (_, f) in enumerate(sample_frames) if f["stream"].endswith("depthSnapshot"))
    last_update_id = sample_frames[snap_index][1]["data"]["lastUpdateId"]
    straddling = [
        f["data"]
        for _, f in sample_frames[:snap_index]
        if f["stream"].endswith("depth@100ms") and f["data"]["u"] > last_update_id
    ]
    seqs = {r[8] for r in sample_records.book if not r[7]}
    assert all(d["u"] in seqs for d in straddling)


def _depth(u_first: int, u_last: int, bids=(), asks=(), sym: str = "BTCUSDT") -> bytes:
    return orjson.dumps(
        {
            "stream": f"{sym.lower()}@depth@100ms",
            "data": {
                "e": "depthUpdate",
                "E": 1_700_000_000_000,
                "s": sym,
                "U": u_first,
                "u": u_last,
                "b": [list(b) for b in bids],
                "a": [list(a) for a in asks],
            },
        }
    )


def _snapshot(last_id: int, sym: str = "BTCUSDT") -> str:
    body = orjson.dumps({"lastUpdateId": last_id, "bids": [["100.0", "1.0"]], "asks": [["101.0", "2.0"]]})
    return snapshot_frame(sym, body)


def test_gap_resyncs_only_that_symbol() -> None:
    n = BinanceNormaliser()
    out = RecordBuffer()
    for sym in ("BTCUSDT", "ETHUSDT"):
        n.on_frame(1, _depth(10, 11, sym=sym), out)
        n.on_frame(2, _snapshot(10, sym), out)
    assert n.snapshot_requests == set()
    n.on_frame(3, _depth(12, 12, bids=[("100.5", "1")], sym="BTCUSDT"), out)
    n.on_frame(4, _depth(14, 15, bids=[("100.6", "1")], sym="BTCUSDT"), out)  # 13 missing
    n.on_frame(5, _depth(12, 13, asks=[("101.5", "1")], sym="ETHUSDT"), out)
    gaps = [e for e in out.feed_events if e[4] == "gap"]
    assert [(e[1], orjson.loads(e[5])["missing"]) for e in gaps] == [("BTC-USDT", 1)]
    assert n.snapshot_requests == {"BTCUSDT"}
    assert not n.books["BTCUSDT"].synced and n.books["ETHUSDT"].synced
    # ETH kept flowing; the resync brings BTC back with epoch 1.
    n.on_frame(6, _snapshot(14, "BTCUSDT"), out)
    resyncs = [e for e in out.feed_events if e[4] == "resync"]
    assert [(e[1], orjson.loads(e[5])["epoch"]) for e in resyncs] == [("BTC-USDT", 1)]
    assert n.books["BTCUSDT"].synced and n.books["BTCUSDT"].last_seq == 15
    assert any(r[1] == "BTC-USDT" and r[8] == 15 and r[9] == 1 for r in out.book)


@pytest.mark.parametrize(
    "frame",
    [
        b'{"stream":"btcusdt@trade","data":{"e":"trade","s":"BTCUSDT","t":1,"p":"1',  # truncated JSON
        b'{"stream":"btcusdt@kline_1m","data":{}}',  # unknown stream
        b'{"stream":"btcusdt@trade","data":{"s":"BTCUSDT","t":1,"q":"1","T":1700000000000,"m":true}}',  # no price
        b'{"stream":"btcusdt@trade","data":{"s":"BTCUSDT","t":1,"p":"abc","q":"1","T":1700000000000,"m":true}}',
        b'{"stream":"btcusdt@trade","data":{"s":"BTCUSDT","t":1,"p":"NaN","q":"1","T":1700000000000,"m":true}}',
        b'{"stream":"x@trade","data":{"s":"../../etcUSDT","t":1,"p":"1","q":"1","T":1700000000000,"m":true}}',
        b'\xff\xfe{"stream"',  # invalid UTF-8
        b"[]",
    ],
)
def test_bad_input_is_a_parse_error_and_others_keep_flowing(frame: bytes) -> None:
    n = BinanceNormaliser()
    out = RecordBuffer()
    good = (
        b'{"stream":"ethusdt@trade","data":{"s":"ETHUSDT","t":7,"p":"2","q":"3","T":1700000000000,"m":false}}'
    )
    n.on_frame(1, frame, out)
    n.on_frame(2, good, out)
    assert [e[4] for e in out.feed_events] == ["parse_error"]
    detail = orjson.loads(out.feed_events[0][5])
    assert detail["frame"] and detail["reason"]
    assert [r[4] for r in out.trades] == ["7"]


def test_bad_level_leaves_book_untouched() -> None:
    n = BinanceNormaliser()
    out = RecordBuffer()
    n.on_frame(1, _depth(10, 11), out)
    n.on_frame(2, _snapshot(10), out)
    rows_before = len(out.book)
    n.on_frame(3, _depth(12, 12, bids=[("100.5", "1")], asks=[("-1", "1")]), out)
    assert len(out.book) == rows_before
    assert [e[4] for e in out.feed_events] == ["parse_error"]
    assert n.books["BTCUSDT"].book.best_bid() == (100.0, 1.0)


def test_duplicate_trade_ids_are_dropped_and_counted() -> None:
    n = BinanceNormaliser()
    out = RecordBuffer()
    t = b'{"stream":"ethusdt@trade","data":{"s":"ETHUSDT","t":7,"p":"2","q":"3","T":1700000000000,"m":false}}'
    n.on_frame(1, t, out)
    n.on_disconnect(2, out)
    n.on_frame(3, t, out)
    assert len(out.trades) == 1
    assert [e[4] for e in out.feed_events] == ["duplicate"]


async def test_non_ascii_spot_symbols_are_url_encoded_and_served() -> None:
    """Binance lists spot symbols that are not ASCII: their stream names are percent-encoded (UTF-8)."""
    from collectors.base import Subscription
    from collectors.registry import get_dialect
    from tests.collectors.test_connection import running

    d = get_dialect("binance")
    url = d.connection_url("wss://stream.binance.com:9443", Subscription(("币安人生USDT",), ("trades",)))
    assert (
        url == "wss://stream.binance.com:9443/stream?streams=%E5%B8%81%E5%AE%89%E4%BA%BA%E7%94%9Fusdt@trade"
    )
    assert url.isascii()
    async with running("binance", symbols=("币安人生USDT", "BTCUSDT")) as run:
        await run.until(lambda: run.count("bbo", "BTC-USDT") > 20 and len(run.events("parse_error")) > 10)
        # the server decoded the name: it serves the symbol on the subscribed streams
        assert any(("trades", "币安人生USDT") in s.subscriptions for s in run.sim.sessions)
    # Delivered, but the lake's symbol rule (DESIGN.md; collectors.events.check_symbol) admits ASCII
    # names only: such frames are counted parse errors naming the symbol, and the others keep flowing.
    reasons = {orjson.loads(e[5])["reason"] for e in run.events("parse_error")}
    assert reasons == {"invalid symbol '币安人生-USDT'"}
