"""Bitstamp v2: the shared recording (with its REST snapshots merged in as the collector injects them),
the microtimestamp sync rule, the order_book top as bbo, and bad input."""

from __future__ import annotations

import gzip
import json
from pathlib import Path

import orjson
import pytest

from collectors.capture import read_capture, replay_capture
from collectors.registry import get_dialect
from collectors.venues.bitstamp import BitstampNormaliser, snapshot_frame
from schemas import RecordBuffer
from tests.collectors.bad_input import assert_parse_error_then_flowing

SAMPLE = "bitstamp/bitstamp_cryptofeed.capture.gz"
REQUESTS = "bitstamp/bitstamp_cryptofeed.requests.jsonl.gz"


@pytest.fixture(scope="module")
def merged(samples: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The recording with each REST order book injected at the time it was fetched (the recorder kept
    them apart; ticktape's collector writes them into the capture as generated frames)."""
    lines: list[tuple[int, int, bytes]] = []
    with gzip.open(samples / REQUESTS, "rt") as fh:
        for line in fh:
            rest = json.loads(line).get("rest")
            if rest and "/order_book/" in rest["url"]:
                pair = rest["url"].rstrip("/").rsplit("/", 1)[1]
                lines.append((rest["ts_ns"], 0, snapshot_frame(pair, rest["body"]).encode()))
    for i, item in enumerate(read_capture(samples / SAMPLE)):
        assert isinstance(item, tuple)
        lines.append((item[0], i + 1, item[1]))
    path = tmp_path_factory.mktemp("bitstamp") / "merged.capture"
    path.write_bytes(b"".join(b"%d %s\n" % (ts, frame) for ts, _, frame in sorted(lines)))
    return path


@pytest.fixture(scope="module")
def records(merged: Path) -> RecordBuffer:
    return replay_capture(BitstampNormaliser(), merged)


@pytest.fixture(scope="module")
def messages(merged: Path) -> list[tuple[int, dict]]:
    return [(i[0], orjson.loads(i[1])) for i in read_capture(merged) if isinstance(i, tuple)]


def test_trades_equal_the_messages(messages, records) -> None:
    trades = [(ts, m) for ts, m in messages if m.get("event") == "trade"]
    assert len(trades) > 5
    assert len(records.trades) == len(trades)
    for (ts, m), row in zip(trades, records.trades, strict=True):
        d = m["data"]
        exchange, symbol, ts_ex, ts_recv, trade_id, price, size, side, _flags = row
        assert exchange == "bitstamp" and symbol == get_dialect("bitstamp").normalise_symbol(
            m["channel"][12:]
        )
        assert ts_recv == ts and ts_ex == int(d["microtimestamp"]) * 1_000
        assert trade_id == str(d["id"])
        assert (price, size) == (float(d["price_str"]), float(d["amount_str"]))
        assert side == ("buy" if d["type"] == 0 else "sell")


def test_books_sync_from_the_snapshots_without_false_events(messages, records) -> None:
    assert records.feed_events == []
    snapshots = {
        m["channel"][16:]: int(m["data"]["microtimestamp"]) * 1_000 for _, m in messages if m.get("generated")
    }
    assert len(snapshots) == 10
    symbols = {r[1] for r in records.book}
    assert len(symbols) == 10 and {r[9] for r in records.book} == {0}
    # every change older than its pair's snapshot is in the snapshot: none became a row
    for row in records.book:
        if not row[7]:
            pair = row[1].replace("-", "").lower()
            assert row[2] > snapshots[pair]
    applied = sum(1 for r in records.book if not r[7])
    dropped = sum(
        1
        for _, m in messages
        if m.get("event") == "data"
        and int(m["data"]["microtimestamp"]) * 1_000 <= snapshots[m["channel"][16:]]
    )
    assert applied > 100 and dropped > 10


MS = 1_000_000


def _diff(pair: str, micros: int, bids=(), asks=()) -> bytes:
    data = {"timestamp": str(micros // 1_000_000), "microtimestamp": str(micros), "bids": bids, "asks": asks}
    return orjson.dumps({"data": data, "channel": f"diff_order_book_{pair}", "event": "data"})


def test_changes_wait_for_the_snapshot_and_older_ones_are_dropped() -> None:
    n = BitstampNormaliser()
    out = RecordBuffer()
    t = 1_765_000_000_000_000
    n.on_frame(1, _diff("btcusd", t + 10, bids=[["100.0", "1.0"]]), out)  # in the snapshot
    n.on_frame(2, _diff("btcusd", t + 30, asks=[["101.0", "2.0"]]), out)  # newer: applied after it
    assert n.snapshot_requests == {"btcusd"} and out.book == []
    body = {
        "timestamp": "1765000000",
        "microtimestamp": str(t + 20),
        "bids": [["100.0", "1.0"]],
        "asks": [["102.0", "3.0"]],
    }
    n.on_frame(3, snapshot_frame("btcusd", orjson.dumps(body)), out)
    assert [(r[4], r[5], r[6], r[7]) for r in out.book] == [
        ("bid", 100.0, 1.0, True),
        ("ask", 102.0, 3.0, True),
        ("ask", 101.0, 2.0, False),
    ]
    assert n.snapshot_requests == set()
    n.on_frame(4, _diff("btcusd", t + 25, bids=[["99.0", "1.0"]]), out)  # older than the last change
    assert [e[4] for e in out.feed_events] == ["out_of_order"] and len(out.book) == 3
    n.on_disconnect(5, out)
    n.on_frame(6, _diff("btcusd", t + 40, bids=[["99.0", "1.0"]]), out)
    assert n.snapshot_requests == {"btcusd"} and len(out.book) == 3


def test_order_book_top_is_the_bbo_and_heartbeats_are_quiet() -> None:
    n = BitstampNormaliser()
    out = RecordBuffer()
    top = {
        "timestamp": "1765000000",
        "microtimestamp": "1765000000123456",
        "bids": [["97000.5", "0.25"], ["97000", "1"]],
        "asks": [],
    }
    n.on_frame(
        1_765_000_000_200 * MS,
        orjson.dumps({"data": top, "channel": "order_book_btcusd", "event": "data"}),
        out,
    )
    n.on_frame(2, b'{"event":"bts:heartbeat","channel":"","data":{"status":"success"}}', out)
    n.on_frame(3, b'{"event":"bts:request_reconnect","channel":"","data":""}', out)
    assert out.bbo == [
        (
            "bitstamp",
            "BTC-USD",
            1_765_000_000_123_456_000,
            1_765_000_000_200 * MS,
            97000.5,
            0.25,
            None,
            None,
            None,
            0,
        )
    ]
    assert [e[4] for e in out.feed_events] == ["reconnect_requested"]


def test_bad_trade_is_a_parse_error_and_the_next_one_flows() -> None:
    good = {
        "data": {
            "id": 7,
            "amount_str": "0.5",
            "price_str": "97000",
            "type": 1,
            "microtimestamp": "1765000000000000",
        },
        "channel": "live_trades_btcusd",
        "event": "trade",
    }
    bad = {**good, "data": {**good["data"], "type": True}}
    assert_parse_error_then_flowing(BitstampNormaliser(), orjson.dumps(bad), orjson.dumps(good), ["7"])
    for pair in ("btc", "..usd", "btcxyz"):
        out = RecordBuffer()
        BitstampNormaliser().on_frame(1, orjson.dumps({**good, "channel": f"live_trades_{pair}"}), out)
        assert [e[4] for e in out.feed_events] == ["parse_error"] and out.trades == []


def test_subscriptions_and_symbols() -> None:
    dialect = get_dialect("bitstamp")
    assert dialect.native_symbol("BTC-USD") == "btcusd" and dialect.normalise_symbol("usdtusd") == "USDT-USD"
    from collectors.base import Subscription

    frames = [orjson.loads(f) for f in dialect.subscribe_frames(Subscription(("ethusd",)))]
    assert [f["data"]["channel"] for f in frames] == [
        "live_trades_ethusd",
        "diff_order_book_ethusd",
        "order_book_ethusd",
    ]
