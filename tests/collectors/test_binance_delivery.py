"""Binance COIN-M futures (``binance-delivery``): the shared real recording, symbols, contract sizes.

The book rule, faults and reconnects are the USD-M dialect's (tested in test_binance_futures.py) and
the exchange contract's (test_contract.py); what is particular to COIN-M is checked here.
"""

from __future__ import annotations

from pathlib import Path

import orjson
import pytest

from collectors.base import Subscription
from collectors.capture import read_capture, replay_capture
from collectors.registry import get_dialect
from collectors.venues.binance_delivery import BinanceDeliveryNormaliser
from schemas import Flags, RecordBuffer
from tests.collectors.book_replay import assert_tops_match_bbo

SAMPLE = "binance-delivery/ethusd_perp_20240808.capture.gz"


@pytest.fixture(scope="module")
def sample_frames(samples: Path) -> list[tuple[int, dict]]:
    items = read_capture(samples / SAMPLE)
    return [(item[0], orjson.loads(item[1])) for item in items if isinstance(item, tuple)]


@pytest.fixture(scope="module")
def sample_records(samples: Path) -> RecordBuffer:
    return replay_capture(BinanceDeliveryNormaliser(), samples / SAMPLE)


def test_trades_equal_the_messages(sample_frames, sample_records) -> None:
    trade_frames = [(ts, f["data"]) for ts, f in sample_frames if f["stream"].endswith("@trade")]
    assert len(trade_frames) > 1000
    assert len(sample_records.trades) == len(trade_frames)
    for (ts, d), row in zip(trade_frames, sample_records.trades, strict=True):
        exchange, symbol, ts_ex, ts_recv, trade_id, price, size, side, flags = row
        assert (exchange, symbol) == ("binance-delivery", "ETH-USD-PERP")
        assert ts_recv == ts and ts_ex == d["T"] * 1_000_000
        assert trade_id == str(d["t"])
        # COIN-M sizes are whole contracts (10 USD each for ETH), stored as sent
        assert (price, size) == (float(d["p"]), float(d["q"])) and size == int(d["q"])
        assert side == ("sell" if d["m"] else "buy")
        assert flags & Flags.NEG_LATENCY  # the recording host's clock ran ~1.27 s behind


def test_book_ticker_rows_and_book_tops(sample_frames, sample_records) -> None:
    ticks = [(ts, f["data"]) for ts, f in sample_frames if f["stream"].endswith("@bookTicker")]
    assert len(sample_records.bbo) == len(ticks)
    for (ts, d), row in zip(ticks, sample_records.bbo, strict=True):
        assert row[2] == d["E"] * 1_000_000 and row[3] == ts
        assert row[4:9] == (float(d["b"]), float(d["B"]), float(d["a"]), float(d["A"]), d["u"])
    compared = assert_tops_match_bbo(sample_records.book, sample_records.bbo)
    assert compared > 100


def test_no_false_gap_and_one_epoch(sample_records) -> None:
    assert [e for e in sample_records.feed_events if e[4] != "non_market_trade"] == []
    assert {r[9] for r in sample_records.book} == {0}
    assert sum(1 for r in sample_records.book if r[7]) > 0  # the snapshot was joined


@pytest.mark.parametrize(
    ("user", "native", "normalised"),
    [
        ("ETH-USD-PERP", "ETHUSD_PERP", "ETH-USD-PERP"),
        ("ethusd_perp", "ETHUSD_PERP", "ETH-USD-PERP"),
        ("BTCUSD_241227", "BTCUSD_241227", "BTCUSD_241227"),
    ],
)
def test_symbols(user: str, native: str, normalised: str) -> None:
    dialect = get_dialect("binance-delivery")
    assert dialect.native_symbol(user) == native
    assert dialect.normalise_symbol(native) == normalised


def test_dstream_endpoints_and_snapshot_path() -> None:
    dialect = get_dialect("binance-delivery")
    assert dialect.default_ws_url == "wss://dstream.binance.com"
    assert dialect.default_rest_url == "https://dapi.binance.com"
    assert dialect.snapshot_path == "/dapi/v1/depth"
    # not routed by category as USD-M is since 2026-04-23: one combined /stream connection
    sub = Subscription(("BTCUSD_PERP",))
    assert dialect.channel_groups(sub.channels) == [sub.channels]
    assert dialect.connection_url("wss://dstream.binance.com", sub).startswith(
        "wss://dstream.binance.com/stream?"
    )
    assert dialect.forced_disconnect_s == 86_400  # the 24 h disconnect: rotated before it
