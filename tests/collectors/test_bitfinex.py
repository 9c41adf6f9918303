"""Bitfinex v2: the shared recording (2021-04-17: trades snapshots, P0 books, tickers, with ``SEQ_ALL``
on and checksums off, as the recorder's ``conf`` asked), documented message shapes for what it lacks
(``te``/``tu`` trades, checksums, derivatives status, liquidations, info codes), and the venue's rules:
one sequence per connection, signed CRC32 over JavaScript-printed numbers, resubscription by channel id.

What differs from today's API: the recording used ``wss://api.bitfinex.com/ws/2`` (public data now lives
on ``api-pub``) and ``len 100`` books; the messages themselves are unchanged.
"""

from __future__ import annotations

import zlib
from pathlib import Path
from typing import Any

import orjson
import pytest

from collectors.base import DialectOptions, Subscription
from collectors.capture import read_capture, replay_capture
from collectors.checksum import to_signed32
from collectors.registry import get_dialect
from collectors.venues.bitfinex import BitfinexNormaliser, book_checksum, js_number, normalise_pair
from schemas import RecordBuffer
from tests.collectors.bad_input import events_of
from tests.collectors.book_replay import tops_by_seq
from tests.collectors.test_connection import running

SAMPLE = "bitfinex/bitfinex_cryptofeed.capture.gz"
MS = 1_000_000


@pytest.fixture(scope="module")
def frames(samples: Path) -> list[tuple[int, Any]]:
    return [(i[0], orjson.loads(i[1])) for i in read_capture(samples / SAMPLE) if isinstance(i, tuple)]


@pytest.fixture(scope="module")
def records(samples: Path) -> RecordBuffer:
    return replay_capture(BitfinexNormaliser(), samples / SAMPLE)


def _channels(frames: list[tuple[int, Any]]) -> dict[int, tuple[str, str]]:
    return {
        f["chanId"]: (f["channel"], normalise_pair(f["symbol"]))
        for _, f in frames
        if isinstance(f, dict) and f.get("event") == "subscribed"
    }


def test_trades_equal_the_messages(frames, records) -> None:
    chans = _channels(frames)
    expected = []
    seen: set[tuple[str, int]] = set()
    for ts, f in frames:
        if isinstance(f, list) and chans.get(f[0], ("",))[0] == "trades":
            payload = f[1]
            entries = (
                payload if isinstance(payload, list) and payload and isinstance(payload[0], list) else []
            )
            if f[1] in ("te", "tu"):
                entries = [f[2]]
            for t in entries:
                key = (chans[f[0]][1], t[0])
                if key not in seen:
                    seen.add(key)
                    expected.append((ts, chans[f[0]][1], t))
    assert len(expected) == 210  # seven snapshots: the recording has no live trade in its 13 s
    assert len(records.trades) == len(expected)
    for (ts, symbol, t), row in zip(expected, records.trades, strict=True):
        exchange, sym, ts_ex, ts_recv, trade_id, price, size, side, _flags = row
        assert (exchange, sym, ts_recv) == ("bitfinex", symbol, ts)
        assert trade_id == str(t[0]) and ts_ex == t[1] * MS
        assert price == float(t[3]) and size == abs(float(t[2]))
        assert side == ("buy" if t[2] > 0 else "sell")


def test_one_sequence_per_connection_and_no_false_gap(frames, records) -> None:
    seqs = [f[-1] for _, f in frames if isinstance(f, list)]
    assert seqs == list(range(1, len(seqs) + 1))  # SEQ_ALL counts every message, heartbeats included
    assert records.feed_events == []  # heartbeats on a channel before its "subscribed" are not errors
    assert {r[9] for r in records.book} == {0}


def test_book_rows_rebuild_every_message(frames, records) -> None:
    """An independent rebuild of each book from the raw messages equals the rows' book at every seq."""
    chans = _channels(frames)
    books: dict[str, dict[str, dict[float, float]]] = {}
    want: dict[tuple[str, int], tuple[Any, Any]] = {}
    for _, f in frames:
        if not isinstance(f, list) or chans.get(f[0], ("",))[0] != "book" or f[1] == "hb":
            continue
        symbol = chans[f[0]][1]
        entries = f[1] if isinstance(f[1][0], list) else [f[1]]
        if isinstance(f[1][0], list):
            books[symbol] = {"bid": {}, "ask": {}}
        book = books[symbol]
        for price, count, amount in entries:
            side = "bid" if amount > 0 else "ask"
            if count == 0:
                book[side].pop(float(price), None)
            else:
                book[side][float(price)] = abs(float(amount))
        bid = max(book["bid"].items()) if book["bid"] else None
        ask = min(book["ask"].items()) if book["ask"] else None
        want[(symbol, f[-1])] = (bid, ask)
    tops = tops_by_seq(records.book)
    assert len(want) > 1500
    assert tops == want


def test_ticker_prices_against_book_tops(frames, records) -> None:
    """The ticker is a throttled snapshot, not a step of the book: at the ticker's seq the book's top (as of
    the book's previous message) equals the ticker's prices in 7 of 14 comparable cases on this recording;
    bbo sizes stay null since the ticker's sizes are sums of 25 levels (0.69 at the top, 76.17 in the ticker)."""
    tops = tops_by_seq(records.book)
    by_symbol: dict[str, list[int]] = {}
    for sym, seq in sorted(tops, key=lambda k: k[1]):
        by_symbol.setdefault(sym, []).append(seq)
    assert len(records.bbo) == 21
    equal = compared = 0
    for row in records.bbo:
        assert row[5] is None and row[7] is None and row[4] < row[6]
        earlier = [s for s in by_symbol.get(row[1], []) if s < row[8]]
        if not earlier:
            continue
        (bid, _), (ask, _) = tops[(row[1], earlier[-1])]
        compared += 1
        equal += (bid, ask) == (row[4], row[6])
    assert (equal, compared) == (7, 14)
    first = next(f for _, f in frames if isinstance(f, list) and f[1] != "hb")
    assert (records.bbo[0][4], records.bbo[0][6]) == (first[1][0], first[1][2])


# -- documented messages --------------------------------------------------------------------------------

CONF = '{"event":"conf","status":"OK","flags":196608}'


def _feed(norm: BitfinexNormaliser, *frames: Any, ts: int = 1_700_000_000_000_000_000) -> RecordBuffer:
    out = RecordBuffer()
    for i, frame in enumerate(frames):
        norm.on_frame(ts + i, frame if isinstance(frame, str) else orjson.dumps(frame), out)
    return out


def _subscribed(channel: str, chan_id: int, symbol: str = "tBTCUSD") -> dict[str, Any]:
    return {
        "event": "subscribed",
        "channel": channel,
        "chanId": chan_id,
        "symbol": symbol,
        "pair": symbol[1:],
    }


def test_te_and_tu_of_one_trade_give_one_row() -> None:
    norm = BitfinexNormaliser()
    trade = [401597395, 1574694478808, -0.005, 7245.3]
    out = _feed(
        norm,
        CONF,
        _subscribed("trades", 17470),
        [17470, [], 1],
        [17470, "te", trade, 2],
        [17470, "tu", trade, 3],
    )
    assert out.trades == [
        (
            "bitfinex",
            "BTC-USD",
            1574694478808 * MS,
            1_700_000_000_000_000_003,
            "401597395",
            7245.3,
            0.005,
            "sell",
            out.trades[0][8],
        )
    ]
    assert events_of(out) == []


def _book(norm: BitfinexNormaliser) -> RecordBuffer:
    snapshot = [[7254.7, 3, 3.3], [7254.6, 1, 0.00000012], [7255.0, 2, -1.5], [7256.1, 1, -100]]
    return _feed(norm, CONF, _subscribed("book", 17082), [17082, snapshot, 1])


def test_checksum_text_is_interleaved_signed_and_javascript_printed() -> None:
    norm = BitfinexNormaliser()
    _book(norm)
    book = norm.symbols.book("tBTCUSD")
    text = "7254.7:3.3:7255:-1.5:7254.6:1.2e-7:7256.1:-100"
    assert book_checksum(book) == to_signed32(zlib.crc32(text.encode()))
    assert to_signed32(zlib.crc32(text.encode())) < 0  # this one reads negative: signed comparison matters
    good = book_checksum(book)
    out = _feed(norm, [17082, "cs", good, 2])
    assert out.feed_events == []
    out = _feed(norm, [17082, "cs", to_signed32(good + 1), 3])
    assert [e[4] for e in out.feed_events] == ["checksum_mismatch"]
    assert norm.resubscribe_requests == {"tBTCUSD#17082"}
    frames = get_dialect("bitfinex").resubscribe_frames(
        sorted(norm.resubscribe_requests), Subscription(("tBTCUSD",))
    )
    assert [orjson.loads(f)["event"] for f in frames] == ["unsubscribe", "subscribe"]
    assert orjson.loads(frames[0])["chanId"] == 17082
    # the new channel's snapshot is the resync
    out = _feed(
        norm,
        '{"event":"unsubscribed","status":"OK","chanId":17082}',
        _subscribed("book", 17090),
        [17090, [[7254.7, 3, 3.3], [7255.0, 2, -1.5]], 4],
    )
    assert [e[4] for e in out.feed_events] == ["resync"] and all(r[9] == 1 for r in out.book)


@pytest.mark.parametrize(
    ("value", "text"),
    [
        (60400, "60400"),
        (60400.0, "60400"),
        (0.1, "0.1"),
        (-0.68826974, "-0.68826974"),
        (0.000001, "0.000001"),
        (0.0000001, "1e-7"),
        (0.00001234, "0.00001234"),
        (1.5e-9, "1.5e-9"),
        (1e20, "100000000000000000000"),
        (1e21, "1e+21"),
        (123.456, "123.456"),
    ],
)
def test_numbers_print_as_javascript_prints_them(value: float, text: str) -> None:
    assert js_number(value) == text


def test_a_sequence_jump_resubscribes_every_book_and_a_step_back_is_an_error() -> None:
    norm = BitfinexNormaliser()
    _book(norm)
    _feed(norm, _subscribed("book", 17083, "tETHUSD"), [17083, [[3000.1, 1, 2.0], [3000.5, 1, -1.0]], 2])
    out = _feed(norm, [17082, [7254.7, 4, 3.4], 3], [17083, [3000.1, 0, 1], 5])
    assert [(e[1], e[4]) for e in out.feed_events] == [("BTC-USD", "gap"), ("ETH-USD", "gap")]
    assert norm.resubscribe_requests == {"tBTCUSD#17082", "tETHUSD#17083"}
    # late messages of the channels being replaced are not applied; a second jump asks nothing more
    norm.resubscribe_requests.clear()
    out = _feed(norm, [17082, [7254.7, 5, 3.5], 6], [17082, "hb", 9])
    assert out.book == [] and [e[4] for e in out.feed_events] == [] and norm.resubscribe_requests == set()
    norm.last_seq = 4  # (the sequence checks below start from here)
    out = _feed(norm, [17082, "hb", 4])
    assert [e[4] for e in out.feed_events] == ["parse_error"]
    # a bogus count cannot freeze the connection: 50 steps back in a row are taken as the new count
    norm.resubscribe_requests.clear()
    out = _feed(norm, *[[17082, "hb", 5] for _ in range(50)])
    assert [e[4] for e in out.feed_events] == ["parse_error"] * 49
    assert norm.last_seq == 5


def test_derivatives_status_and_liquidations_as_documented() -> None:
    norm = BitfinexNormaliser()
    status = [1596124822000, None, 0.896, 0.771995, None, 1396531.67460709, None, 1596153600000, 0.0001056, 6, None,
              -0.01381344, None, None, 0.7664, None, None, 2158.9, None, None, None, 0, 0.0075]  # fmt: skip
    liq = [
        "pos",
        145400868,
        1609144352338,
        None,
        "tETHF0:USTF0",
        -1.67288094,
        730.96,
        None,
        1,
        1,
        None,
        736.13,
    ]
    other = ["pos", 145400869, 1609144352338, None, "tBTCF0:USTF0", 0.5, 27000.0, None, 0, 1, None, 26000.0]
    out = _feed(
        norm,
        CONF,
        {"event": "subscribed", "channel": "status", "chanId": 335856, "key": "deriv:tETHF0:USTF0"},
        {"event": "subscribed", "channel": "status", "chanId": 91684, "key": "liq:global"},
        [335856, status, 1],
        [91684, [liq, other], 2],
        [91684, [liq], 3],
    )
    ts = 1596124822000 * MS
    assert [r[:7] for r in out.funding] == [
        ("bitfinex", "ETH-USDT-PERP", ts, out.funding[0][3], -0.01381344, 0.0001056, 1596153600000 * MS)
    ]
    assert [r[:6] for r in out.mark_price] == [
        ("bitfinex", "ETH-USDT-PERP", ts, out.funding[0][3], 0.7664, 0.771995)
    ]
    assert [r[:5] for r in out.open_interest] == [
        ("bitfinex", "ETH-USDT-PERP", ts, out.funding[0][3], 2158.9)
    ]
    # tBTCF0:USTF0 is not subscribed on this connection; the repeat of the same position is dropped
    assert [r[:2] + r[4:8] for r in out.liquidations] == [
        ("bitfinex", "ETH-USDT-PERP", "145400868", "buy", 736.13, 1.67288094)
    ]
    assert out.liquidations[0][2] == 1609144352338 * MS
    assert events_of(out) == []


def test_timestamp_flag_puts_the_time_after_the_sequence() -> None:
    """With ``TIMESTAMP`` and ``SEQ_ALL`` (as tardis.dev records Bitfinex) messages end ``..., SEQ, MTS``."""
    norm = BitfinexNormaliser()
    out = _feed(
        norm,
        '{"event":"conf","status":"OK","flags":98304}',
        _subscribed("book", 17082),
        _subscribed("ticker", 17083),
        [17082, [[7254.7, 3, 3.3], [7255.0, 2, -1.5]], 1, 1574694475039],
        [17082, "hb", 2, 1574694476000],
        [17082, "hb", 3],  # a heartbeat without the time is accepted too
        [17082, [7254.8, 1, 0.5], 4, 1574694477123],
        [17083, [7254.8, 9.9, 7255.0, 8.8, 1, 0.1, 7254.8, 100, 7300, 7200], 5, 1574694477200],
    )
    assert events_of(out) == []
    assert {r[2] for r in out.book if r[7]} == {1574694475039 * MS}
    assert [(r[2], r[5], r[6], r[8]) for r in out.book if not r[7]] == [(1574694477123 * MS, 7254.8, 0.5, 4)]
    assert [(r[2], r[4], r[6], r[8]) for r in out.bbo] == [(1574694477200 * MS, 7254.8, 7255.0, 5)]


def test_info_codes_are_events() -> None:
    norm = BitfinexNormaliser()
    out = _feed(
        norm,
        '{"event":"info","code":20051,"msg":"Stopping. Please try to reconnect"}',
        '{"event":"info","code":20060,"msg":"Entering in Maintenance mode."}',
        '{"event":"info","code":20061,"msg":"Maintenance ended."}',
        '{"event":"error","msg":"subscribe: dup","code":10301}',
    )
    assert [e[4] for e in out.feed_events] == [
        "reconnect_requested",
        "maintenance_start",
        "maintenance_end",
        "venue_error",
    ]


def test_book_length_is_an_option() -> None:
    deep = get_dialect("bitfinex", DialectOptions(book_depth=100))
    frame = orjson.loads(deep.subscribe_frames(Subscription(("tBTCUSD",), ("book",)))[1])
    assert (frame["channel"], frame["len"]) == ("book", "100")
    with pytest.raises(ValueError, match="1, 25, 100, 250"):
        get_dialect("bitfinex", DialectOptions(book_depth=50))


def test_symbols_both_ways() -> None:
    dialect = get_dialect("bitfinex")
    for native, symbol in (
        ("tBTCUSD", "BTC-USD"),
        ("tBTCUST", "BTC-USDT"),
        ("tAAVE:USD", "AAVE-USD"),
        ("tBTCF0:USTF0", "BTC-USDT-PERP"),
        ("tETHF0:BTCF0", "ETH-BTC-PERP"),
    ):
        assert dialect.normalise_symbol(native) == symbol
        assert dialect.native_symbol(symbol) == native
        assert dialect.native_symbol(native) == native
    frames = [
        orjson.loads(f)
        for f in dialect.subscribe_frames(Subscription(("tBTCUSD", "tBTCF0:USTF0"), dialect.channels))
    ]
    assert frames[0] == {"event": "conf", "flags": 32768 + 65536 + 131072}  # TIMESTAMP, SEQ_ALL, OB_CHECKSUM
    keys = [f.get("key") for f in frames if f.get("channel") == "status"]
    assert keys == ["deriv:tBTCF0:USTF0", "liq:global"]  # no derivatives status for the spot pair
    spot = [orjson.loads(f) for f in dialect.subscribe_frames(Subscription(("tBTCUSD",), dialect.channels))]
    assert [f.get("key") for f in spot if f.get("channel") == "status"] == [
        "liq:global"
    ]  # margin liquidations
    assert {
        "event": "subscribe",
        "channel": "book",
        "symbol": "tBTCUSD",
        "prec": "P0",
        "freq": "F0",
        "len": "25",
    } in frames


# Two books and their checksums from Bitfinex's own Python client tests (bitfinexcom/bitfinex-api-py,
# bfxapi/tests/test_ws_orderbook.py): the second has prices that JavaScript prints in exponent form (7e-7).
XRPBTC_SNAPSHOT = (
    "[123, [[0.0000886,1,1060.55466114],[0.00008859,1,1000],[0.00008858,1,2713.47159343"
    "],[0.00008857,1,4276.92870916],[0.00008856,2,6764.75562319],[0.00008854,1,5641.48532401"
    "],[0.00008853,1,2255.92632223],[0.0000885,1,2256.69584601],[0.00008848,2,3630.3"
    "],[0.00008845,1,28195.70625766],[0.00008844,1,15571.7],[0.00008843,1,2500"
    "],[0.00008841,1,64196.16117814],[0.00008838,1,7500],[0.00008837,2,2764.12999012"
    "],[0.00008834,2,10886.476298],[0.00008831,1,20000],[0.0000883,1,1000"
    "],[0.00008829,2,2517.22175358],[0.00008828,1,450.45],[0.00008827,1,13000],[0.00008824,1,1500"
    "],[0.0000882,1,300],[0.00008817,1,3000],[0.00008816,1,100],[0.00008864,1,-481.8549041"
    "],[0.0000887,2,-2141.77009092],[0.00008871,1,-2256.45433182],[0.00008872,1,-2707.58122743"
    "],[0.00008874,1,-5640.31794092],[0.00008876,1,-29004.93294912],[0.00008878,1,-2500"
    "],[0.0000888,1,-20000],[0.00008881,2,-2880.15595827],[0.00008882,1,-27705.42933984"
    "],[0.00008883,1,-4509.83708214],[0.00008884,1,-1500],[0.00008885,1,-2500"
    "],[0.00008888,1,-902.91405442],[0.00008889,1,-900],[0.00008891,1,-7500"
    "],[0.00008894,1,-775.08564697],[0.00008896,1,-150],[0.00008899,3,-11628.02590049"
    "],[0.000089,2,-1299.7],[0.00008902,2,-4841.8],[0.00008904,3,-25320.46250083"
    "],[0.00008909,1,-14000],[0.00008913,1,-123947.999],[0.00008915,2,-28019.6]]]"
)
VETBTC_SNAPSHOT = (
    "[123, [[0.00000121,5,249013.0209708],[0.0000012,6,518315.33310128],[0.00000119,4,566200.89"
    "],[0.00000118,2,260000],[0.00000117,1,100000],[0.00000116,2,160000],[0.00000114,1,60000"
    "],[0.00000113,2,198500],[0.00000112,1,60000],[0.0000011,1,60000],[0.00000106,2,113868.87735849"
    "],[0.00000105,2,105000],[0.00000103,1,3000],[0.00000102,2,105000],[0.00000101,2,202970"
    "],[0.000001,2,21000],[7e-7,1,10000],[6.6e-7,1,10000],[6e-7,1,100000],[4.9e-7,1,10000"
    "],[2.5e-7,1,2000],[6e-8,1,100000],[5e-8,1,200000],[1e-8,4,640000],[0.00000122,7,-312043.19"
    "],[0.00000123,6,-415094.8939744],[0.00000124,5,-348181.23],[0.00000125,1,-12000"
    "],[0.00000126,2,-143872.31],[0.00000127,1,-5000],[0.0000013,1,-5000"
    "],[0.00000134,1,-8249.18938656],[0.00000135,2,-230043.1337899],[0.00000136,1,-13161.25184766"
    "],[0.00000145,1,-2914],[0.0000015,3,-54448.5],[0.00000152,2,-5538.54849594"
    "],[0.00000153,1,-62691.75475079],[0.00000159,1,-2914],[0.0000016,1,-52631.10296831"
    "],[0.00000164,1,-4000],[0.00000166,1,-3831.46784605],[0.00000171,1,-14575.17730379"
    "],[0.00000174,1,-3124.81815395],[0.0000018,1,-18000],[0.00000182,1,-16000],[0.00000186,1,-4000"
    "],[0.00000189,1,-10000.686624],[0.00000191,1,-14500]]]"
)


@pytest.mark.parametrize(
    ("symbol", "frames", "expected"),
    [
        (
            "tXRPBTC",
            [
                XRPBTC_SNAPSHOT,
                "[123,[0.00008915,0,-1]]",
                "[123,[0.00008837,1,56.54876269]]",
                "[123,[0.00008873,1,-15699.9]]",
            ],
            30026640,
        ),
        (
            "tVETBTC",
            [VETBTC_SNAPSHOT, "[123,[0.00000121,4,228442.6609708]]", "[123,[0.00000121,6,304023.8109708]]"],
            1770440002,
        ),
    ],
)
def test_checksums_of_bitfinex_examples(symbol: str, frames: list[str], expected: int) -> None:
    norm = BitfinexNormaliser()
    out = _feed(norm, _subscribed("book", 123, symbol), *frames)
    assert out.feed_events == []
    assert book_checksum(norm.symbols.book(symbol)) == expected


async def test_spot_and_perpetual_over_a_real_websocket_and_20051_reconnects() -> None:
    async with running("bitfinex", ("tBTCUSD", "tBTCF0:USTF0")) as run:
        await run.until(
            lambda: (
                all(
                    run.count(d, s) > 0
                    for d in ("trades", "book", "bbo")
                    for s in ("BTC-USD", "BTC-USDT-PERP")
                )
                and run.count("funding", "BTC-USDT-PERP") > 0
                and run.count("book", "BTC-USD") > 10
            )
        )
        assert run.count("funding", "BTC-USD") == 0  # no derivatives status for a spot pair
        assert all(r[2] is not None for r in run.got.book)  # TIMESTAMP: book rows carry the exchange time
        connects = run.collector.stats.connects
        for session in list(run.sim.sessions):
            run.sim.send(session, '{"event":"info","code":20051,"msg":"Stopping. Please try to reconnect"}')
        await run.until(
            lambda: run.collector.stats.connects > connects and bool(run.events("resync", "BTC-USD"))
        )
        assert len(run.events("reconnect_requested")) == 1
        assert [
            e[4] for e in run.got.feed_events if e[4] in ("gap", "checksum_mismatch", "parse_error")
        ] == []
