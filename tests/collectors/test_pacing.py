"""Pacing: each venue's documented limits, enforced by the connection layer and by the simulators.

Every scenario runs twice against the same simulator limits: with pacing the simulator sees no breach
and the collector reports how long it waited; without pacing the simulator refuses or closes as the
venue does, which proves the simulator enforces the limit the test relies on.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import pytest

from collectors.connection import Collector, ConnectionSettings
from collectors.pacing import Pacer, RateWindow, VenueLimits
from collectors.registry import get_dialect
from collectors.simulator import ExchangeSimulator, SimulatorConfig
from schemas import RecordBuffer
from tests.collectors.test_connection import FAST

OKX_SYMBOLS = (
    "BTC-USDT",
    "ETH-USDT",
    "SOL-USDT",
    "XRP-USDT",
    "ADA-USDT",
    "DOGE-USDT",
    "LTC-USDT",
    "DOT-USDT",
)
COINBASE_SYMBOLS = ("BTC-USD", "ETH-USD", "SOL-USD", "XRP-USD", "ADA-USD")


@asynccontextmanager
async def storm(
    exchange: str, symbols: tuple[str, ...], pacing: bool
) -> AsyncIterator[tuple[ExchangeSimulator, Collector, RecordBuffer]]:
    """One symbol per connection, so a start opens as many connections at once as there are symbols."""
    dialect = get_dialect(exchange)
    dialect.max_streams_per_connection = 3  # type: ignore[misc]  # one symbol (3 channels) per connection
    sim = dialect.simulator(SimulatorConfig(symbols=symbols, rate_hz=20))
    await sim.start()
    got = RecordBuffer()

    async def sink(batch: RecordBuffer) -> None:
        got.extend(batch)

    settings = ConnectionSettings(**{**FAST.__dict__, "pacing": pacing, "max_connection_age_s": 0.0})
    collector = Collector(
        dialect, list(symbols), sink, ws_url=sim.ws_url, rest_url=sim.rest_url, settings=settings
    )
    await collector.start()
    try:
        yield sim, collector, got
    finally:
        await collector.stop()
        await sim.stop()


async def until(predicate: Any, timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    while not predicate():
        assert time.monotonic() < deadline, "condition not met in time"
        await asyncio.sleep(0.05)


def every_symbol_flows(got: RecordBuffer, symbols: tuple[str, ...]) -> bool:
    return {r[1] for r in got.bbo} >= set(symbols)


async def test_rate_window_waits_for_the_oldest_event_to_leave() -> None:
    window = RateWindow(3, 0.5)
    waits = [await window.acquire() for _ in range(4)]
    assert waits[:3] == [pytest.approx(0.0, abs=0.01)] * 3
    assert 0.4 < waits[3] < 0.7
    pacer = Pacer(VenueLimits(connections_per_window=2, connection_window_s=0.3, safety=1.0))
    for _ in range(3):
        await pacer.connect()
    assert pacer.waits == 1 and 0.2 < pacer.waited_s < 0.5 and pacer.waited_by["connect"] == pacer.waited_s


async def test_okx_connection_storm_is_paced_to_three_per_second() -> None:
    """8 connections at once against OKX's 3 connection requests per second, then a reconnect storm."""
    async with storm("okx", OKX_SYMBOLS, pacing=True) as (sim, collector, got):
        await until(lambda: every_symbol_flows(got, OKX_SYMBOLS), 20)
        first_wait = collector.stats.pacing_wait_s
        await sim.disconnect_all()  # every connection reconnects at once
        mark = len(got.bbo)
        await until(lambda: sim.connections_total >= 16 and len(got.bbo) > mark + 100, 20)
        assert sim.limit_violations == {"connections": 0, "messages": 0, "subscriptions": 0}
    assert first_wait > 1.0  # 8 opens at 2.4/s (3/s less the safety margin) take > 2 s in all
    assert collector.stats.pacing_wait_s > first_wait and collector.stats.pacing_waits >= 10
    assert collector.pacer.waited_by["connect"] > 2.0


async def test_okx_simulator_refuses_connections_above_its_limit() -> None:
    async with storm("okx", OKX_SYMBOLS, pacing=False) as (sim, collector, got):
        await until(lambda: sim.limit_violations["connections"] > 0, 10)
        await until(lambda: every_symbol_flows(got, OKX_SYMBOLS), 30)  # refused ones retry with backoff
    assert collector.stats.pacing_wait_s == 0.0


async def test_coinbase_subscribe_burst_is_paced_to_eight_messages_per_second_per_ip() -> None:
    """5 connections send 4 subscribe frames each (heartbeats and 3 channels): 20 messages, 8/s per IP."""
    async with storm("coinbase", COINBASE_SYMBOLS, pacing=True) as (sim, collector, got):
        await until(lambda: every_symbol_flows(got, COINBASE_SYMBOLS), 20)
        assert sim.limit_violations == {"connections": 0, "messages": 0, "subscriptions": 0}
    assert collector.pacer.waited_by["message"] > 1.0


async def test_coinbase_simulator_closes_a_client_above_the_message_rate() -> None:
    async with storm("coinbase", COINBASE_SYMBOLS, pacing=False) as (sim, _collector, got):
        await until(
            lambda: any(e[4] == "disconnect" and '"close_code":1008' in e[5] for e in got.feed_events), 10
        )
    assert sim.limit_violations["messages"] > 0


async def test_okx_subscribe_budget_per_connection_per_hour_is_enforced_by_the_simulator() -> None:
    """OKX allows 480 subscribe requests per connection per hour; the simulator answers 60014 above it."""
    import orjson
    import websockets

    sim = get_dialect("okx").simulator(SimulatorConfig(symbols=("BTC-USDT",), rate_hz=5))
    await sim.start()
    try:
        async with websockets.connect(f"{sim.ws_url}/ws/v5/public") as ws:
            request = '{"op":"subscribe","args":[{"channel":"trades","instId":"BTC-USDT"}]}'
            for _ in range(481):
                await ws.send(request)
            errors = []
            while not errors:
                msg = orjson.loads(await asyncio.wait_for(ws.recv(), 5))
                if msg.get("event") == "error":
                    errors.append(msg)
    finally:
        await sim.stop()
    assert errors[0]["code"] == "60014" and sim.limit_violations["subscriptions"] == 1
    pacing = Pacer(get_dialect("okx").limits).connection_windows()
    assert pacing._subscribes is not None and pacing._subscribes.limit == 384  # 480/h less the margin
