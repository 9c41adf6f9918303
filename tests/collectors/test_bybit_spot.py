"""Bybit v5 spot (``bybit-spot``): what differs from linear (symbols, limits, trade ids), the shared
book rules on spot topics, and the spot simulator end to end through the connection lifecycle."""

from __future__ import annotations

import asyncio
import time

import orjson
import pytest
import websockets

from collectors.base import DialectOptions, Subscription
from collectors.registry import get_dialect
from collectors.simulator import SimulatorConfig
from collectors.venues.bybit.common import BybitNormaliser
from collectors.venues.bybit.spot import BybitSpotDialect, BybitSpotNormaliser
from schemas import Flags, RecordBuffer
from tests.collectors.test_bybit import compare_tops_with_bbo
from tests.collectors.test_connection import running

MS = 1_000_000
TS = 1_700_000_000_000 * MS

# Shaped as Bybit documents spot messages (spot trade ids are decimal strings, no ``L`` field).
SPOT_TRADE = {
    "topic": "publicTrade.BTCUSDT",
    "ts": 1672304486868,
    "type": "snapshot",
    "data": [
        {
            "i": "2290000000061666327",
            "T": 1672304486865,
            "p": "16578.50",
            "v": "0.001",
            "S": "Sell",
            "s": "BTCUSDT",
            "BT": False,
            "RPI": False,
            "seq": 1783284617,
        }
    ],
}


def _feed(n: BybitNormaliser, *msgs: object) -> RecordBuffer:
    out = RecordBuffer()
    for i, m in enumerate(msgs):
        n.on_frame(TS + i, m if isinstance(m, bytes) else orjson.dumps(m), out)
    return out


def _book(topic: str, kind: str, u: int, bids=(), asks=()) -> dict[str, object]:
    return {
        "topic": topic,
        "type": kind,
        "ts": 1_700_000_000_000,
        "data": {
            "s": topic.rsplit(".", 1)[1],
            "b": [list(b) for b in bids],
            "a": [list(a) for a in asks],
            "u": u,
            "seq": u * 3,
        },
        "cts": 1_699_999_999_999,
    }


def test_spot_trade_and_symbols() -> None:
    out = _feed(BybitSpotNormaliser(), SPOT_TRADE)
    assert out.trades == [
        (
            "bybit-spot",
            "BTC-USDT",
            1672304486865 * MS,
            TS,
            "2290000000061666327",
            16578.5,
            0.001,
            "sell",
            int(Flags.OUTDATED | Flags.BAD_TS_EXCHANGE),  # the documented trade is ~11 months old
        )
    ]
    d = get_dialect("bybit-spot")
    assert [d.normalise_symbol(s) for s in ("BTCUSDT", "ETHBTC", "SOLUSDE", "MNTUSDC")] == [
        "BTC-USDT",
        "ETH-BTC",
        "SOL-USDE",
        "MNT-USDC",
    ]
    assert [d.native_symbol(s) for s in ("BTC-USDT", "eth/btc", "SOLUSDT")] == [
        "BTCUSDT",
        "ETHBTC",
        "SOLUSDT",
    ]
    assert (
        d.connection_url("ws://127.0.0.1:1", Subscription(("BTCUSDT",))) == "ws://127.0.0.1:1/v5/public/spot"
    )


def test_spot_book_rules_are_the_linear_ones() -> None:
    n = BybitSpotNormaliser()
    topic = "orderbook.50.BTCUSDT"
    out = _feed(
        n,
        _book(topic, "snapshot", 10, [("100", "1")], [("101", "1")]),
        _book(topic, "delta", 11, [("100", "2")]),
        _book(topic, "delta", 13, [("100", "3")]),  # 12 lost
        _book("orderbook.1.ETHUSDT", "snapshot", 5, [("20", "1")], [("21", "1")]),
        _book(topic, "snapshot", 20, [("99", "1")], [("101", "1")]),
    )
    assert [(e[1], e[2], e[4]) for e in out.feed_events] == [
        ("BTC-USDT", "book", "gap"),
        ("BTC-USDT", "book", "resync"),
    ]
    assert n.resubscribe_requests == {"BTCUSDT"}
    assert [r[4:9] for r in out.bbo] == [(20.0, 1.0, 21.0, 1.0, 15)]
    assert [r[9] for r in out.book if r[7]] == [0, 0, 1, 1]
    # ts_exchange of book rows is the matching engine time (cts)
    assert {r[2] for r in out.book} == {1_699_999_999_999 * MS}


def test_spot_limits_ten_args_per_request_and_has_no_tickers_bbo() -> None:
    d = BybitSpotDialect()
    frames = [
        orjson.loads(f)
        for f in d.subscribe_frames(Subscription(("BTCUSDT", "ETHUSDT", "SOLUSDT", "XRPUSDT")))
    ]
    assert [len(f["args"]) for f in frames] == [10, 2]
    with pytest.raises(ValueError, match="bbo_source"):
        BybitSpotDialect(DialectOptions(extra={"bbo_source": "tickers"}))
    with pytest.raises(ValueError, match="book depth 500"):
        BybitSpotDialect(DialectOptions(book_depth=500))


async def test_spot_simulator_round_trip_and_arg_limit() -> None:
    dialect = BybitSpotDialect(DialectOptions(book_depth=200))
    sub = Subscription(("BTCUSDT", "ETHUSDT"))
    sim = dialect.simulator(SimulatorConfig(symbols=sub.symbols, rate_hz=400))
    await sim.start()
    frames: list[bytes] = []
    try:
        async with websockets.connect(dialect.connection_url(sim.ws_url, sub)) as ws:
            too_many = [f"publicTrade.S{i}USDT" for i in range(11)]
            await ws.send(orjson.dumps({"op": "subscribe", "args": too_many, "req_id": "big"}).decode())
            for text in dialect.subscribe_frames(sub):
                await ws.send(text)
            while len(frames) < 1200:
                frames.append(await asyncio.wait_for(ws.recv(decode=False), 5))
    finally:
        await sim.stop()
    n = dialect.new_normaliser()
    out = RecordBuffer()
    for i, frame in enumerate(frames):  # the simulator stamps frames with the real clock
        n.on_frame(time.time_ns() + i, frame, out)
    assert [orjson.loads(e[5])["ret_msg"] for e in out.feed_events] == ["error:args size >10"]
    assert n.parse_errors == 0
    assert {r[1] for r in out.trades} == {"BTC-USDT", "ETH-USDT"}
    assert all(r[4].isdigit() for r in out.trades)
    assert n.book_depth == {"BTCUSDT": 200, "ETHUSDT": 200}
    assert compare_tops_with_bbo(out) > 100


async def test_spot_dropped_update_resyncs_only_that_symbol_live() -> None:
    async with running("bybit-spot", symbols=("BTCUSDT", "ETHUSDT", "SOLUSDT")) as run:
        await run.until(lambda: run.count("book", "SOL-USDT") > 20)
        run.sim.faults.drop_updates["SOLUSDT"] = 1
        await run.until(lambda: len(run.events("resync", "SOL-USDT")) >= 1)
        n_eth = run.count("bbo", "ETH-USDT")
        await run.until(lambda: run.count("bbo", "ETH-USDT") > n_eth + 5)
    assert {e[1] for e in run.events("gap")} == {"SOL-USDT"}
    assert {e[1] for e in run.events("resync")} == {"SOL-USDT"}
    assert not run.events("parse_error")
    sol_epochs = {r[9] for r in run.got.book if r[1] == "SOL-USDT"}
    assert sol_epochs == {0, 1}
    assert {r[9] for r in run.got.book if r[1] != "SOL-USDT"} == {0}


def test_spot_level1_is_re_pushed_every_3_s_and_the_repush_changes_nothing() -> None:
    """Current docs: spot level-1 books are re-sent as a snapshot (same ``u``) after 3 s without change,
    as on linear; the simulator does it and the normaliser takes it as no change (no gap, no resync)."""
    from collectors.venues.bybit.spot import BybitSpotSimulator
    from tests.collectors.test_bybit import _book, _feed

    assert BybitSpotSimulator.level1_repush_ns == 3_000_000_000

    def top(kind: str, u: int, bids=(), asks=()) -> dict:
        msg = _book(kind, u, bids, asks, seq=u)
        msg["topic"] = "orderbook.1.BTCUSDT"
        return msg

    out = _feed(
        BybitSpotNormaliser(),
        top("snapshot", 7, [("100", "1")], [("101", "1")]),
        top("snapshot", 7, [("100", "1")], [("101", "1")]),  # the 3 s re-push
        top("delta", 8, [("100.5", "2")]),
    )
    assert out.feed_events == []
    assert [r[8] for r in out.bbo] == [7, 7, 8]


async def test_spot_simulator_re_pushes_an_unchanged_level1_book() -> None:
    dialect = BybitSpotDialect()
    sim = dialect.simulator(SimulatorConfig(symbols=("BTCUSDT",), rate_hz=20, trade_probability=0.0))
    sim.level1_repush_ns = 300_000_000  # the 3 s rule, scaled down for the test
    await sim.start()
    seen: list[tuple[str, int]] = []
    try:
        async with websockets.connect(f"{sim.ws_url}/v5/public/spot") as ws:
            await ws.send('{"op":"subscribe","args":["orderbook.1.BTCUSDT"]}')
            deadline = asyncio.get_running_loop().time() + 3
            while asyncio.get_running_loop().time() < deadline:
                msg = orjson.loads(await asyncio.wait_for(ws.recv(), 3))
                if msg.get("topic") == "orderbook.1.BTCUSDT":
                    seen.append((msg["type"], msg["data"]["u"]))
                    if any(
                        k == "snapshot" and u == prev
                        for (k, u), (_, prev) in zip(seen[1:], seen, strict=False)
                    ):
                        break
    finally:
        await sim.stop()
    # a snapshot carrying the previous message's u: the re-push of an unchanged book
    assert any(k == "snapshot" and u == prev for (k, u), (_, prev) in zip(seen[1:], seen, strict=False)), seen


def test_linear_book_depths_are_1_50_200_1000() -> None:
    from collectors.venues.bybit.linear import BybitDialect

    for depth in (50, 200, 1000):
        assert BybitDialect(DialectOptions(book_depth=depth)).book_depth == depth
    with pytest.raises(ValueError, match="book depth 500 not offered"):
        BybitDialect(DialectOptions(book_depth=500))  # removed in November 2025
