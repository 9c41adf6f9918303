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


# -- derivatives channels: the COIN-M pages' examples (Mark-Price-Stream, Liquidation-Order-Streams,
# checked 2026-12-05); the simulator round trip is the contract suite's (tests/collectors/test_contract.py)
def test_dated_contract_mark_price_has_no_funding_and_perpetual_has() -> None:

    dated = {
        "e": "markPriceUpdate",
        "E": 1596095725000,
        "s": "BTCUSD_201225",
        "p": "10934.62615417",
        "P": "10962.17178236",
        "i": "10933.62615417",
        "r": "",
        "T": 0,
    }
    perpetual = {**dated, "s": "BTCUSD_PERP", "p": "11012.31359011", "r": "0.00000000", "T": 1596096000000}
    recv = 1596095725000 * 10**6 + 2_000_000
    n, out = BinanceDeliveryNormaliser(), RecordBuffer()
    for data in (dated, perpetual):
        n.on_frame(recv, orjson.dumps({"stream": f"{data['s'].lower()}@markPrice@1s", "data": data}), out)
    assert out.feed_events == []
    assert out.mark_price == [
        ("binance-delivery", "BTCUSD_201225", 1596095725000 * 10**6, recv, 10934.62615417, 10933.62615417, 0),
        ("binance-delivery", "BTC-USD-PERP", 1596095725000 * 10**6, recv, 11012.31359011, 10933.62615417, 0),
    ]
    assert out.funding == [
        ("binance-delivery", "BTC-USD-PERP", 1596095725000 * 10**6, recv, 0.0, None, 1596096000000 * 10**6, 0)
    ]


def test_coin_m_force_order_and_open_interest_equal_the_messages() -> None:
    from collectors.venues.binance_futures import open_interest_frame

    force = {
        "e": "forceOrder",
        "E": 1591154240950,
        "o": {
            "s": "BTCUSD_200925",
            "ps": "BTCUSD",
            "S": "SELL",
            "o": "LIMIT",
            "f": "IOC",
            "q": "1",
            "p": "9425.5",
            "ap": "9496.5",
            "X": "FILLED",
            "l": "1",
            "z": "1",
            "T": 1591154240949,
        },
    }
    recv = 1591154240950 * 10**6 + 2_000_000
    n, out = BinanceDeliveryNormaliser(), RecordBuffer()
    n.on_frame(recv, orjson.dumps({"stream": "btcusd_200925@forceOrder", "data": force}), out)
    body = b'{"symbol":"BTCUSD_PERP","pair":"BTCUSD","openInterest":"517655","contractType":"PERPETUAL","time":1591154240951}'
    n.on_frame(recv, open_interest_frame("BTCUSD_PERP", body), out)
    assert out.feed_events == []
    # contracts, as sent: average price and filled quantity of the liquidation order
    assert out.liquidations == [
        ("binance-delivery", "BTCUSD_200925", 1591154240949 * 10**6, recv, None, "sell", 9496.5, 1.0, 0)
    ]
    assert out.open_interest == [
        ("binance-delivery", "BTC-USD-PERP", 1591154240951 * 10**6, recv, 517655.0, None, 0)
    ]


def test_coin_m_open_interest_example_of_the_documentation() -> None:
    # https://developers.binance.com/docs/derivatives/coin-margined-futures/market-data/Open-Interest
    # (checked 2026-12-05): the response example, verbatim; a dated contract, open interest in contracts
    from collectors.venues.binance_futures import open_interest_frame

    body = (
        b'{"symbol":"BTCUSD_200626","pair":"BTCUSD","openInterest":"15004",'
        b'"contractType":"CURRENT_QUARTER","time":1591261042378}'
    )
    n, out = BinanceDeliveryNormaliser(), RecordBuffer()
    n.on_frame(1591261042400000000, open_interest_frame("BTCUSD_200626", body), out)
    assert out.feed_events == []
    assert out.open_interest == [
        ("binance-delivery", "BTCUSD_200626", 1591261042378000000, 1591261042400000000, 15004.0, None, 0)
    ]


def test_coin_m_polls_its_own_open_interest_path() -> None:
    d = get_dialect("binance-delivery")
    assert d.open_interest_path == "/dapi/v1/openInterest"
    sub = Subscription(("BTCUSD_PERP",), d.channels)
    assert d.channel_groups(d.channels) == [d.channels]  # unrouted: one connection
    assert d.rest_polls(sub) == [("open_interest", "BTCUSD_PERP")]
    url = d.connection_url("wss://dstream.binance.com", sub)
    assert url == (
        "wss://dstream.binance.com/stream?streams=btcusd_perp@trade/btcusd_perp@depth@100ms/"
        "btcusd_perp@bookTicker/btcusd_perp@markPrice@1s/btcusd_perp@forceOrder"
    )
