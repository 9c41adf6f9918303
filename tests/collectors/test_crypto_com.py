"""Crypto.com: the shared recording (retired ``v2/market`` API, 2021-11-23), documented v1 messages for
what it lacks (delta books with ``u``/``pu``, string prices, ticker sizes), and the venue's own rules
(heartbeat answers, re-subscription after a gap, symbols).

What differs between the recording and the current v1 API (module docstring): v2 sends every ``book``
message as the whole 150-level book with no update id, numbers instead of strings, integer trade ids,
and a ticker without sizes; the envelope, heartbeat and channel names are the same.
"""

from __future__ import annotations

import asyncio
import gzip
import json
from pathlib import Path

import orjson
import pytest

from collectors.base import DialectOptions, Subscription
from collectors.capture import read_capture, replay_capture
from collectors.registry import get_dialect
from collectors.venues.crypto_com import CryptoComNormaliser
from schemas import Flags, RecordBuffer

SAMPLE = "crypto-com/crypto-com_cryptofeed.capture.gz"
REQUESTS = "crypto-com/crypto-com_cryptofeed.requests.jsonl.gz"
MS = 1_000_000


@pytest.fixture(scope="module")
def frames(samples: Path) -> list[tuple[int, dict]]:
    return [(i[0], orjson.loads(i[1])) for i in read_capture(samples / SAMPLE) if isinstance(i, tuple)]


@pytest.fixture(scope="module")
def records(samples: Path) -> RecordBuffer:
    return replay_capture(CryptoComNormaliser(), samples / SAMPLE)


def _results(frames: list[tuple[int, dict]], channel: str) -> list[tuple[int, dict]]:
    return [(ts, f["result"]) for ts, f in frames if (f.get("result") or {}).get("channel") == channel]


def test_trades_equal_the_messages(frames, records) -> None:
    expected = [(ts, r["instrument_name"], t) for ts, r in _results(frames, "trade") for t in r["data"]]
    assert len(expected) > 1000
    assert len(records.trades) == len(expected)  # the recording repeats no trade id
    for (ts, native, t), row in zip(expected, records.trades, strict=True):
        exchange, symbol, ts_ex, ts_recv, trade_id, price, size, side, _flags = row
        assert exchange == "crypto-com" and symbol == native.replace("_", "-")
        assert ts_recv == ts and ts_ex == t["t"] * MS
        assert trade_id == str(t["d"])
        assert (price, size) == (float(t["p"]), float(t["q"]))
        assert side == {"BUY": "buy", "SELL": "sell"}[t["s"]]


def test_no_false_gap_and_whole_books_rebuild_exactly(frames, records) -> None:
    assert records.feed_events == []  # no gap, no resync, no parse error (candlesticks passed over)
    books = _results(frames, "book")
    assert len(books) > 1500
    # one snapshot per instrument, then only changes: a whole book per message is not a resync
    assert {r[9] for r in records.book} == {0}
    by_recv: dict[int, list[tuple]] = {}
    for row in records.book:
        by_recv.setdefault(row[3], []).append(row)
    held: dict[str, dict[str, dict[float, float]]] = {}
    for ts, result in books:
        symbol = result["instrument_name"].replace("_", "-")
        book = held.setdefault(symbol, {"bid": {}, "ask": {}})
        for row in by_recv.get(ts, []):
            assert row[1] == symbol
            if row[6] == 0.0:
                book[row[4]].pop(row[5], None)
            else:
                book[row[4]][row[5]] = row[6]
        data = result["data"][0]
        assert book["bid"] == {float(p): float(s) for p, s, _ in data["bids"]}
        assert book["ask"] == {float(p): float(s) for p, s, _ in data["asks"]}


def test_book_tops_equal_the_ticker_at_equal_time(frames, records) -> None:
    """Where a ticker and a book message share an exchange time, their best prices agree."""
    tops: dict[tuple[str, int], list[tuple[float, float]]] = {}
    held: dict[str, dict[str, dict[float, float]]] = {}
    rows_by_recv: dict[int, list[tuple]] = {}
    for row in records.book:
        rows_by_recv.setdefault(row[3], []).append(row)
    for ts, result in _results(frames, "book"):
        symbol = result["instrument_name"].replace("_", "-")
        book = held.setdefault(symbol, {"bid": {}, "ask": {}})
        for row in rows_by_recv.get(ts, []):
            if row[6] == 0.0:
                book[row[4]].pop(row[5], None)
            else:
                book[row[4]][row[5]] = row[6]
        top = (max(book["bid"]), min(book["ask"]))
        tops.setdefault((symbol, result["data"][0]["t"]), []).append(top)
    bbo_at = {(r[1], r[2]): (r[4], r[6]) for r in records.bbo}
    compared = mismatched = 0
    for (symbol, t), candidates in tops.items():
        quote = bbo_at.get((symbol, t * MS))
        if quote is None:
            continue
        compared += 1
        mismatched += quote not in candidates
    # measured: 135 equal times; one (ONE_USDT, t=1637709536262) has the ticker's ask 0.32816 and the
    # book's 0.32823: the venue's ticker and book services are not one stream
    assert compared > 100 and mismatched <= compared // 100


def test_ticker_rows_and_v2_sizes_missing(frames, records) -> None:
    tickers = _results(frames, "ticker")
    assert len(records.bbo) == len(tickers)
    for (ts, result), row in zip(tickers, records.bbo, strict=True):
        d = result["data"][0]
        assert row[1] == d["i"].replace("_", "-") and row[2] == d["t"] * MS and row[3] == ts
        assert (row[4], row[5], row[6], row[7], row[8]) == (float(d["b"]), None, float(d["k"]), None, None)


def test_heartbeat_is_answered_with_its_id(samples: Path, frames) -> None:
    (ts, beat) = next((ts, f) for ts, f in frames if f.get("method") == "public/heartbeat")
    n = CryptoComNormaliser()
    out = RecordBuffer()
    n.on_frame(ts, orjson.dumps(beat), out)
    assert len(out) == 0 and list(n.replies) == [f'{{"id":{beat["id"]},"method":"public/respond-heartbeat"}}']
    # what the recorder answered on the wire, for the same heartbeat
    with gzip.open(samples / REQUESTS, "rt") as fh:
        sent = [json.loads(line)["ws"]["data"] for line in fh if "respond-heartbeat" in line]
    assert [json.loads(s) for s in sent] == [json.loads(n.replies[0])]


# -- the current v1 API, shaped as its documentation shows ----------------------------------------------
def _push(channel: str, instrument: str, subscription: str, data: list[dict]) -> bytes:
    result = {"instrument_name": instrument, "subscription": subscription, "channel": channel, "data": data}
    return orjson.dumps({"id": -1, "method": "subscribe", "code": 0, "result": result})


SNAPSHOT = _push(
    "book",
    "BTCUSD-PERP",
    "book.BTCUSD-PERP.10",
    [
        {
            "asks": [["50126.000000", "0.400000", "2"], ["50130.000000", "1.279000", "3"]],
            "bids": [["50113.500000", "0.400000", "3"], ["50113.000000", "0.051800", "1"]],
            "t": 1613580710768,
            "tt": 1613580710768,
            "u": 903451800,
        }
    ],
)


def _delta(u: int, pu: int, bids: list, asks: list, t: int = 1613580710868) -> bytes:
    entry = {"update": {"bids": bids, "asks": asks}, "t": t, "tt": t - 2, "u": u, "pu": pu, "cs": 1234567}
    return _push("book.update", "BTCUSD-PERP", "book.BTCUSD-PERP.10", [entry])


def test_delta_book_chain_gap_and_resubscription() -> None:
    n = CryptoComNormaliser()
    out = RecordBuffer()
    ts = 1613580710900 * MS
    n.on_frame(ts, SNAPSHOT, out)
    assert [r[8] for r in out.book] == [903451800] * 4 and all(r[7] for r in out.book)
    n.on_frame(
        ts + 1, _delta(903451870, 903451800, [["50113.500000", "0", "0"]], [["50120.0", "1.5", "1"]]), out
    )
    assert out.book[4:] == [
        (
            "crypto-com",
            "BTC-USD-PERP",
            1613580710868 * MS,
            ts + 1,
            "bid",
            50113.5,
            0.0,
            False,
            903451870,
            0,
            0,
        ),
        (
            "crypto-com",
            "BTC-USD-PERP",
            1613580710868 * MS,
            ts + 1,
            "ask",
            50120.0,
            1.5,
            False,
            903451870,
            0,
            0,
        ),
    ]
    n.on_frame(ts + 2, _delta(903451870, 903451800, [], []), out)  # sent twice
    assert [e[4] for e in out.feed_events] == ["duplicate"]
    n.on_frame(ts + 3, _delta(903452000, 903451950, [], [["50121.0", "1", "1"]]), out)  # one lost
    assert [e[4] for e in out.feed_events] == ["duplicate", "gap"]
    assert n.resubscribe_requests == {"BTCUSD-PERP"}
    rows = len(out.book)
    n.on_frame(ts + 4, _delta(903452100, 903452000, [], [["50122.0", "1", "1"]]), out)
    assert len(out.book) == rows and n.dropped_unsynced == 1  # nothing applied before the snapshot
    n.on_frame(ts + 5, SNAPSHOT, out)
    assert [e[4] for e in out.feed_events] == ["duplicate", "gap", "resync"]
    assert {r[9] for r in out.book[rows:]} == {1}


def test_resubscription_frames_and_subscribe_parameters() -> None:
    dialect = get_dialect("crypto-com")
    sub = Subscription(("BTC_USDT", "BTCUSD-PERP"))
    (frame,) = dialect.subscribe_frames(sub)
    msg = orjson.loads(frame)
    assert msg["method"] == "subscribe" and isinstance(msg["nonce"], int)
    assert msg["params"]["channels"] == [
        "trade.BTC_USDT",
        "book.BTC_USDT.50",
        "ticker.BTC_USDT",
        "trade.BTCUSD-PERP",
        "book.BTCUSD-PERP.50",
        "ticker.BTCUSD-PERP",
    ]
    assert msg["params"]["book_subscription_type"] == "SNAPSHOT_AND_UPDATE"
    assert msg["params"]["book_update_frequency"] == 10
    unsub, resub = (orjson.loads(f) for f in dialect.resubscribe_frames(["BTCUSD-PERP"], sub))
    assert (unsub["method"], resub["method"]) == ("unsubscribe", "subscribe")
    assert unsub["params"]["channels"] == resub["params"]["channels"] == ["book.BTCUSD-PERP.50"]
    assert dialect.subscribe_delay_s == 1.0
    assert get_dialect("crypto-com", DialectOptions(book_depth=10)).channel_names("X_Y", ("book",)) == [
        "book.X_Y.10"
    ]
    with pytest.raises(ValueError):
        get_dialect("crypto-com", DialectOptions(book_depth=150))


def test_symbols_spot_perpetual_and_dated() -> None:
    dialect = get_dialect("crypto-com")
    assert dialect.native_symbol("BTC-USDT") == "BTC_USDT"
    assert dialect.native_symbol("BTC-USD-PERP") == "BTCUSD-PERP"
    assert dialect.native_symbol("BTCUSD-PERP") == "BTCUSD-PERP"
    assert dialect.native_symbol("BTCUSD-251226") == "BTCUSD-251226"
    assert dialect.normalise_symbol("ETH_BTC") == "ETH-BTC"
    assert dialect.normalise_symbol("BTCUSD-PERP") == "BTC-USD-PERP"
    assert dialect.normalise_symbol("BTCUSD-251226") == "BTCUSD-251226"


def test_v1_trades_and_ticker_as_documented() -> None:
    n = CryptoComNormaliser()
    out = RecordBuffer()
    trades = [
        {"d": "4611686018427387905", "t": 1613581138462, "p": "51327.500000", "q": "0.000100", "s": "SELL"},
        {"d": "4611686018427387904", "t": 1613581138400, "p": "51328.000000", "q": "0.010000", "s": "BUY"},
    ]
    for t in trades:
        t["i"] = "BTCUSD-PERP"
    frame = _push("trade", "BTCUSD-PERP", "trade.BTCUSD-PERP", trades)
    n.on_frame(1613581138500 * MS, frame, out)
    n.on_frame(1613581139500 * MS, frame, out)  # sent again on a re-subscription
    assert [(r[4], r[5], r[6], r[7], r[2]) for r in out.trades] == [
        ("4611686018427387905", 51327.5, 0.0001, "sell", 1613581138462 * MS),
        ("4611686018427387904", 51328.0, 0.01, "buy", 1613581138400 * MS),
    ]
    assert [e[4] for e in out.feed_events] == ["duplicate", "duplicate"]
    ticker = {
        "h": "51790.00",
        "l": "47895.50",
        "a": "51174.500000",
        "i": "BTCUSD-PERP",
        "v": "879.5024",
        "vv": "26370000.12",
        "oi": "12345.12",
        "c": "0.03955106",
        "b": "51170.000000",
        "bs": "1.2000",
        "k": "51180.000000",
        "ks": "0.5000",
        "t": 1613580710768,
    }
    n.on_frame(1613580713768 * MS, _push("ticker", "BTCUSD-PERP", "ticker.BTCUSD-PERP", [ticker]), out)
    row = out.bbo[0]
    assert row[:9] == (
        "crypto-com",
        "BTC-USD-PERP",
        1613580710768 * MS,
        1613580713768 * MS,
        51170.0,
        1.2,
        51180.0,
        0.5,
        None,
    )
    assert row[9] & Flags.OUTDATED  # 3 s old
    empty = {**ticker, "k": None, "ks": None}
    n.on_frame(1613580713769 * MS, _push("ticker", "BTCUSD-PERP", "ticker.BTCUSD-PERP", [empty]), out)
    assert out.bbo[1][4:8] == (51170.0, 1.2, None, None)


def test_errors_and_acknowledgements() -> None:
    n = CryptoComNormaliser()
    out = RecordBuffer()
    n.on_frame(1, b'{"id":1,"method":"subscribe","code":0}', out)
    assert len(out) == 0
    n.on_frame(2, b'{"id":1,"method":"subscribe","code":40003,"message":"INVALID_REQUEST"}', out)
    assert [(e[2], e[4]) for e in out.feed_events] == [("connection", "venue_error")]
    n.on_frame(3, _push("trade", "../X", "trade.../X", []), out)
    n.on_frame(4, b'{"id":"x","method":"public/heartbeat","code":0}', out)
    assert [e[4] for e in out.feed_events][1:] == ["parse_error", "parse_error"]
    assert not n.replies


async def test_live_connection_waits_before_requests_and_answers_heartbeats() -> None:
    from tests.collectors.test_connection import running

    async with running("crypto-com", ("BTC_USDT", "ETH_USDT")) as run:
        sim = run.sim
        for _ in range(100):
            if sim.heartbeats_answered >= 2 and any(r[1] == "ETH-USDT" for r in run.got.bbo):
                break
            await asyncio.sleep(0.05)
    assert sim.heartbeats_answered >= 2  # the simulator sends one a second
    assert sim.first_request_after_s and min(sim.first_request_after_s) >= 0.95
    assert {r[1] for r in run.got.trades} == {"BTC-USDT", "ETH-USDT"}


def test_derivatives_channels_of_a_perpetual() -> None:
    dialect = get_dialect("crypto-com")
    sub = Subscription(("BTCUSD-PERP", "BTC_USDT"), ("bbo", "funding", "mark", "open_interest"))
    (frame,) = dialect.subscribe_frames(sub)
    assert orjson.loads(frame)["params"]["channels"] == [
        "ticker.BTCUSD-PERP",
        "funding.BTCUSD-PERP",
        "estimatedfunding.BTCUSD-PERP",
        "mark.BTCUSD-PERP",
        "index.BTCUSD-INDEX",
        "ticker.BTC_USDT",  # a spot pair has no derivatives channels
    ]
    assert "book_subscription_type" not in orjson.loads(frame)["params"]
    n = CryptoComNormaliser()
    out = RecordBuffer()
    ts = 1786480898000 * MS
    value = [{"v": "63654.45", "t": 1786480897000}]
    n.on_frame(ts, _push("index", "BTCUSD-INDEX", "index.BTCUSD-INDEX", value), out)
    n.on_frame(
        ts + 1, _push("mark", "BTCUSD-PERP", "mark.BTCUSD-PERP", [{"v": "63652.3", "t": 1786480897000}]), out
    )
    estimated = [{"v": "-0.000006242", "t": 1786480859000}]
    n.on_frame(
        ts + 2, _push("estimatedfunding", "BTCUSD-PERP", "estimatedfunding.BTCUSD-PERP", estimated), out
    )
    funding = [{"v": "-0.000000091", "t": 1786480800000}]
    n.on_frame(ts + 3, _push("funding", "BTCUSD-PERP", "funding.BTCUSD-PERP", funding), out)
    ticker = {"i": "BTCUSD-PERP", "b": "63650.1", "bs": "2.1", "k": "63650.2", "ks": "0.3", "oi": "6115.5643"}
    n.on_frame(
        ts + 4, _push("ticker", "BTCUSD-PERP", "ticker.BTCUSD-PERP", [{**ticker, "t": 1786480897900}]), out
    )
    spot = {**ticker, "i": "BTC_USDT", "oi": "0", "t": 1786480897900}
    n.on_frame(ts + 5, _push("ticker", "BTC_USDT", "ticker.BTC_USDT", [spot]), out)
    assert out.feed_events == []
    sym = "BTC-USD-PERP"
    assert out.mark_price == [("crypto-com", sym, 1786480897000 * MS, ts + 1, 63652.3, 63654.45, 0)]
    assert [r[:7] for r in out.funding] == [
        # the funding value's t (a whole hour) is its interval, not an event time: no ts_exchange
        ("crypto-com", sym, None, ts + 3, -0.000000091, -0.000006242, None)
    ]
    assert out.open_interest == [("crypto-com", sym, 1786480897900 * MS, ts + 4, 6115.5643, None, 0)]
    assert [r[1] for r in out.bbo] == [sym, "BTC-USDT"]  # spot open interest (always 0) is no row
    n.on_frame(ts + 6, _push("funding", "BTC_USDT", "funding.BTC_USDT", funding), out)
    n.on_frame(ts + 7, _push("funding", "BTCUSD-PERP", "funding.BTCUSD-PERP", [{"v": "NaN", "t": 1}]), out)
    assert [e[4] for e in out.feed_events] == ["parse_error", "parse_error"]
