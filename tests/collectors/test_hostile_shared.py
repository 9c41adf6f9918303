"""Issue 12, the shared mechanisms one by one: the guarded decode, the throttled events, the sanity bounds
from ``[thresholds]``, unsubscribed symbols, and a connection that fails and is restarted while
``/healthz`` says so."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Sequence
from pathlib import Path

import aiohttp
import orjson
import pytest

from collectors.base import Normaliser, Subscription
from collectors.connection import Collector
from collectors.events import EventThrottle, Limits, ParseError, decode_json, json_too_deep
from collectors.registry import get_dialect
from collectors.simulator import SimulatorConfig
from collectors.venues.binance import BinanceDialect
from collectors.venues.kraken import loads_exact
from quality.live import QualityTracker
from quality.scoring import QualityConfig
from quality.server import QualityServer
from schemas import Flags, RecordBuffer
from tests.collectors.test_connection import FAST
from ticktape.config import load_config

NOW = time.time_ns()
TRADE = (
    '{"stream":"btcusdt@trade","data":{"e":"trade","E":%d,"s":"BTCUSDT","t":%d,"p":"%s","q":"0.5",'
    '"T":%d,"m":true}}'
)


def trade(trade_id: int, price: str = "65000.1", ms: int = NOW // 1_000_000) -> str:
    return TRADE % (ms, trade_id, price, ms)


@pytest.mark.parametrize(
    ("text", "deep"),
    [
        ("[" * 64 + "]" * 64, False),
        ("[" * 65 + "]" * 65, True),
        ("[[]," * 70 + "1" + "]" * 70, True),  # siblings between the levels: still 71 deep
        ('{"a":' * 65 + "1" + "}" * 65, True),
        ('[{"a":[' * 22 + "]}]" * 22, True),  # 66 levels of mixed containers
        ('{"s":"' + "[" * 500 + '"}', False),  # brackets inside a string are not nesting
        ("[" + "[1,2]," * 500 + "[3]]", False),  # many brackets, depth 2: a book frame
    ],
)
def test_json_depth_limit(text: str, deep: bool) -> None:
    assert json_too_deep(text.encode()) is deep
    if deep:
        with pytest.raises(ParseError, match="nested deeper than 64"):
            decode_json(text)
    else:
        decode_json(text)


def test_deep_nesting_never_escapes_as_a_recursion_error() -> None:
    frame = "[" * 100_000 + "]" * 100_000
    for loads in (orjson.loads, loads_exact):  # kraken's stdlib decoder recursed before
        with pytest.raises(ParseError):
            decode_json(frame, loads)
        with pytest.raises(ParseError):
            decode_json(frame, loads, max_depth=10**6)  # past our limit: the decoder's own, still an error


def test_event_throttle_is_deterministic_and_counts_what_it_held_back() -> None:
    t = EventThrottle(interval_ns=1_000)
    got = [t.due("k", ts) for ts in (0, 10, 999, 1000, 1500, 2100, 2100)]
    assert got == [1, 0, 0, 3, 0, 2, 0]


def test_thresholds_from_the_configuration_reach_the_normaliser(tmp_path: Path) -> None:
    path = tmp_path / "ticktape.toml"
    path.write_text("[thresholds]\nmax_price = 50000.0\nmax_size = 10.0\nmax_ts_skew_s = 60\n")
    options = load_config(path).dialect_options()
    assert (options.limits.max_price, options.limits.max_size, options.limits.max_ts_skew_ns) == (
        50000.0,
        10.0,
        60_000_000_000,
    )
    n = get_dialect("binance", options).make_normaliser()
    out = RecordBuffer()
    n.on_frame(NOW, trade(1, "65000.1"), out)  # above max_price here, fine with the defaults
    n.on_frame(NOW, trade(2, "49999.9"), out)
    n.on_frame(NOW, trade(3, "49999.9", NOW // 1_000_000 - 120_000), out)  # 2 min old: beyond 60 s
    assert [r[4] for r in out.trades] == ["2", "3"]
    assert out.trades[1][8] & Flags.BAD_TS_EXCHANGE and not out.trades[0][8] & Flags.BAD_TS_EXCHANGE
    assert [e[4] for e in out.feed_events] == ["parse_error", "bad_ts_exchange"]
    # the book engine gets the same bounds (the normaliser hands its Limits object to its books)
    snapshot = (
        '{"stream":"btcusdt@depthSnapshot","generated":true,"data":{"lastUpdateId":5,'
        '"bids":[["49000","11"]],"asks":[]}}'
    )
    n.on_frame(NOW, snapshot, out)
    assert "level out of range" in orjson.loads(out.feed_events[-1][5])["reason"]
    default = get_dialect("binance").make_normaliser()
    assert default.limits.max_price == Limits().max_price == 1e12


def test_crossed_bbo_is_kept_flagged_and_evented_once_per_second() -> None:
    n = get_dialect("binance").make_normaliser()
    out = RecordBuffer()
    ticker = '{"stream":"btcusdt@bookTicker","data":{"u":%d,"s":"BTCUSDT","b":"%s","B":"1","a":"%s","A":"1"}}'
    n.on_frame(NOW, ticker % (1, "100.5", "100.0"), out)
    n.on_frame(NOW + 1, ticker % (2, "100.6", "100.0"), out)
    n.on_frame(NOW + 2, ticker % (3, "99.0", "100.0"), out)
    n.on_frame(NOW + 2_000_000_000, ticker % (4, "100.0", "100.0"), out)
    assert [r[8] for r in out.bbo] == [1, 2, 3, 4]
    assert [bool(r[9] & Flags.MAYBE_BAD_BOOK) for r in out.bbo] == [True, True, False, True]
    events = [(e[1], orjson.loads(e[5])) for e in out.feed_events]
    assert [(s, d["bid"], d["occurrences"]) for s, d in events] == [
        ("BTC-USDT", 100.5, 1),
        ("BTC-USDT", 100.0, 2),
    ]


def test_rows_of_unsubscribed_symbols_are_dropped_counted_and_evented() -> None:
    n = get_dialect("binance").make_normaliser(["BTCUSDT"])
    out = RecordBuffer()
    for i in range(50):
        other = trade(100 + i).replace("BTCUSDT", f"X{i}USDT").replace("btcusdt", f"x{i}usdt")
        n.on_frame(NOW + i, other, out)
        n.on_frame(NOW + i, trade(200 + i), out)
    assert {r[1] for r in out.trades} == {"BTC-USDT"} and len(out.trades) == 50
    assert n.unsubscribed_rows == 50
    events = [orjson.loads(e[5]) for e in out.feed_events if e[4] == "unsubscribed_symbol"]
    assert len(events) == 1 and events[0]["symbols"] == ["X0-USDT"] and events[0]["rows_total"] == 1
    assert all(e[1] is None for e in out.feed_events)  # never a new symbol in the symbol column


class FlakyBinance(BinanceDialect):
    """Binance whose session setup fails while ``broken`` is set (a bug on the connection path)."""

    broken = True

    def subscribe_frames(self, sub: Subscription) -> list[str]:
        if self.broken:
            raise RuntimeError("subscription rendering failed")
        return super().subscribe_frames(sub)


async def _health(url: str) -> tuple[int, str]:
    async with aiohttp.ClientSession() as http, http.get(url) as resp:
        return resp.status, await resp.text()


async def test_a_failing_connection_is_restarted_and_healthz_says_so_meanwhile() -> None:
    dialect = FlakyBinance()
    symbols: Sequence[str] = ("BTCUSDT", "ETHUSDT")
    sim = dialect.simulator(SimulatorConfig(symbols=symbols, rate_hz=40.0))
    await sim.start()
    got = RecordBuffer()

    async def sink(batch: RecordBuffer) -> None:
        got.extend(batch)

    collector = Collector(dialect, symbols, sink, ws_url=sim.ws_url, rest_url=sim.rest_url, settings=FAST)
    server = QualityServer(QualityTracker(QualityConfig()), port=0, drive=False, health=collector.problems)
    await server.start()
    url = f"http://127.0.0.1:{server.port}/healthz"
    try:
        await collector.start()
        deadline = time.monotonic() + 10
        while not collector.connections[0].failures:
            assert time.monotonic() < deadline
            await asyncio.sleep(0.02)
        status, text = await _health(url)
        assert status == 503 and "restarting after RuntimeError: subscription rendering failed" in text
        assert not got.trades
        dialect.broken = False
        while got.trades == [] or collector.problems():
            assert time.monotonic() < deadline
            await asyncio.sleep(0.05)
        assert await _health(url) == (200, "ok\n")
        failed = [orjson.loads(e[5]) for e in got.feed_events if e[4] == "disconnect"]
        assert failed and all(d.get("task_failed") for d in failed)
        assert not collector.dead and not collector._tasks[0].done()
    finally:
        await collector.stop()
        await server.stop()
        await sim.stop()


async def test_frames_of_unsubscribed_symbols_never_cost_a_rest_snapshot() -> None:
    dialect = get_dialect("binance")
    sim = dialect.simulator(SimulatorConfig(symbols=("BTCUSDT", "ETHUSDT", "SOLUSDT"), rate_hz=40.0))
    await sim.start()
    got = RecordBuffer()

    async def sink(batch: RecordBuffer) -> None:
        got.extend(batch)

    collector = Collector(
        dialect, ("BTCUSDT",), sink, ws_url=sim.ws_url, rest_url=sim.rest_url, settings=FAST
    )
    try:
        await collector.start()
        await collector.wait_connected()
        conn = collector.connections[0]
        deadline = time.monotonic() + 10
        while not any(r[7] for r in got.book):  # BTCUSDT's snapshot arrived
            assert time.monotonic() < deadline
            await asyncio.sleep(0.05)
        before = sim.rest_requests
        depth = (
            '{"stream":"solusdt@depth@100ms","data":{"e":"depthUpdate","E":%d,"s":"SOLUSDT","U":%d,"u":%d,'
            '"b":[["150.1","2"]],"a":[]}}'
        )
        for i in range(20):  # a feed pushing a symbol nobody asked for: its book would want a snapshot
            await conn._process(time.time_ns(), depth % (time.time_ns() // 1_000_000, 10 + i, 10 + i))
        await asyncio.sleep(0.3)
        assert sim.rest_requests == before and "SOLUSDT" not in conn._fetching
        assert collector.stats.ignored_requests == 20
        assert not any(r[1] == "SOL-USDT" for ds in ("trades", "book", "bbo") for r in got.rows(ds))
    finally:
        await collector.stop()
        await sim.stop()


class BrokenDisconnect(BinanceDialect):
    """Binance whose normaliser fails once while handling a disconnect (a bug outside the session)."""

    def new_normaliser(self) -> Normaliser:
        normaliser = super().new_normaliser()
        original = normaliser.on_disconnect
        calls = []

        def on_disconnect(ts_recv: int, out: RecordBuffer) -> None:
            calls.append(ts_recv)
            if len(calls) == 1:
                raise RuntimeError("disconnect handling failed")
            original(ts_recv, out)

        normaliser.on_disconnect = on_disconnect  # type: ignore[method-assign]
        return normaliser


async def test_a_connection_failing_while_closing_reconnects() -> None:
    dialect = BrokenDisconnect()
    sim = dialect.simulator(SimulatorConfig(symbols=("BTCUSDT",), rate_hz=40.0))
    await sim.start()
    got = RecordBuffer()

    async def sink(batch: RecordBuffer) -> None:
        got.extend(batch)

    collector = Collector(
        dialect, ("BTCUSDT",), sink, ws_url=sim.ws_url, rest_url=sim.rest_url, settings=FAST
    )
    try:
        await collector.start()
        await collector.wait_connected()
        await sim.disconnect_all()
        deadline = time.monotonic() + 10
        while collector.stats.connects < 2 or not collector.connections[0].failures:
            assert time.monotonic() < deadline
            await asyncio.sleep(0.05)
        seen = len(got.trades)
        while len(got.trades) <= seen or collector.problems():
            assert time.monotonic() < deadline, collector.problems()
            await asyncio.sleep(0.05)
        assert not collector._tasks[0].done()
    finally:
        await collector.stop()
        await sim.stop()
