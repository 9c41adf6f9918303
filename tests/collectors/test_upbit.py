"""Upbit: the shared recording (2021-04-17, SIMPLE format, real-time only), documented DEFAULT and list
formats, binary frames captured as text, the keep-alive answer, and the repeated snapshot trade.

What differs between the recording and the current documentation: nothing read here; the recording has
no SNAPSHOT messages (it was subscribed with ``isOnlyRealtime``) and its trade timestamps (``ttms``) are
whole seconds, where the current API sends milliseconds.
"""

from __future__ import annotations

import asyncio
import base64
from pathlib import Path

import orjson
import pytest

from collectors.base import DialectOptions, Subscription
from collectors.capture import read_capture, replay_capture
from collectors.registry import get_dialect
from collectors.venues.upbit import UpbitNormaliser
from schemas import RecordBuffer

SAMPLE = "upbit/upbit_cryptofeed.capture.gz"
MS = 1_000_000


def _symbol(code: str) -> str:
    quote, base = code.split("-")
    return f"{base}-{quote}"


@pytest.fixture(scope="module")
def frames(samples: Path) -> list[tuple[int, dict]]:
    return [(i[0], orjson.loads(i[1])) for i in read_capture(samples / SAMPLE) if isinstance(i, tuple)]


@pytest.fixture(scope="module")
def records(samples: Path) -> RecordBuffer:
    return replay_capture(UpbitNormaliser(), samples / SAMPLE)


def test_trades_equal_the_messages(frames, records) -> None:
    expected = [(ts, f) for ts, f in frames if f["ty"] == "trade"]
    assert len(expected) > 300
    assert len(records.trades) == len(expected)
    for (ts, t), row in zip(expected, records.trades, strict=True):
        exchange, symbol, ts_ex, ts_recv, trade_id, price, size, side, _flags = row
        assert (exchange, symbol) == ("upbit", _symbol(t["cd"]))
        assert ts_recv == ts and ts_ex == t["ttms"] * MS
        assert trade_id == str(t["sid"])
        assert (price, size) == (t["tp"], t["tv"])
        assert side == {"BID": "buy", "ASK": "sell"}[t["ab"]]


def test_every_book_message_is_rebuilt_exactly_without_false_gaps(frames, records) -> None:
    books = [(ts, f) for ts, f in frames if f["ty"] == "orderbook"]
    assert len(books) > 100
    assert records.feed_events == []  # no gap, no resync, no parse error
    assert {r[9] for r in records.book} == {0}  # one snapshot per market, then changes only
    by_recv: dict[int, list[tuple]] = {}
    for row in records.book:
        by_recv.setdefault(row[3], []).append(row)
    held: dict[str, dict[str, dict[float, float]]] = {}
    bbo = iter(records.bbo)
    for ts, f in books:
        symbol = _symbol(f["cd"])
        book = held.setdefault(symbol, {"bid": {}, "ask": {}})
        for row in by_recv.get(ts, []):
            assert row[1] == symbol and row[2] == f["tms"] * MS
            if row[6] == 0.0:
                book[row[4]].pop(row[5], None)
            else:
                book[row[4]][row[5]] = row[6]
        assert book["bid"] == {u["bp"]: u["bs"] for u in f["obu"]}
        assert book["ask"] == {u["ap"]: u["as"] for u in f["obu"]}
        # the bbo row of this message is its first unit, and the rebuilt book's top
        row = next(bbo)
        first = f["obu"][0]
        assert row[:4] == ("upbit", symbol, f["tms"] * MS, ts)
        assert row[4:9] == (first["bp"], first["bs"], first["ap"], first["as"], None)
        assert (max(book["bid"]), min(book["ask"])) == (row[4], row[6])
    assert next(bbo, None) is None


# Shaped as the documentation shows the DEFAULT format.
DEFAULT_TRADE = {
    "type": "trade",
    "code": "KRW-BTC",
    "timestamp": 1730336862082,
    "trade_date": "2024-10-31",
    "trade_time": "01:07:42",
    "trade_timestamp": 1730336862047,
    "trade_price": 100473000.0,
    "trade_volume": 0.00014208,
    "ask_bid": "BID",
    "prev_closing_price": 100571000.0,
    "change": "FALL",
    "change_price": 98000.0,
    "sequential_id": 17303368620470000,
    "best_ask_price": 100473000,
    "best_ask_size": 0.43139478,
    "best_bid_price": 100465000,
    "best_bid_size": 0.01990656,
    "stream_type": "REALTIME",
}
DEFAULT_BOOK = {
    "type": "orderbook",
    "code": "KRW-BTC",
    "timestamp": 1730336862181,
    "total_ask_size": 4.79158413,
    "total_bid_size": 2.65609625,
    "orderbook_units": [
        {"ask_price": 100473000.0, "bid_price": 100465000.0, "ask_size": 0.43139478, "bid_size": 0.01990656},
        {"ask_price": 100474000.0, "bid_price": 100458000.0, "ask_size": 0.00033, "bid_size": 0.00097617},
    ],
    "stream_type": "SNAPSHOT",
    "level": 0,
}


def test_default_format_and_list_formats() -> None:
    n = UpbitNormaliser()
    out = RecordBuffer()
    ts = 1730336862300 * MS
    n.on_frame(ts, orjson.dumps(DEFAULT_TRADE), out)
    n.on_frame(ts + 1, orjson.dumps([DEFAULT_BOOK]), out)  # JSON_LIST
    assert out.feed_events == []
    assert out.trades == [
        ("upbit", "BTC-KRW", 1730336862047 * MS, ts, "17303368620470000", 100473000.0, 0.00014208, "buy", 0)
    ]
    assert out.bbo == [
        (
            "upbit",
            "BTC-KRW",
            1730336862181 * MS,
            ts + 1,
            100465000.0,
            0.01990656,
            100473000.0,
            0.43139478,
            None,
            0,
        )
    ]
    assert sorted((r[4], r[5]) for r in out.book) == [
        ("ask", 100473000.0),
        ("ask", 100474000.0),
        ("bid", 100458000.0),
        ("bid", 100465000.0),
    ]
    # the snapshot trade sent again on a new subscription is not a second trade
    n.on_frame(ts + 2, orjson.dumps({**DEFAULT_TRADE, "stream_type": "SNAPSHOT"}), out)
    assert len(out.trades) == 1 and [e[4] for e in out.feed_events] == ["duplicate"]


def test_one_sided_units_keep_up_and_errors() -> None:
    n = UpbitNormaliser()
    out = RecordBuffer()
    units = [{"ap": 0, "as": 0, "bp": 20190.0, "bs": 10.0}, {"ap": 0, "as": 0, "bp": 20180.0, "bs": 1.5}]
    n.on_frame(
        1, orjson.dumps({"ty": "orderbook", "cd": "KRW-WAVES", "tms": 1618678263564, "obu": units}), out
    )
    assert out.bbo[0][4:8] == (20190.0, 10.0, None, None)
    assert {r[4] for r in out.book} == {"bid"}
    n.on_frame(2, b'{"status":"UP"}', out)
    n.on_frame(3, b'{"error":{"name":"NO_TICKET","message":"ticket is missing"}}', out)
    n.on_frame(4, orjson.dumps({"ty": "trade", "cd": "KRW-../x", "sid": 1}), out)
    n.on_frame(5, b"b64:/w==", out)
    assert [e[4] for e in out.feed_events] == ["venue_error", "parse_error", "parse_error"]


def test_request_symbols_and_binary_frames() -> None:
    dialect = get_dialect("upbit")
    (frame,) = dialect.subscribe_frames(Subscription(("KRW-BTC", "USDT-BTC")))
    ticket, trade, book, fmt = orjson.loads(frame)
    assert set(ticket) == {"ticket"} and fmt == {"format": "SIMPLE"}
    assert trade == {"type": "trade", "codes": ["KRW-BTC", "USDT-BTC"]}
    assert book == {"type": "orderbook", "codes": ["KRW-BTC", "USDT-BTC"]}
    (frame,) = get_dialect("upbit", DialectOptions(book_depth=5)).subscribe_frames(
        Subscription(("KRW-BTC",), ("bbo",))
    )
    assert orjson.loads(frame)[1] == {"type": "orderbook", "codes": ["KRW-BTC.5"]}
    with pytest.raises(ValueError):
        get_dialect("upbit", DialectOptions(book_depth=50))
    assert dialect.app_ping == ("PING", 60.0)
    assert [dialect.native_symbol(s) for s in ("BTC-KRW", "KRW-BTC", "BTC-USDT", "USDT-BTC", "ETH-BTC")] == [
        "KRW-BTC",
        "KRW-BTC",
        "USDT-BTC",
        "USDT-BTC",
        "BTC-ETH",
    ]
    assert dialect.normalise_symbol("BTC-ETH") == "ETH-BTC"
    assert dialect.decode_binary(b'{"status":"UP"}') == b'{"status":"UP"}'
    assert dialect.decode_binary(b"\xff\xfe") == b"b64:" + base64.b64encode(b"\xff\xfe")


async def test_binary_frames_are_captured_as_their_text(tmp_path: Path) -> None:
    from tests.collectors.test_connection import running

    capture = tmp_path / "upbit.capture"
    async with running("upbit", ("KRW-BTC", "KRW-ETH"), capture=capture) as run:
        for _ in range(100):
            if {r[1] for r in run.got.trades} == {"BTC-KRW", "ETH-KRW"}:
                break
            await asyncio.sleep(0.05)
        ws = next(iter(run.sim.sessions)).ws
        await ws.send_bytes(b"\xff\xfe not utf-8")  # a binary frame that is not text
        await asyncio.sleep(0.2)
    lines = [i for i in read_capture(capture) if isinstance(i, tuple)]
    binary = [frame for _, frame in lines if frame.startswith(b"b64:")]
    assert binary == [b"b64:" + base64.b64encode(b"\xff\xfe not utf-8")]
    assert all(orjson.loads(frame) for _, frame in lines if not frame.startswith(b"b64:"))  # JSON text
    replayed = replay_capture(UpbitNormaliser(), capture)
    assert replayed.trades == run.got.trades and replayed.bbo == run.got.bbo
    assert [e[4] for e in replayed.feed_events if e[4] == "parse_error"] == ["parse_error"]


async def test_simulator_answers_ping_and_rejects_requests_without_ticket() -> None:
    import websockets

    from collectors.simulator import SimulatorConfig

    sim = get_dialect("upbit").simulator(SimulatorConfig(symbols=("KRW-BTC",)))
    await sim.start()
    try:
        async with websockets.connect(sim.ws_url + "/websocket/v1") as ws:
            await ws.send("PING")
            assert orjson.loads(await ws.recv(decode=False)) == {"status": "UP"}
            await ws.send('[{"type":"trade","codes":["KRW-BTC"]}]')
            assert orjson.loads(await ws.recv(decode=False))["error"]["name"] == "NO_TICKET"
    finally:
        await sim.stop()
    assert sim.pings == 1
