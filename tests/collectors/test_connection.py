"""The shared connection lifecycle, through a real websocket against the Binance simulator.

Each fault scenario asserts detection (feed event, counter), recovery (data flows again, book
resynced) and that the other symbols keep flowing.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import orjson

from collectors.backoff import Backoff, RestBudget
from collectors.capture import replay_capture
from collectors.connection import Collector, ConnectionSettings
from collectors.registry import get_dialect
from collectors.simulator import ExchangeSimulator, SimulatorConfig
from schemas import Flags, RecordBuffer

FAST = ConnectionSettings(
    backoff_base_s=0.05,
    backoff_cap_s=0.5,
    ping_interval_s=1.0,
    ping_timeout_s=1.0,
    stale_after_s={"book": 1.0, "bbo": 1.0, "trades": 5.0},
    recycle_after_s=1.0,
    watchdog_interval_s=0.2,
)


class Run:
    """A simulator and a collector feeding an in-memory buffer."""

    def __init__(self, sim: ExchangeSimulator, collector: Collector, got: RecordBuffer) -> None:
        self.sim = sim
        self.collector = collector
        self.got = got

    def events(self, kind: str, symbol: str | None = None) -> list[tuple[Any, ...]]:
        return [e for e in self.got.feed_events if e[4] == kind and (symbol is None or e[1] == symbol)]

    def count(self, dataset: str, symbol: str) -> int:
        return sum(1 for r in self.got.rows(dataset) if r[1] == symbol)

    async def until(self, predicate: Callable[[], bool], timeout_s: float = 10.0) -> None:
        deadline = time.monotonic() + timeout_s
        while not predicate():
            if time.monotonic() > deadline:
                raise AssertionError(
                    f"condition not met within {timeout_s}s; events: {self.got.feed_events[-10:]}"
                )
            await asyncio.sleep(0.05)


@asynccontextmanager
async def running(
    exchange: str = "binance",
    symbols: tuple[str, ...] = ("BTCUSDT", "ETHUSDT"),
    settings: ConnectionSettings = FAST,
    capture: Path | None = None,
    budget: RestBudget | None = None,
    sink_delay_s: float = 0.0,
    rate_hz: float = 40.0,
    **sim_options: Any,
) -> AsyncIterator[Run]:
    dialect = get_dialect(exchange)
    sim = dialect.simulator(SimulatorConfig(symbols=symbols, rate_hz=rate_hz, **sim_options))
    await sim.start()
    got = RecordBuffer()

    async def sink(batch: RecordBuffer) -> None:
        if sink_delay_s:
            await asyncio.sleep(sink_delay_s)
        got.extend(batch)

    collector = Collector(
        dialect,
        list(symbols),
        sink,
        ws_url=sim.ws_url,
        rest_url=sim.rest_url,
        settings=settings,
        capture_path=capture,
        budget=budget,
    )
    await collector.start()
    try:
        await collector.wait_connected()
        yield Run(sim, collector, got)
    finally:
        await collector.stop()
        await sim.stop()


async def test_live_run_equals_replay_of_its_capture(tmp_path: Path) -> None:
    capture = tmp_path / "live.capture.gz"
    async with running(capture=capture) as run:
        await run.until(lambda: run.count("trades", "ETH-USDT") > 20 and run.count("book", "BTC-USDT") > 50)
        run.sim.faults.drop_updates["BTCUSDT"] = 1
        await run.until(lambda: len(run.events("resync", "BTC-USDT")) >= 1)
        await run.sim.disconnect_all()
        await run.until(
            lambda: run.collector.stats.connects >= 2 and len(run.events("resync", "ETH-USDT")) >= 1
        )
    replayed = replay_capture(get_dialect("binance").new_normaliser(), capture)
    assert replayed.trades == run.got.trades
    assert replayed.book == run.got.book
    assert replayed.bbo == run.got.bbo
    normaliser_events = [e for e in run.got.feed_events if e[2] != "connection"]
    assert replayed.feed_events == normaliser_events
    assert {e[4] for e in normaliser_events} >= {"gap", "resync"}


async def test_dropped_update_resyncs_only_that_symbol() -> None:
    async with running() as run:
        await run.until(lambda: run.count("book", "ETH-USDT") > 20)
        run.sim.faults.drop_updates["BTCUSDT"] = 1
        await run.until(lambda: len(run.events("resync", "BTC-USDT")) == 1)
        eth_before = run.count("book", "ETH-USDT")
        await run.until(lambda: run.count("book", "ETH-USDT") > eth_before + 20)
        assert len(run.events("gap", "BTC-USDT")) == 1
        assert run.events("gap", "ETH-USDT") == [] and run.events("resync", "ETH-USDT") == []
        epochs = {r[9] for r in run.got.book if r[1] == "BTC-USDT"}
        assert epochs == {0, 1}


async def test_duplicated_and_reordered_updates() -> None:
    async with running() as run:
        await run.until(lambda: run.count("book", "BTC-USDT") > 20)
        run.sim.faults.duplicate_updates["BTCUSDT"] = 3
        await asyncio.sleep(0.5)
        assert run.events("gap") == []  # a repeated update is ignored, not a gap
        run.sim.faults.reorder_updates["ETHUSDT"] = 1
        await run.until(lambda: len(run.events("resync", "ETH-USDT")) == 1)
        assert run.events("gap", "BTC-USDT") == []


async def test_disconnect_reconnects_resubscribes_and_resyncs() -> None:
    async with running() as run:
        await run.until(lambda: run.count("trades", "BTC-USDT") > 5)
        await run.sim.disconnect_all()
        await run.until(lambda: run.collector.stats.connects == 2 and len(run.events("resync")) == 2)
        before = run.count("bbo", "ETH-USDT")
        await run.until(lambda: run.count("bbo", "ETH-USDT") > before + 10)
        assert len(run.events("disconnect")) == 1 and len(run.events("connect")) == 2


async def test_snapshot_429_honours_retry_after_then_syncs() -> None:
    budget = RestBudget()
    dialect = get_dialect("binance")
    sim = dialect.simulator(SimulatorConfig(symbols=("BTCUSDT", "ETHUSDT"), rate_hz=40))
    sim.faults.rest_429 = 2
    sim.faults.retry_after_s = 1.0
    await sim.start()
    got = RecordBuffer()

    async def sink(batch: RecordBuffer) -> None:
        got.extend(batch)

    collector = Collector(
        dialect,
        ["BTCUSDT", "ETHUSDT"],
        sink,
        ws_url=sim.ws_url,
        rest_url=sim.rest_url,
        settings=FAST,
        budget=budget,
    )
    started = time.monotonic()
    await collector.start()
    try:
        run = Run(sim, collector, got)
        await run.until(
            lambda: sum(1 for r in got.book if r[7]) > 0 and len({r[1] for r in got.book if r[7]}) == 2
        )
        synced_after = time.monotonic() - started
    finally:
        await collector.stop()
        await sim.stop()
    errors = [orjson.loads(e[5]) for e in got.feed_events if e[4] == "rest_error"]
    assert [e["status"] for e in errors] == [429, 429]
    assert budget.rejections == 2
    assert synced_after >= 1.0  # Retry-After (1 s) was waited out before the next request


async def test_silent_socket_is_stale_then_recycled() -> None:
    async with running() as run:
        await run.until(lambda: run.count("bbo", "BTC-USDT") > 5)
        run.sim.faults.silent = True
        await run.until(lambda: len(run.events("stale")) >= 1)
        await run.until(lambda: run.collector.stats.recycles >= 1)
        run.sim.faults.silent = False
        await run.until(lambda: run.collector.stats.connects >= 2)
        before = run.count("bbo", "BTC-USDT")
        await run.until(lambda: run.count("bbo", "BTC-USDT") > before + 5)
        stale_channels = {e[2] for e in run.events("stale")}
        assert {"book", "bbo"} <= stale_channels


async def test_heartbeats_only_is_stale() -> None:
    async with running() as run:
        await run.until(lambda: run.count("bbo", "BTC-USDT") > 5)
        run.sim.faults.heartbeats_only = True
        await run.until(lambda: len(run.events("stale")) >= 1)
        run.sim.faults.heartbeats_only = False


async def test_lagging_exchange_time_is_flagged_outdated_while_frames_flow() -> None:
    async with running() as run:
        await run.until(lambda: run.count("trades", "BTC-USDT") > 3)
        run.sim.faults.ts_lag_ns = 30_000_000_000
        mark = len(run.got.trades)
        await run.until(lambda: len(run.got.trades) > mark + 10)
        late = run.got.trades[mark + 2 :]
        assert late and all(r[8] & Flags.OUTDATED for r in late)
        assert all(29.0 < (r[3] - r[2]) / 1e9 < 32.0 for r in late)
        assert run.events("stale") == []  # frames keep flowing: the socket looks healthy


async def test_malformed_invalid_utf8_and_oversized_frames() -> None:
    settings = ConnectionSettings(**{**FAST.__dict__, "max_frame_bytes": 1024 * 1024})
    async with running(settings=settings) as run:
        await run.until(lambda: run.count("bbo", "BTC-USDT") > 5)
        run.sim.faults.malformed_frames = 1
        run.sim.faults.invalid_utf8_frames = 1
        await run.until(lambda: len(run.events("parse_error")) >= 2)
        details = [orjson.loads(e[5]) for e in run.events("parse_error")]
        assert all(d["frame"] for d in details)
        run.sim.faults.oversized_bytes = 2 * 1024 * 1024
        run.sim.faults.oversized_frames = 1
        await run.until(lambda: run.collector.stats.connects >= 2)
        disconnect = orjson.loads(run.events("disconnect")[0][5])
        assert "1009" in disconnect.get("error", "") or "too big" in disconnect.get("error", "")
        before = run.count("bbo", "ETH-USDT")
        await run.until(lambda: run.count("bbo", "ETH-USDT") > before + 5)


async def test_slow_consumer_drop_oldest_counts_and_records() -> None:
    settings = ConnectionSettings(**{**FAST.__dict__, "queue_max_batches": 5, "queue_policy": "drop-oldest"})
    async with running(settings=settings, sink_delay_s=0.3, rate_hz=100) as run:
        await run.until(lambda: run.collector.stats.dropped_rows > 0 and len(run.events("dropped")) > 0, 15)
        detail = orjson.loads(run.events("dropped")[0][5])
        assert detail["rows"] > 0
        assert run.collector.stats.max_queue_depth == 5


async def test_reconnect_storm_respects_rest_budget_and_jitters() -> None:
    symbols = tuple(f"S{i:02d}USDT" for i in range(50))
    budget = RestBudget(weight_per_window=2000, window_s=60.0, safety=1.0)
    settings = ConnectionSettings(
        **{**FAST.__dict__, "stale_after_s": {"book": 30.0, "bbo": 30.0, "trades": 60.0}}
    )
    async with running(symbols=symbols, settings=settings, budget=budget, rate_hz=5) as run:
        for n in range(1, 6):
            await run.until(lambda n=n: run.collector.stats.connects >= n, 20)  # type: ignore[misc]
            await asyncio.sleep(0.2)
            await run.sim.disconnect_all()
        await run.until(lambda: run.collector.stats.connects >= 6, 20)
    delays = run.collector.stats.reconnect_delays
    assert len(delays) >= 5 and len(set(delays)) == len(delays)  # full jitter: no two alike
    assert budget.max_used <= budget.limit
    assert run.sim.rest_requests * 50 <= budget.limit  # 50 weight per snapshot call, never past the budget


def test_backoff_full_jitter_is_capped_and_resets() -> None:
    import random

    b = Backoff(base_s=1.0, cap_s=8.0, healthy_after_s=10.0, rng=random.Random(1))
    delays = [b.next_delay() for _ in range(10)]
    assert all(0.0 <= d <= 8.0 for d in delays)
    assert max(delays[5:]) > 1.0  # the ceiling grew
    b.connected_for(11.0)
    assert b.attempts == 0


async def test_planned_rotation_overlaps_and_loses_nothing() -> None:
    settings = ConnectionSettings(**{**FAST.__dict__, "max_connection_age_s": 1.5})
    async with running(settings=settings, rate_hz=60) as run:
        await run.until(lambda: run.collector.rotations >= 2, 20)
        mark = len(run.got.trades)
        await run.until(lambda: len(run.got.trades) > mark + 10)
    assert run.collector.stats.connects >= 3
    assert run.events("gap") == []
    for symbol in ("BTC-USDT", "ETH-USDT"):
        ids = [int(r[4]) for r in run.got.trades if r[1] == symbol]
        assert len(ids) == len(set(ids)), "a trade was published twice"
        assert ids == list(range(ids[0], ids[0] + len(ids))), "a trade was lost across a handover"
        seqs = [r[8] for r in run.got.bbo if r[1] == symbol]
        assert seqs == sorted(set(seqs)), "bbo went backwards or repeated across a handover"
        epochs = {r[9] for r in run.got.book if r[1] == symbol}
        assert len(epochs) == 1, "Binance books are handed over at a matching update id: one epoch"
        snapshots = {r[8] for r in run.got.book if r[1] == symbol and r[7]}
        assert len(snapshots) == 1, "a handover must not re-send the book as a snapshot"
    assert run.events("resync") == []
    # the books stay right across handovers: rebuilt from the rows, they match the bbo stream
    from tests.collectors.book_replay import tops_by_seq

    tops = tops_by_seq(run.got.book)
    compared = 0
    for row in run.got.bbo:
        top = tops.get((row[1], row[8]))
        if top is not None:
            assert (top[0][0], top[0][1], top[1][0], top[1][1]) == row[4:8]
            compared += 1
    assert compared > 50


async def test_a_faulty_exchange_does_not_disturb_another() -> None:
    async with running("binance") as bad, running("okx", symbols=("BTC-USDT", "ETH-USDT")) as good:
        await good.until(lambda: good.count("bbo", "BTC-USDT") > 5)
        before = good.count("book", "ETH-USDT")
        bad.sim.faults.drop_updates["BTCUSDT"] = 1
        bad.sim.faults.malformed_frames = 1
        await bad.until(lambda: len(bad.events("parse_error")) >= 1 and len(bad.events("gap")) >= 1)
        await bad.sim.disconnect_all()
        await bad.until(lambda: bad.collector.stats.connects >= 2)
        await good.until(lambda: good.count("book", "ETH-USDT") > before + 20)
        assert good.collector.stats.connects == 1
        assert [e for e in good.got.feed_events if e[4] in ("gap", "parse_error", "disconnect")] == []


def test_watchdog_sees_derivatives_rows_and_never_calls_liquidations_stale() -> None:
    """A connection carrying only derivatives channels (Binance's ``/market``) must not look stale
    while mark, funding and open interest rows flow; a quiet market has no liquidations."""
    from collectors.connection import ChannelWatchdog

    settings = ConnectionSettings(stale_after_s={"book": 1.0}, recycle_after_s=1.0)
    dog = ChannelWatchdog(settings, ("funding", "mark", "open_interest", "liquidations"))
    assert dog.last_data == {}  # watched from their first row (OKX spot instruments have none)
    assert (dog.threshold("mark"), dog.threshold("funding")) == (30.0, 120.0)  # the base layer's defaults
    start = time.monotonic()
    assert dog.check(start + 1000) == ([], [], False)
    for second in range(0, 200, 5):
        rows = RecordBuffer(
            funding=[("x", "S", None, 0, 0.0001, None, None, 0)],
            mark_price=[("x", "S", None, 0, 1.0, None, 0)],
            open_interest=[("x", "S", None, 0, 1.0, None, 0)],
        )
        dog.saw(rows, start + second)
        assert dog.check(start + second + 1) == ([], [], False)
    newly, _, _ = dog.check(start + 400)
    assert {c for c, _ in newly} == {"funding", "mark", "open_interest"}  # silent for 200 s: stale
